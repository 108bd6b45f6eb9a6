package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// counts returns a tenant's chained records and outbox rows.
func counts(t *testing.T, db *store.DB, tenant uuid.UUID) (chained, waiting int) {
	t.Helper()
	err := db.SystemRead(context.Background(), func(tx *store.Tx) error {
		if err := tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1`, tenant).Scan(&chained); err != nil {
			return err
		}
		return tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM audit_outbox WHERE tenant_id = $1`, tenant).Scan(&waiting)
	})
	if err != nil {
		t.Fatal(err)
	}
	return chained, waiting
}

// TestChangesAndTheirRecordsCommitTogether: a record written in a change's
// transaction is there if and only if the change is; once the transaction
// returns it is in the chain (readers see their own changes).
func TestChangesAndTheirRecordsCommitTogether(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		s := start(t, db)
		tenant := uuid.Must(uuid.NewV7())
		ctx := store.WithTenant(context.Background(), tenant)
		boom := errors.New("the change failed")
		err := db.InTenantTx(ctx, func(tx *store.Tx) error {
			if err := audit.RecordChangeTx(ctx, tx, s, "test.change", "thing", "1", nil); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("the failed change: %v", err)
		}
		if c, w := counts(t, db, tenant); c != 0 || w != 0 {
			t.Fatalf("a rolled-back change left %d records and %d outbox rows", c, w)
		}
		for i := range 3 {
			if err := db.InTenantTx(ctx, func(tx *store.Tx) error {
				return audit.RecordChangeTx(ctx, tx, s, "test.change", "thing", uuid.NewString(), map[string]int{"i": i})
			}); err != nil {
				t.Fatal(err)
			}
			if c, w := counts(t, db, tenant); c != i+1 || w != 0 {
				t.Fatalf("after change %d: %d records chained, %d waiting", i+1, c, w)
			}
		}
		if rep, err := audit.Verify(context.Background(), db, tenant); err != nil || !rep.OK() {
			t.Fatalf("verify: %v %+v", err, rep)
		}
		if err := db.InTenantTx(ctx, func(tx *store.Tx) error {
			return audit.RecordChangeTx(ctx, tx, nil, "test.change", "thing", "x", nil)
		}); !errors.Is(err, audit.ErrNoRecorder) {
			t.Fatalf("a change without an audit log: %v", err)
		}
	})
}

// TestOutboxRecordsSurviveACrash: a change committed while its record
// could not be chained (the sequencer had stopped, as in a crash) keeps
// the record in the outbox; the next sequencers chain it once, even two
// of them adopting it at the same time.
func TestOutboxRecordsSurviveACrash(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		dead, err := audit.New(audit.Config{DB: db})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = dead.Run(ctx) // stops at once
		tenant := uuid.Must(uuid.NewV7())
		tctx := store.WithTenant(context.Background(), tenant)
		for i := range 3 {
			if err := db.InTenantTx(tctx, func(tx *store.Tx) error {
				return audit.RecordChangeTx(tctx, tx, dead, "test.change", "thing", uuid.NewString(), map[string]int{"i": i})
			}); err != nil {
				t.Fatal(err)
			}
		}
		if c, w := counts(t, db, tenant); c != 0 || w != 3 {
			t.Fatalf("with the sequencer down: %d chained, %d waiting; want 0 and 3", c, w)
		}
		start(t, db)
		start(t, db)
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, w := counts(t, db, tenant)
			if c == 3 && w == 0 {
				break
			}
			if c > 3 || time.Now().After(deadline) {
				t.Fatalf("after restart: %d chained, %d waiting; want 3 and 0", c, w)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if c, _ := counts(t, db, tenant); c != 3 {
			t.Fatalf("%d records chained, want each once", c)
		}
		if rep, err := audit.Verify(context.Background(), db, tenant); err != nil || !rep.OK() {
			t.Fatalf("verify: %v %+v", err, rep)
		}
	})
}
