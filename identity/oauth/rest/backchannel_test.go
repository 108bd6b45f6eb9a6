package rest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/internal/store"
)

// TestBackchannelLogout: when a person signs out, a relying party the SSO
// session signed them in to gets a logout token by POST at the URI it
// registered — signed with the tenant's key (typ logout+jwt), naming the
// person and the session, with the back-channel logout event and no
// nonce; a relying party that is down gets it again once it is back.
func TestBackchannelLogout(t *testing.T) {
	if auth.SessionEvent != oauth.SessionEvent {
		t.Fatal("identity/auth and identity/oauth name the session event differently")
	}
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) { backchannelLogout(t, flavor) })
	}
}

func backchannelLogout(t *testing.T, flavor store.Flavor) {
	var mu sync.Mutex
	var tokens []string
	attempts := 0
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			http.Error(w, "down for a moment", http.StatusServiceUnavailable) // the first delivery fails
			return
		}
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.ParseForm() != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		tokens = append(tokens, r.PostForm.Get("logout_token"))
	}))
	defer rp.Close()

	h := apptest.Start(t, append(apptest.Env(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	slug := apptest.UniqueSlug("bcl")
	_, tok := h.TenantAdmin(t, slug)
	redirectURI := "http://127.0.0.1:9999/callback"
	resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Mail", "redirect_uris": []string{redirectURI}, "first_party": true,
		"backchannel_logout_uri": rp.URL + "/backchannel"})
	apptest.Expect(t, resp, body, 201, "register the client")
	clientID := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Bad", "redirect_uris": []string{redirectURI},
		"backchannel_logout_uri": "http://mail.example/backchannel"})
	apptest.Expect(t, resp, body, 400, "a plain-http back-channel URI off loopback")
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@bcl.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")

	// Ada signs in (code flow, page), then signs out with her ID token.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	br := newBrowser(t, h, slug, "ada@bcl.test", "Analytical-engine-1843")
	if q, resp, page := br.authorize(clientID, redirectURI, "scope", "openid"); q.Get("code") == "" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, page)
	}
	// The code is issued in the session: the client is one the session
	// signed Ada in to, whether or not it redeems the code.
	sso := br.cookie("xv_sso_")
	if sso == nil {
		t.Fatal("no SSO cookie")
	}
	sid, _, _ := strings.Cut(sso.Value, ".")
	req, _ := http.NewRequest("POST", h.Admin+"/t/"+slug+"/end_session", strings.NewReader(url.Values{"client_id": {clientID}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(sso)
	// The confirmation page, then the confirmed post.
	confirm, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cpage, _ := io.ReadAll(confirm.Body)
	confirm.Body.Close()
	form := url.Values{"client_id": {clientID}, "confirm": {"yes"},
		"csrf": {regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(string(cpage))[1]}}
	req, _ = http.NewRequest("POST", h.Admin+"/t/"+slug+"/end_session", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(sso)
	for _, c := range confirm.Cookies() {
		req.AddCookie(c)
	}
	if r, err := noFollow.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("sign out: %v %v", r, err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(tokens)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no logout token reached the relying party (%d attempts)", attempts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	raw := tokens[0]
	mu.Unlock()
	parsed, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil || parsed.Headers[0].ExtraHeaders["typ"] != "logout+jwt" {
		t.Fatalf("logout token: %v %+v", err, parsed)
	}
	jr, err := http.Get(h.Admin + "/t/" + slug + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	_ = json.NewDecoder(jr.Body).Decode(&set)
	jr.Body.Close()
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("the logout token's key is not in the tenant's JWKS")
	}
	var claims map[string]any
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	events, _ := claims["events"].(map[string]any)
	if claims["iss"] != h.App.Config().Admin.PublicURL+"/t/"+slug || claims["aud"] != clientID || claims["sid"] != sid || claims["sub"] == nil ||
		claims["jti"] == nil || claims["nonce"] != nil || events["http://schemas.openid.net/event/backchannel-logout"] == nil {
		t.Fatalf("logout token claims: %v", claims)
	}
	if attempts < 2 {
		t.Fatalf("%d attempts: the failed first delivery was not retried", attempts)
	}
}
