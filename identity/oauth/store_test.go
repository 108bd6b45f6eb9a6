package oauth_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestFailingWriteChangesNothing: every write of the relying-party client
// store (an admin's client, a dynamic registration, their updates and
// deletions) rolls back whole when the change's last step fails, on both
// backends.
func TestFailingWriteChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		errLogDown := errors.New("the audit log refused the write")
		bad := oauth.New(oauth.Config{Tokens: f.tokens, NHIs: f.nhis, Tenants: f.tenants, DB: db, AdminURL: adminURL, AgentURL: agentURL,
			Audit: audit.Failing(errLogDown), Logger: slog.New(slog.DiscardHandler)})
		refused := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, errLogDown) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		in := oauth.AppClientInput{Name: "Portal", RedirectURIs: []string{"https://portal.example.test/cb"}}
		_, err := bad.CreateAppClient(f.ctx, in)
		refused("create client", err)
		if list, err := f.srv.AppClients(f.ctx); err != nil || len(list) != 0 {
			t.Fatalf("a client whose creation failed exists: %v %d", err, len(list))
		}
		c, err := f.srv.CreateAppClient(f.ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		refused("delete client", bad.DeleteAppClient(f.ctx, c.ID))
		if list, err := f.srv.AppClients(f.ctx); err != nil || len(list) != 1 {
			t.Fatalf("a failed deletion removed the client: %v %d", err, len(list))
		}

		reg := oauth.RegistrationRequest{ClientName: "Desk", RedirectURIs: []string{"http://127.0.0.1:7777/cb"}}
		if _, err := bad.Register(f.ctx, f.slug, reg, false); !errors.Is(err, errLogDown) {
			t.Fatalf("register: %v", err)
		}
		r, err := f.srv.Register(f.ctx, f.slug, reg, false)
		if err != nil {
			t.Fatal(err)
		}
		renamed := reg
		renamed.ClientName = "Renamed"
		if _, err := bad.UpdateRegistration(f.ctx, f.slug, r.ClientID, r.RegistrationAccessToken, renamed, r.ClientID); !errors.Is(err, errLogDown) {
			t.Fatalf("update registration: %v", err)
		}
		if err := bad.DeleteRegistration(f.ctx, r.ClientID, r.RegistrationAccessToken); !errors.Is(err, errLogDown) {
			t.Fatalf("delete registration: %v", err)
		}
		got, err := f.srv.Registration(f.ctx, f.slug, r.ClientID, r.RegistrationAccessToken)
		if err != nil || got.ClientName != "Desk" {
			t.Fatalf("the registration after failed changes: %v %+v", err, got)
		}
		if list, err := f.srv.AppClients(f.ctx); err != nil || len(list) != 2 {
			t.Fatalf("clients after failed changes: %v %d", err, len(list))
		}
	})
}
