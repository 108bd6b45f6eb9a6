package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func newTenant(t *testing.T, db *store.DB) uuid.UUID {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	now := store.Now()
	err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
			VALUES ($1, $2, $3, 'active', $4, $5, $5, 1)`, id, "t-"+id.String()[24:], "Tenant", `{"a":1}`, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func addOutbox(t *testing.T, db *store.DB, tenant uuid.UUID, kind string) {
	t.Helper()
	ctx := store.WithTenant(context.Background(), tenant)
	err := db.InTenantTx(ctx, func(tx *store.Tx) error {
		now := time.Now().UTC()
		_, err := tx.Exec(ctx, `INSERT INTO outbox (id, tenant_id, kind, subject_id, version, payload, created_at, next_attempt_at)
			VALUES ($1, $2, $3, 'x', 1, $4, $5, $5)`, uuid.Must(uuid.NewV7()), tenant, kind, `{}`, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConformance runs the same cases on both backends.
func TestConformance(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		t.Run("round trip of types", func(t *testing.T) {
			id := newTenant(t, db)
			var (
				gotID    uuid.UUID
				settings []byte
				created  time.Time
				deleted  sql.NullTime
				version  int64
			)
			err := db.SystemRead(context.Background(), func(tx *store.Tx) error {
				return tx.QueryRow(context.Background(), `SELECT id, settings, created_at, deleted_at, version FROM tenants WHERE id = $1`, id).
					Scan(&gotID, &settings, &created, &deleted, &version)
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, off := created.Zone(); gotID != id || version != 1 || deleted.Valid || off != 0 {
				t.Fatalf("got id=%s version=%d deleted=%v created=%v", gotID, version, deleted, created)
			}
			if time.Since(created) > time.Minute || time.Since(created) < 0 || created.Nanosecond()%1000 != 0 {
				t.Fatalf("created_at %v is not now", created)
			}
			if string(settings) != `{"a":1}` && string(settings) != `{"a": 1}` {
				t.Fatalf("settings %q", settings)
			}
		})
		t.Run("unique violation is AlreadyExists", func(t *testing.T) {
			id := newTenant(t, db)
			err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
				_, err := tx.Exec(context.Background(), `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
					VALUES ($1, $2, 'dup', 'active', '{}', $3, $3, 1)`, uuid.Must(uuid.NewV7()), "t-"+id.String()[24:], time.Now().UTC())
				return err
			})
			if apperr.KindOf(err) != apperr.KindAlreadyExists {
				t.Fatalf("got %v, want already exists", err)
			}
		})
		t.Run("no tenant fails closed", func(t *testing.T) {
			called := false
			err := db.InTenantTx(context.Background(), func(*store.Tx) error { called = true; return nil })
			if !errors.Is(err, store.ErrNoTenant) || called {
				t.Fatalf("err=%v called=%v", err, called)
			}
			err = db.InTenantRead(store.WithTenant(context.Background(), uuid.Nil), func(*store.Tx) error { called = true; return nil })
			if !errors.Is(err, store.ErrNoTenant) || called {
				t.Fatalf("nil tenant: err=%v called=%v", err, called)
			}
		})
		t.Run("tenant reads see only their tenant", func(t *testing.T) {
			a, b := newTenant(t, db), newTenant(t, db)
			addOutbox(t, db, a, "a.1")
			addOutbox(t, db, a, "a.2")
			addOutbox(t, db, b, "b.1")
			for tenant, want := range map[uuid.UUID]int{a: 2, b: 1} {
				ctx := store.WithTenant(context.Background(), tenant)
				var n int
				err := db.InTenantRead(ctx, func(tx *store.Tx) error {
					return tx.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE tenant_id = $1`, tx.TenantID()).Scan(&n)
				})
				if err != nil || n != want {
					t.Fatalf("tenant %s: n=%d err=%v, want %d", tenant, n, err, want)
				}
			}
		})
		t.Run("after-commit hooks and notifications only on commit", func(t *testing.T) {
			tenant := newTenant(t, db)
			ctx, cancel := context.WithCancel(store.WithTenant(context.Background(), tenant))
			defer cancel()
			got := make(chan string, 8)
			ready := make(chan struct{})
			go func() {
				_ = db.Listen(ctx, []string{"conformance"}, func(n store.Notification, resync bool) {
					if !resync {
						got <- n.Payload
					}
				})
			}()
			// Give the listener time to subscribe, then prove it is live.
			go func() {
				for {
					_ = db.InTenantTx(ctx, func(tx *store.Tx) error { return tx.Notify(ctx, "conformance", "ping") })
					select {
					case <-ready:
						return
					case <-ctx.Done():
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			select {
			case <-got:
				close(ready)
			case <-time.After(10 * time.Second):
				t.Fatal("listener never received a notification")
			}
			var hooks atomic.Int32
			_ = db.InTenantTx(ctx, func(tx *store.Tx) error {
				tx.AfterCommit(func() { hooks.Add(1) })
				_ = tx.Notify(ctx, "conformance", "rolled-back")
				return errors.New("roll back")
			})
			if err := db.InTenantTx(ctx, func(tx *store.Tx) error {
				tx.AfterCommit(func() { hooks.Add(1) })
				return tx.Notify(ctx, "conformance", "committed")
			}); err != nil {
				t.Fatal(err)
			}
			if hooks.Load() != 1 {
				t.Fatalf("hooks ran %d times, want 1", hooks.Load())
			}
			deadline := time.After(10 * time.Second)
			for {
				select {
				case p := <-got:
					if p == "rolled-back" {
						t.Fatal("a rolled-back notification was delivered")
					}
					if p == "committed" {
						return
					}
				case <-deadline:
					t.Fatal("committed notification not delivered")
				}
			}
		})
		t.Run("concurrent optimistic updates: one wins", func(t *testing.T) {
			id := newTenant(t, db)
			const n = 8
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
						r, err := tx.Exec(context.Background(), `UPDATE tenants SET name = $1, version = version + 1 WHERE id = $2 AND version = $3`,
							"writer", id, int64(1))
						if err != nil {
							return err
						}
						if k, _ := r.RowsAffected(); k == 1 {
							wins.Add(1)
						}
						_ = i
						return nil
					})
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d writers won, want exactly 1", wins.Load())
			}
		})
	})
}

// TestRowLevelSecurity proves the second wall on PostgreSQL, as the
// application role: a query that forgets the tenant filter still sees
// only its tenant, and with no tenant set sees nothing.
func TestRowLevelSecurity(t *testing.T) {
	db := testdb.Postgres(t)
	ctx := context.Background()
	role, err := db.Role(ctx)
	if err != nil || role.Super || role.BypassRLS {
		t.Fatalf("tests must run as an ordinary role: %+v %v", role, err)
	}
	a, b := newTenant(t, db), newTenant(t, db)
	addOutbox(t, db, a, "rls.a")
	addOutbox(t, db, b, "rls.b")

	count := func(ctx context.Context, read func(context.Context, func(*store.Tx) error) error) (n int, kinds map[string]bool) {
		kinds = map[string]bool{}
		err := read(ctx, func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, `SELECT kind FROM outbox WHERE kind LIKE 'rls.%'`) // no tenant filter
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					return err
				}
				kinds[k] = true
				n++
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, kinds
	}
	if n, k := count(store.WithTenant(ctx, a), db.InTenantRead); n != 1 || !k["rls.a"] {
		t.Fatalf("tenant a saw %v", k)
	}
	if n, k := count(ctx, db.SystemRead); n < 2 || !k["rls.a"] || !k["rls.b"] {
		t.Fatalf("system path saw %v", k)
	}

	// A raw connection of the app role with no tenant set sees nothing.
	raw, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("no tenant: n=%d err=%v", n, err)
	}
	// Writing into another tenant is refused by the policy's WITH CHECK.
	err = db.InTenantTx(store.WithTenant(ctx, a), func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO outbox (id, tenant_id, kind, subject_id, version, payload, created_at, next_attempt_at)
			VALUES ($1, $2, 'rls.cross', 'x', 1, '{}', $3, $3)`, uuid.Must(uuid.NewV7()), b, time.Now().UTC())
		return err
	})
	if err == nil {
		t.Fatal("insert into another tenant succeeded")
	}
	// The audit chain is append-only for the application role.
	err = db.SystemTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM audit_log`)
		return err
	})
	if err == nil {
		t.Fatal("the application role could delete audit rows")
	}
}

// TestEveryTenantTableHasForcedRLS is the schema invariant; it also shows
// that the check can fail.
func TestEveryTenantTableHasForcedRLS(t *testing.T) {
	db := testdb.Postgres(t)
	ctx := context.Background()
	raw, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bad, err := store.UnprotectedTables(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 0 {
		t.Fatalf("tables with tenant_id but no forced RLS: %v", bad)
	}

	owner, err := store.Open(ctx, store.Config{URL: testdb.OwnerURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	conn, err := owner.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE leaky (tenant_id uuid NOT NULL, x text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE half (tenant_id uuid NOT NULL); ALTER TABLE half ENABLE ROW LEVEL SECURITY;
		CREATE POLICY p ON half USING (true)`); err != nil {
		t.Fatal(err)
	}
	bad, err = store.UnprotectedTables(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 || bad[0] != "half" || bad[1] != "leaky" {
		t.Fatalf("check missed unprotected tables: %v", bad)
	}
}
