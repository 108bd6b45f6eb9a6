package rest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// The presets' providers cannot be reached from here: these tests serve
// their documented answers on loopback (Google's and Microsoft's ID
// tokens and discovery documents, GitHub's OAuth endpoints and REST API)
// and point the presets there.

// TestGooglePreset: Google's ID token shape (azp, hd, email_verified),
// and hosted_domains keeping out accounts of other Workspace domains.
func TestGooglePreset(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	op := newTestOP(t, "")
	o := newOIDCTenant(t, h, "gg", "google", op, map[string]any{"preset": "google", "jit": true, "hosted_domains": []string{"fx.example.com"}})
	hd := "gmail.com"
	op.set(func(op *testOP) {
		op.claims = func(nonce, at string) map[string]any {
			now := time.Now().Unix()
			// https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload
			c := map[string]any{"iss": op.Issuer(), "azp": op.clientID, "aud": op.clientID, "sub": "110169484474386276334", "at_hash": atHash(at),
				"email": "mei@fx.example.com", "email_verified": true, "name": "Mei Lin", "given_name": "Mei", "family_name": "Lin",
				"picture": "https://lh3.googleusercontent.com/a/x", "iat": now, "exp": now + 3600, "nonce": nonce}
			if hd != "" {
				c["hd"] = hd
			}
			return c
		}
	})
	if resp, page := o.signIn(t, "google"); resp.StatusCode != 401 || !strings.Contains(page, "Workspace domain") {
		t.Fatalf("another domain's account: %d %s", resp.StatusCode, page)
	}
	op.set(func(*testOP) { hd = "" })
	if resp, page := o.signIn(t, "google"); resp.StatusCode != 401 {
		t.Fatalf("a consumer account (no hd): %d %s", resp.StatusCode, page)
	}
	op.set(func(*testOP) { hd = "fx.example.com" })
	if resp, page := o.signIn(t, "google"); resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("a Workspace account: %d %s", resp.StatusCode, page)
	}
	if u := o.user(t, "mei@fx.example.com"); u == nil || u.GivenName != "Mei" {
		t.Fatalf("user: %+v", u)
	}
}

// TestMicrosoftPreset: a multi-tenant Entra ID provider (organizations):
// the discovery document's issuer is a template, each ID token's iss
// must be its own tid's, and only the listed Entra tenants are accepted;
// people are found by tid and oid (sub differs per application); Entra
// does not verify addresses, so none is trusted without trust_email.
func TestMicrosoftPreset(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	op := newTestOP(t, "/organizations/v2.0")
	op.set(func(op *testOP) { op.discoIssuer = op.srv.URL + "/{tenantid}/v2.0" })
	good, stranger := uuid.NewString(), uuid.NewString()
	o := newOIDCTenant(t, h, "ms", "entra", op, map[string]any{"preset": "microsoft", "jit": true, "allowed_tenants": []string{good}})
	tid, issTid, sub := stranger, stranger, "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"
	oid := uuid.NewString()
	op.set(func(op *testOP) {
		op.claims = func(nonce, _ string) map[string]any {
			now := time.Now().Unix()
			// https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference (v2.0)
			return map[string]any{"ver": "2.0", "iss": op.srv.URL + "/" + issTid + "/v2.0", "sub": sub, "aud": op.clientID, "exp": now + 3600,
				"iat": now, "nbf": now, "name": "Ola Nordmann", "preferred_username": "ola@contoso.test", "oid": oid, "email": "ola@contoso.test",
				"tid": tid, "nonce": nonce, "aio": "Df2UVXL1ix", "uti": "fqiBqXLPj0eQa82S", "rh": "0.AAAA"}
		}
	})
	if resp, page := o.signIn(t, "entra"); resp.StatusCode != 401 || !strings.Contains(page, "not accepted") {
		t.Fatalf("an Entra tenant not listed: %d %s", resp.StatusCode, page)
	}
	op.set(func(*testOP) { tid = good })
	if resp, page := o.signIn(t, "entra"); resp.StatusCode != 401 || !strings.Contains(page, "issuer") {
		t.Fatalf("iss of another tenant than tid: %d %s", resp.StatusCode, page)
	}
	op.set(func(*testOP) { issTid = good })
	if resp, page := o.signIn(t, "entra"); resp.StatusCode != 403 || !strings.Contains(page, "verified email") {
		t.Fatalf("an address Entra did not verify: %d %s", resp.StatusCode, page)
	}
	resp, body := h.DoAs(o.tok, "PATCH", "/api/v1/identity-providers/"+o.providerID, map[string]any{"settings": map[string]any{
		"preset": "microsoft", "issuer": op.Issuer(), "client_id": op.clientID, "jit": true, "allowed_tenants": []string{good}, "trust_email": true}})
	apptest.Expect(t, resp, body, 200, "trust email")
	if resp, page := o.signIn(t, "entra"); resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("an accepted Entra tenant: %d %s", resp.StatusCode, page)
	}
	ola := o.user(t, "ola@contoso.test")
	// Another application's sub for the same person: the same account.
	op.set(func(*testOP) { sub = "BBBBBBBBBBBBBBBBBBBBBJkzqFVrSaSaFHy782bbtaQ" })
	if resp, page := o.signIn(t, "entra"); resp.StatusCode != 200 {
		t.Fatalf("same oid: %d %s", resp.StatusCode, page)
	}
	resp, body = h.DoAs(o.tok, "GET", "/api/v1/users?email=ola@contoso.test", nil)
	apptest.Expect(t, resp, body, 200, "users")
	if n := strings.Count(string(body), `"email":"ola@contoso.test"`); ola == nil || n != 1 {
		t.Fatalf("one person per oid: %s", body)
	}
	// A multi-tenant provider without allowed tenants is refused.
	resp, body = h.DoAs(o.tok, "POST", "/api/v1/identity-providers", map[string]any{"key": "entra2", "client_secret": "x",
		"settings": map[string]any{"preset": "microsoft", "client_id": "c"}})
	apptest.Expect(t, resp, body, 400, "no allowed tenants")
}

// githubFake serves GitHub's OAuth endpoints and REST API (GitHub
// Enterprise Server paths: /login/oauth/…, /api/v3/…) as documented.
type githubFake struct {
	srv              *httptest.Server
	clientID, secret string
	mu               sync.Mutex
	codes            map[string]bool
	verified         bool
}

func newGitHubFake(t *testing.T) *githubFake {
	g := &githubFake{clientID: "Iv1.8a61f9b3a7aba766", secret: "gh-secret", codes: map[string]bool{}, verified: true}
	mux := http.NewServeMux()
	mux.HandleFunc("/login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != g.clientID || q.Get("code_challenge") == "" {
			http.Error(w, "bad request", 400)
			return
		}
		g.mu.Lock()
		g.codes["code-1"] = true
		g.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("/login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		g.mu.Lock()
		ok := g.codes[r.PostForm.Get("code")]
		delete(g.codes, r.PostForm.Get("code"))
		g.mu.Unlock()
		if !ok || r.PostForm.Get("client_id") != g.clientID || r.PostForm.Get("client_secret") != g.secret || r.PostForm.Get("code_verifier") == "" {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			_, _ = w.Write([]byte("error=bad_verification_code"))
			return
		}
		// https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps: form-encoded by default.
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = w.Write([]byte("access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer"))
	})
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a" {
			w.WriteHeader(401)
			return false
		}
		return true
	}
	mux.HandleFunc("/api/v3/user", func(w http.ResponseWriter, r *http.Request) {
		if auth(w, r) {
			_ = json.NewEncoder(w).Encode(map[string]any{"login": "octocat", "id": 583231, "node_id": "MDQ6VXNlcjE=", "name": "The Octocat",
				"company": "@github", "email": nil, "type": "User"})
		}
	})
	mux.HandleFunc("/api/v3/user/emails", func(w http.ResponseWriter, r *http.Request) {
		if auth(w, r) {
			g.mu.Lock()
			v := g.verified
			g.mu.Unlock()
			_ = json.NewEncoder(w).Encode([]map[string]any{{"email": "octo@other.test", "verified": true, "primary": false, "visibility": nil},
				{"email": "octocat@gh.test", "verified": v, "primary": true, "visibility": "public"}})
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	g.srv.Start()
	t.Cleanup(g.srv.Close)
	return g
}

// TestGitHubPreset: GitHub (no ID token): the person is GitHub's numeric
// user id, their address the primary one of /user/emails, created only
// when GitHub verified it.
func TestGitHubPreset(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	g := newGitHubFake(t)
	slug := apptest.UniqueSlug("gh")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/identity-providers", map[string]any{"key": "github", "name": "GitHub", "client_secret": g.secret,
		"settings": map[string]any{"preset": "github", "base_url": g.srv.URL, "client_id": g.clientID, "jit": true,
			"mapping": map[string]string{"username": "{login}"}}})
	apptest.Expect(t, resp, body, 201, "github provider")
	g.mu.Lock()
	g.verified = false
	g.mu.Unlock()
	if resp, page := apptest.NewBrowser(t).Do("GET", h.Admin+"/t/"+slug+"/login/federation/github", nil); resp.StatusCode != 403 {
		t.Fatalf("an unverified address: %d %s", resp.StatusCode, page)
	}
	g.mu.Lock()
	g.verified = true
	g.mu.Unlock()
	if resp, page := apptest.NewBrowser(t).Do("GET", h.Admin+"/t/"+slug+"/login/federation/github", nil); resp.StatusCode != 200 ||
		!strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("GitHub sign-in: %d %s", resp.StatusCode, page)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/users?email=octocat@gh.test", nil)
	apptest.Expect(t, resp, body, 200, "users")
	if !strings.Contains(string(body), `"username":"octocat"`) || !strings.Contains(string(body), `"display_name":"The Octocat"`) {
		t.Fatalf("GitHub user: %s", body)
	}
}

// TestApplePreset: Sign in with Apple's shapes: the client secret is an
// ES256 JWT made with the team's key (iss the team, sub the client, aud
// Apple, kid the key), the answer a form_post (a cross-site POST, bounced
// when it comes without the binding cookie), the person's name in the
// first answer's unsigned "user" field, email_verified a string.
func TestApplePreset(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	op := newTestOP(t, "")
	team, keyID := "A1B2C3D4E5", "KEY1234567"
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	p8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	op.set(func(op *testOP) {
		op.clientID = "com.example.web"
		op.clientAuth = func(r *http.Request) bool {
			tok, err := jwt.ParseSigned(r.PostForm.Get("client_secret"), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil || len(tok.Headers) != 1 || tok.Headers[0].KeyID != keyID || r.PostForm.Get("client_id") != op.clientID {
				return false
			}
			var c jwt.Claims
			if tok.Claims(&ecKey.PublicKey, &c) != nil {
				return false
			}
			return c.Issuer == team && c.Subject == op.clientID && c.Audience.Contains(op.Issuer()) &&
				c.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, 0) == nil && c.Expiry.Time().Sub(c.IssuedAt.Time()) <= 6*30*24*time.Hour
		}
		op.user = `{"name":{"firstName":"Jun","lastName":"Park"},"email":"other@evil.test"}`
		op.claims = func(nonce, at string) map[string]any {
			now := time.Now().Unix()
			// https://developer.apple.com/documentation/signinwithapple/authenticating-users-with-sign-in-with-apple
			return map[string]any{"iss": op.Issuer(), "aud": op.clientID, "exp": now + 600, "iat": now, "sub": "001234.abcdef0123456789.0123",
				"nonce": nonce, "c_hash": "x", "at_hash": atHash(at), "email": "jun@privaterelay.appleid.com", "email_verified": "true",
				"is_private_email": "true", "auth_time": now, "nonce_supported": true}
		}
	})
	slug := apptest.UniqueSlug("ap")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/identity-providers", map[string]any{"key": "apple", "name": "Apple", "client_secret": p8,
		"settings": map[string]any{"preset": "apple", "issuer": op.Issuer(), "client_id": "com.example.web", "team_id": team, "key_id": keyID, "jit": true}})
	apptest.Expect(t, resp, body, 201, "apple provider")
	b := apptest.NewBrowser(t)
	resp, page := b.Do("GET", h.Admin+"/t/"+slug+"/login/federation/apple", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `name="user"`) {
		t.Fatalf("Apple's form_post answer: %d %s", resp.StatusCode, page)
	}
	// The cross-site POST comes without the binding cookie: bounced.
	bare := &http.Client{CheckRedirect: b.C.CheckRedirect}
	resp, bounced := apptest.Send(t, bare, "POST", html.UnescapeString(formAction.FindStringSubmatch(page)[1]), url.Values{"code": {apptest.Field(t, page, "code")},
		"state": {apptest.Field(t, page, "state")}, "user": {apptest.Field(t, page, "user")}})
	if resp.StatusCode != 200 || !strings.Contains(bounced, `id="bounce"`) {
		t.Fatalf("bounce: %d %s", resp.StatusCode, bounced)
	}
	resp, page = postForm(t, b, bounced, "code", "state", "user", "bounced")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("Apple sign-in: %d %s", resp.StatusCode, page)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/users?email=jun@privaterelay.appleid.com", nil)
	apptest.Expect(t, resp, body, 200, "users")
	if !strings.Contains(string(body), `"given_name":"Jun"`) || !strings.Contains(string(body), `"family_name":"Park"`) {
		t.Fatalf("the name of Apple's first answer: %s", body)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/users?email=other@evil.test", nil)
	apptest.Expect(t, resp, body, 200, "users")
	if strings.Contains(string(body), "other@evil.test") {
		t.Fatalf("the unsigned user field's address must not be used: %s", body)
	}
	// A provider without team and key ids is refused.
	resp, body = h.DoAs(tok, "POST", "/api/v1/identity-providers", map[string]any{"key": "apple2", "client_secret": p8,
		"settings": map[string]any{"preset": "apple", "client_id": "c"}})
	apptest.Expect(t, resp, body, 400, "apple without team")
}
