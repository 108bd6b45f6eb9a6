package rest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
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

// TestIdentityEndToEnd is the identity core's acceptance path over REST:
// create tenant → its first admin logs in → changes the forced password →
// creates a user and a group → the user logs in → lists and revokes a
// session → refresh reuse revokes the family.
func TestIdentityEndToEnd(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
			slug := apptest.UniqueSlug("idp")
			resp, body := h.Do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "IdP", "admin": map[string]any{"email": "Root@Example.test"}})
			apptest.Expect(t, resp, body, 201, "create tenant")
			created := apptest.Decode[struct {
				InitialAdmin struct{ Email, Password string } `json:"initial_admin"`
			}](t, body)

			// The first admin must change the password before anything else.
			first := h.Login(slug, "root@example.test", created.InitialAdmin.Password, 200)
			if !first.PasswordChangeRequired || first.Scope != "password_change" {
				t.Fatalf("forced change not signalled: %+v", first)
			}
			resp, body = h.DoAs(first.AccessToken, "GET", "/api/v1/users", nil)
			apptest.Expect(t, resp, body, 403, "restricted token on /users")
			resp, body = h.DoAs(first.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": created.InitialAdmin.Password, "new_password": "short"})
			apptest.Expect(t, resp, body, 400, "weak new password")
			resp, body = h.DoAs(first.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": "wrong-password-123", "new_password": "Adm1n-passphrase-ok"})
			apptest.Expect(t, resp, body, 403, "wrong current password")
			resp, body = h.DoAs(first.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": created.InitialAdmin.Password, "new_password": "Adm1n-passphrase-ok"})
			apptest.Expect(t, resp, body, 200, "change password")
			admin := apptest.Decode[apptest.LoginResult](t, body)
			if admin.PasswordChangeRequired {
				t.Fatal("still restricted after the change")
			}
			resp, _ = h.DoAs(first.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("the pre-change session survived: %d", resp.StatusCode)
			}
			h.Login(slug, "root@example.test", created.InitialAdmin.Password, 401)

			// The admin creates a user and a group.
			resp, body = h.DoAs(admin.AccessToken, "POST", "/api/v1/users", map[string]any{"email": "ada@example.test", "username": "ada",
				"display_name": "Ada Lovelace", "password": "Engine-analytical-1843"})
			apptest.Expect(t, resp, body, 201, "create user")
			ada := apptest.Decode[userJSON](t, body)
			resp, body = h.DoAs(admin.AccessToken, "POST", "/api/v1/groups", map[string]any{"name": "Engineering"})
			apptest.Expect(t, resp, body, 201, "create group")
			group := apptest.Decode[userJSON](t, body)
			resp, body = h.DoAs(admin.AccessToken, "PUT", "/api/v1/groups/"+group.ID+"/members/"+ada.ID, nil)
			apptest.Expect(t, resp, body, 201, "add member")
			resp, body = h.DoAs(admin.AccessToken, "GET", "/api/v1/users?group_id="+group.ID, nil)
			apptest.Expect(t, resp, body, 200, "list members")
			if !strings.Contains(string(body), ada.ID) {
				t.Fatalf("member not listed: %s", body)
			}

			// The user signs in twice (two devices), sees both sessions, ends one.
			s1 := h.Login(slug, "ada", "Engine-analytical-1843", 200)
			s2 := h.Login(slug, "ADA@example.test", "Engine-analytical-1843", 200)
			resp, body = h.DoAs(s1.AccessToken, "GET", "/api/v1/me/sessions", nil)
			apptest.Expect(t, resp, body, 200, "my sessions")
			sessions := apptest.Decode[[]sessionJSON](t, body)
			if len(sessions) != 2 {
				t.Fatalf("want 2 sessions, got %s", body)
			}
			resp, body = h.DoAs(s1.AccessToken, "DELETE", "/api/v1/me/sessions/"+s2.SessionID, nil)
			apptest.Expect(t, resp, body, 204, "revoke own session")
			resp, _ = h.DoAs(s2.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("revoked session's token still works: %d", resp.StatusCode)
			}
			resp, _ = h.DoAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": s2.RefreshToken})
			if resp.StatusCode != 401 {
				t.Fatalf("revoked session's refresh token still works: %d", resp.StatusCode)
			}
			// Another user's session is not theirs to end.
			resp, _ = h.DoAs(s1.AccessToken, "GET", "/api/v1/users/"+ada.ID+"/sessions", nil)
			if resp.StatusCode != 403 {
				t.Fatalf("a plain user listed sessions as an admin: %d", resp.StatusCode)
			}
			resp, body = h.DoAs(admin.AccessToken, "GET", "/api/v1/users/"+ada.ID+"/sessions", nil)
			apptest.Expect(t, resp, body, 200, "admin lists sessions")

			// Refresh rotates; presenting the old refresh token again kills the family.
			resp, body = h.DoAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": s1.RefreshToken})
			apptest.Expect(t, resp, body, 200, "refresh")
			r1 := apptest.Decode[apptest.LoginResult](t, body)
			if r1.RefreshToken == s1.RefreshToken || r1.SessionID != s1.SessionID {
				t.Fatalf("refresh did not rotate: %+v", r1)
			}
			resp, _ = h.DoAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": s1.RefreshToken})
			if resp.StatusCode != 401 {
				t.Fatalf("reuse accepted: %d", resp.StatusCode)
			}
			resp, _ = h.DoAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": r1.RefreshToken})
			if resp.StatusCode != 401 {
				t.Fatalf("the family survived reuse: %d", resp.StatusCode)
			}
			resp, _ = h.DoAs(r1.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("the session survived reuse: %d", resp.StatusCode)
			}

			// Logout ends the session; disabling a user ends all of theirs.
			s3 := h.Login(slug, "ada", "Engine-analytical-1843", 200)
			resp, body = h.DoAs(s3.AccessToken, "POST", "/api/v1/auth/logout", nil)
			apptest.Expect(t, resp, body, 204, "logout")
			resp, _ = h.DoAs(s3.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("token works after logout: %d", resp.StatusCode)
			}
			s4 := h.Login(slug, "ada", "Engine-analytical-1843", 200)
			resp, body = h.DoAs(admin.AccessToken, "PATCH", "/api/v1/users/"+ada.ID, map[string]any{"status": "disabled"})
			apptest.Expect(t, resp, body, 200, "disable user")
			resp, _ = h.DoAs(s4.AccessToken, "GET", "/api/v1/me", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("a disabled user's token still works: %d", resp.StatusCode)
			}
			h.Login(slug, "ada", "Engine-analytical-1843", 401)

			// userinfo at the tenant's issuer.
			resp, body = h.DoAs(admin.AccessToken, "GET", "/t/"+slug+"/userinfo", nil)
			apptest.Expect(t, resp, body, 200, "userinfo")
			if !strings.Contains(string(body), `"email":"Root@Example.test"`) {
				t.Fatalf("userinfo: %s", body)
			}
			resp, body = h.DoAs("", "GET", "/t/"+slug+"/jwks", nil)
			apptest.Expect(t, resp, body, 200, "jwks")
		})
	}
}

// TestCrossTenantIsolation: with tenant A's admin token every tenant-B
// resource answers 404, X-Tenant-ID is refused, and A's token is refused
// at B's issuer.
func TestCrossTenantIsolation(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
			slugA, slugB := apptest.UniqueSlug("a"), apptest.UniqueSlug("b")
			_, tokA := h.TenantAdmin(t, slugA)
			tidB, tokB := h.TenantAdmin(t, slugB)
			resp, body := h.DoAs(tokB, "POST", "/api/v1/users", map[string]any{"email": "bob@b.test"})
			apptest.Expect(t, resp, body, 201, "B creates a user")
			bob := apptest.Decode[userJSON](t, body)
			resp, body = h.DoAs(tokB, "POST", "/api/v1/groups", map[string]any{"name": "B-team"})
			apptest.Expect(t, resp, body, 201, "B creates a group")
			bGroup := apptest.Decode[userJSON](t, body)

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
				resp, raw := h.DoAs(tokA, probe.method, probe.path, body)
				if resp.StatusCode != 404 {
					t.Errorf("%s %s with A's token: %d %s", probe.method, probe.path, resp.StatusCode, raw)
				}
			}
			resp, body = h.DoAs(tokA, "GET", "/api/v1/users?limit=500", nil)
			apptest.Expect(t, resp, body, 200, "A lists users")
			if strings.Contains(string(body), bob.ID) || strings.Contains(string(body), "bob@b.test") {
				t.Fatal("A's listing shows B's user")
			}
			resp, _ = h.DoAs(tokA, "GET", "/api/v1/users", nil, "X-Tenant-ID", tidB)
			if resp.StatusCode != 403 {
				t.Fatalf("A's admin used X-Tenant-ID: %d", resp.StatusCode)
			}
			resp, _ = h.DoAs(tokA, "GET", "/t/"+slugB+"/userinfo", nil)
			if resp.StatusCode != 401 {
				t.Fatalf("A's token accepted at B's issuer: %d", resp.StatusCode)
			}
			resp, _ = h.DoAs(tokA, "GET", "/api/v1/tenants", nil)
			if resp.StatusCode != 403 {
				t.Fatalf("a tenant admin listed tenants: %d", resp.StatusCode)
			}
			// B's user is untouched.
			resp, body = h.DoAs(tokB, "GET", "/api/v1/users/"+bob.ID, nil)
			apptest.Expect(t, resp, body, 200, "B reads its user")
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
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("lk")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{
		"password": map[string]any{"min_length": 12, "history": 3},
		"lockout":  map[string]any{"max_attempts": 3, "base_seconds": 60, "max_seconds": 600},
		"session":  map[string]any{"max_concurrent": 2, "idle_minutes": 60, "lifetime_hours": 24, "access_token_minutes": 5}})
	apptest.Expect(t, resp, body, 200, "set policies")
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "eve@example.test", "password": "Correct-horse-battery"})
	apptest.Expect(t, resp, body, 201, "create user")
	eve := apptest.Decode[userJSON](t, body)

	attempt := func(login, pw string) (int, string) {
		resp, body := h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": login, "password": pw}, "X-Request-ID", "fixed-request-id")
		return resp.StatusCode, string(body)
	}
	before := h.App.Hasher().Verifications()
	codeUnknown, bodyUnknown := attempt("nobody@example.test", "Whatever-password-1")
	if h.App.Hasher().Verifications() != before+1 {
		t.Fatal("the unknown-user path did not run a password verification")
	}
	codeWrong, bodyWrong := attempt("eve@example.test", "Wrong-password-123")
	attempt("eve@example.test", "Wrong-password-123")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": "no-such-tenant", "login": "eve@example.test", "password": "x"}, "X-Request-ID", "fixed-request-id")
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
	_, body = h.DoAs(tok, "GET", "/api/v1/users/"+eve.ID, nil)
	if !strings.Contains(string(body), "locked_until") {
		t.Fatalf("lock not recorded: %s", body)
	}
	resp, body = h.DoAs(tok, "POST", "/api/v1/users/"+eve.ID+"/unlock", nil)
	apptest.Expect(t, resp, body, 200, "unlock")

	// The session limit (2) ends the oldest session at the third login.
	a := h.Login(slug, "eve@example.test", "Correct-horse-battery", 200)
	h.Login(slug, "eve@example.test", "Correct-horse-battery", 200)
	c := h.Login(slug, "eve@example.test", "Correct-horse-battery", 200)
	resp, _ = h.DoAs(a.AccessToken, "GET", "/api/v1/me", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("the oldest session outlived the limit: %d", resp.StatusCode)
	}
	_, body = h.DoAs(c.AccessToken, "GET", "/api/v1/me/sessions", nil)
	if n := len(apptest.Decode[[]sessionJSON](t, body)); n != 2 {
		t.Fatalf("%d live sessions, want 2", n)
	}

	// Password history: the admin cannot reset to a recent password.
	resp, body = h.DoAs(tok, "POST", "/api/v1/users/"+eve.ID+"/password", map[string]any{"password": "Correct-horse-battery"})
	apptest.Expect(t, resp, body, 400, "reuse of a recent password")
}

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
