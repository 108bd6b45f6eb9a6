package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func tenant(t *testing.T, db *store.DB) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
			VALUES ($1, $2, 'T', 'active', '{}', $3, $3, 1)`, id, "e-"+id.String()[24:], store.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestChangesReachSubscribersOnlyOnCommit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		tid := tenant(t, db)
		ctx, cancel := context.WithCancel(store.WithTenant(context.Background(), tid))
		defer cancel()
		bus := events.NewBus(db, nil)
		got := make(chan events.Message, 16)
		defer bus.Subscribe(func(m events.Message) { got <- m })()
		go func() { _ = bus.Run(ctx) }()

		publish := func(id string, fail bool) error {
			return db.InTenantTx(ctx, func(tx *store.Tx) error {
				if err := events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: "test", ID: id, Version: 1}, map[string]string{"id": id}); err != nil {
					return err
				}
				if fail {
					return errors.New("rollback")
				}
				return nil
			})
		}
		// The listener subscribes asynchronously: publish until one arrives.
		deadline := time.After(10 * time.Second)
	warm:
		for {
			if err := publish("warm", false); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
				break warm
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatal("no change delivered")
			}
		}
		for len(got) > 0 {
			<-got
		}
		_ = publish("gone", true)
		if err := publish("kept", false); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case m := <-got:
				if m.Change.ID == "gone" {
					t.Fatal("a rolled-back change was delivered")
				}
				if m.Change.ID == "kept" {
					if m.Change.TenantID != tid || m.Change.Kind != "test" || m.Change.Version != 1 {
						t.Fatalf("change %+v", m.Change)
					}
					var n int
					_ = db.InTenantRead(ctx, func(tx *store.Tx) error {
						return tx.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND subject_id = 'gone'`, tid).Scan(&n)
					})
					if n != 0 {
						t.Fatal("a rolled-back change left an outbox row")
					}
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatal("committed change not delivered")
			}
		}
	})
}

// flaky fails each event's first delivery.
type flaky struct {
	mu   sync.Mutex
	seen map[uuid.UUID]int
	done map[string]bool
}

func (f *flaky) Dispatch(_ context.Context, e events.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[e.ID]++
	if f.seen[e.ID] == 1 {
		return errors.New("target down")
	}
	f.done[e.SubjectID] = true
	return nil
}

func TestOutboxDeliversAtLeastOnceWithRetries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		tid := tenant(t, db)
		ctx := store.WithTenant(context.Background(), tid)
		for i := range 5 {
			err := db.InTenantTx(ctx, func(tx *store.Tx) error {
				return events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: "test.retry", ID: string(rune('a' + i)), Version: 1}, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		d := &flaky{seen: map[uuid.UUID]int{}, done: map[string]bool{}}
		// A worker that crashes after claiming loses its lease; a second
		// worker picks the events up after the lease.
		ob, err := events.NewOutbox(events.OutboxConfig{DB: db, Dispatcher: d, Lease: time.Millisecond, MaxBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if _, err := ob.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			n := 0
			for _, s := range "abcde" {
				if d.done[string(s)] {
					n++
				}
			}
			d.mu.Unlock()
			if n == 5 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		for _, s := range "abcde" {
			if !d.done[string(s)] {
				t.Fatalf("event %c never delivered", s)
			}
		}
		var pending int
		_ = db.InTenantRead(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND dispatched_at IS NULL`, tid).Scan(&pending)
		})
		if pending != 0 {
			t.Fatalf("%d events left undelivered", pending)
		}
		// Delivered events go after the retention period, undelivered ones stay.
		pruner, _ := events.NewOutbox(events.OutboxConfig{DB: db, Dispatcher: d, Retention: time.Nanosecond})
		if err := db.InTenantTx(ctx, func(tx *store.Tx) error {
			return events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: "test.pending", ID: "z", Version: 1}, nil)
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if err := pruner.Prune(context.Background()); err != nil {
			t.Fatal(err)
		}
		var left int
		_ = db.InTenantRead(ctx, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE tenant_id = $1`, tid).Scan(&left)
		})
		if left != 1 {
			t.Fatalf("%d events left after pruning, want the one undelivered", left)
		}
	})
}

// TestOwnChangesAreHeardAtCommitOnce: a change this process commits
// reaches its subscribers before the committing call returns (no window
// in which this replica's own caches have not seen it), and the
// listener's copy of it is not delivered again; a rolled-back change is
// heard by nobody. On PostgreSQL a change committed through another
// connection pool (as by another replica) still arrives, once.
func TestOwnChangesAreHeardAtCommitOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		tid := tenant(t, db)
		ctx, cancel := context.WithCancel(store.WithTenant(context.Background(), tid))
		defer cancel()
		bus := events.NewBus(db, nil)
		var mu sync.Mutex
		heard := map[string]int{}
		defer bus.Subscribe(func(m events.Message) {
			mu.Lock()
			heard[m.Change.ID]++
			mu.Unlock()
		})()
		go func() { _ = bus.Run(ctx) }()
		count := func(id string) int {
			mu.Lock()
			defer mu.Unlock()
			return heard[id]
		}
		publish := func(on *store.DB, id string, fail bool) error {
			return on.InTenantTx(ctx, func(tx *store.Tx) error {
				if err := events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: "test", ID: id, Version: 1}, nil); err != nil {
					return err
				}
				if fail {
					return errors.New("rollback")
				}
				return nil
			})
		}
		for i := range 5 {
			id := fmt.Sprint("own-", i)
			if err := publish(db, id, false); err != nil {
				t.Fatal(err)
			}
			if n := count(id); n != 1 {
				t.Fatalf("%s heard %d times when its commit returned, want 1", id, n)
			}
		}
		if err := publish(db, "rolled-back", true); err == nil {
			t.Fatal("the failing change committed")
		}
		time.Sleep(500 * time.Millisecond) // the listener's copies arrive meanwhile
		for i := range 5 {
			if n := count(fmt.Sprint("own-", i)); n != 1 {
				t.Fatalf("own-%d heard %d times, want once", i, n)
			}
		}
		if n := count("rolled-back"); n != 0 {
			t.Fatalf("a rolled-back change was heard %d times", n)
		}
		if db.Flavor() != store.Postgres {
			return
		}
		other := testdb.Postgres(t) // another pool: another replica's writes
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; count("other") == 0; i++ {
			if err := publish(other, "other", false); err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("another replica's change never arrived")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestOwnChangeHeardFirstByTheListener: when the listener's copy of a
// change this process commits comes before the commit's own (a slow
// commit hook forces it on PostgreSQL), the commit still returns only
// after subscribers are done with the change.
func TestOwnChangeHeardFirstByTheListener(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		tid := tenant(t, db)
		ctx, cancel := context.WithCancel(store.WithTenant(context.Background(), tid))
		defer cancel()
		db.OnCommitted(func([]store.Notification) { time.Sleep(50 * time.Millisecond) })
		bus := events.NewBus(db, nil)
		var mu sync.Mutex
		done := map[string]int{}
		defer bus.Subscribe(func(m events.Message) {
			time.Sleep(150 * time.Millisecond) // a cache slower than the hook
			mu.Lock()
			done[m.Change.ID]++
			mu.Unlock()
		})()
		go func() { _ = bus.Run(ctx) }()
		time.Sleep(200 * time.Millisecond) // the listener is listening
		for i := range 5 {
			id := fmt.Sprint("slow-", i)
			if err := db.InTenantTx(ctx, func(tx *store.Tx) error {
				return events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: "test", ID: id, Version: 1}, nil)
			}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			n := done[id]
			mu.Unlock()
			if n != 1 {
				t.Fatalf("%s delivered %d times when its commit returned, want 1", id, n)
			}
		}
	})
}
