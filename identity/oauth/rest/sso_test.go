package rest_test

import (
	"crypto/sha256"
	"encoding/base64"
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

// TestSSOSession: a person who signed in on the pages for one client is
// signed in to a second client without a page (an SSO session cookie bound
// to a row of the session table); prompt=none answers login_required when
// there is no session; prompt=login and max_age ask again; every sign-in
// opens a new session (a cookie planted before it is never promoted); a
// forged or ended session signs nobody in; ID tokens carry the session's
// auth_time, amr and acr; ending the session ends the tokens issued in it.
func TestSSOSession(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) { ssoSession(t, flavor) })
	}
}

func ssoSession(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("sso")
	tid, tok := h.TenantAdmin(t, slug)
	redirectURI := "http://127.0.0.1:9999/callback"
	bye := "http://127.0.0.1:9999/bye"
	client := func(name string, firstParty bool) string {
		resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": name, "redirect_uris": []string{redirectURI},
			"post_logout_redirect_uris": []string{bye}, "first_party": firstParty})
		apptest.Expect(t, resp, body, 201, "register client")
		return apptest.Decode[struct {
			ClientID string `json:"client_id"`
		}](t, body).ClientID
	}
	first, second, third := client("First", true), client("Second", true), client("Third", false)
	for _, email := range []string{"ada@sso.test", "bob@sso.test"} {
		resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": "Analytical-engine-1843"})
		apptest.Expect(t, resp, body, 201, "user")
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("s", 20) + "-verifier-0123456789abcdef"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	params := func(clientID string, extra ...string) url.Values {
		v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {"st"},
			"scope": {"openid offline_access"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "nonce": {"n-1"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	ssoName := "xv_sso_" + tid
	// authz asks for a code with the given SSO cookie value ("" for none).
	authz := func(sso string, v url.Values) (*http.Response, string) {
		req, _ := http.NewRequest("GET", h.Admin+"/t/"+slug+"/authorize?"+v.Encode(), nil)
		if sso != "" {
			req.AddCookie(&http.Cookie{Name: ssoName, Value: sso})
		}
		r, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	csrfRE := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	// signIn walks the page for clientID (with a cookie planted before, if
	// any) and returns the redirect and the SSO cookie it set.
	signIn := func(clientID, planted string, who ...string) (*http.Response, *http.Cookie) {
		t.Helper()
		login := "ada@sso.test"
		if len(who) > 0 {
			login = who[0]
		}
		var cookies []*http.Cookie
		if planted != "" {
			cookies = append(cookies, &http.Cookie{Name: ssoName, Value: planted})
		}
		resp, _ := pageLogin(t, h, h.Admin+"/t/"+slug+"/authorize?"+params(clientID, "prompt", "login").Encode(), login, "Analytical-engine-1843", true, cookies...)
		for _, c := range resp.Cookies() {
			if c.Name == ssoName {
				return resp, c
			}
		}
		t.Fatalf("no SSO cookie after signing in: %d %v", resp.StatusCode, resp.Header.Values("Set-Cookie"))
		return nil, nil
	}
	// follow GETs a page of the flow (a redirect's target) with an SSO
	// cookie.
	follow := func(sso string, r *http.Response) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", h.Admin+r.Header.Get("Location"), nil)
		req.AddCookie(&http.Cookie{Name: ssoName, Value: sso})
		next, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer next.Body.Close()
		b, _ := io.ReadAll(next.Body)
		return next, string(b)
	}
	codeOf := func(r *http.Response) string {
		t.Helper()
		loc, err := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != 302 || err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("want a code, got %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}
	exchange := func(clientID, code string) map[string]any {
		t.Helper()
		c, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
			"redirect_uri": {redirectURI}, "code_verifier": {verifier}}, "", "")
		if c != 200 {
			t.Fatalf("code exchange: %d %v", c, out)
		}
		return out
	}
	asksToSignIn := func(what string, r *http.Response) string {
		t.Helper()
		if r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), "/t/"+slug+"/login?tx=") {
			t.Fatalf("%s: want the sign-in page, got %d %s", what, r.StatusCode, r.Header.Get("Location"))
		}
		_, page := follow("", r)
		if !strings.Contains(page, `name="password"`) {
			t.Fatalf("%s: the sign-in page: %s", what, page)
		}
		return page
	}
	loginRequired := func(what string, r *http.Response) {
		t.Helper()
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != 302 || loc.Query().Get("error") != "login_required" || loc.Query().Get("state") != "st" {
			t.Fatalf("%s: want login_required at the redirect URI, got %d %s", what, r.StatusCode, r.Header.Get("Location"))
		}
	}

	// Discovery says what the provider does for people.
	dresp, body := h.DoAs("", "GET", "/t/"+slug+"/.well-known/openid-configuration", nil, "Authorization", "")
	apptest.Expect(t, dresp, body, 200, "discovery")
	md := apptest.Decode[struct {
		EndSession      string   `json:"end_session_endpoint"`
		Device          string   `json:"device_authorization_endpoint"`
		ResponseModes   []string `json:"response_modes_supported"`
		Prompts         []string `json:"prompt_values_supported"`
		Backchannel     bool     `json:"backchannel_logout_supported"`
		BackchannelSess bool     `json:"backchannel_logout_session_supported"`
		Grants          []string `json:"grant_types_supported"`
	}](t, body)
	iss := h.App.Config().Admin.PublicURL + "/t/" + slug
	if md.EndSession != iss+"/end_session" || md.Device != iss+"/device_authorization" || len(md.ResponseModes) != 3 || len(md.Prompts) != 4 ||
		!md.Backchannel || !md.BackchannelSess || !strings.Contains(strings.Join(md.Grants, " "), "urn:ietf:params:oauth:grant-type:device_code") {
		t.Fatalf("discovery: %s", body)
	}

	// No session: prompt=none is refused at the client, not shown a page.
	r, _ := authz("", params(second, "prompt", "none"))
	loginRequired("prompt=none without a session", r)
	r, _ = authz("", params(second))
	asksToSignIn("no session", r)
	// Bad prompt and max_age values are the client's error.
	for _, bad := range [][]string{{"prompt", "none login"}, {"prompt", "sideways"}, {"max_age", "-1"}, {"max_age", "soon"}} {
		r, _ := authz("", params(second, bad...))
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("%v: %d %s", bad, r.StatusCode, r.Header.Get("Location"))
		}
	}

	// A planted cookie (a forged value) does not survive the sign-in.
	planted := "0190a0b0-0000-7000-8000-000000000000." + strings.Repeat("A", 43)
	resp, cookie := signIn(first, planted)
	if cookie.Value == planted || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/t/"+slug {
		t.Fatalf("SSO cookie: %+v", cookie)
	}
	idFirst := apptest.JWTClaims(t, exchange(first, codeOf(resp))["id_token"].(string))

	// The second client: no page, the same sign-in.
	r, _ = authz(cookie.Value, params(second))
	out := exchange(second, codeOf(r))
	idSecond := apptest.JWTClaims(t, out["id_token"].(string))
	if idSecond["auth_time"] != idFirst["auth_time"] || idSecond["sid"] == nil || idSecond["sid"] != idFirst["sid"] || idSecond["acr"] != "urn:xavyo:acr:pwd" || idSecond["nonce"] != "n-1" {
		t.Fatalf("ID tokens of one session: %v / %v", idFirst, idSecond)
	}
	if amr, _ := idSecond["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Fatalf("amr %v", idSecond["amr"])
	}
	secondRefresh := out["refresh_token"].(string)
	codeOf(func() *http.Response { r, _ := authz(cookie.Value, params(second, "prompt", "none")); return r }())
	codeOf(func() *http.Response { r, _ := authz(cookie.Value, params(second, "max_age", "3600")); return r }())

	// Response modes: the fragment, and a form the browser posts.
	r, _ = authz(cookie.Value, params(second, "response_mode", "fragment"))
	if loc := r.Header.Get("Location"); r.StatusCode != 302 || !strings.HasPrefix(loc, redirectURI+"#") || !strings.Contains(loc, "code=") || !strings.Contains(loc, "state=st") {
		t.Fatalf("response_mode=fragment: %d %s", r.StatusCode, loc)
	}
	r, page := authz(cookie.Value, params(second, "response_mode", "form_post"))
	if r.StatusCode != 200 || !strings.Contains(page, `<form method="post" action="`+redirectURI+`">`) || !strings.Contains(page, `name="code"`) ||
		!strings.Contains(page, `name="state" value="st"`) || !strings.Contains(r.Header.Get("Content-Security-Policy"), "form-action http://127.0.0.1:9999") {
		t.Fatalf("response_mode=form_post: %d %s %s", r.StatusCode, r.Header.Get("Content-Security-Policy"), page)
	}
	r, _ = authz(cookie.Value, params(second, "response_mode", "web_message"))
	if loc, _ := url.Parse(r.Header.Get("Location")); r.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("an unknown response_mode: %d %s", r.StatusCode, r.Header.Get("Location"))
	}

	// Asking again: prompt=login, and a sign-in older than max_age.
	r, _ = authz(cookie.Value, params(second, "prompt", "login"))
	asksToSignIn("prompt=login", r)
	r, _ = authz(cookie.Value, params(second, "max_age", "0", "login_hint", "ada@sso.test"))
	if page := asksToSignIn("max_age=0", r); !strings.Contains(page, `value="ada@sso.test"`) {
		t.Fatal("login_hint does not prefill the page")
	}

	// id_token_hint: the session's own person signs in silently; another
	// person's hint asks for a sign-in; a token that is no ID token of
	// this issuer is refused.
	idRaw := out["id_token"].(string)
	codeOf(func() *http.Response {
		r, _ := authz(cookie.Value, params(second, "prompt", "none", "id_token_hint", idRaw))
		return r
	}())
	bobResp, bobCookie := signIn(first, "", "bob@sso.test")
	bobID := exchange(first, codeOf(bobResp))["id_token"].(string)
	r, _ = authz(cookie.Value, params(second, "prompt", "none", "id_token_hint", bobID))
	loginRequired("another person's id_token_hint", r)
	for _, hint := range []string{"not-a-token", out["access_token"].(string)} {
		r, _ = authz(cookie.Value, params(second, "id_token_hint", hint))
		if loc, _ := url.Parse(r.Header.Get("Location")); r.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("a bad id_token_hint: %d %s", r.StatusCode, r.Header.Get("Location"))
		}
	}

	// A wrong secret for the session's id signs nobody in.
	sid, _, _ := strings.Cut(cookie.Value, ".")
	forged := sid + "." + strings.Repeat("B", 43)
	r, _ = authz(forged, params(second, "prompt", "none"))
	loginRequired("a forged secret", r)

	// A new sign-in is a new session.
	_, again := signIn(first, cookie.Value)
	if again.Value == cookie.Value || strings.HasPrefix(again.Value, sid+".") {
		t.Fatal("a second sign-in kept the session id")
	}

	// Ending the first session: its cookie signs nobody in, and the
	// tokens issued in it end with it.
	resp, body = h.DoAs(tok, "DELETE", "/api/v1/sessions/"+sid, nil)
	apptest.Expect(t, resp, body, 204, "end the session")
	r, _ = authz(cookie.Value, params(second, "prompt", "none"))
	loginRequired("an ended session", r)
	if c, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {second}, "refresh_token": {secondRefresh}}, "", ""); c != 400 {
		t.Fatalf("a refresh token of an ended session still works: %d %v", c, out)
	}
	// The other session still signs in.
	codeOf(func() *http.Response { r, _ := authz(again.Value, params(second, "prompt", "none")); return r }())

	// Consent: a client that is not first-party gets a code only once the
	// person allowed what it asks; the answer is remembered, asked again
	// for more scopes or prompt=consent, and can be withdrawn.
	r, _ = authz(again.Value, params(third, "prompt", "none"))
	if loc, _ := url.Parse(r.Header.Get("Location")); r.StatusCode != 302 || loc.Query().Get("error") != "consent_required" {
		t.Fatalf("prompt=none before consent: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	consentPage := func(v url.Values) (*http.Response, string) {
		t.Helper()
		r, _ := authz(again.Value, v)
		if r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), "/t/"+slug+"/consent?tx=") {
			t.Fatalf("want the consent page, got %d %s", r.StatusCode, r.Header.Get("Location"))
		}
		r, page := follow(again.Value, r)
		if r.StatusCode != 200 || !strings.Contains(page, `value="allow"`) || !strings.Contains(page, "Third") ||
			!strings.Contains(page, "http://127.0.0.1:9999") || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("consent page: %d %s", r.StatusCode, page)
		}
		return r, page
	}
	answer := func(_ url.Values, page, choice string, cookies []*http.Cookie, withCSRF bool) *http.Response {
		t.Helper()
		form := url.Values{"consent": {choice}, "tx": {regexp.MustCompile(`name="tx" value="([^"]+)"`).FindStringSubmatch(page)[1]}}
		if m := csrfRE.FindStringSubmatch(page); withCSRF && m != nil {
			form.Set("csrf", m[1])
		}
		req, _ := http.NewRequest("POST", h.Admin+"/t/"+slug+"/consent", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: ssoName, Value: again.Value})
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// The consent page of Ada's request in another browser (Bob's
	// session, or none): signing in again, not Ada's consent.
	r, _ = authz(again.Value, params(third))
	for _, sso := range []string{bobCookie.Value, ""} {
		if other, _ := follow(sso, r); other.StatusCode != 302 || !strings.HasPrefix(other.Header.Get("Location"), "/t/"+slug+"/login?tx=") {
			t.Fatalf("the consent page in another browser: %d %s", other.StatusCode, other.Header.Get("Location"))
		}
	}
	v := params(third)
	r, page = consentPage(v)
	if resp := answer(v, page, "allow", r.Cookies(), false); resp.StatusCode != 403 {
		t.Fatalf("consent without the CSRF token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	r, page = consentPage(v)
	resp = answer(v, page, "deny", r.Cookies(), true)
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != 302 || loc.Query().Get("error") != "access_denied" {
		t.Fatalf("denied consent: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	r, page = consentPage(v)
	thirdTokens := exchange(third, codeOf(answer(v, page, "allow", r.Cookies(), true)))
	codeOf(func() *http.Response { r, _ := authz(again.Value, params(third, "prompt", "none")); return r }()) // remembered
	consentPage(params(third, "prompt", "consent"))
	consentPage(params(third, "scope", "openid offline_access email"))
	// The person sees and withdraws it; the client's tokens for them end.
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "ada@sso.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 200, "ada signs in to the API")
	ada := apptest.Decode[struct {
		AccessToken string `json:"access_token"`
	}](t, body).AccessToken
	resp, body = h.DoAs(ada, "GET", "/api/v1/me/consents", nil)
	apptest.Expect(t, resp, body, 200, "consents")
	consents := apptest.Decode[[]struct {
		ID         string `json:"id"`
		ClientID   string `json:"client_id"`
		ClientName string `json:"client_name"`
		Scope      string `json:"scope"`
	}](t, body)
	if len(consents) != 1 || consents[0].ClientID != third || consents[0].ClientName != "Third" || consents[0].Scope != "offline_access openid" {
		t.Fatalf("consents: %s", body)
	}
	resp, body = h.DoAs(tok, "DELETE", "/api/v1/me/consents/"+consents[0].ID, nil)
	apptest.Expect(t, resp, body, 404, "another person withdraws Ada's consent")

	// Another tenant: Ada's session cookie, ID token and consent mean
	// nothing there.
	otherSlug := apptest.UniqueSlug("sso2")
	otherTID, otherTok := h.TenantAdmin(t, otherSlug)
	resp, body = h.DoAs(otherTok, "POST", "/api/v1/clients", map[string]any{"name": "Elsewhere", "redirect_uris": []string{redirectURI}, "first_party": true})
	apptest.Expect(t, resp, body, 201, "a client of the other tenant")
	elsewhere := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	otherAuthz := func(v url.Values) *http.Response {
		t.Helper()
		v.Set("client_id", elsewhere)
		req, _ := http.NewRequest("GET", h.Admin+"/t/"+otherSlug+"/authorize?"+v.Encode(), nil)
		req.AddCookie(&http.Cookie{Name: "xv_sso_" + otherTID, Value: again.Value}) // tenant A's session under B's name
		r, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	loginRequired("tenant A's session at tenant B", otherAuthz(params(elsewhere, "prompt", "none")))
	r = otherAuthz(params(elsewhere, "id_token_hint", out["id_token"].(string)))
	if loc, _ := url.Parse(r.Header.Get("Location")); r.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("tenant A's ID token as a hint at tenant B: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	resp, body = h.DoAs(otherTok, "DELETE", "/api/v1/me/consents/"+consents[0].ID, nil)
	apptest.Expect(t, resp, body, 404, "another tenant's user withdraws Ada's consent")
	resp, body = h.DoAs(ada, "DELETE", "/api/v1/me/consents/"+consents[0].ID, nil)
	apptest.Expect(t, resp, body, 204, "withdraw consent")
	if c, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {third}, "refresh_token": {thirdTokens["refresh_token"].(string)}}, "", ""); c != 400 {
		t.Fatalf("a refresh token after the consent was withdrawn: %d %v", c, out)
	}
	resp, body = h.DoAs(ada, "DELETE", "/api/v1/me/consents/"+consents[0].ID, nil)
	apptest.Expect(t, resp, body, 404, "withdraw twice")
	consentPage(params(third))
	// Removing a client removes the consents people gave it.
	r, page = consentPage(v)
	exchange(third, codeOf(answer(v, page, "allow", r.Cookies(), true)))
	resp, body = h.DoAs(tok, "GET", "/api/v1/clients", nil)
	apptest.Expect(t, resp, body, 200, "clients")
	thirdID := ""
	for _, c := range apptest.Decode[[]struct {
		ID       string `json:"id"`
		ClientID string `json:"client_id"`
	}](t, body) {
		if c.ClientID == third {
			thirdID = c.ID
		}
	}
	resp, body = h.DoAs(tok, "DELETE", "/api/v1/clients/"+thirdID, nil)
	apptest.Expect(t, resp, body, 204, "delete the client")
	resp, body = h.DoAs(ada, "GET", "/api/v1/me/consents", nil)
	if resp.StatusCode != 200 || strings.Contains(string(body), third) {
		t.Fatalf("consents after the client was removed: %d %s", resp.StatusCode, body)
	}

	// RP-initiated logout.
	endSession := func(sso string, posted bool, v url.Values, cookies ...*http.Cookie) (*http.Response, string) {
		t.Helper()
		var req *http.Request
		if posted {
			req, _ = http.NewRequest("POST", h.Admin+"/t/"+slug+"/end_session", strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest("GET", h.Admin+"/t/"+slug+"/end_session?"+v.Encode(), nil)
		}
		if sso != "" {
			req.AddCookie(&http.Cookie{Name: ssoName, Value: sso})
		}
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
	live := func(what, sso string) {
		t.Helper()
		r, _ := authz(sso, params(second, "prompt", "none"))
		if r.StatusCode != 302 || !strings.Contains(r.Header.Get("Location"), "code=") {
			t.Fatalf("%s: the session no longer signs in: %d %s", what, r.StatusCode, r.Header.Get("Location"))
		}
	}
	sess, _ := signIn(first, "")
	var ssoNow string
	for _, c := range sess.Cookies() {
		if c.Name == ssoName {
			ssoNow = c.Value
		}
	}
	hintOut := exchange(first, codeOf(sess))
	hint := hintOut["id_token"].(string)
	// Unregistered return addresses: refused with a page, nothing ended.
	for _, u := range []string{bye + "/", bye + "?x=1", "https://evil.example/bye", "http://127.0.0.1:9999/BYE", "http://127.0.0.1:9998/bye"} {
		r, _ := endSession(ssoNow, false, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {u}})
		if r.StatusCode != 400 || r.Header.Get("Location") != "" {
			t.Fatalf("post_logout_redirect_uri %s: %d %s", u, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r, _ := endSession(ssoNow, false, url.Values{"post_logout_redirect_uri": {bye}}); r.StatusCode != 400 {
		t.Fatalf("a return address without a client: %d", r.StatusCode)
	}
	live("after refused logouts", ssoNow)
	// Without a hint (or another person's), the person confirms; a post
	// without the form's CSRF token ends nothing.
	r, page = endSession(ssoNow, false, url.Values{"client_id": {first}, "post_logout_redirect_uri": {bye}, "state": {"s0"}})
	m := csrfRE.FindStringSubmatch(page)
	if r.StatusCode != 200 || m == nil || r.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(page, "First") {
		t.Fatalf("confirmation page: %d %s", r.StatusCode, page)
	}
	r, _ = endSession(ssoNow, false, url.Values{"id_token_hint": {bobID}})
	if r.StatusCode != 200 {
		t.Fatalf("another person's hint: %d, want the confirmation page", r.StatusCode)
	}
	form := url.Values{"client_id": {first}, "post_logout_redirect_uri": {bye}, "state": {"s0"}, "confirm": {"yes"}, "csrf": {"0123456789abcdef"}}
	if r, _ = endSession(ssoNow, true, form, r.Cookies()...); r.StatusCode != 200 {
		t.Fatalf("a forged confirmation: %d", r.StatusCode)
	}
	live("after a forged confirmation", ssoNow)
	r, page = endSession(ssoNow, false, url.Values{"client_id": {first}, "post_logout_redirect_uri": {bye}, "state": {"s0"}})
	m = csrfRE.FindStringSubmatch(page)
	form.Set("csrf", m[1])
	r, _ = endSession(ssoNow, true, form, r.Cookies()...)
	if loc := r.Header.Get("Location"); r.StatusCode != 302 || loc != bye+"?state=s0" {
		t.Fatalf("confirmed logout: %d %s", r.StatusCode, loc)
	}
	loginRequired("after a confirmed logout", func() *http.Response { r, _ := authz(ssoNow, params(second, "prompt", "none")); return r }())
	if c, _ := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {first}, "refresh_token": {hintOut["refresh_token"].(string)}}, "", ""); c != 400 {
		t.Fatalf("a refresh token of a signed-out session: %d", c)
	}
	// With the person's own hint, at once; the cookie is cleared.
	sess, _ = signIn(first, "")
	for _, c := range sess.Cookies() {
		if c.Name == ssoName {
			ssoNow = c.Value
		}
	}
	hint = exchange(first, codeOf(sess))["id_token"].(string)
	r, _ = endSession(ssoNow, false, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {bye}, "state": {"s1"}})
	if loc := r.Header.Get("Location"); r.StatusCode != 302 || loc != bye+"?state=s1" {
		t.Fatalf("logout with the person's hint: %d %s", r.StatusCode, loc)
	}
	cleared := false
	for _, c := range r.Cookies() {
		cleared = cleared || (c.Name == ssoName && c.Value == "" && (c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now()))))
	}
	if !cleared {
		t.Fatalf("the SSO cookie was not cleared: %v", r.Header.Values("Set-Cookie"))
	}
	loginRequired("after logout with a hint", func() *http.Response { r, _ := authz(ssoNow, params(second, "prompt", "none")); return r }())
}
