package rest_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// oidcTenant is a tenant with a provider registered against a test OP.
type oidcTenant struct {
	h          *apptest.Harness
	slug, tok  string
	providerID string
}

func newOIDCTenant(t *testing.T, h *apptest.Harness, prefix, key string, op *testOP, settings map[string]any) *oidcTenant {
	t.Helper()
	o := &oidcTenant{h: h, slug: apptest.UniqueSlug(prefix)}
	_, o.tok = h.TenantAdmin(t, o.slug)
	st := map[string]any{"issuer": op.Issuer(), "client_id": op.clientID}
	maps.Copy(st, settings)
	resp, body := h.DoAs(o.tok, "POST", "/api/v1/identity-providers", map[string]any{"key": key, "name": strings.ToUpper(key),
		"client_secret": op.secret, "settings": st})
	apptest.Expect(t, resp, body, 201, "provider")
	o.providerID = apptest.Decode[providerJSON](t, body).ID
	return o
}

// signIn starts a sign-in through provider key in a new browser; the
// test OP answers at once, so this is the callback's answer.
func (o *oidcTenant) signIn(t *testing.T, key string) (*http.Response, string) {
	t.Helper()
	return apptest.NewBrowser(t).Do("GET", o.h.Admin+"/t/"+o.slug+"/login/federation/"+key, nil)
}

func (o *oidcTenant) user(t *testing.T, email string) *userJSON {
	t.Helper()
	return findUser(t, o.h, o.tok, email)
}

// TestUpstreamAnswersRefused: an ID token xavyo did not ask for, or that
// its provider did not issue to it, signs nobody in — a wrong issuer,
// audience or nonce, alg none, a MAC with the client secret, an expired
// or future token, an at_hash of another access token, another client's
// azp — while the honest answer signs a person in, created just in time
// with their mapped groups. A return to the callback is used once, in
// the browser that started it, and only at the tenant that started it.
func TestUpstreamAnswersRefused(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	op := newTestOP(t, "")
	o := newOIDCTenant(t, h, "fx", "fx", op, nil)
	resp, body := h.DoAs(o.tok, "POST", "/api/v1/groups", map[string]any{"name": "engineers"})
	apptest.Expect(t, resp, body, 201, "group")
	eng := apptest.Decode[struct {
		ID string `json:"id"`
	}](t, body).ID
	resp, body = h.DoAs(o.tok, "POST", "/api/v1/attribute-definitions", map[string]any{"name": "department", "type": "string"})
	apptest.Expect(t, resp, body, 201, "attribute")
	resp, body = h.DoAs(o.tok, "PATCH", "/api/v1/identity-providers/"+o.providerID, map[string]any{"settings": map[string]any{
		"issuer": op.Issuer(), "client_id": op.clientID, "jit": true, "group_mappings": []map[string]any{{"upstream": "eng", "group_id": eng}},
		"mapping": map[string]string{"display_name": "{given_name} {family_name} ({org.name})", "attributes.department": "{dept}"}}})
	apptest.Expect(t, resp, body, 200, "mappings")

	good := func(nonce, at string) map[string]any {
		now := time.Now().Unix()
		return map[string]any{"iss": op.Issuer(), "sub": "fx-1", "aud": op.clientID, "exp": now + 300, "iat": now, "nonce": nonce,
			"at_hash": atHash(at), "email": "lin@fx.test", "email_verified": true, "given_name": "Lin", "family_name": "Shu",
			"org": map[string]any{"name": "FX"}, "groups": []string{"eng", "ops"}, "amr": []string{"pwd", "mfa"}, "dept": "R&D"}
	}
	with := func(change func(c map[string]any)) func(nonce, at string) map[string]any {
		return func(nonce, at string) map[string]any {
			c := good(nonce, at)
			change(c)
			return c
		}
	}
	now := time.Now().Unix()
	for _, tc := range []struct {
		name   string
		claims func(nonce, at string) map[string]any
		alg    string
	}{
		{"wrong issuer", with(func(c map[string]any) { c["iss"] = "https://evil.example" }), ""},
		{"wrong audience", with(func(c map[string]any) { c["aud"] = "another-client" }), ""},
		{"wrong nonce", with(func(c map[string]any) { c["nonce"] = "not-this-sign-in" }), ""},
		{"no nonce", with(func(c map[string]any) { delete(c, "nonce") }), ""},
		{"alg none", good, "none"},
		{"MAC with the client secret", good, "HS256"},
		{"expired", with(func(c map[string]any) { c["exp"], c["iat"] = now-60, now-600 }), ""},
		{"issued in the future", with(func(c map[string]any) { c["iat"], c["exp"] = now+3600, now+4000 }), ""},
		{"at_hash of another token", with(func(c map[string]any) { c["at_hash"] = atHash("another") }), ""},
		{"azp of another client", with(func(c map[string]any) { c["aud"], c["azp"] = []string{op.clientID, "other"}, "other" }), ""},
		{"several audiences without azp", with(func(c map[string]any) { c["aud"] = []string{op.clientID, "other"} }), ""},
		{"no subject", with(func(c map[string]any) { delete(c, "sub") }), ""},
	} {
		op.set(func(op *testOP) { op.claims, op.alg = tc.claims, tc.alg })
		resp, page := o.signIn(t, "fx")
		if resp.StatusCode != 401 || !strings.Contains(page, "refused") {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, page)
		}
	}
	if u := o.user(t, "lin@fx.test"); u != nil {
		t.Fatalf("a refused answer created %+v", u)
	}

	// The honest answer.
	op.set(func(op *testOP) { op.claims, op.alg = good, "" })
	resp, page := o.signIn(t, "fx")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("honest answer: %d %s", resp.StatusCode, page)
	}
	lin := o.user(t, "lin@fx.test")
	if lin == nil {
		t.Fatal("no just-in-time user")
	}
	resp, body = h.DoAs(o.tok, "GET", "/api/v1/users/"+lin.ID, nil)
	apptest.Expect(t, resp, body, 200, "lin")
	if !strings.Contains(string(body), `"display_name":"Lin Shu (FX)"`) || !strings.Contains(string(body), `"department":"R\u0026D"`) {
		t.Fatalf("mapped display name and attribute: %s", body)
	}
	resp, body = h.DoAs(o.tok, "GET", "/api/v1/groups/"+eng+"/members", nil)
	apptest.Expect(t, resp, body, 200, "members")
	if !strings.Contains(string(body), lin.ID) {
		t.Fatalf("the mapped group must hold the person: %s", body)
	}
	// The upstream takes her out of eng: her next sign-in follows.
	op.set(func(op *testOP) {
		op.claims = with(func(c map[string]any) { c["groups"], c["dept"] = []string{"ops"}, "Sales" })
	})
	if resp, page := o.signIn(t, "fx"); resp.StatusCode != 200 {
		t.Fatalf("second sign-in: %d %s", resp.StatusCode, page)
	}
	resp, body = h.DoAs(o.tok, "GET", "/api/v1/groups/"+eng+"/members", nil)
	apptest.Expect(t, resp, body, 200, "members")
	if strings.Contains(string(body), lin.ID) {
		t.Fatalf("a membership the upstream dropped must go: %s", body)
	}
	resp, body = h.DoAs(o.tok, "GET", "/api/v1/users/"+lin.ID, nil)
	apptest.Expect(t, resp, body, 200, "lin")
	if !strings.Contains(string(body), `"department":"Sales"`) {
		t.Fatalf("a mapped attribute must follow the upstream: %s", body)
	}

	// A return is used once, in the browser that started it.
	op.set(func(op *testOP) { op.claims = good })
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	begin := func(b *apptest.Browser) string {
		t.Helper()
		b.C.CheckRedirect = noFollow.CheckRedirect
		defer func() { b.C.CheckRedirect = nil }()
		resp, _ := b.Do("GET", h.Admin+"/t/"+o.slug+"/login/federation/fx", nil)
		upstreamURL := resp.Header.Get("Location")
		if resp.StatusCode != 302 || !strings.HasPrefix(upstreamURL, op.Issuer()+"/authorize?") {
			t.Fatalf("start: %d %s", resp.StatusCode, upstreamURL)
		}
		resp, _ = apptest.Send(t, noFollow, "GET", upstreamURL, nil)
		return resp.Header.Get("Location")
	}
	b := apptest.NewBrowser(t)
	callback := begin(b)
	// The same return at another tenant's callback: unknown there.
	other := newOIDCTenant(t, h, "fy", "fx", op, nil)
	cross := strings.Replace(callback, "/t/"+o.slug+"/", "/t/"+other.slug+"/", 1)
	if resp, page := b.Do("GET", cross, nil); resp.StatusCode != 401 {
		t.Fatalf("another tenant's return: %d %s", resp.StatusCode, page)
	}
	resp, page = b.Do("GET", callback, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("the browser that started it: %d %s", resp.StatusCode, page)
	}
	if resp, page := b.Do("GET", callback, nil); resp.StatusCode != 401 {
		t.Fatalf("a return used twice: %d %s", resp.StatusCode, page)
	}
	// Another browser (a login CSRF: an attacker's own return sent to a
	// victim) is refused; the return is spent.
	callback = begin(apptest.NewBrowser(t))
	if resp, page := b.Do("GET", callback, nil); resp.StatusCode != 401 {
		t.Fatalf("another browser's return: %d %s", resp.StatusCode, page)
	}
	// The upstream says no.
	if resp, page := apptest.NewBrowser(t).Do("GET", h.Admin+"/t/"+o.slug+"/federation/fx/callback?error=access_denied&state=x", nil); resp.StatusCode != 401 ||
		!strings.Contains(page, "access_denied") {
		t.Fatalf("upstream error: %d %s", resp.StatusCode, page)
	}
}

// TestUpstreamSecondFactor: a federated sign-in owes the tenant's second
// factor like a password one, unless the provider is trusted for it and
// says the person used several factors.
func TestUpstreamSecondFactor(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	op := newTestOP(t, "")
	o := newOIDCTenant(t, h, "mf", "fx", op, map[string]any{"jit": true})
	resp, body := h.DoAs(o.tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required": true}})
	apptest.Expect(t, resp, body, 200, "policy")
	amr := []string{"pwd"}
	op.set(func(op *testOP) {
		op.claims = func(nonce, _ string) map[string]any {
			now := time.Now().Unix()
			return map[string]any{"iss": op.Issuer(), "sub": "mf-1", "aud": op.clientID, "exp": now + 300, "iat": now, "nonce": nonce,
				"email": "kim@mf.test", "email_verified": true, "amr": amr}
		}
	})
	resp, page := o.signIn(t, "fx")
	if resp.StatusCode != 200 || !strings.Contains(page, `action="/t/`+o.slug+`/login/enrol"`) {
		t.Fatalf("a required second factor must be enrolled: %d %s", resp.StatusCode, page)
	}
	// Trusted, but the upstream used one factor: still owed.
	resp, body = h.DoAs(o.tok, "PATCH", "/api/v1/identity-providers/"+o.providerID, map[string]any{"settings": map[string]any{
		"issuer": op.Issuer(), "client_id": op.clientID, "jit": true, "trust_mfa": true}})
	apptest.Expect(t, resp, body, 200, "trust mfa")
	if resp, page := o.signIn(t, "fx"); resp.StatusCode != 200 || !strings.Contains(page, "/login/enrol") {
		t.Fatalf("one upstream factor: %d %s", resp.StatusCode, page)
	}
	op.set(func(*testOP) { amr = []string{"pwd", "otp", "mfa"} })
	if resp, page := o.signIn(t, "fx"); resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("a trusted upstream's second factor: %d %s", resp.StatusCode, page)
	}
}
