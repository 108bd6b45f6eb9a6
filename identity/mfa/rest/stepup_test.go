package rest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/identity/mfa/mfatest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestStepUpOnHighRiskGrants: where the tenant asks for step-up, granting
// (or changing, or removing) a high-risk entitlement, directly or through
// a role that brings it, needs a recent sign-in with a second factor
// (RFC 9470's challenge otherwise); low-risk grants do not. A passkey
// sign-in is one.
func TestStepUpOnHighRiskGrants(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "sg")
	uma, _ := g.User("uma", "")
	high := g.Ent("payments.refund", map[string]any{"risk_level": "high"})
	low := g.Ent("wiki.read", map[string]any{"risk_level": "low"})
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/roles", map[string]any{"key": "finance", "name": "Finance", "entitlement_ids": []string{high}})
	apptest.Expect(t, resp, body, 201, "a role bringing the high-risk entitlement")
	role := apptest.Decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/policies", map[string]any{"step_up": map[string]any{"enabled": true}})
	apptest.Expect(t, resp, body, 200, "step-up on")

	assign := func(tok, typ, target string, want int, what string) string {
		t.Helper()
		resp, body := h.DoAs(tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": uma, "target_type": typ, "target_id": target})
		apptest.Expect(t, resp, body, want, what)
		if want == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
			t.Fatalf("%s: %q", what, resp.Header.Get("WWW-Authenticate"))
		}
		return apptest.Decode[struct{ ID string }](t, body).ID
	}
	assign(g.Tok, "entitlement", low, 201, "a low-risk grant with a password sign-in")
	assign(g.Tok, "entitlement", high, 401, "a high-risk grant with a password sign-in")
	assign(g.Tok, "role", role, 401, "a role bringing a high-risk entitlement")

	// The admin signs in with a passkey.
	a := &mfatest.Authenticator{Origin: strings.Replace(h.Admin, "127.0.0.1", "localhost", 1)}
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/me/mfa/webauthn", nil)
	apptest.Expect(t, resp, body, 200, "begin registration")
	c := apptest.Decode[ceremony](t, body)
	answer, _, err := a.Create(c.PublicKey, mfatest.Fault{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/me/mfa/webauthn/finish", map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(answer)})
	apptest.Expect(t, resp, body, 201, "register")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/passkey/begin", map[string]any{"tenant": g.Slug})
	apptest.Expect(t, resp, body, 200, "begin")
	c = apptest.Decode[ceremony](t, body)
	answer, err = a.Get(c.PublicKey, mfatest.Fault{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = h.DoAs("", "POST", "/api/v1/auth/passkey", map[string]any{"tenant": g.Slug, "ceremony": c.Ceremony, "credential": json.RawMessage(answer)})
	apptest.Expect(t, resp, body, 200, "a passkey sign-in")
	strong := apptest.Decode[tokens](t, body).AccessToken

	id := assign(strong, "entitlement", high, 201, "a high-risk grant after a passkey sign-in")
	resp, body = h.DoAs(g.Tok, "DELETE", "/api/v1/assignments/"+id, nil)
	apptest.Expect(t, resp, body, 401, "removing it with a password sign-in")
	resp, body = h.DoAs(strong, "DELETE", "/api/v1/assignments/"+id, nil)
	apptest.Expect(t, resp, body, 204, "removing it after a passkey sign-in")
}
