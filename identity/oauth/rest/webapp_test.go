package rest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// browser is a person's browser for the sign-in pages: it keeps cookies,
// signs in and allows consent when asked, and stops at the redirect back
// to the client.
type browser struct {
	t        *testing.T
	h        *apptest.Harness
	slug     string
	c        *http.Client
	login    string
	password string
}

const testVerifier = "pkce-verifier-0123456789abcdef0123456789abcdef"

func newBrowser(t *testing.T, h *apptest.Harness, slug, login, password string) *browser {
	jar, _ := cookiejar.New(nil)
	admin := h.Admin
	return &browser{t: t, h: h, slug: slug, login: login, password: password, c: &http.Client{Jar: jar,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), admin) {
				return nil
			}
			return http.ErrUseLastResponse
		}}}
}

var (
	pageCSRF   = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	pageAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	pageHidden = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
)

// submit posts a page's form with its hidden fields and more.
func (b *browser) submit(page string, more url.Values) (*http.Response, string) {
	b.t.Helper()
	form := page // the page's first form, as a person submits one
	if i := strings.Index(form, "<form"); i >= 0 {
		form = form[i:]
		if j := strings.Index(form, "</form>"); j >= 0 {
			form = form[:j]
		}
	}
	m := pageAction.FindStringSubmatch(form)
	if m == nil {
		b.t.Fatalf("no form: %s", page)
	}
	v := url.Values{}
	for _, h := range pageHidden.FindAllStringSubmatch(form, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	for k := range more {
		v.Set(k, more.Get(k))
	}
	return b.do("POST", b.h.Admin+html.UnescapeString(m[1]), v)
}

// authorize runs a code flow (PKCE with testVerifier) through the pages
// (signing in and allowing consent when asked) and returns the
// parameters of the redirect back, or the last page when the flow stopped
// on one.
func (b *browser) authorize(clientID, redirectURI string, extra ...string) (url.Values, *http.Response, string) {
	b.t.Helper()
	sum := sha256.Sum256([]byte(testVerifier))
	v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {"st"},
		"scope": {"openid offline_access"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	resp, page := b.do("GET", b.h.Admin+"/t/"+b.slug+"/authorize?"+v.Encode(), nil)
	for range 3 {
		if resp.StatusCode == http.StatusFound {
			loc, _ := url.Parse(resp.Header.Get("Location"))
			return loc.Query(), resp, page
		}
		if resp.StatusCode != 200 || pageAction.FindStringSubmatch(page) == nil {
			return nil, resp, page
		}
		switch {
		case strings.Contains(page, `name="password"`):
			resp, page = b.submit(page, url.Values{"login": {b.login}, "password": {b.password}})
		case strings.Contains(page, `value="allow"`):
			resp, page = b.submit(page, url.Values{"consent": {"allow"}})
		default:
			return nil, resp, page
		}
	}
	return nil, resp, page
}

// cookie is the browser's cookie for the tenant's pages whose name
// starts with prefix (nil: none).
func (b *browser) cookie(prefix string) *http.Cookie {
	u, _ := url.Parse(b.h.Admin + "/t/" + b.slug + "/authorize")
	for _, c := range b.c.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	return nil
}

func (b *browser) do(method, target string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// code signs in for a public client and redeems the code at the token
// endpoint.
func (b *browser) tokens(clientID, redirectURI string) map[string]any {
	b.t.Helper()
	q, resp, page := b.authorize(clientID, redirectURI)
	if q.Get("code") == "" {
		b.t.Fatalf("no code for %s: %d %s", clientID, resp.StatusCode, page)
	}
	st, out := b.h.Form("/t/"+b.slug+"/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {testVerifier}}, "", "")
	if st != 200 || out["id_token"] == nil {
		b.t.Fatalf("redeem for %s: %d %v", clientID, st, out)
	}
	return out
}

// TestClientProfileAndPairwiseSubjects: the consent page shows what a
// client registered about itself (its logo is the one image the page may
// load); pairwise clients know a person by a subject of their sector in
// ID tokens and userinfo (the same across one sector, different across
// two, never the person's id), while access tokens keep the person's id;
// pairwise id_token_hints still name the person; bad profiles are refused.
func TestClientProfileAndPairwiseSubjects(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			profileAndPairwise(t, flavor)
		})
	}
}

func profileAndPairwise(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("pw")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@pw.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	ada := apptest.Decode[userJSON](t, body).ID
	client := func(v map[string]any) string {
		t.Helper()
		resp, body := h.DoAs(tok, "POST", "/api/v1/clients", v)
		apptest.Expect(t, resp, body, 201, "register "+v["name"].(string))
		return apptest.Decode[struct {
			ClientID string `json:"client_id"`
		}](t, body).ClientID
	}
	const aCB, a2CB, bCB = "https://a.example/cb", "https://a.example/other", "https://b.example/cb"
	a := client(map[string]any{"name": "Alpha", "redirect_uris": []string{aCB}, "subject_type": "pairwise", "post_logout_redirect_uris": []string{"https://a.example/bye"},
		"logo_uri": "https://cdn.example/alpha.png", "client_uri": "https://a.example/", "policy_uri": "https://a.example/privacy", "tos_uri": "https://a.example/terms"})
	a2 := client(map[string]any{"name": "Alpha two", "redirect_uris": []string{a2CB}, "subject_type": "pairwise", "first_party": true})
	b := client(map[string]any{"name": "Beta", "redirect_uris": []string{bCB}, "subject_type": "pairwise", "first_party": true})
	pub := client(map[string]any{"name": "Plain", "redirect_uris": []string{bCB}, "first_party": true})

	br := newBrowser(t, h, slug, "ada@pw.test", "Analytical-engine-1843")
	// The consent page names Alpha with what it registered.
	sum := sha256.Sum256([]byte(testVerifier))
	v := url.Values{"response_type": {"code"}, "client_id": {a}, "redirect_uri": {aCB}, "state": {"st"}, "scope": {"openid"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, page := br.do("GET", h.Admin+"/t/"+slug+"/authorize?"+v.Encode(), nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) || !strings.HasPrefix(resp.Request.URL.Path, "/t/"+slug+"/login") {
		t.Fatalf("sign-in page: %d %s %s", resp.StatusCode, resp.Request.URL, page)
	}
	resp, page = br.submit(page, url.Values{"login": {"ada@pw.test"}, "password": {"Analytical-engine-1843"}})
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{`<img src="https://cdn.example/alpha.png"`, `href="https://a.example/"`, `href="https://a.example/privacy"`,
		`href="https://a.example/terms"`, `rel="noopener noreferrer"`} {
		if resp.StatusCode != 200 || !strings.Contains(page, want) {
			t.Fatalf("consent page lacks %s: %d %s", want, resp.StatusCode, page)
		}
	}
	if !strings.Contains(csp, "img-src https://cdn.example") || !strings.Contains(csp, "default-src 'none'") ||
		resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("consent page headers: CSP %q, Referrer-Policy %q", csp, resp.Header.Get("Referrer-Policy"))
	}

	// Subjects, per sector.
	ta := br.tokens(a, aCB) // consents on the way
	ids := map[string]map[string]any{"a": apptest.JWTClaims(t, ta["id_token"].(string))}
	for name, c := range map[string][2]string{"a2": {a2, a2CB}, "b": {b, bCB}, "pub": {pub, bCB}} {
		ids[name] = apptest.JWTClaims(t, br.tokens(c[0], c[1])["id_token"].(string))
	}
	subA := ids["a"]["sub"].(string)
	switch {
	case subA == ada || ids["b"]["sub"] == ada:
		t.Fatalf("a pairwise ID token carries the person's id: %v", ids)
	case ids["a2"]["sub"] != subA:
		t.Fatalf("two clients of one sector see different subjects: %v %v", ids["a"]["sub"], ids["a2"]["sub"])
	case ids["b"]["sub"] == subA:
		t.Fatal("two sectors see the same pairwise subject")
	case ids["pub"]["sub"] != ada:
		t.Fatalf("a public client's subject %v, want the person's id %s", ids["pub"]["sub"], ada)
	}
	if at := apptest.JWTClaims(t, ta["access_token"].(string)); at["sub"] != ada {
		t.Fatalf("the access token's subject %v, want the person's id", at["sub"])
	}
	req, _ := http.NewRequest("GET", h.Admin+"/t/"+slug+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+ta["access_token"].(string))
	ui, err := h.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	uiBody, _ := io.ReadAll(ui.Body)
	ui.Body.Close()
	if ui.StatusCode != 200 || apptest.Decode[map[string]any](t, uiBody)["sub"] != subA {
		t.Fatalf("userinfo for the pairwise client: %d %s (want sub %s)", ui.StatusCode, uiBody, subA)
	}

	// A pairwise id_token_hint names the signed-in person: a silent sign-in
	// answers, and RP-initiated logout needs no confirmation.
	if q, resp, page := br.authorize(a, aCB, "prompt", "none", "id_token_hint", ta["id_token"].(string)); q.Get("code") == "" {
		t.Fatalf("silent sign-in with a pairwise hint: %d %v %s", resp.StatusCode, q, page)
	}
	resp, page = br.do("GET", h.Admin+"/t/"+slug+"/end_session?"+url.Values{"id_token_hint": {ta["id_token"].(string)},
		"post_logout_redirect_uri": {"https://a.example/bye"}, "state": {"s1"}}.Encode(), nil)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://a.example/bye?state=s1" {
		t.Fatalf("logout with a pairwise hint: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	if q, _, _ := br.authorize(b, bCB, "prompt", "none"); q.Get("error") != "login_required" {
		t.Fatalf("after logout: %v", q)
	}

	// Profiles that make no sense are refused, and change nothing.
	for name, bad := range map[string]map[string]any{
		"pairwise over two hosts":         {"redirect_uris": []string{aCB, bCB}, "subject_type": "pairwise"},
		"an unknown subject type":         {"redirect_uris": []string{aCB}, "subject_type": "secret"},
		"a script logo":                   {"redirect_uris": []string{aCB}, "logo_uri": "javascript:alert(1)"},
		"a plain-http home page":          {"redirect_uris": []string{aCB}, "client_uri": "http://a.example/"},
		"a session without front channel": {"redirect_uris": []string{aCB}, "frontchannel_logout_session_required": true},
		"tls_client_auth without a DN":    {"redirect_uris": []string{aCB}, "token_endpoint_auth_method": "tls_client_auth"},
		"a DN for a secret client":        {"redirect_uris": []string{aCB}, "token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_subject_dn": "CN=x"},
		"bound tokens without a certificate": {"redirect_uris": []string{aCB}, "token_endpoint_auth_method": "client_secret_basic",
			"tls_client_certificate_bound_access_tokens": true},
		"self-signed without certificates": {"redirect_uris": []string{aCB}, "token_endpoint_auth_method": "self_signed_tls_client_auth"},
	} {
		bad["name"] = name
		resp, body := h.DoAs(tok, "POST", "/api/v1/clients", bad)
		apptest.Expect(t, resp, body, 400, name)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/clients", nil)
	apptest.Expect(t, resp, body, 200, "list")
	if n := strings.Count(string(body), `"client_id"`); n != 4 {
		t.Fatalf("%d clients after the refused ones, want 4", n)
	}
}

// TestConfidentialDynamicRegistration: dynamic registration creates
// confidential clients only where the tenant allows it; the secret is in
// the registration answer once and authenticates the code flow; a
// client's method and subject type do not change by RFC 7592 updates,
// nor a pairwise client's sector.
func TestConfidentialDynamicRegistration(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("dcr")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@dcr.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	const cb = "https://wiki.example/cb"
	register := func(v map[string]any) (int, map[string]any) {
		t.Helper()
		resp, body := h.DoAs("", "POST", "/t/"+slug+"/register", v)
		return resp.StatusCode, apptest.Decode[map[string]any](t, body)
	}
	secretApp := map[string]any{"client_name": "Wiki", "redirect_uris": []string{cb}, "token_endpoint_auth_method": "client_secret_post",
		"logo_uri": "https://wiki.example/logo.png", "subject_type": "pairwise"}
	if st, out := register(secretApp); st != 400 || out["error"] != "invalid_client_metadata" {
		t.Fatalf("a confidential client where the tenant allows public ones only: %d %v", st, out)
	}
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"oauth": map[string]any{"registration": "open", "confidential_registration": true}})
	apptest.Expect(t, resp, body, 200, "allow confidential registration")
	st, reg := register(secretApp)
	secret, _ := reg["client_secret"].(string)
	if st != 201 || !strings.HasPrefix(secret, "xvs_") || reg["client_secret_expires_at"] != float64(0) ||
		reg["token_endpoint_auth_method"] != "client_secret_post" || reg["logo_uri"] != "https://wiki.example/logo.png" || reg["subject_type"] != "pairwise" {
		t.Fatalf("register a confidential client: %d %v", st, reg)
	}
	clientID, rat := reg["client_id"].(string), reg["registration_access_token"].(string)
	manage := func(method string, v any) (int, map[string]any) {
		resp, body := h.DoAs(rat, method, "/t/"+slug+"/register/"+clientID, v)
		out := map[string]any{}
		if len(body) > 0 {
			out = apptest.Decode[map[string]any](t, body)
		}
		return resp.StatusCode, out
	}
	if st, out := manage("GET", nil); st != 200 || out["client_secret"] != nil || out["token_endpoint_auth_method"] != "client_secret_post" {
		t.Fatalf("read the registration: %d %v", st, out)
	}

	// The code flow with the registered secret (in the form, as registered).
	br := newBrowser(t, h, slug, "ada@dcr.test", "Analytical-engine-1843")
	q, resp, page := br.authorize(clientID, cb)
	if q.Get("code") == "" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, page)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {q.Get("code")}, "redirect_uri": {cb}, "code_verifier": {testVerifier}}
	if st, out := h.Form("/t/"+slug+"/token", form, "", ""); st != 401 {
		t.Fatalf("redeem without the secret: %d %v", st, out)
	}
	form.Set("client_secret", secret)
	if st, out := h.Form("/t/"+slug+"/token", form, "", ""); st != 200 || out["id_token"] == nil {
		t.Fatalf("redeem with the secret: %d %v", st, out)
	}

	update := map[string]any{"client_id": clientID, "client_name": "Wiki", "redirect_uris": []string{cb}, "subject_type": "pairwise"}
	for name, change := range map[string][2]any{
		"the method":       {"token_endpoint_auth_method", "private_key_jwt"},
		"the subject type": {"subject_type", "public"},
		"the sector":       {"redirect_uris", []string{"https://other.example/cb"}},
	} {
		u := map[string]any{}
		for k, v := range update {
			u[k] = v
		}
		u[change[0].(string)] = change[1]
		if st, out := manage("PUT", u); st != 400 {
			t.Fatalf("changing %s: %d %v", name, st, out)
		}
	}
	update["redirect_uris"] = []string{cb, "https://wiki.example/cb2"}
	update["tos_uri"] = "https://wiki.example/terms"
	if st, out := manage("PUT", update); st != 200 || out["tos_uri"] != "https://wiki.example/terms" || out["logo_uri"] != nil {
		t.Fatalf("an update on the sector: %d %v", st, out)
	}
	// The secret still authenticates after the update.
	q, _, _ = br.authorize(clientID, cb)
	form.Set("code", q.Get("code"))
	if st, out := h.Form("/t/"+slug+"/token", form, "", ""); st != 200 {
		t.Fatalf("redeem after the update: %d %v", st, out)
	}
}

// pageLogin follows an authorization URL to the sign-in page and posts
// the credentials (with the page's CSRF token when withCSRF), carrying
// cookies by hand and following no redirect after the post: it returns
// the answer to the post, with the sign-in page it came from.
func pageLogin(t *testing.T, h *apptest.Harness, authorizeURL, login, pw string, withCSRF bool, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", u, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		r, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	r, _ := get(authorizeURL)
	if r.StatusCode != 302 || !strings.Contains(r.Header.Get("Location"), "/login?tx=") {
		t.Fatalf("authorize: %d %s, want the sign-in page", r.StatusCode, r.Header.Get("Location"))
	}
	return pageLoginAt(t, h, h.Admin+r.Header.Get("Location"), login, pw, withCSRF, cookies...)
}

// pageLoginAt posts credentials on a sign-in page (its URL with the
// transaction), as pageLogin does.
func pageLoginAt(t *testing.T, h *apptest.Harness, loginURL, login, pw string, withCSRF bool, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", loginURL, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	r, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body.Close()
	page := string(raw)
	loc, _ := url.Parse(loginURL)
	m := pageCSRF.FindStringSubmatch(page)
	if r.StatusCode != 200 || m == nil {
		t.Fatalf("sign-in page: %d %s", r.StatusCode, page)
	}
	form := url.Values{"tx": {loc.Query().Get("tx")}, "login": {login}, "password": {pw}}
	if withCSRF {
		form.Set("csrf", m[1])
	}
	req, _ = http.NewRequest("POST", h.Admin+loc.Path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range append(cookies, r.Cookies()...) {
		req.AddCookie(c)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, page
}

// TestSignInPages: /t/{slug}/login signs a person in on its own (an SSO
// session, nothing else) with a CSRF-protected form; an auth transaction
// is honoured only at its tenant and only by the page of its flow.
func TestSignInPages(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug, other := apptest.UniqueSlug("si"), apptest.UniqueSlug("sj")
	_, tok := h.TenantAdmin(t, slug)
	h.TenantAdmin(t, other)
	resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@si.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Notes", "redirect_uris": []string{"https://notes.example/cb"}})
	apptest.Expect(t, resp, body, 201, "client")
	clientID := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID

	br := newBrowser(t, h, slug, "ada@si.test", "Analytical-engine-1843")
	resp, page := br.do("GET", h.Admin+"/t/"+slug+"/login", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Sign in to <strong>") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("the sign-in page: %d %s", resp.StatusCode, page)
	}
	if r, _ := br.submit(strings.Replace(page, `name="csrf"`, `name="not-csrf"`, 1), url.Values{"login": {"ada@si.test"}, "password": {"Analytical-engine-1843"}}); r.StatusCode != 403 {
		t.Fatalf("without the CSRF token: %d", r.StatusCode)
	}
	_, page = br.do("GET", h.Admin+"/t/"+slug+"/login", nil)
	if r, _ := br.submit(page, url.Values{"login": {"ada@si.test"}, "password": {"wrong-password-1"}}); r.StatusCode != 401 {
		t.Fatalf("a wrong password: %d", r.StatusCode)
	}
	if br.cookie("xv_sso_") != nil {
		t.Fatal("an SSO cookie before signing in")
	}
	_, page = br.do("GET", h.Admin+"/t/"+slug+"/login", nil)
	if r, p := br.submit(page, url.Values{"login": {"ada@si.test"}, "password": {"Analytical-engine-1843"}}); r.StatusCode != 200 ||
		!strings.Contains(p, `id="signed-in"`) || br.cookie("xv_sso_") == nil {
		t.Fatalf("signing in: %d %s", r.StatusCode, p)
	}

	// A client asking for a second factor (acr_values) is not answered by
	// a password-only session.
	sum0 := sha256.Sum256([]byte(testVerifier))
	silent := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"https://notes.example/cb"}, "prompt": {"none"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum0[:])}, "code_challenge_method": {"S256"}}
	for acr, want := range map[string]string{"": "consent_required", "urn:xavyo:acr:mfa": "login_required"} {
		v := url.Values{}
		for k := range silent {
			v.Set(k, silent.Get(k))
		}
		if acr != "" {
			v.Set("acr_values", acr)
		}
		r, _ := br.do("GET", h.Admin+"/t/"+slug+"/authorize?"+v.Encode(), nil)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if loc.Query().Get("error") != want {
			t.Fatalf("acr_values %q with a password-only session: %d %s, want %s", acr, r.StatusCode, r.Header.Get("Location"), want)
		}
	}

	// Languages: the browser's first the pages speak, else the tenant's.
	req, _ := http.NewRequest("GET", h.Admin+"/t/"+slug+"/login", nil)
	req.Header.Set("Accept-Language", "de, fr-CH;q=0.9, en;q=0.1")
	if r, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(b), `<html lang="fr">`) || !strings.Contains(string(b), "Mot de passe oublié ?") {
			t.Fatalf("the sign-in page in French: %s", b)
		}
	}

	// Transactions: another browser (no session) starts an authorization
	// and a device sign-in at the first tenant.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := func(path string) string {
		t.Helper()
		r, err := noFollow.Get(h.Admin + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != 302 || loc.Query().Get("tx") == "" {
			t.Fatalf("%s: %d %s", path, r.StatusCode, r.Header.Get("Location"))
		}
		return loc.Query().Get("tx")
	}
	sum := sha256.Sum256([]byte(testVerifier))
	authz := start("/t/" + slug + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"https://notes.example/cb"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}.Encode())
	device := start("/t/" + slug + "/device")
	get := func(path string) (int, string, string) {
		r, err := noFollow.Get(h.Admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, r.Header.Get("Location"), string(b)
	}
	for name, c := range map[string]struct {
		path   string
		status int
	}{
		"the sign-in page of its request":      {"/t/" + slug + "/login?tx=" + authz, 200},
		"at another tenant":                    {"/t/" + other + "/login?tx=" + authz, 400},
		"an unknown transaction":               {"/t/" + slug + "/login?tx=" + strings.Repeat("A", 43), 400},
		"a device sign-in at the consent page": {"/t/" + slug + "/consent?tx=" + device, 400},
		"consent before signing in":            {"/t/" + slug + "/consent?tx=" + authz, 302},
		"another tenant's consent page":        {"/t/" + other + "/consent?tx=" + authz, 400},
	} {
		st, loc, page := get(c.path)
		if st != c.status || (st == 302 && loc != "/t/"+slug+"/login?tx="+authz) {
			t.Fatalf("%s: %d %s %s", name, st, loc, page)
		}
		if name == "the sign-in page of its request" && !strings.Contains(page, "<strong>Notes</strong> asks to act for you") {
			t.Fatalf("the sign-in page does not name the client: %s", page)
		}
	}
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"branding": map[string]any{"locale": "fr"}})
	apptest.Expect(t, resp, body, 200, "French by default")
	if _, page := newBrowser(t, h, slug, "", "").do("GET", h.Admin+"/t/"+slug+"/login", nil); !strings.Contains(page, "Se connecter") {
		t.Fatalf("the tenant's language: %s", page)
	}
}
