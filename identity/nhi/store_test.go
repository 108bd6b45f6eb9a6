package nhi_test

import (
	"errors"
	"testing"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

var errLogDown = errors.New("the audit log refused the write")

// TestFailingWriteChangesNothing: every write of the NHI stores (the NHI
// with its client and first secret, updates, secret rotation, client
// keys, permissions) rolls back whole when the change's last step fails,
// on both backends.
func TestFailingWriteChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		bad := &nhi.Service{DB: db, Audit: audit.Failing(errLogDown), Policies: f.svc.Policies, Users: f.dir}
		refused := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, errLogDown) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		_, err := bad.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "ghost", Name: "Ghost", OwnerID: f.owner})
		refused("create", err)
		if refs, err := f.svc.Refs(f.ctx, nhi.KindAgent); err != nil || len(refs) != 0 {
			t.Fatalf("an NHI whose creation failed exists: %v %v", err, refs)
		}
		c, err := f.svc.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: f.owner})
		if err != nil {
			t.Fatal(err)
		}
		// The client created with the NHI is whole: its secret works.
		if n, err := f.svc.VerifySecret(f.ctx, c.ClientID, c.ClientSecret); err != nil || n.ID != c.ID {
			t.Fatalf("the new NHI's secret: %v", err)
		}
		before, err := f.svc.Secrets(f.ctx, c.ID)
		if err != nil || len(before) != 1 || before[0].ExpiresAt == nil {
			t.Fatalf("the first secret: %v %+v", err, before)
		}
		name := "Renamed"
		_, err = bad.Update(f.ctx, c.ID, nhi.UpdateInput{Name: &name}, 0)
		refused("update", err)
		_, err = bad.RotateSecret(f.ctx, c.ID)
		refused("rotate secret", err)
		_, err = bad.Grant(f.ctx, c.ID, nhi.GrantInput{UserID: f.owner, Permission: "use"})
		refused("grant", err)

		got, err := f.svc.Get(f.ctx, c.ID)
		if err != nil || got.Name != "Bot" || got.Version != c.Version {
			t.Fatalf("the NHI after failed changes: %v %+v", err, got)
		}
		secrets, err := f.svc.Secrets(f.ctx, c.ID)
		if err != nil || len(secrets) != 1 || secrets[0].ExpiresAt == nil || !secrets[0].ExpiresAt.Equal(*before[0].ExpiresAt) || !secrets[0].Active {
			t.Fatalf("a failed rotation left secrets: %v %+v", err, secrets)
		}
		if n, err := f.svc.VerifySecret(f.ctx, c.ClientID, c.ClientSecret); err != nil || n.ID != c.ID {
			t.Fatalf("the secret after a failed rotation: %v", err)
		}
		perms, err := f.svc.Permissions(f.ctx, c.ID)
		if err != nil || len(perms) != 0 {
			t.Fatalf("a failed grant exists: %v %+v", err, perms)
		}
	})
}
