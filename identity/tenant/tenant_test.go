package tenant_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func service(t *testing.T, db *store.DB) *tenant.Service {
	t.Helper()
	seq, err := audit.New(audit.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = seq.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &tenant.Service{DB: db, Audit: seq}
}

func slug(p string) string { return p + "-" + uuid.NewString()[:8] }

func TestCreateValidates(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := service(t, db)
		ctx := context.Background()
		bad := []tenant.CreateInput{
			{Slug: "A-upper", Name: "x"},
			{Slug: "x", Name: "x"},
			{Slug: "-lead", Name: "x"},
			{Slug: "trail-", Name: "x"},
			{Slug: "under_score", Name: "x"},
			{Slug: strings.Repeat("a", 64), Name: "x"},
			{Slug: "api", Name: "x"},
			{Slug: slug("ok"), Name: ""},
			{Slug: slug("ok"), Name: strings.Repeat("n", 201)},
			{Slug: slug("ok"), Name: "x", Settings: json.RawMessage(`[1]`)},
			{Slug: slug("ok"), Name: "x", Settings: json.RawMessage(`"s"`)},
			{Slug: slug("ok"), Name: "x", Settings: json.RawMessage(`{"big":"` + strings.Repeat("x", 65<<10) + `"}`)},
		}
		for _, in := range bad {
			if _, err := s.Create(ctx, in); apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Errorf("%q/%q: err=%v, want invalid argument", in.Slug, in.Name, err)
			}
		}
		in := tenant.CreateInput{Slug: slug("good"), Name: "Good", Settings: json.RawMessage(`{ "n": 12345678901234567890, "a": [1, 2] }`)}
		got, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Get(ctx, got.ID)
		if err != nil || string(again.Settings) != `{"n":12345678901234567890,"a":[1,2]}` && string(again.Settings) != `{"a":[1,2],"n":12345678901234567890}` {
			t.Fatalf("settings round trip: %s %v", again.Settings, err)
		}
		if _, err := s.Create(ctx, tenant.CreateInput{Slug: in.Slug, Name: "dup"}); apperr.KindOf(err) != apperr.KindAlreadyExists {
			t.Fatalf("duplicate: %v", err)
		}
	})
}

func TestChangesAreEventedAndAudited(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := service(t, db)
		ctx := context.Background()
		tn, err := s.Create(ctx, tenant.CreateInput{Slug: slug("ev"), Name: "Ev"})
		if err != nil {
			t.Fatal(err)
		}
		name := "Ev 2"
		if _, err := s.Update(ctx, tn.ID, tenant.UpdateInput{Name: &name}, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, tn.ID, 2); err != nil {
			t.Fatal(err)
		}
		tctx := store.WithTenant(ctx, tn.ID)
		var versions []int64
		var actions []string
		err = db.InTenantRead(tctx, func(tx *store.Tx) error {
			rows, err := tx.Query(tctx, `SELECT version FROM outbox WHERE tenant_id = $1 AND kind = 'tenant' ORDER BY created_at, id`, tn.ID)
			if err != nil {
				return err
			}
			for rows.Next() {
				var v int64
				_ = rows.Scan(&v)
				versions = append(versions, v)
			}
			rows.Close()
			rows, err = tx.Query(tctx, `SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY seq`, tn.ID)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var a string
				_ = rows.Scan(&a)
				actions = append(actions, a)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) != 3 || versions[0] != 1 || versions[2] != 3 {
			t.Fatalf("events: %v", versions)
		}
		if strings.Join(actions, ",") != "tenant.create,tenant.update,tenant.delete" {
			t.Fatalf("audit: %v", actions)
		}
		if rep, err := audit.Verify(ctx, db, tn.ID); err != nil || !rep.OK() {
			t.Fatalf("chain: %+v %v", rep, err)
		}
		if _, err := s.Get(ctx, tn.ID); apperr.KindOf(err) != apperr.KindNotFound {
			t.Fatalf("deleted tenant: %v", err)
		}
		if err := s.ActiveTenant(ctx, tn.ID); apperr.KindOf(err) != apperr.KindNotFound {
			t.Fatalf("deleted tenant resolves: %v", err)
		}
	})
}

func TestConcurrentUpdatesWithIfMatch(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := service(t, db)
		ctx := context.Background()
		tn, err := s.Create(ctx, tenant.CreateInput{Slug: slug("cc"), Name: "Cc"})
		if err != nil {
			t.Fatal(err)
		}
		var ok, stale atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := "writer-" + string(rune('a'+i))
				_, err := s.Update(ctx, tn.ID, tenant.UpdateInput{Name: &name}, 1)
				switch apperr.KindOf(err) {
				case apperr.KindPreconditionFailed:
					stale.Add(1)
				default:
					if err != nil {
						t.Error(err)
						return
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || stale.Load() != 7 {
			t.Fatalf("ok=%d stale=%d, want 1 and 7", ok.Load(), stale.Load())
		}
		got, _ := s.Get(ctx, tn.ID)
		if got.Version != 2 {
			t.Fatalf("version %d", got.Version)
		}
	})
}

func TestListPagesAndFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := service(t, db)
		ctx := context.Background()
		prefix := "pg" + uuid.NewString()[:6]
		made := map[uuid.UUID]bool{}
		for i := range 7 {
			tn, err := s.Create(ctx, tenant.CreateInput{Slug: prefix + "-" + string(rune('a'+i)), Name: "P"})
			if err != nil {
				t.Fatal(err)
			}
			made[tn.ID] = true
		}
		suspended := tenant.StatusSuspended
		var one uuid.UUID
		for id := range made {
			one = id
			break
		}
		if _, err := s.Update(ctx, one, tenant.UpdateInput{Status: &suspended}, 0); err != nil {
			t.Fatal(err)
		}
		seen := map[uuid.UUID]bool{}
		after := uuid.Nil
		for page := 0; ; page++ {
			items, more, err := s.List(ctx, tenant.ListOptions{SlugPrefix: prefix, Limit: 3, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				if seen[it.ID] {
					t.Fatalf("%s listed twice", it.Slug)
				}
				seen[it.ID] = true
				after = it.ID
			}
			if !more {
				break
			}
			if page > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seen) != 7 {
			t.Fatalf("listed %d of 7", len(seen))
		}
		items, _, err := s.List(ctx, tenant.ListOptions{SlugPrefix: prefix, Status: tenant.StatusSuspended})
		if err != nil || len(items) != 1 || items[0].ID != one {
			t.Fatalf("status filter: %d %v", len(items), err)
		}
		if err := s.ActiveTenant(ctx, one); apperr.KindOf(err) != apperr.KindPermissionDenied {
			t.Fatalf("suspended tenant resolves: %v", err)
		}
		if _, _, err := s.List(ctx, tenant.ListOptions{Status: "bogus"}); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("bad status: %v", err)
		}
	})
}
