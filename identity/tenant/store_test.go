package tenant_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// failingLog is an audit log whose writes in a transaction fail: the last
// write of every change, so a change that cannot be recorded must leave
// nothing behind.
type failingLog struct{ audit.NoLog }

var errLogDown = errors.New("the audit log refused the write")

func (failingLog) InTx(context.Context, *store.Tx, audit.Entry) error { return errLogDown }

// TestFailingWriteChangesNothing: every write of the tenant store (create,
// update, policies, delete) rolls back whole when the change's last step
// fails, on both backends.
func TestFailingWriteChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		good := &tenant.Service{DB: db, Audit: audit.Discard}
		bad := &tenant.Service{DB: db, Audit: failingLog{}}
		slug := "f-" + uuid.NewString()[:8]
		if _, err := bad.Create(ctx, tenant.CreateInput{Slug: slug, Name: "F"}); !errors.Is(err, errLogDown) {
			t.Fatalf("create: %v", err)
		}
		if _, err := good.GetBySlug(ctx, slug); err == nil {
			t.Fatal("a tenant whose creation failed exists")
		}
		tn, err := good.Create(ctx, tenant.CreateInput{Slug: slug, Name: "F"})
		if err != nil {
			t.Fatal(err)
		}
		name, suspended := "Renamed", tenant.StatusSuspended
		if _, err := bad.Update(ctx, tn.ID, tenant.UpdateInput{Name: &name, Status: &suspended}, 0); !errors.Is(err, errLogDown) {
			t.Fatalf("update: %v", err)
		}
		pol := tenant.DefaultPolicies
		pol.Session.AccessTokenMinutes = 5
		if _, _, err := bad.SetPolicies(ctx, tn.ID, pol, 0); !errors.Is(err, errLogDown) {
			t.Fatalf("policies: %v", err)
		}
		if err := bad.Delete(ctx, tn.ID, 0); !errors.Is(err, errLogDown) {
			t.Fatalf("delete: %v", err)
		}
		fresh := &tenant.Service{DB: db, Audit: audit.Discard} // no cache
		got, err := fresh.Get(ctx, tn.ID)
		if err != nil {
			t.Fatalf("the tenant after failed changes: %v", err)
		}
		if got.Name != "F" || got.Status != tenant.StatusActive || got.Version != tn.Version || tenant.PoliciesOf(got).Session.AccessTokenMinutes != 15 {
			t.Fatalf("failed changes left traces: %+v", got)
		}
	})
}
