package rest_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// thirdPartyOP runs zitadel's example OpenID provider (make oidc-op
// installs it; XAVYO_OIDC_OP names the binary) with the given users and
// redirect URIs, on a free loopback port; its issuer is
// http://localhost:{port}/.
func thirdPartyOP(t *testing.T, users map[string]any, redirect string) (issuer string, stop func()) {
	t.Helper()
	bin := os.Getenv("XAVYO_OIDC_OP")
	if bin == "" {
		bin, _ = filepath.Abs("../../../bin/oidc-op/server")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("the third-party OpenID provider is missing (make oidc-op): %v", err)
		}
		t.Skip("the third-party OpenID provider is not installed (make oidc-op)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	file := filepath.Join(t.TempDir(), "users.json")
	raw, _ := json.Marshal(users)
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "USERS_FILE="+file, "REDIRECT_URI="+redirect)
	logs := &apptest.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("OpenID provider log:\n%s", logs.String())
		}
	})
	issuer = fmt.Sprintf("http://localhost:%d/", port)
	for i := 0; ; i++ {
		resp, err := http.Get(issuer + ".well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 200 {
			t.Fatalf("the OpenID provider did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return issuer, stop
}

var opLoginID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// opLogin answers the third-party provider's sign-in form the browser is
// on.
func opLogin(t *testing.T, b *apptest.Browser, issuer, page, user, pw string) (*http.Response, string) {
	t.Helper()
	m := opLoginID.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("not the provider's sign-in form: %s", page)
	}
	return b.Do("POST", issuer+"login/username", url.Values{"id": {m[1]}, "username": {user}, "password": {pw}})
}

func opUser(id, username, first, email string) map[string]any {
	return map[string]any{"ID": id, "Username": username, "Password": "verysecure", "FirstName": first, "LastName": "Third",
		"Email": email, "EmailVerified": true, "PreferredLanguage": "en"}
}

// TestThirdPartyOpenIDProvider: people sign in through a third-party
// OpenID provider (zitadel's example provider): the first sign-in creates
// the person, a later one (the provider restarted with new keys and a
// changed profile) brings the profile up to date, and an address that
// has an account here is linked only once its owner signs in to it.
func TestThirdPartyOpenIDProvider(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	slug := apptest.UniqueSlug("zop")
	_, tok := h.TenantAdmin(t, slug)
	callback := h.Admin + "/t/" + slug + "/federation/zitadel/callback"
	users := map[string]any{"u1": opUser("u1", "lea", "Lea", "lea@zop.test"), "u2": opUser("u2", "max", "Max", "max@zop.test")}
	issuer, stop := thirdPartyOP(t, users, callback)
	resp, body := h.DoAs(tok, "POST", "/api/v1/identity-providers", map[string]any{"key": "zitadel", "name": "Zitadel", "client_secret": "secret",
		"settings": map[string]any{"issuer": issuer, "client_id": "web", "userinfo": true, "jit": true}})
	apptest.Expect(t, resp, body, 201, "provider")

	signIn := func(issuer, user string) (*http.Response, string) {
		t.Helper()
		b := apptest.NewBrowser(t)
		resp, page := b.Do("GET", h.Admin+"/t/"+slug+"/login/federation/zitadel", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("to the provider: %d %s", resp.StatusCode, page)
		}
		return opLogin(t, b, issuer, page, user, "verysecure")
	}
	resp, page := signIn(issuer, "lea")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("first sign-in: %d %s", resp.StatusCode, page)
	}
	find := func(email string) string {
		resp, body := h.DoAs(tok, "GET", "/api/v1/users?email="+url.QueryEscape(email), nil)
		apptest.Expect(t, resp, body, 200, "users")
		return string(body)
	}
	if u := find("lea@zop.test"); !strings.Contains(u, `"given_name":"Lea"`) || !strings.Contains(u, `"family_name":"Third"`) {
		t.Fatalf("just-in-time user: %s", u)
	}

	// The provider restarts (new signing keys) with Lea renamed.
	stop()
	users["u1"] = opUser("u1", "lea", "Leonie", "lea@zop.test")
	users["u3"] = opUser("u3", "ana", "Ana", "ana@zop.test")
	issuer2, _ := thirdPartyOP(t, users, callback)
	resp, body = h.DoAs(tok, "GET", "/api/v1/identity-providers", nil)
	apptest.Expect(t, resp, body, 200, "providers")
	id := apptest.Decode[[]providerJSON](t, body)[0].ID
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/identity-providers/"+id, map[string]any{"settings": map[string]any{"issuer": issuer2,
		"client_id": "web", "userinfo": true, "jit": true}})
	apptest.Expect(t, resp, body, 200, "new issuer")
	if resp, page := signIn(issuer2, "lea"); resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("second sign-in: %d %s", resp.StatusCode, page)
	}
	if u := find("lea@zop.test"); !strings.Contains(u, `"given_name":"Leonie"`) || strings.Count(u, `"email":"lea@zop.test"`) != 1 {
		t.Fatalf("updated user: %s", u)
	}

	// Ana has an account here: she proves it before it is linked.
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ana@zop.test", "password": "Local-passphrase-1", "given_name": "Ana"})
	apptest.Expect(t, resp, body, 201, "ana")
	b := apptest.NewBrowser(t)
	_, page = b.Do("GET", h.Admin+"/t/"+slug+"/login/federation/zitadel", nil)
	resp, page = opLogin(t, b, issuer2, page, "ana", "verysecure")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="link"`) {
		t.Fatalf("an existing account: %d %s", resp.StatusCode, page)
	}
	resp, page = b.Do("POST", h.Admin+"/t/"+slug+"/login", url.Values{"tx": {apptest.Field(t, page, "tx")}, "csrf": {apptest.Field(t, page, "csrf")},
		"login": {"ana@zop.test"}, "password": {"Local-passphrase-1"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("proof: %d %s", resp.StatusCode, page)
	}
	if resp, page := signIn(issuer2, "ana"); resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("linked sign-in: %d %s", resp.StatusCode, page)
	}
}
