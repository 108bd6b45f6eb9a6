package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
	"github.com/xavyo/xavyo/migrations"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func start(t *testing.T, db *store.DB) *audit.Sequencer {
	t.Helper()
	s, err := audit.New(audit.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func appendN(t *testing.T, s *audit.Sequencer, tenant uuid.UUID, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.AppendSync(context.Background(), audit.Entry{TenantID: tenant, ActorKind: "user", ActorID: "u1",
				Action: "test.write", TargetKind: "thing", TargetID: fmt.Sprint(i), Details: map[string]any{"i": i, "n": 1.5}})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// tamper runs SQL with rights the application role lacks (PostgreSQL:
// the schema owner).
func tamper(t *testing.T, db *store.DB, query string, args ...any) {
	t.Helper()
	target := db
	if db.Flavor() == store.Postgres {
		owner, err := store.Open(context.Background(), store.Config{URL: testdb.OwnerURL(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer owner.Close()
		target = owner
	}
	if err := target.SystemTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.Exec(context.Background(), query, args...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestChainVerifiesAndDetectsTampering(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := start(t, db)
		// Statements take the tenant as $1.
		cases := []struct {
			name    string
			stmts   []string
			wantSeq int64
			reason  string
		}{
			{"altered", []string{`UPDATE audit_log SET actor_id = 'mallory' WHERE tenant_id = $1 AND seq = 7`}, 7, "altered"},
			{"altered details", []string{`UPDATE audit_log SET details = '{"i":0}' WHERE tenant_id = $1 AND seq = 3`}, 3, "altered"},
			{"deleted", []string{`DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 5`}, 6, "deleted"},
			{"reordered", []string{
				`UPDATE audit_log SET seq = -1 WHERE tenant_id = $1 AND seq = 4`,
				`UPDATE audit_log SET seq = 4 WHERE tenant_id = $1 AND seq = 9`,
				`UPDATE audit_log SET seq = 9 WHERE tenant_id = $1 AND seq = -1`,
			}, 4, "link"},
			{"tail deleted", []string{`DELETE FROM audit_log WHERE tenant_id = $1 AND seq > 18`}, 19, "tail"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tenant := uuid.Must(uuid.NewV7())
				other := uuid.Must(uuid.NewV7())
				appendN(t, s, tenant, 20)
				appendN(t, s, other, 5)
				rep, err := audit.Verify(context.Background(), db, tenant)
				if err != nil || !rep.OK() || rep.Rows != 20 || rep.HeadSeq != 20 {
					t.Fatalf("before tampering: %+v %v", rep, err)
				}
				for _, q := range tc.stmts {
					tamper(t, db, q, tenant)
				}
				rep, err = audit.Verify(context.Background(), db, tenant)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK() || rep.First.Seq != tc.wantSeq {
					t.Fatalf("want first bad row %d, got %+v", tc.wantSeq, rep.First)
				}
				if !strings.Contains(rep.First.Reason, tc.reason) {
					t.Fatalf("reason %q", rep.First.Reason)
				}
				// Another tenant's chain is untouched.
				if rep, err := audit.Verify(context.Background(), db, other); err != nil || !rep.OK() || rep.Rows != 5 {
					t.Fatalf("other tenant: %+v %v", rep, err)
				}
			})
		}
	})
}

func TestPlatformChainAndTenantIsolation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := start(t, db)
		appendN(t, s, audit.Platform, 3)
		a := uuid.Must(uuid.NewV7())
		appendN(t, s, a, 2)
		rep, err := audit.Verify(context.Background(), db, audit.Platform)
		if err != nil || !rep.OK() || rep.Rows < 3 {
			t.Fatalf("%+v %v", rep, err)
		}
		ra, err := audit.Verify(context.Background(), db, a)
		if err != nil || !ra.OK() || ra.Rows != 2 {
			t.Fatalf("%+v %v", ra, err)
		}
	})
}

// TestCallerCommitsWhenIdleAndOrderHolds: with no commit running and no
// other record waiting, a durable append commits on the caller's
// goroutine (here no Run goroutine exists yet), taking the lazy records
// queued before it; one goroutine's records
// are chained in the order it appended them; under concurrency every
// record is chained once; after the stop, what was queued is committed
// and appends are refused.
func TestCallerCommitsWhenIdleAndOrderHolds(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tid := uuid.Must(uuid.NewV7())
		s, err := audit.New(audit.Config{DB: db})
		if err != nil {
			t.Fatal(err)
		}
		entry := func(i int, lazy bool) audit.Entry {
			return audit.Entry{TenantID: tid, ActorKind: "user", ActorID: "u1", Action: "test.order", TargetID: fmt.Sprint(i), Lazy: lazy}
		}
		lazy, err := s.Append(ctx, entry(1, true))
		if err != nil {
			t.Fatal(err)
		}
		own, err := s.AppendDurable(ctx, entry(2, false))
		if err != nil {
			t.Fatalf("an idle log's caller could not commit its own record: %v", err)
		}
		if got := []int64{lazy.Seq(), own.Seq()}; got[0] != 1 || got[1] != 2 {
			t.Fatalf("seqs %v, want 1 2 (the order of the appends)", got)
		}

		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = s.Run(runCtx); close(done) }()
		queued, err := s.Append(ctx, entry(3, false))
		if err != nil {
			t.Fatal(err)
		}
		after, err := s.AppendDurable(ctx, entry(4, false))
		if err != nil {
			t.Fatal(err)
		}
		if got := []int64{queued.Seq(), after.Seq()}; got[0] != 3 || got[1] != 4 {
			t.Fatalf("seqs %v, want 3 4 (the order of the appends)", got)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[int64]bool{}
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := int64(0)
				for i := range 20 {
					var r *audit.Receipt
					var err error
					if i%2 == 0 {
						r, err = s.Append(ctx, entry(g*100+i, true))
					} else {
						r, err = s.AppendDurable(ctx, entry(g*100+i, false))
					}
					if err != nil {
						t.Error(err)
						return
					}
					if i%2 == 1 {
						seq := r.Seq()
						mu.Lock()
						dup := seen[seq]
						seen[seq] = true
						mu.Unlock()
						if dup || seq <= last {
							t.Errorf("goroutine %d: seq %d after %d (duplicate %v)", g, seq, last, dup)
						}
						last = seq
					}
				}
			}()
		}
		wg.Wait()
		alone, err := s.Append(ctx, entry(998, true))
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		if err := alone.Wait(wctx); err != nil {
			t.Fatalf("a lazy record alone was not committed after its delay: %v", err)
		}
		tail, err := s.Append(ctx, entry(999, true))
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		if err := tail.Wait(ctx); err != nil || tail.Seq() != 4+8*20+2 {
			t.Fatalf("a record queued before the stop: %v, seq %d, want %d", err, tail.Seq(), 4+8*20+2)
		}
		if _, err := s.Append(ctx, entry(1000, false)); err != audit.ErrStopped {
			t.Fatalf("append after the stop: %v, want ErrStopped", err)
		}
		if _, err := s.AppendDurable(ctx, entry(1001, false)); err != audit.ErrStopped {
			t.Fatalf("durable append after the stop: %v, want ErrStopped", err)
		}
		rep, err := audit.Verify(ctx, db, tid)
		if err != nil || !rep.OK() || rep.Rows != 4+8*20+2 {
			t.Fatalf("%+v %v", rep, err)
		}
	})
}

// TestTwoWritersShareAChain: two sequencers on one database (as two
// replicas) extending the same tenant's chain in turn each find the head
// moved by the other since their last commit, and the chain stays whole.
func TestTwoWritersShareAChain(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tid := uuid.Must(uuid.NewV7())
		a, err := audit.New(audit.Config{DB: db})
		if err != nil {
			t.Fatal(err)
		}
		b, err := audit.New(audit.Config{DB: db})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			for j, s := range []*audit.Sequencer{a, b, b} {
				r, err := s.AppendDurable(ctx, audit.Entry{TenantID: tid, ActorKind: "user", ActorID: "u1", Action: "test.turns", TargetID: fmt.Sprint(i, j)})
				if err != nil {
					t.Fatal(err)
				}
				if want := int64(i*3 + j + 1); r.Seq() != want {
					t.Fatalf("record %d/%d at seq %d, want %d", i, j, r.Seq(), want)
				}
			}
		}
		rep, err := audit.Verify(ctx, db, tid)
		if err != nil || !rep.OK() || rep.Rows != 30 {
			t.Fatalf("%+v %v", rep, err)
		}
	})
}

func TestBadEntryRejected(t *testing.T) {
	s := start(t, testdb.SQLite(t))
	if _, err := s.Append(context.Background(), audit.Entry{TenantID: uuid.New()}); err == nil {
		t.Fatal("an entry without an action was accepted")
	}
	if _, err := s.Append(context.Background(), audit.Entry{Action: "x", Details: func() {}}); err == nil {
		t.Fatal("unencodable details were accepted")
	}
}

// TestCrashKeepsDurableRecords kills a writer process with SIGKILL in the
// middle of a burst: every record whose writer was told "durable" is
// present afterwards, and the chain verifies.
func TestCrashKeepsDurableRecords(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			var url string
			var db *store.DB
			if flavor == store.SQLite {
				path := filepath.Join(t.TempDir(), "crash.db")
				url = "sqlite:" + path
				var err error
				db, err = store.Open(context.Background(), store.Config{URL: url})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := store.Migrate(context.Background(), db, migrations.SQLite(), store.MigrateOptions{}); err != nil {
					t.Fatal(err)
				}
			} else {
				db = testdb.Postgres(t)
				url = testdb.AppURL(t)
			}
			tenant := uuid.Must(uuid.NewV7())
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
			cmd.Env = append(os.Environ(), "XAVYO_CRASH_HELPER_URL="+url, "XAVYO_CRASH_HELPER_TENANT="+tenant.String())
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			durable := map[string]bool{}
			sc := bufio.NewScanner(out)
			for sc.Scan() && len(durable) < 2000 {
				if id, ok := strings.CutPrefix(sc.Text(), "durable "); ok {
					durable[id] = true
				}
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Lines already printed before the kill were durable too.
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "durable "); ok {
					durable[id] = true
				}
			}
			_ = cmd.Wait()
			if len(durable) < 2000 {
				t.Fatalf("helper reported only %d durable records", len(durable))
			}
			ctx := store.WithTenant(context.Background(), tenant)
			found := map[string]bool{}
			err = db.InTenantRead(ctx, func(tx *store.Tx) error {
				rows, err := tx.Query(ctx, `SELECT id FROM audit_log WHERE tenant_id = $1`, tenant)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var id uuid.UUID
					if err := rows.Scan(&id); err != nil {
						return err
					}
					found[id.String()] = true
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			for id := range durable {
				if !found[id] {
					t.Fatalf("record %s was reported durable but is missing after the crash", id)
				}
			}
			rep, err := audit.Verify(context.Background(), db, tenant)
			if err != nil || !rep.OK() {
				t.Fatalf("chain after crash: %+v %v", rep, err)
			}
			t.Logf("%d durable, %d stored", len(durable), len(found))
		})
	}
}

// TestCrashHelper is the process TestCrashKeepsDurableRecords kills.
func TestCrashHelper(t *testing.T) {
	url := os.Getenv("XAVYO_CRASH_HELPER_URL")
	if url == "" {
		t.Skip("helper process only")
	}
	tenant := uuid.MustParse(os.Getenv("XAVYO_CRASH_HELPER_TENANT"))
	db, err := store.Open(context.Background(), store.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.New(audit.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for range 16 {
		go func() {
			for {
				r, err := s.Append(context.Background(), audit.Entry{TenantID: tenant, Action: "crash.write", ActorKind: "test"})
				if err != nil {
					return
				}
				if r.Wait(context.Background()) == nil {
					mu.Lock()
					fmt.Fprintf(w, "durable %s\n", r.ID)
					_ = w.Flush()
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Minute)
}
