package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestFailingWriteChangesNothing: every admin write of the webhook stores
// (create, update, rotate the secret, delete) rolls back whole when the
// change's last step fails, on both backends.
func TestFailingWriteChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		sealer, err := seal.New(key)
		if err != nil {
			t.Fatal(err)
		}
		errLogDown := errors.New("the audit log refused the write")
		cfg := Config{DB: db, Sealer: sealer, Client: http.DefaultClient, Audit: audit.Discard, Logger: slog.New(slog.DiscardHandler)}
		good := New(cfg)
		cfg.Audit = audit.Failing(errLogDown)
		bad := New(cfg)
		tn, err := (&tenant.Service{DB: db, Audit: audit.Discard}).Create(context.Background(), tenant.CreateInput{Slug: "wf-" + uuid.NewString()[:8], Name: "W"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := principal.With(store.WithTenant(context.Background(), tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
			SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
		refused := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, errLogDown) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		u := "https://hooks.example.test/in"
		_, err = bad.Create(ctx, Input{URL: &u, Events: []string{"user"}})
		refused("create", err)
		if subs, _, err := good.List(ctx, 10, uuid.Nil); err != nil || len(subs) != 0 {
			t.Fatalf("a subscription whose creation failed exists: %v %d", err, len(subs))
		}
		sub, err := good.Create(ctx, Input{URL: &u, Events: []string{"user"}})
		if err != nil {
			t.Fatal(err)
		}
		other := "https://hooks.example.test/other"
		_, err = bad.Update(ctx, sub.ID, Input{URL: &other, Events: []string{"*"}}, 0)
		refused("update", err)
		_, err = bad.RotateSecret(ctx, sub.ID)
		refused("rotate the secret", err)
		refused("delete", bad.Delete(ctx, sub.ID))

		got, err := good.Get(ctx, sub.ID)
		if err != nil || got.URL != u || len(got.Events) != 1 || got.Version != sub.Version {
			t.Fatalf("the subscription after failed changes: %v %+v", err, got)
		}
		// The secret is the one given at creation: deliveries are signed
		// with it.
		var sealed []byte
		err = db.InTenantRead(ctx, func(tx *store.Tx) error {
			var err error
			_, sealed, err = subTarget(ctx, tx, tn.ID, sub.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := sealer.Open(sealed, secretAAD(tn.ID, sub.ID))
		if err != nil || "whsec_"+base64.StdEncoding.EncodeToString(raw) != sub.Secret {
			t.Fatalf("a failed rotation changed the secret: %v", err)
		}
	})
}
