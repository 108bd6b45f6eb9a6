package rest_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/identity/mfa/mfatest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type tokens struct {
	AccessToken string   `json:"access_token"`
	MFARequired bool     `json:"mfa_required"`
	MFAToken    string   `json:"mfa_token"`
	MFAMethods  []string `json:"mfa_methods"`
}

// TestTOTPAndRecoveryCodes: a person enrols an authenticator app (a wrong
// confirmation code is refused) and gets recovery codes; from then on the
// JSON sign-in answers mfa_required and completes only with a code: each
// TOTP step works once (the confirmation's too), another person's secret
// and a tampered token do not work, a recovery code works once; the pages
// ask for the code after the password, only in the browser that gave it,
// and the ID token says amr mfa and acr urn:xavyo:acr:mfa; removing the
// factor ends the second step.
func TestTOTPAndRecoveryCodes(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			totpAndRecovery(t, flavor)
		})
	}
}

func totpAndRecovery(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("mfa")
	_, tok := h.TenantAdmin(t, slug)
	const pw = "Analytical-engine-1843"
	ids := map[string]string{}
	for _, email := range []string{"ada@mfa.test", "bob@mfa.test"} {
		resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": pw})
		apptest.Expect(t, resp, body, 201, "user")
		ids[email] = apptest.Decode[struct {
			ID string `json:"id"`
		}](t, body).ID
	}
	login := func(email string) tokens {
		t.Helper()
		resp, body := h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": email, "password": pw})
		apptest.Expect(t, resp, body, 200, "login")
		return apptest.Decode[tokens](t, body)
	}
	enrol := func(email string) string {
		t.Helper()
		at := login(email).AccessToken
		resp, body := h.DoAs(at, "POST", "/api/v1/me/mfa/totp", map[string]any{"name": "Phone"})
		apptest.Expect(t, resp, body, 201, "enrol")
		e := apptest.Decode[struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
			URI    string `json:"otpauth_uri"`
		}](t, body)
		if !strings.HasPrefix(e.URI, "otpauth://totp/") || !strings.Contains(e.URI, "secret="+e.Secret) {
			t.Fatalf("enrolment: %+v", e)
		}
		resp, body = h.DoAs(at, "POST", "/api/v1/me/mfa/totp/"+e.ID+"/confirm", map[string]any{"code": "000000"})
		apptest.Expect(t, resp, body, 401, "a wrong confirmation code")
		code, _ := totp.GenerateCode(e.Secret, time.Now())
		resp, body = h.DoAs(at, "POST", "/api/v1/me/mfa/totp/"+e.ID+"/confirm", map[string]any{"code": code})
		apptest.Expect(t, resp, body, 200, "confirm")
		if n := len(apptest.Decode[struct {
			Codes []string `json:"recovery_codes"`
		}](t, body).Codes); n != 10 {
			t.Fatalf("%d recovery codes", n)
		}
		return e.Secret
	}
	bobSecret := enrol("bob@mfa.test")
	adaAT := login("ada@mfa.test").AccessToken
	resp, body := h.DoAs(adaAT, "POST", "/api/v1/me/mfa/totp", map[string]any{})
	apptest.Expect(t, resp, body, 201, "enrol ada")
	e := apptest.Decode[struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}](t, body)
	now, _ := totp.GenerateCode(e.Secret, time.Now())
	resp, body = h.DoAs(adaAT, "POST", "/api/v1/me/mfa/totp/"+e.ID+"/confirm", map[string]any{"code": now})
	apptest.Expect(t, resp, body, 200, "confirm ada")
	recovery := apptest.Decode[struct {
		Codes []string `json:"recovery_codes"`
	}](t, body).Codes

	second := func(token, code string) (int, tokens) {
		resp, body := h.DoAs("", "POST", "/api/v1/auth/login/mfa", map[string]any{"tenant": slug, "mfa_token": token, "code": code})
		return resp.StatusCode, apptest.Decode[tokens](t, body)
	}
	first := login("ada@mfa.test")
	if !first.MFARequired || first.AccessToken != "" || first.MFAToken == "" || len(first.MFAMethods) != 2 {
		t.Fatalf("the first step: %+v", first)
	}
	if st, _ := second(first.MFAToken, now); st != 401 {
		t.Fatalf("the confirmation's code again: %d", st)
	}
	bobs, _ := totp.GenerateCode(bobSecret, time.Now())
	if st, _ := second(first.MFAToken, bobs); st != 401 {
		t.Fatalf("another person's code: %d", st)
	}
	next, _ := totp.GenerateCode(e.Secret, time.Now().Add(30*time.Second))
	if st, _ := second(first.MFAToken[:len(first.MFAToken)-2]+"xx", next); st != 401 {
		t.Fatalf("a tampered mfa_token: %d", st)
	}
	otherSlug := apptest.UniqueSlug("mfb")
	h.TenantAdmin(t, otherSlug)
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login/mfa", map[string]any{"tenant": otherSlug, "mfa_token": first.MFAToken, "code": next})
	apptest.Expect(t, resp, body, 401, "an mfa_token at another tenant")
	st, done := second(first.MFAToken, next)
	if st != 200 || done.AccessToken == "" {
		t.Fatalf("the second step: %d %+v", st, done)
	}
	if amr := apptest.JWTClaims(t, done.AccessToken)["amr"]; !strings.Contains(apptest.JSON(amr), `"mfa"`) {
		t.Fatalf("amr %v", amr)
	}
	if st, _ := second(first.MFAToken, next); st != 401 {
		t.Fatalf("an mfa_token used twice: %d", st)
	}
	if st, _ := second(login("ada@mfa.test").MFAToken, next); st != 401 {
		t.Fatalf("a TOTP step used twice: %d", st)
	}

	// The pages: password, then the code, in this browser only.
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Notes", "redirect_uris": []string{"https://notes.example/cb"}, "first_party": true})
	apptest.Expect(t, resp, body, 201, "client")
	clientID := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	jar, _ := cookiejar.New(nil)
	admin := h.Admin
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), admin) {
			return nil
		}
		return http.ErrUseLastResponse
	}}
	do := func(c *http.Client, method, u string, form url.Values) (*http.Response, string) {
		t.Helper()
		return apptest.Send(t, c, method, u, form)
	}
	field := func(page, name string) string { t.Helper(); return apptest.Field(t, page, name) }
	v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"https://notes.example/cb"}, "scope": {"openid"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}, "state": {"s"}}
	_, page := do(browser, "GET", h.Admin+"/t/"+slug+"/authorize?"+v.Encode(), nil)
	r, page := do(browser, "POST", h.Admin+"/t/"+slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")},
		"login": {"ada@mfa.test"}, "password": {pw}})
	if r.StatusCode != 200 || !strings.Contains(page, `name="code"`) || r.Request.URL.Path != "/t/"+slug+"/login/mfa" {
		t.Fatalf("after the password: %d %s %s", r.StatusCode, r.Request.URL, page)
	}
	mfaURL := r.Request.URL.String()
	// The enrolment page does not let a person with a factor skip it.
	noFollow := &http.Client{Jar: browser.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r2, _ := do(noFollow, "GET", h.Admin+"/t/"+slug+"/login/enrol?tx="+url.QueryEscape(field(page, "tx")), nil); r2.StatusCode != 302 ||
		!strings.Contains(r2.Header.Get("Location"), "/t/"+slug+"/login/mfa?tx=") {
		t.Fatalf("the enrolment page for a person with a factor: %d %s", r2.StatusCode, r2.Header.Get("Location"))
	}
	// Another browser with the transaction, but not the first step's
	// cookie, is sent to sign in.
	other := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r2, _ := do(other, "GET", mfaURL, nil); r2.StatusCode != 302 || !strings.Contains(r2.Header.Get("Location"), "/t/"+slug+"/login?tx=") {
		t.Fatalf("the second step in another browser: %d %s", r2.StatusCode, r2.Header.Get("Location"))
	}
	form := url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "code": {"123456"}}
	if r, _ = do(browser, "POST", h.Admin+"/t/"+slug+"/login/mfa", form); r.StatusCode != 401 {
		t.Fatalf("a wrong code on the page: %d", r.StatusCode)
	}
	_, page = do(browser, "GET", mfaURL, nil)
	form = url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "code": {recovery[0]}}
	r, _ = do(browser, "POST", h.Admin+"/t/"+slug+"/login/mfa", form)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("with a recovery code: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	st, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"https://notes.example/cb"}, "code_verifier": {"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}}, "", "")
	if st != 200 {
		t.Fatalf("redeem: %d %v", st, out)
	}
	id := apptest.JWTClaims(t, out["id_token"].(string))
	if id["acr"] != "urn:xavyo:acr:mfa" || !strings.Contains(apptest.JSON(id["amr"]), `"otp"`) {
		t.Fatalf("ID token: acr %v amr %v", id["acr"], id["amr"])
	}
	if st, _ := second(login("ada@mfa.test").MFAToken, recovery[0]); st != 401 {
		t.Fatalf("a recovery code used twice: %d", st)
	}

	// An admin resets a person's factors (they lost their phone).
	if !login("bob@mfa.test").MFARequired {
		t.Fatal("bob's second step")
	}
	resp, body = h.DoAs(tok, "DELETE", "/api/v1/users/"+ids["bob@mfa.test"]+"/mfa", nil)
	apptest.Expect(t, resp, body, 204, "admin reset")
	if l := login("bob@mfa.test"); l.MFARequired || l.AccessToken == "" {
		t.Fatalf("after the reset: %+v", l)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/audit?action=user.mfa.reset", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	if !strings.Contains(string(body), ids["bob@mfa.test"]) {
		t.Fatalf("the reset is not audited: %s", body)
	}

	// Without a factor, no second step.
	resp, body = h.DoAs(adaAT, "DELETE", "/api/v1/me/mfa/"+e.ID, nil)
	apptest.Expect(t, resp, body, 204, "remove")
	if l := login("ada@mfa.test"); l.MFARequired || l.AccessToken == "" {
		t.Fatalf("after removing the factor: %+v", l)
	}
}

// TestRequiredMFA: where the tenant requires a second factor, a person
// without one cannot get tokens from the JSON sign-in, and on the pages
// enrols an authenticator app (QR code and key), confirms it, sees their
// recovery codes once and goes on signed in with both factors.
func TestRequiredMFA(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("req")
	_, tok := h.TenantAdmin(t, slug)
	const pw = "Analytical-engine-1843"
	resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 201, "user")
	// Required of admins only: a person holding no admin role signs in
	// with a password; then of everyone.
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required_for_roles": []string{"super_admin"}}})
	apptest.Expect(t, resp, body, 400, "a role tenants do not have")
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required_for_roles": []string{"tenant_admin"}}})
	apptest.Expect(t, resp, body, 200, "require MFA of admins")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 200, "a person holding no admin role")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "admin@" + slug + ".test", "password": "N3w-passphrase-" + slug})
	apptest.Expect(t, resp, body, 403, "an admin without a factor")
	// Required of the members of a group (and of its subgroups).
	resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": "Finance"})
	apptest.Expect(t, resp, body, 201, "group")
	finance := apptest.Decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": "Payroll", "parent_id": finance})
	apptest.Expect(t, resp, body, 201, "subgroup")
	payroll := apptest.Decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required_for_roles": []string{},
		"required_for_groups": []string{finance}}})
	apptest.Expect(t, resp, body, 200, "require MFA of finance")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 200, "a person outside the group")
	_, body = h.DoAs(tok, "GET", "/api/v1/users?limit=100", nil)
	cy := regexp.MustCompile(`"id":"([0-9a-f-]+)","email":"cy@req.test"`).FindStringSubmatch(string(body))
	if cy == nil {
		t.Fatalf("cy: %s", body)
	}
	resp, body = h.DoAs(tok, "PUT", "/api/v1/groups/"+payroll+"/members/"+cy[1], nil)
	apptest.Expect(t, resp, body, 201, "cy joins payroll")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 403, "a member of a subgroup without a factor")

	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required": true}})
	apptest.Expect(t, resp, body, 200, "require MFA")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 403, "a JSON sign-in without a factor")

	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar}
	do := func(method, u string, form url.Values) (*http.Response, string) {
		t.Helper()
		return apptest.Send(t, b, method, u, form)
	}
	field := func(page, name string) string { t.Helper(); return apptest.Field(t, page, name) }
	secretOf := func(page string) string {
		m := regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(page)
		if m == nil || !strings.Contains(page, `src="data:image/png;base64,`) {
			t.Fatalf("the enrolment page: %s", page)
		}
		return m[1]
	}
	_, page := do("GET", h.Admin+"/t/"+slug+"/login", nil)
	r, page := do("POST", h.Admin+"/t/"+slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "login": {"cy@req.test"},
		"password": {pw}})
	if r.Request.URL.Path != "/t/"+slug+"/login/enrol" || !strings.Contains(r.Header.Get("Content-Security-Policy"), "img-src data:") {
		t.Fatalf("after the password: %s %s", r.Request.URL, page)
	}
	secretOf(page)
	r, page = do("POST", h.Admin+"/t/"+slug+"/login/enrol", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")},
		"factor": {field(page, "factor")}, "code": {"000000"}})
	if r.StatusCode != 401 {
		t.Fatalf("a wrong code: %d", r.StatusCode)
	}
	secret := secretOf(page)
	code, _ := totp.GenerateCode(secret, time.Now())
	r, page = do("POST", h.Admin+"/t/"+slug+"/login/enrol", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")},
		"factor": {field(page, "factor")}, "code": {code}})
	if r.StatusCode != 200 || strings.Count(page, "<li>") != 10 {
		t.Fatalf("after confirming: %d %s", r.StatusCode, page)
	}
	r, page = do("POST", h.Admin+"/t/"+slug+"/login/continue", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}})
	if r.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("continue: %d %s", r.StatusCode, page)
	}
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 200, "the JSON sign-in, enrolled")
	if l := apptest.Decode[tokens](t, body); !l.MFARequired || l.AccessToken != "" {
		t.Fatalf("the JSON sign-in asks for the code: %+v", l)
	}

	// Passkeys only, from now on: cy's app no longer counts. Setting up a
	// passkey at the next sign-in asks for an app code first (a password
	// alone does not enrol a new factor).
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"phishing_resistant": true}})
	apptest.Expect(t, resp, body, 200, "passkeys only")
	_, page = do("GET", h.Admin+"/t/"+slug+"/login", nil)
	r, page = do("POST", h.Admin+"/t/"+slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "login": {"cy@req.test"},
		"password": {pw}})
	if r.Request.URL.Path != "/t/"+slug+"/login/enrol" || strings.Contains(page, `id="secret"`) || !strings.Contains(page, `id="wa-code"`) {
		t.Fatalf("the upgrade page: %s %s", r.Request.URL, page)
	}
	key := &mfatest.Authenticator{Origin: strings.Replace(h.Admin, "127.0.0.1", "localhost", 1)}
	upgrade := func(page, code string) (*http.Response, string) {
		t.Helper()
		opts := regexp.MustCompile(`data-mode="create" data-options="([^"]+)"`).FindStringSubmatch(page)
		if opts == nil {
			t.Fatalf("no registration form: %s", page)
		}
		answer, _, err := key.Create(json.RawMessage(html.UnescapeString(opts[1])), mfatest.Fault{})
		if err != nil {
			t.Fatal(err)
		}
		return do("POST", h.Admin+"/t/"+slug+"/login/enrol", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")},
			"ceremony": {html.UnescapeString(field(page, "ceremony"))}, "credential": {string(answer)}, "code": {code}})
	}
	r, page = upgrade(page, "")
	if r.StatusCode != 401 {
		t.Fatalf("a passkey without proving the app: %d %s", r.StatusCode, page)
	}
	next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	r, page = upgrade(page, next)
	if r.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("the upgrade with the app's code: %d %s", r.StatusCode, page)
	}
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "cy@req.test", "password": pw})
	apptest.Expect(t, resp, body, 200, "the JSON sign-in, upgraded")
	if l := apptest.Decode[tokens](t, body); strings.Join(l.MFAMethods, " ") != "webauthn" {
		t.Fatalf("methods after the upgrade: %+v", l)
	}
}

// TestStepUp: where the tenant asks for step-up, rotating signing keys
// (a risky operation) needs a sign-in with a second factor no older than
// the policy's max age: a password-only token gets RFC 9470's
// insufficient_user_authentication (with acr_values and max_age), an API
// key never passes, a fresh MFA sign-in does, and an old one no longer.
func TestStepUp(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("step")
	_, admin := h.TenantAdmin(t, slug)
	_, body := h.DoAs(admin, "GET", "/api/v1/me", nil)
	email := apptest.Decode[struct {
		Email string `json:"email"`
	}](t, body).Email
	rotate := func(tok string) *http.Response {
		t.Helper()
		resp, _ := h.DoAs(tok, "POST", "/api/v1/keys/rotate", map[string]any{})
		return resp
	}
	if r := rotate(admin); r.StatusCode != 201 {
		t.Fatalf("without the policy: %d", r.StatusCode)
	}
	resp, body := h.DoAs(admin, "PATCH", "/api/v1/policies", map[string]any{"step_up": map[string]any{"enabled": true, "max_age_seconds": 2}})
	apptest.Expect(t, resp, body, 200, "step-up on")
	r := rotate(admin)
	if h := r.Header.Get("WWW-Authenticate"); r.StatusCode != 401 || !strings.Contains(h, `error="insufficient_user_authentication"`) ||
		!strings.Contains(h, `acr_values="urn:xavyo:acr:mfa"`) || !strings.Contains(h, "max_age=2") {
		t.Fatalf("a password-only token: %d %q", r.StatusCode, h)
	}
	resp, body = h.DoAs(admin, "POST", "/api/v1/api-keys", map[string]any{"name": "ops", "scopes": []string{"tenant_admin"}})
	apptest.Expect(t, resp, body, 201, "key")
	if r := rotate(apptest.Decode[struct {
		Key string `json:"key"`
	}](t, body).Key); r.StatusCode != 401 {
		t.Fatalf("an API key: %d", r.StatusCode)
	}
	// A second factor, then a sign-in with it.
	resp, body = h.DoAs(admin, "POST", "/api/v1/me/mfa/totp", map[string]any{})
	apptest.Expect(t, resp, body, 201, "enrol")
	e := apptest.Decode[struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}](t, body)
	code, _ := totp.GenerateCode(e.Secret, time.Now())
	resp, body = h.DoAs(admin, "POST", "/api/v1/me/mfa/totp/"+e.ID+"/confirm", map[string]any{"code": code})
	apptest.Expect(t, resp, body, 200, "confirm")
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": email, "password": "N3w-passphrase-" + slug})
	apptest.Expect(t, resp, body, 200, "login")
	next, _ := totp.GenerateCode(e.Secret, time.Now().Add(30*time.Second))
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login/mfa", map[string]any{"tenant": slug, "mfa_token": apptest.Decode[tokens](t, body).MFAToken, "code": next})
	apptest.Expect(t, resp, body, 200, "second step")
	strong := apptest.Decode[tokens](t, body).AccessToken
	if r := rotate(strong); r.StatusCode != 201 {
		t.Fatalf("a fresh sign-in with a second factor: %d", r.StatusCode)
	}
	time.Sleep(2100 * time.Millisecond)
	if r := rotate(strong); r.StatusCode != 401 {
		t.Fatalf("a sign-in older than max_age: %d", r.StatusCode)
	}
}
