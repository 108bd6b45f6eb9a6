package rest_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestDeviceFlow: a CLI asks for a device authorization and polls
// (authorization_pending, then slow_down when it polls too fast); the
// person signs in on the device page, types the code and allows it: the
// CLI gets the person's tokens once, in the SSO session they approved
// from; a denied request answers access_denied; a wrong code, a missing
// CSRF token and a decision on a decided request change nothing.
func TestDeviceFlow(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			deviceFlow(t, flavor)
		})
	}
}

func deviceFlow(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("dev")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Terminal", "redirect_uris": []string{"http://127.0.0.1:1/unused"},
		"first_party": true})
	apptest.Expect(t, resp, body, 201, "register the CLI")
	cli := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@dev.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")

	start := func() map[string]any {
		t.Helper()
		st, out := h.Form("/t/"+slug+"/device_authorization", url.Values{"client_id": {cli}, "scope": {"openid offline_access"}}, "", "")
		if st != 200 || out["device_code"] == nil || out["interval"] != float64(5) || out["expires_in"] != float64(600) ||
			out["verification_uri"] != h.App.Config().Admin.PublicURL+"/t/"+slug+"/device" ||
			!regexp.MustCompile(`^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$`).MatchString(out["user_code"].(string)) {
			t.Fatalf("device authorization: %d %v", st, out)
		}
		return out
	}
	poll := func(d map[string]any) (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {cli},
			"device_code": {d["device_code"].(string)}}, "", "")
	}
	wantError := func(what string, st int, out map[string]any, code string) {
		t.Helper()
		if st != 400 || out["error"] != code {
			t.Fatalf("%s: %d %v, want %s", what, st, out, code)
		}
	}
	if st, out := h.Form("/t/"+slug+"/device_authorization", url.Values{"client_id": {cli}, "scope": {"admin"}}, "", ""); st != 400 || out["error"] != "invalid_scope" {
		t.Fatalf("a scope the client may not ask for: %d %v", st, out)
	}
	allowed, denied := start(), start()
	st, out := poll(allowed)
	wantError("first poll", st, out, "authorization_pending")
	st, out = poll(allowed)
	wantError("polling too fast", st, out, "slow_down")
	st, out = poll(denied)
	wantError("the other request", st, out, "authorization_pending")

	// The person, in a browser: cookies kept by hand.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	jar := map[string]string{}
	csrfRE := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	browse := func(method string, v url.Values) (int, string) {
		t.Helper()
		target := h.Admin + "/t/" + slug + "/device"
		var req *http.Request
		if method == "GET" {
			req, _ = http.NewRequest("GET", target+"?"+v.Encode(), nil)
		} else {
			req, _ = http.NewRequest("POST", target, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, val := range jar {
			req.AddCookie(&http.Cookie{Name: k, Value: val})
		}
		r, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		for _, c := range r.Cookies() {
			jar[c.Name] = c.Value
		}
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatal("the device page may be framed")
		}
		return r.StatusCode, string(b)
	}
	csrf := func(page string) string {
		m := csrfRE.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no CSRF token: %s", page)
		}
		return m[1]
	}
	code := allowed["user_code"].(string)
	// Without a session the device page sends the person to the sign-in
	// page, which brings them back with the code they came with.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", ""))
	resp, err := noFollow.Get(h.Admin + "/t/" + slug + "/device?user_code=" + typed)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "/t/"+slug+"/login?tx=") {
		t.Fatalf("device page without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r, _ := pageLoginAt(t, h, h.Admin+resp.Header.Get("Location"), "ada@dev.test", "Analytical-engine-1843", false); r.StatusCode != 403 {
		t.Fatalf("sign-in without the CSRF token: %d", r.StatusCode)
	}
	r, _ := pageLoginAt(t, h, h.Admin+resp.Header.Get("Location"), "ada@dev.test", "Analytical-engine-1843", true)
	if r.StatusCode != 302 || r.Header.Get("Location") != "/t/"+slug+"/device?user_code="+typed {
		t.Fatalf("after signing in: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	for _, c := range r.Cookies() {
		jar[c.Name] = c.Value
	}
	st2, page := browse("GET", url.Values{"user_code": {typed}})
	if st2 != 200 || !strings.Contains(page, "Terminal") || !strings.Contains(page, code) || !strings.Contains(page, `value="allow"`) {
		t.Fatalf("back at the device page: %d %s", st2, page)
	}
	if st2, _ = browse("POST", url.Values{"step": {"decide"}, "user_code": {code}, "decision": {"allow"}, "csrf": {"00"}}); st2 != 403 {
		t.Fatalf("a decision without the CSRF token: %d", st2)
	}
	_, page = browse("GET", url.Values{"user_code": {code}})
	st2, page = browse("POST", url.Values{"step": {"decide"}, "user_code": {code}, "decision": {"allow"}, "csrf": {csrf(page)}})
	if st2 != 200 || !strings.Contains(page, "connected") {
		t.Fatalf("allow: %d %s", st2, page)
	}
	// Decided: the code names nothing any more; a wrong code neither.
	for _, c := range []string{code, "BCDF-GHJK", "not a code"} {
		if st2, page = browse("GET", url.Values{"user_code": {c}}); st2 != 404 || !strings.Contains(page, "not valid") {
			t.Fatalf("code %q: %d %s", c, st2, page)
		}
	}
	// The same person denies the other request, from the same session.
	_, page = browse("GET", url.Values{"user_code": {denied["user_code"].(string)}})
	st2, page = browse("POST", url.Values{"step": {"decide"}, "user_code": {denied["user_code"].(string)}, "decision": {"deny"}, "csrf": {csrf(page)}})
	if st2 != 200 || !strings.Contains(page, "denied") {
		t.Fatalf("deny: %d %s", st2, page)
	}

	time.Sleep(10*time.Second + 200*time.Millisecond) // the interval grew to 10 s
	st, out = poll(allowed)
	if st != 200 || out["access_token"] == nil || out["refresh_token"] == nil || out["id_token"] == nil {
		t.Fatalf("tokens after approval: %d %v", st, out)
	}
	id := apptest.JWTClaims(t, out["id_token"].(string))
	if id["sid"] == nil || id["auth_time"] == nil || id["acr"] != "urn:xavyo:acr:pwd" {
		t.Fatalf("ID token of a device grant: %v", id)
	}
	st, out = poll(allowed)
	wantError("a second redemption", st, out, "invalid_grant")
	st, out = poll(denied)
	wantError("a denied request", st, out, "access_denied")
}
