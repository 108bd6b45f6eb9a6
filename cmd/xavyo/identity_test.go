package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
)

type userJSON struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}

type sessionJSON struct {
	ID      string `json:"id"`
	Current bool   `json:"current"`
	Device  string `json:"device"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func expect(t *testing.T, resp *http.Response, body []byte, want int, what string) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: got %d, want %d: %s", what, resp.StatusCode, want, body)
	}
}

// TestIdentityEndToEnd is the identity core's acceptance path over REST:
// create tenant → its first admin logs in → changes the forced password →
// creates a user and a group → the user logs in → lists and revokes a
// session → refresh reuse revokes the family.
func TestIdentityEndToEnd(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			slug := uniqueSlug("idp")
			resp, body := h.do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "IdP", "admin": map[string]any{"email": "Root@Example.test"}})
			expect(t, resp, body, 201, "create tenant")
			created := decode[struct {
				InitialAdmin struct{ Email, Password string } `json:"initial_admin"`
			}](t, body)

			// The first admin must change the password before anything else.
			first := h.login(slug, "root@example.test", created.InitialAdmin.Password, 200)
			if !first.PasswordChangeRequired || first.Scope != "password_change" {
				t.Fatalf("forced change not signalled: %+v", first)
			}
			resp, body = h.doAs(first.AccessToken, "GET", "/api/v1/users", nil)
			expect(t, resp, body, 403, "restricted token on /users")
			resp, body = h.doAs(first.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": created.InitialAdmin.Password, "new_password": "short"})
			expect(t, resp, body, 400, "weak new password")
			resp, body = h.doAs(first.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": "wrong-password-123", "new_password": "Adm1n-passphrase-ok"})
			expect(t, resp, body, 403, "wrong current password")
			resp, body = h.doAs(first.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": created.InitialAdmin.Password, "new_password": "Adm1n-passphrase-ok"})
			expect(t, resp, body, 200, "change password")
			admin := decode[loginResult](t, body)
			if admin.PasswordChangeRequired {
				t.Fatal("still restricted after the change")
			}
			resp, _ = h.doAs(first.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("the pre-change session survived: %d", resp.StatusCode)
			}
			h.login(slug, "root@example.test", created.InitialAdmin.Password, 401)

			// The admin creates a user and a group.
			resp, body = h.doAs(admin.AccessToken, "POST", "/api/v1/users", map[string]any{"email": "ada@example.test", "username": "ada",
				"display_name": "Ada Lovelace", "password": "Engine-analytical-1843"})
			expect(t, resp, body, 201, "create user")
			ada := decode[userJSON](t, body)
			resp, body = h.doAs(admin.AccessToken, "POST", "/api/v1/groups", map[string]any{"name": "Engineering"})
			expect(t, resp, body, 201, "create group")
			group := decode[userJSON](t, body)
			resp, body = h.doAs(admin.AccessToken, "PUT", "/api/v1/groups/"+group.ID+"/members/"+ada.ID, nil)
			expect(t, resp, body, 201, "add member")
			resp, body = h.doAs(admin.AccessToken, "GET", "/api/v1/users?group_id="+group.ID, nil)
			expect(t, resp, body, 200, "list members")
			if !strings.Contains(string(body), ada.ID) {
				t.Fatalf("member not listed: %s", body)
			}

			// The user signs in twice (two devices), sees both sessions, ends one.
			s1 := h.login(slug, "ada", "Engine-analytical-1843", 200)
			s2 := h.login(slug, "ADA@example.test", "Engine-analytical-1843", 200)
			resp, body = h.doAs(s1.AccessToken, "GET", "/api/v1/me/sessions", nil)
			expect(t, resp, body, 200, "my sessions")
			sessions := decode[[]sessionJSON](t, body)
			if len(sessions) != 2 {
				t.Fatalf("want 2 sessions, got %s", body)
			}
			resp, body = h.doAs(s1.AccessToken, "DELETE", "/api/v1/me/sessions/"+s2.SessionID, nil)
			expect(t, resp, body, 204, "revoke own session")
			resp, _ = h.doAs(s2.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("revoked session's token still works: %d", resp.StatusCode)
			}
			resp, _ = h.doAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": s2.RefreshToken})
			if resp.StatusCode != 401 {
				t.Fatalf("revoked session's refresh token still works: %d", resp.StatusCode)
			}
			// Another user's session is not theirs to end.
			resp, _ = h.doAs(s1.AccessToken, "GET", "/api/v1/users/"+ada.ID+"/sessions", nil)
			if resp.StatusCode != 403 {
				t.Fatalf("a plain user listed sessions as an admin: %d", resp.StatusCode)
			}
			resp, body = h.doAs(admin.AccessToken, "GET", "/api/v1/users/"+ada.ID+"/sessions", nil)
			expect(t, resp, body, 200, "admin lists sessions")

			// Refresh rotates; presenting the old refresh token again kills the family.
			resp, body = h.doAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": s1.RefreshToken})
			expect(t, resp, body, 200, "refresh")
			r1 := decode[loginResult](t, body)
			if r1.RefreshToken == s1.RefreshToken || r1.SessionID != s1.SessionID {
				t.Fatalf("refresh did not rotate: %+v", r1)
			}
			resp, _ = h.doAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": s1.RefreshToken})
			if resp.StatusCode != 401 {
				t.Fatalf("reuse accepted: %d", resp.StatusCode)
			}
			resp, _ = h.doAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": r1.RefreshToken})
			if resp.StatusCode != 401 {
				t.Fatalf("the family survived reuse: %d", resp.StatusCode)
			}
			resp, _ = h.doAs(r1.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("the session survived reuse: %d", resp.StatusCode)
			}

			// Logout ends the session; disabling a user ends all of theirs.
			s3 := h.login(slug, "ada", "Engine-analytical-1843", 200)
			resp, body = h.doAs(s3.AccessToken, "POST", "/api/v1/auth/logout", nil)
			expect(t, resp, body, 204, "logout")
			resp, _ = h.doAs(s3.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("token works after logout: %d", resp.StatusCode)
			}
			s4 := h.login(slug, "ada", "Engine-analytical-1843", 200)
			resp, body = h.doAs(admin.AccessToken, "PATCH", "/api/v1/users/"+ada.ID, map[string]any{"status": "disabled"})
			expect(t, resp, body, 200, "disable user")
			resp, _ = h.doAs(s4.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("a disabled user's token still works: %d", resp.StatusCode)
			}
			h.login(slug, "ada", "Engine-analytical-1843", 401)

			// userinfo at the tenant's issuer.
			resp, body = h.doAs(admin.AccessToken, "GET", "/t/"+slug+"/userinfo", nil)
			expect(t, resp, body, 200, "userinfo")
			if !strings.Contains(string(body), `"email":"Root@Example.test"`) {
				t.Fatalf("userinfo: %s", body)
			}
			resp, body = h.doAs("", "GET", "/t/"+slug+"/jwks", nil)
			expect(t, resp, body, 200, "jwks")
		})
	}
}

// TestCrossTenantIsolation: with tenant A's admin token every tenant-B
// resource answers 404, X-Tenant-ID is refused, and A's token is refused
// at B's issuer.
func TestCrossTenantIsolation(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			slugA, slugB := uniqueSlug("a"), uniqueSlug("b")
			_, tokA := tenantAdmin(t, h, slugA)
			tidB, tokB := tenantAdmin(t, h, slugB)
			resp, body := h.doAs(tokB, "POST", "/api/v1/users", map[string]any{"email": "bob@b.test"})
			expect(t, resp, body, 201, "B creates a user")
			bob := decode[userJSON](t, body)
			resp, body = h.doAs(tokB, "POST", "/api/v1/groups", map[string]any{"name": "B-team"})
			expect(t, resp, body, 201, "B creates a group")
			bGroup := decode[userJSON](t, body)

			for _, probe := range []struct{ method, path string }{
				{"GET", "/api/v1/users/" + bob.ID},
				{"PATCH", "/api/v1/users/" + bob.ID},
				{"DELETE", "/api/v1/users/" + bob.ID},
				{"GET", "/api/v1/users/" + bob.ID + "/groups"},
				{"GET", "/api/v1/users/" + bob.ID + "/sessions"},
				{"POST", "/api/v1/users/" + bob.ID + "/unlock"},
				{"GET", "/api/v1/groups/" + bGroup.ID},
				{"PATCH", "/api/v1/groups/" + bGroup.ID},
				{"DELETE", "/api/v1/groups/" + bGroup.ID},
				{"GET", "/api/v1/groups/" + bGroup.ID + "/members"},
				{"PUT", "/api/v1/groups/" + bGroup.ID + "/members/" + bob.ID},
			} {
				var body any
				if probe.method == "PATCH" && strings.Contains(probe.path, "/users/") {
					body = map[string]any{"display_name": "pwned"}
				} else if probe.method == "PATCH" {
					body = map[string]any{"name": "pwned"}
				}
				resp, raw := h.doAs(tokA, probe.method, probe.path, body)
				if resp.StatusCode != 404 {
					t.Errorf("%s %s with A's token: %d %s", probe.method, probe.path, resp.StatusCode, raw)
				}
			}
			resp, body = h.doAs(tokA, "GET", "/api/v1/users?limit=500", nil)
			expect(t, resp, body, 200, "A lists users")
			if strings.Contains(string(body), bob.ID) || strings.Contains(string(body), "bob@b.test") {
				t.Fatal("A's listing shows B's user")
			}
			resp, _ = h.doAs(tokA, "GET", "/api/v1/users", nil, "X-Tenant-ID", tidB)
			if resp.StatusCode != 403 {
				t.Fatalf("A's admin used X-Tenant-ID: %d", resp.StatusCode)
			}
			resp, _ = h.doAs(tokA, "GET", "/t/"+slugB+"/userinfo", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("A's token accepted at B's issuer: %d", resp.StatusCode)
			}
			resp, _ = h.doAs(tokA, "GET", "/api/v1/tenants", nil)
			if resp.StatusCode != 403 {
				t.Fatalf("a tenant admin listed tenants: %d", resp.StatusCode)
			}
			// B's user is untouched.
			resp, body = h.doAs(tokB, "GET", "/api/v1/users/"+bob.ID, nil)
			expect(t, resp, body, 200, "B reads its user")
			if strings.Contains(string(body), "pwned") {
				t.Fatal("A changed B's user")
			}
		})
	}
}

// TestLoginFailuresAreIndistinguishable: unknown user, wrong password,
// locked and disabled accounts get the same status and body, and the
// unknown-user path runs a password verification too.
func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	slug := uniqueSlug("lk")
	_, tok := tenantAdmin(t, h, slug)
	resp, body := h.doAs(tok, "PATCH", "/api/v1/policies", map[string]any{
		"password": map[string]any{"min_length": 12, "history": 3},
		"lockout":  map[string]any{"max_attempts": 3, "base_seconds": 60, "max_seconds": 600},
		"session":  map[string]any{"max_concurrent": 2, "idle_minutes": 60, "lifetime_hours": 24, "access_token_minutes": 5}})
	expect(t, resp, body, 200, "set policies")
	resp, body = h.doAs(tok, "POST", "/api/v1/users", map[string]any{"email": "eve@example.test", "password": "Correct-horse-battery"})
	expect(t, resp, body, 201, "create user")
	eve := decode[userJSON](t, body)

	attempt := func(login, pw string) (int, string) {
		resp, body := h.doAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": login, "password": pw}, "X-Request-ID", "fixed-request-id")
		return resp.StatusCode, string(body)
	}
	before := h.s.hasher.Verifications()
	codeUnknown, bodyUnknown := attempt("nobody@example.test", "Whatever-password-1")
	if h.s.hasher.Verifications() != before+1 {
		t.Fatal("the unknown-user path did not run a password verification")
	}
	codeWrong, bodyWrong := attempt("eve@example.test", "Wrong-password-123")
	attempt("eve@example.test", "Wrong-password-123")
	resp, body = h.doAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": "no-such-tenant", "login": "eve@example.test", "password": "x"}, "X-Request-ID", "fixed-request-id")
	codeNoTenant, bodyNoTenant := resp.StatusCode, string(body)
	if codeUnknown != 401 || codeUnknown != codeWrong || bodyUnknown != bodyWrong || codeNoTenant != 401 || bodyNoTenant != bodyUnknown {
		t.Fatalf("distinguishable:\nunknown %d %s\nwrong   %d %s\ntenant  %d %s", codeUnknown, bodyUnknown, codeWrong, bodyWrong, codeNoTenant, bodyNoTenant)
	}
	// Third failure locks; the right password is then refused the same way.
	attempt("eve@example.test", "Wrong-password-123")
	codeLocked, bodyLocked := attempt("eve@example.test", "Correct-horse-battery")
	if codeLocked != 401 || bodyLocked != bodyUnknown {
		t.Fatalf("locked account: %d %s", codeLocked, bodyLocked)
	}
	_, body = h.doAs(tok, "GET", "/api/v1/users/"+eve.ID, nil)
	if !strings.Contains(string(body), "locked_until") {
		t.Fatalf("lock not recorded: %s", body)
	}
	resp, body = h.doAs(tok, "POST", "/api/v1/users/"+eve.ID+"/unlock", nil)
	expect(t, resp, body, 200, "unlock")

	// The session limit (2) ends the oldest session at the third login.
	a := h.login(slug, "eve@example.test", "Correct-horse-battery", 200)
	h.login(slug, "eve@example.test", "Correct-horse-battery", 200)
	c := h.login(slug, "eve@example.test", "Correct-horse-battery", 200)
	resp, _ = h.doAs(a.AccessToken, "GET", "/api/v1/me", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("the oldest session outlived the limit: %d", resp.StatusCode)
	}
	_, body = h.doAs(c.AccessToken, "GET", "/api/v1/me/sessions", nil)
	if n := len(decode[[]sessionJSON](t, body)); n != 2 {
		t.Fatalf("%d live sessions, want 2", n)
	}

	// Password history: the admin cannot reset to a recent password.
	resp, body = h.doAs(tok, "POST", "/api/v1/users/"+eve.ID+"/password", map[string]any{"password": "Correct-horse-battery"})
	expect(t, resp, body, 400, "reuse of a recent password")
}
