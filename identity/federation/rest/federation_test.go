package rest_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

type userJSON struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	Version    int64  `json:"version"`
}

type providerJSON struct {
	ID              string         `json:"id"`
	Key             string         `json:"key"`
	Version         int64          `json:"version"`
	ClientSecretSet bool           `json:"client_secret_set"`
	ClientSecretRef string         `json:"client_secret_ref"`
	Settings        map[string]any `json:"settings"`
}

var idpLink = regexp.MustCompile(`id="idp-([a-z0-9._-]+)" href="([^"]+)"`)

// fedTenants is a tenant (up) whose people sign in to another (down)
// through its OpenID provider: xavyo at both ends.
type fedTenants struct {
	h              *apptest.Harness
	up, down       string
	upTok, downTok string
	provider       providerJSON
	appClient      string
}

func newFedTenants(t *testing.T, h *apptest.Harness) *fedTenants {
	f := &fedTenants{h: h, up: apptest.UniqueSlug("corp"), down: apptest.UniqueSlug("apps")}
	_, f.upTok = h.TenantAdmin(t, f.up)
	_, f.downTok = h.TenantAdmin(t, f.down)
	callback := h.Admin + "/t/" + f.down + "/federation/corp/callback"
	resp, body := h.DoAs(f.upTok, "POST", "/api/v1/clients", map[string]any{"name": "Apps tenant", "redirect_uris": []string{callback},
		"token_endpoint_auth_method": "client_secret_basic", "first_party": true})
	apptest.Expect(t, resp, body, 201, "upstream client")
	cl := apptest.Decode[struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}](t, body)
	resp, body = h.DoAs(f.downTok, "POST", "/api/v1/identity-providers", map[string]any{"key": "corp", "name": "Corp",
		"client_secret": cl.ClientSecret, "settings": map[string]any{"issuer": h.Admin + "/t/" + f.up, "client_id": cl.ClientID,
			"userinfo": true, "jit": true, "domains": []string{"corp.test"}}})
	apptest.Expect(t, resp, body, 201, "identity provider")
	f.provider = apptest.Decode[providerJSON](t, body)
	if !f.provider.ClientSecretSet || f.provider.ClientSecretRef != "" || strings.Contains(string(body), cl.ClientSecret) {
		t.Fatalf("the client secret must be held, sealed, and never shown: %s", body)
	}
	// An application of the downstream tenant people sign in to.
	resp, body = h.DoAs(f.downTok, "POST", "/api/v1/clients", map[string]any{"name": "App", "redirect_uris": []string{"https://app.example/cb"},
		"first_party": true})
	apptest.Expect(t, resp, body, 201, "app client")
	f.appClient = apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	return f
}

func (f *fedTenants) user(t *testing.T, tok, email, pw, given string) userJSON {
	t.Helper()
	resp, body := f.h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": pw, "given_name": given, "family_name": "Test"})
	apptest.Expect(t, resp, body, 201, "user "+email)
	return apptest.Decode[userJSON](t, body)
}

func (f *fedTenants) downUser(t *testing.T, email string) *userJSON {
	t.Helper()
	return findUser(t, f.h, f.downTok, email)
}

// findUser is the user of an address in the tenant of tok (nil: none).
func findUser(t *testing.T, h *apptest.Harness, tok, email string) *userJSON {
	t.Helper()
	resp, body := h.DoAs(tok, "GET", "/api/v1/users?email="+url.QueryEscape(email), nil)
	apptest.Expect(t, resp, body, 200, "users")
	list := apptest.Decode[struct {
		Items []userJSON `json:"items"`
	}](t, body)
	if len(list.Items) == 0 {
		return nil
	}
	return &list.Items[0]
}

func (f *fedTenants) audited(t *testing.T, action string) string {
	t.Helper()
	resp, body := f.h.DoAs(f.downTok, "GET", "/api/v1/audit?action="+action+"&limit=20", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	return string(body)
}

// upstreamLogin answers the upstream tenant's sign-in page the browser is
// on (page), and returns where that leads.
func (f *fedTenants) upstreamLogin(t *testing.T, b *apptest.Browser, page, login, pw string) (*http.Response, string) {
	t.Helper()
	if !strings.Contains(page, `action="/t/`+f.up+`/login"`) {
		t.Fatalf("not the upstream's sign-in page: %s", page)
	}
	return b.Do("POST", f.h.Admin+"/t/"+f.up+"/login", url.Values{"tx": {apptest.Field(t, page, "tx")}, "csrf": {apptest.Field(t, page, "csrf")},
		"login": {login}, "password": {pw}})
}

func pkce() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestSignInThroughAnotherTenant: one xavyo tenant's people sign in to
// another's applications through its OpenID provider (discovery, code +
// PKCE, nonce, the ID token verified, userinfo): a first sign-in creates
// the person (just in time) inside an application's authorization
// request, which goes on to the application with amr fed; a second one
// brings the profile up to date; an address routes its people to the
// provider; an existing account is linked only once its owner signs in
// to it; a provider can turn its people's passwords off.
func TestSignInThroughAnotherTenant(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			signInThroughAnotherTenant(t, flavor)
		})
	}
}

func signInThroughAnotherTenant(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, append(apptest.Env(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	f := newFedTenants(t, h)
	f.user(t, f.upTok, "ada@corp.test", "Analytical-engine-1843", "Ada")

	// An application of the downstream tenant asks for a person; the
	// sign-in page offers the provider.
	b := apptest.NewBrowser(t)
	verifier, challenge := pkce()
	authURL := h.Admin + "/t/" + f.down + "/authorize?" + url.Values{"client_id": {f.appClient}, "redirect_uri": {"https://app.example/cb"},
		"response_type": {"code"}, "scope": {"openid profile email"}, "state": {"s1"}, "nonce": {"n1"}, "code_challenge": {challenge},
		"code_challenge_method": {"S256"}}.Encode()
	resp, page := b.Do("GET", authURL, nil)
	m := idpLink.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil || m[1] != "corp" || !strings.Contains(page, "Continue with Corp") {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, page)
	}
	resp, page = b.Do("GET", h.Admin+html.UnescapeString(m[2]), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("to the upstream: %d %s", resp.StatusCode, page)
	}
	resp, _ = f.upstreamLogin(t, b, page, "ada@corp.test", "Analytical-engine-1843")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Host != "app.example" || loc.Query().Get("state") != "s1" || loc.Query().Get("code") == "" {
		t.Fatalf("back at the application: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, tokens := h.Form("/t/"+f.down+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"https://app.example/cb"}, "client_id": {f.appClient}, "code_verifier": {verifier}}, "", "")
	if status != 200 {
		t.Fatalf("token: %d %v", status, tokens)
	}
	claims := apptest.JWTClaims(t, tokens["id_token"].(string))
	amr, _ := claims["amr"].([]any)
	if !slices.Contains(amr, any("fed")) || claims["nonce"] != "n1" {
		t.Fatalf("the application's ID token must say the person signed in through a federation: %v", claims)
	}
	ada := f.downUser(t, "ada@corp.test")
	if ada == nil || ada.GivenName != "Ada" || ada.FamilyName != "Test" || claims["sub"] != ada.ID {
		t.Fatalf("just-in-time user: %+v (sub %v)", ada, claims["sub"])
	}
	if a := f.audited(t, "federation.jit"); !strings.Contains(a, `"identity_provider":"corp"`) || !strings.Contains(a, ada.ID) {
		t.Fatalf("the creation must be audited, naming the provider: %s", a)
	}

	// The upstream changes her name; her next sign-in (routed by her
	// address's domain from the sign-in page) brings it here.
	upAda := f.upUser(t, "ada@corp.test")
	resp, body := h.DoAs(f.upTok, "PATCH", "/api/v1/users/"+upAda.ID, map[string]any{"given_name": "Augusta"})
	apptest.Expect(t, resp, body, 200, "rename upstream")
	b2 := apptest.NewBrowser(t)
	_, page = b2.Do("GET", h.Admin+"/t/"+f.down+"/login", nil)
	if strings.Contains(page, `type="password" autocomplete="current-password" required`) {
		t.Fatal("with routed domains the password field cannot be required")
	}
	resp, page = b2.Do("POST", h.Admin+"/t/"+f.down+"/login", url.Values{"tx": {""}, "csrf": {apptest.Field(t, page, "csrf")}, "login": {"ada@corp.test"}})
	if resp.StatusCode != 200 {
		t.Fatalf("routed: %d %s", resp.StatusCode, page)
	}
	resp, page = f.upstreamLogin(t, b2, page, "ada@corp.test", "Analytical-engine-1843")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("second sign-in: %d %s", resp.StatusCode, page)
	}
	if again := f.downUser(t, "ada@corp.test"); again.GivenName != "Augusta" || again.ID != ada.ID {
		t.Fatalf("the profile must follow the upstream: %+v", again)
	}

	// Grace has an account here already. Her upstream sign-in does not
	// open it: she proves it first, and only then is it linked.
	graceHere := f.user(t, f.downTok, "grace@corp.test", "Compiler-pioneer-1952", "Grace")
	f.user(t, f.upTok, "grace@corp.test", "Upstream-secret-1906", "Amazing")
	b3 := apptest.NewBrowser(t)
	_, page = b3.Do("GET", h.Admin+"/t/"+f.down+"/login/federation/corp", nil)
	resp, page = f.upstreamLogin(t, b3, page, "grace@corp.test", "Upstream-secret-1906")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="link"`) || !strings.Contains(page, `value="grace@corp.test"`) ||
		idpLink.MatchString(page) {
		t.Fatalf("an existing account must be proved before it is linked: %d %s", resp.StatusCode, page)
	}
	if a := f.audited(t, "federation.link"); strings.Contains(a, graceHere.ID) {
		t.Fatalf("linked before proof: %s", a)
	}
	// Signing in to another account links nothing.
	linkTx := apptest.Field(t, page, "tx")
	resp, other := b3.Do("POST", h.Admin+"/t/"+f.down+"/login", url.Values{"tx": {linkTx}, "csrf": {apptest.Field(t, page, "csrf")},
		"login": {"admin@" + f.down + ".test"}, "password": {"N3w-passphrase-" + f.down}})
	if resp.StatusCode != 403 || !strings.Contains(other, "another account") {
		t.Fatalf("another account: %d %s", resp.StatusCode, other)
	}
	_, page = b3.Do("GET", h.Admin+"/t/"+f.down+"/login?tx="+url.QueryEscape(linkTx), nil)
	resp, done := b3.Do("POST", h.Admin+"/t/"+f.down+"/login", url.Values{"tx": {linkTx},
		"csrf": {apptest.Field(t, page, "csrf")}, "login": {"grace@corp.test"}, "password": {"Compiler-pioneer-1952"}})
	if resp.StatusCode != 200 || !strings.Contains(done, `id="signed-in"`) {
		t.Fatalf("proof: %d %s", resp.StatusCode, done)
	}
	if a := f.audited(t, "federation.link"); !strings.Contains(a, graceHere.ID) {
		t.Fatalf("the link must be audited: %s", a)
	}
	// From now on her upstream sign-in opens her account; its profile
	// stays the directory's (a user who existed before is never
	// overwritten by an upstream).
	b4 := apptest.NewBrowser(t)
	_, page = b4.Do("GET", h.Admin+"/t/"+f.down+"/login/federation/corp", nil)
	resp, page = f.upstreamLogin(t, b4, page, "grace@corp.test", "Upstream-secret-1906")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("linked sign-in: %d %s", resp.StatusCode, page)
	}
	if g := f.downUser(t, "grace@corp.test"); g.GivenName != "Grace" || g.ID != graceHere.ID {
		t.Fatalf("a linked account that existed before must keep its profile: %+v", g)
	}
	// Her links, as she and admins see them; the JIT person's is managed.
	graceTok := h.Login(f.down, "grace@corp.test", "Compiler-pioneer-1952", 200).AccessToken
	resp, body = h.DoAs(graceTok, "GET", "/api/v1/me/linked-identities", nil)
	apptest.Expect(t, resp, body, 200, "my links")
	mine := apptest.Decode[[]struct {
		ID      string `json:"id"`
		Source  string `json:"source"`
		Managed bool   `json:"managed"`
	}](t, body)
	if len(mine) != 1 || mine[0].Source != "idp:corp" || mine[0].Managed {
		t.Fatalf("grace's links: %s", body)
	}
	resp, body = h.DoAs(f.downTok, "GET", "/api/v1/users/"+ada.ID+"/links", nil)
	apptest.Expect(t, resp, body, 200, "ada's links")
	if !strings.Contains(string(body), `"managed":true`) || !strings.Contains(string(body), `"source":"idp:corp"`) {
		t.Fatalf("ada's links: %s", body)
	}
	// Another person's link is not hers to remove.
	adaLink := apptest.Decode[[]struct {
		ID string `json:"id"`
	}](t, body)[0].ID
	resp, body = h.DoAs(graceTok, "DELETE", "/api/v1/me/linked-identities/"+adaLink, nil)
	apptest.Expect(t, resp, body, 404, "another person's link")
	// An admin unlinks her: her next upstream sign-in asks for proof again;
	// she links once more.
	resp, body = h.DoAs(f.downTok, "DELETE", "/api/v1/users/"+graceHere.ID+"/links/"+mine[0].ID, nil)
	apptest.Expect(t, resp, body, 204, "unlink")
	b6 := apptest.NewBrowser(t)
	_, page = b6.Do("GET", h.Admin+"/t/"+f.down+"/login/federation/corp", nil)
	if resp, page = f.upstreamLogin(t, b6, page, "grace@corp.test", "Upstream-secret-1906"); !strings.Contains(page, `id="link"`) {
		t.Fatalf("after an unlink: %d %s", resp.StatusCode, page)
	}
	resp, page = b6.Do("POST", h.Admin+"/t/"+f.down+"/login", url.Values{"tx": {apptest.Field(t, page, "tx")}, "csrf": {apptest.Field(t, page, "csrf")},
		"login": {"grace@corp.test"}, "password": {"Compiler-pioneer-1952"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("linked again: %d %s", resp.StatusCode, page)
	}

	// The provider turns local passwords off for its people.
	resp, body = h.DoAs(f.downTok, "PATCH", "/api/v1/identity-providers/"+f.provider.ID, map[string]any{"settings": map[string]any{
		"issuer": h.Admin + "/t/" + f.up, "client_id": f.providerClientID(t), "userinfo": true, "jit": true, "disable_local_passwords": true}})
	apptest.Expect(t, resp, body, 200, "passwords off")
	if r := h.Login(f.down, "grace@corp.test", "Compiler-pioneer-1952", 403); r.AccessToken != "" {
		t.Fatal("a password was accepted for a person whose provider turned passwords off")
	}
	if a := f.audited(t, "auth.login"); !strings.Contains(a, "local passwords off") {
		t.Fatalf("the refusal must be audited: %s", a)
	}
	// Her upstream sign-in still works.
	b5 := apptest.NewBrowser(t)
	_, page = b5.Do("GET", h.Admin+"/t/"+f.down+"/login/federation/corp", nil)
	if resp, page = f.upstreamLogin(t, b5, page, "grace@corp.test", "Upstream-secret-1906"); resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("upstream sign-in with passwords off: %d %s", resp.StatusCode, page)
	}

	// Another tenant cannot use this tenant's provider.
	resp, page = apptest.NewBrowser(t).Do("GET", h.Admin+"/t/"+f.up+"/login/federation/corp", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("another tenant's provider: %d %s", resp.StatusCode, page)
	}
}

func (f *fedTenants) upUser(t *testing.T, email string) userJSON {
	t.Helper()
	u := findUser(t, f.h, f.upTok, email)
	if u == nil {
		t.Fatalf("no upstream user %s", email)
	}
	return *u
}

func (f *fedTenants) providerClientID(t *testing.T) string {
	t.Helper()
	resp, body := f.h.DoAs(f.downTok, "GET", "/api/v1/identity-providers/"+f.provider.ID, nil)
	apptest.Expect(t, resp, body, 200, "provider")
	return apptest.Decode[struct {
		Settings struct {
			ClientID string `json:"client_id"`
		} `json:"settings"`
	}](t, body).Settings.ClientID
}
