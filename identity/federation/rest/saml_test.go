package rest_test

import (
	"encoding/base64"
	"fmt"
	"html"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

var formAction = regexp.MustCompile(`<form[^>]* method="post" action="([^"]+)"`)

// postForm posts the auto-submitted form of a page (a SAML binding's) as
// the browser's script would, and returns where that leads.
func postForm(t *testing.T, b *apptest.Browser, page string, fields ...string) (*http.Response, string) {
	t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form to post: %s", page)
	}
	v := url.Values{}
	for _, f := range fields {
		v.Set(f, apptest.Field(t, page, f))
	}
	return b.Do("POST", html.UnescapeString(m[1]), v)
}

// TestSAMLUpstream: a tenant's people sign in through another xavyo's
// SAML identity provider, on another site (localhost against 127.0.0.1):
// xavyo as service provider signs its AuthnRequest, is sent an encrypted
// assertion, creates the person just in time with mapped attributes and
// groups; a replayed response, a response to another request or for
// another service provider, a tampered one and one posted in another
// browser are refused; single logout both ways: signing out here signs
// the person out upstream, and signing out upstream ends the session
// here.
func TestSAMLUpstream(t *testing.T) {
	t.Parallel()
	up := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	down := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true",
		fmt.Sprintf("XAVYO_ADMIN_ADDR=127.0.0.1:%d", port), fmt.Sprintf("XAVYO_ADMIN_PUBLIC_URL=http://localhost:%d", port)), apptest.Options{})
	downURL := fmt.Sprintf("http://localhost:%d", port)

	// Upstream: a tenant with Ada, allowed to sign in to the applications.
	g := apptest.NewGovTenant(t, up, "idp")
	adaID, _ := g.User("ada", "")
	ent := g.Ent("apps.sso", nil)
	resp, body := up.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "ada may sign in to the applications")
	resp, body = up.DoAs(g.Tok, "POST", "/api/v1/groups", map[string]any{"name": "eng"})
	apptest.Expect(t, resp, body, 201, "upstream group")
	upGroup := apptest.Decode[struct {
		ID string `json:"id"`
	}](t, body).ID
	resp, body = up.DoAs(g.Tok, "PUT", "/api/v1/groups/"+upGroup+"/members/"+adaID, nil)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("member: %d %s", resp.StatusCode, body)
	}
	_, idpMeta, _ := apptest.Get(t, up.HTTP, up.Admin+"/t/"+g.Slug+"/saml/metadata")

	// Downstream: the upstream as a SAML provider.
	slug := apptest.UniqueSlug("apps")
	_, tok := down.TenantAdmin(t, slug)
	resp, body = down.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": "engineers"})
	apptest.Expect(t, resp, body, 201, "group")
	engineers := apptest.Decode[struct {
		ID string `json:"id"`
	}](t, body).ID
	provider := func(key string) {
		t.Helper()
		// corp2 is registered by its metadata's URL.
		meta := map[string]any{"metadata": string(idpMeta)}
		if key == "corp2" {
			meta = map[string]any{"metadata_url": up.Admin + "/t/" + g.Slug + "/saml/metadata"}
		}
		settings := map[string]any{"jit": true, "trust_email": true,
			"mapping":        map[string]string{"email": "{email}", "given_name": "{givenName}", "family_name": "{sn}"},
			"group_mappings": []map[string]any{{"upstream": "eng", "group_id": engineers}}}
		maps.Copy(settings, meta)
		resp, body := down.DoAs(tok, "POST", "/api/v1/identity-providers", map[string]any{"key": key, "name": "Corp " + key, "kind": "saml",
			"settings": settings})
		apptest.Expect(t, resp, body, 201, "SAML provider "+key)
		if key == "corp2" {
			p := apptest.Decode[providerJSON](t, body)
			if p.Settings["metadata_fetched_at"] == nil || !strings.Contains(fmt.Sprint(p.Settings["metadata"]), "IDPSSODescriptor") {
				t.Fatalf("metadata by URL: %s", body)
			}
			resp, body = down.DoAs(tok, "POST", "/api/v1/identity-providers/"+p.ID+"/refresh", nil)
			apptest.Expect(t, resp, body, 200, "refresh")
		}
		// The upstream registers xavyo's service provider by its metadata.
		_, spMeta, _ := apptest.Get(t, down.HTTP, down.Admin+"/t/"+slug+"/federation/"+key+"/metadata")
		if !strings.Contains(string(spMeta), downURL+"/t/"+slug+"/federation/"+key+"/acs") {
			t.Fatalf("service provider metadata: %s", spMeta)
		}
		resp, body = up.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "apps-" + key, "metadata": string(spMeta),
			"entitlement_id": ent, "nameid_format": "persistent", "require_signed_requests": true,
			"attributes": []map[string]string{{"name": "email", "source": "email"}, {"name": "givenName", "source": "given_name"},
				{"name": "sn", "source": "family_name"}, {"name": "groups", "source": "groups"}}})
		apptest.Expect(t, resp, body, 201, "register xavyo's service provider "+key)
	}
	provider("corp")
	provider("corp2")
	resp, body = down.DoAs(tok, "POST", "/api/v1/identity-providers", map[string]any{"key": "bad", "kind": "saml",
		"settings": map[string]any{"metadata": "<!DOCTYPE x [<!ENTITY a \"b\">]>" + string(idpMeta)}})
	apptest.Expect(t, resp, body, 400, "metadata with a DTD")

	// toUpstream starts a sign-in and answers the upstream's sign-in page;
	// it returns the upstream's auto-posted answer page.
	toUpstream := func(b *apptest.Browser, key string) string {
		t.Helper()
		resp, page := b.Do("GET", downURL+"/t/"+slug+"/login/federation/"+key, nil)
		if resp.StatusCode != 200 || !strings.Contains(page, `id="password"`) {
			t.Fatalf("the upstream's sign-in page: %d %s", resp.StatusCode, page)
		}
		_, page = b.Do("POST", up.Admin+"/t/"+g.Slug+"/login", url.Values{"tx": {apptest.Field(t, page, "tx")}, "csrf": {apptest.Field(t, page, "csrf")},
			"login": {"ada@" + g.Slug + ".test"}, "password": {"Corr3ct-horse-battery-9"}})
		if !strings.Contains(page, "SAMLResponse") {
			t.Fatalf("no SAML response: %s", page)
		}
		return page
	}
	b := apptest.NewBrowser(t)
	answer := toUpstream(b, "corp")
	if m := formAction.FindStringSubmatch(answer); m == nil || html.UnescapeString(m[1]) != downURL+"/t/"+slug+"/federation/corp/acs" {
		t.Fatalf("the answer goes to xavyo's ACS on the other site: %v", m)
	}
	// Another browser (no binding cookie) is bounced through a same-site
	// form, then refused: nothing is used up.
	other := apptest.NewBrowser(t)
	resp, page := postForm(t, other, answer, "SAMLResponse", "RelayState")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="bounce"`) || !strings.Contains(page, `name="bounced" value="1"`) {
		t.Fatalf("bounce: %d %s", resp.StatusCode, page)
	}
	if resp, page := postForm(t, other, page, "SAMLResponse", "RelayState", "bounced"); resp.StatusCode != 401 {
		t.Fatalf("another browser: %d %s", resp.StatusCode, page)
	}
	// A tampered response is refused.
	raw, _ := base64.StdEncoding.DecodeString(apptest.Field(t, answer, "SAMLResponse"))
	tampered := strings.Replace(string(raw), "Destination=\"", "Destination=\"x", 1)
	_, _ = b.Do("GET", downURL+"/t/"+slug+"/login/federation/corp", nil) // a live attempt for its RelayState
	resp, page = b.Do("POST", downURL+"/t/"+slug+"/federation/corp/acs", url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(tampered))},
		"RelayState": {apptest.Field(t, answer, "RelayState")}})
	if resp.StatusCode != 401 {
		t.Fatalf("a tampered response: %d %s", resp.StatusCode, page)
	}

	// Signature wrapping: the honest, signed response hidden inside an
	// unsigned one that carries a forged assertion for an attacker.
	bx := apptest.NewBrowser(t)
	honest := toUpstream(bx, "corp")
	raw, _ = base64.StdEncoding.DecodeString(apptest.Field(t, honest, "SAMLResponse"))
	inResponseTo := regexp.MustCompile(`InResponseTo="([^"]+)"`).FindStringSubmatch(string(raw))[1]
	acsURL := downURL + "/t/" + slug + "/federation/corp/acs"
	now := time.Now().UTC()
	forged := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-forged"` +
		` InResponseTo="` + inResponseTo + `" Version="2.0" IssueInstant="` + now.Format(time.RFC3339) + `" Destination="` + acsURL + `">` +
		`<saml:Issuer>` + up.Admin + "/t/" + g.Slug + `/saml/metadata</saml:Issuer><samlp:Extensions>` + string(raw) + `</samlp:Extensions>` +
		`<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
		`<saml:Assertion ID="id-evil" Version="2.0" IssueInstant="` + now.Format(time.RFC3339) + `"><saml:Issuer>` + up.Admin + "/t/" + g.Slug +
		`/saml/metadata</saml:Issuer><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">attacker</saml:NameID>` +
		`<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="` + inResponseTo +
		`" Recipient="` + acsURL + `" NotOnOrAfter="` + now.Add(5*time.Minute).Format(time.RFC3339) + `"/></saml:SubjectConfirmation></saml:Subject>` +
		`<saml:Conditions NotBefore="` + now.Add(-time.Minute).Format(time.RFC3339) + `" NotOnOrAfter="` + now.Add(5*time.Minute).Format(time.RFC3339) +
		`"><saml:AudienceRestriction><saml:Audience>` + downURL + "/t/" + slug + `/federation/corp/metadata</saml:Audience></saml:AudienceRestriction>` +
		`</saml:Conditions><saml:AuthnStatement AuthnInstant="` + now.Format(time.RFC3339) + `" SessionIndex="x"><saml:AuthnContext>` +
		`<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
		`<saml:AttributeStatement><saml:Attribute Name="email"><saml:AttributeValue>attacker@evil.test</saml:AttributeValue></saml:Attribute>` +
		`</saml:AttributeStatement></saml:Assertion></samlp:Response>`
	resp, page = bx.Do("POST", acsURL, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(forged))},
		"RelayState": {apptest.Field(t, honest, "RelayState")}})
	if resp.StatusCode != 401 || !strings.Contains(page, "(signature)") {
		t.Fatalf("a wrapped signature: %d %s", resp.StatusCode, page)
	}
	if u := findUser(t, down, tok, "attacker@evil.test"); u != nil {
		t.Fatalf("a forged assertion created %+v", u)
	}

	// The browser that started it, with an honest answer.
	b = apptest.NewBrowser(t)
	answer = toUpstream(b, "corp")
	resp, page = postForm(t, b, answer, "SAMLResponse", "RelayState")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="signed-in"`) {
		t.Fatalf("SAML sign-in: %d %s", resp.StatusCode, page)
	}
	resp, body = down.DoAs(tok, "GET", "/api/v1/users?email="+url.QueryEscape("ada@"+g.Slug+".test"), nil)
	apptest.Expect(t, resp, body, 200, "users")
	if !strings.Contains(string(body), `"given_name":"ada"`) {
		t.Fatalf("just-in-time user from the assertion's attributes: %s", body)
	}
	resp, body = down.DoAs(tok, "GET", "/api/v1/groups/"+engineers+"/members", nil)
	apptest.Expect(t, resp, body, 200, "members")
	if !strings.Contains(string(body), "ada@"+g.Slug+".test") {
		t.Fatalf("mapped group: %s", body)
	}
	// The same response again: refused.
	if resp, page := postForm(t, b, answer, "SAMLResponse", "RelayState"); resp.StatusCode != 401 {
		t.Fatalf("a replayed response: %d %s", resp.StatusCode, page)
	}
	// Another service provider's response (corp2's) to corp's request.
	b2 := apptest.NewBrowser(t)
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	b2.C.CheckRedirect = noFollow
	resp, _ = b2.Do("GET", downURL+"/t/"+slug+"/login/federation/corp", nil)
	corpRelay, _ := url.Parse(resp.Header.Get("Location"))
	b2.C.CheckRedirect = nil
	answer2 := toUpstream(b2, "corp2")
	resp, page = b2.Do("POST", downURL+"/t/"+slug+"/federation/corp/acs", url.Values{"SAMLResponse": {apptest.Field(t, answer2, "SAMLResponse")},
		"RelayState": {corpRelay.Query().Get("RelayState")}})
	if resp.StatusCode != 401 || !strings.Contains(page, "refused") {
		t.Fatalf("a response for another service provider: %d %s", resp.StatusCode, page)
	}

	// Signing out here signs Ada out upstream too.
	resp, page = signOut(t, b, downURL, slug)
	if resp.StatusCode != 200 || !strings.Contains(page, "signed out") {
		t.Fatalf("sign-out: %d %s", resp.StatusCode, page)
	}
	if resp, page := b.Do("GET", downURL+"/t/"+slug+"/login/federation/corp", nil); !strings.Contains(page, `id="password"`) {
		t.Fatalf("the upstream session must have ended: %d %s", resp.StatusCode, page)
	}
	if a := audit(t, down, tok, "federation.logout"); !strings.Contains(a, `"identity_provider":"corp"`) || strings.Contains(a, `"outcome":"denied"`) {
		t.Fatalf("the upstream must have confirmed its logout: %s", a)
	}

	// Signing out upstream ends the session here.
	b3 := apptest.NewBrowser(t)
	if resp, page := postForm(t, b3, toUpstream(b3, "corp"), "SAMLResponse", "RelayState"); resp.StatusCode != 200 {
		t.Fatalf("sign-in again: %d %s", resp.StatusCode, page)
	}
	sessionsBefore := sessions(t, down, tok, adaEmail(g))
	resp, page = signOut(t, b3, up.Admin, g.Slug)
	if resp.StatusCode != 200 || !strings.Contains(page, "signed out") {
		t.Fatalf("upstream sign-out: %d %s", resp.StatusCode, page)
	}
	if after := sessions(t, down, tok, adaEmail(g)); after != sessionsBefore-1 {
		t.Fatalf("the upstream's logout must end the session here: %d live sessions, then %d", sessionsBefore, after)
	}
}

// signOut signs a browser out of a tenant on its sign-out page.
func signOut(t *testing.T, b *apptest.Browser, base, slug string) (*http.Response, string) {
	t.Helper()
	_, page := b.Do("GET", base+"/t/"+slug+"/logout", nil)
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("sign-out page: %s", page)
	}
	resp, page := b.Do("POST", base+html.UnescapeString(m[1]), url.Values{"csrf": {apptest.Field(t, page, "csrf")}, "confirm": {"yes"}})
	// A sign-out going on elsewhere leaves the form's page first (its
	// CSP covers the form's redirects), by a refresh a browser follows.
	if m := leaving.FindStringSubmatch(page); m != nil {
		to := html.UnescapeString(m[1])
		if strings.HasPrefix(to, "/") {
			to = base + to
		}
		return b.Do("GET", to, nil)
	}
	return resp, page
}

var leaving = regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`)

func adaEmail(g *apptest.GovTenant) string { return "ada@" + g.Slug + ".test" }

func audit(t *testing.T, h *apptest.Harness, tok, action string) string {
	t.Helper()
	resp, body := h.DoAs(tok, "GET", "/api/v1/audit?action="+action+"&limit=20", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	return string(body)
}

// sessions counts a person's live sessions.
func sessions(t *testing.T, h *apptest.Harness, tok, email string) int {
	t.Helper()
	u := findUser(t, h, tok, email)
	if u == nil {
		t.Fatalf("no user %s", email)
	}
	resp, body := h.DoAs(tok, "GET", "/api/v1/users/"+u.ID+"/sessions", nil)
	apptest.Expect(t, resp, body, 200, "sessions")
	return strings.Count(string(body), `"id":`)
}
