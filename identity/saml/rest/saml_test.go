package rest_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// newSP is a service provider (crewjam's) with its own key, trusting the
// metadata the identity provider serves.
func newSP(t *testing.T, h *apptest.Harness, slug, base string) *crewjam.ServiceProvider {
	t.Helper()
	key, cert := apptest.SelfSigned(t, base)
	metaURL, _ := url.Parse(h.Admin + "/t/" + slug + "/saml/metadata")
	idp, err := samlsp.FetchMetadata(context.Background(), http.DefaultClient, *metaURL)
	if err != nil {
		t.Fatalf("the IdP's metadata: %v", err)
	}
	acs, _ := url.Parse(base + "/acs")
	md, _ := url.Parse(base + "/metadata")
	slo, _ := url.Parse(base + "/slo")
	return &crewjam.ServiceProvider{EntityID: base + "/metadata", Key: key, Certificate: cert, AcsURL: *acs, MetadataURL: *md, SloURL: *slo,
		IDPMetadata: idp, SignatureMethod: dsig.RSASHA256SignatureMethod, LogoutBindings: []string{crewjam.HTTPRedirectBinding}}
}

// mustRedirect is an SP's AuthnRequest over the Redirect binding.
func mustRedirect(t *testing.T, sp *crewjam.ServiceProvider) string {
	t.Helper()
	u, err := sp.MakeRedirectAuthenticationRequest("relay-1")
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// TestSAMLSingleSignOn: a tenant's SAML IdP serves metadata; an SP
// registered by its metadata sends signed AuthnRequests (HTTP-Redirect,
// then HTTP-POST); a person without a session signs in on the pages and
// comes back to the SP with a signed assertion the SP validates (NameID
// their email, audience the SP); the next request is answered at once
// from the SSO session; an SP with an encryption key gets its assertion
// encrypted (AES-256-GCM); a person not holding the SP's entitlement gets
// RequestDenied; IdP-initiated sign-in; a replayed signed request, a
// SHA-1 signature (until the SP is marked legacy, when responses are
// signed RSA-SHA1), an unsigned request where signing is required, a DTD,
// an ACS not in the metadata, a stale request, an unknown issuer and
// another Destination are refused; single logout from one SP ends the
// session after the IdP logged out the other SP through the browser, and
// both SPs validate what they get; an SP of one tenant is unknown at
// another.
func TestSAMLSingleSignOn(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "saml")
	adaID, _ := g.User("ada", "")
	g.User("bob", "")
	ent := g.Ent("wiki.sso", map[string]any{"risk_level": "low"})
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "ada may use the wiki")

	sp := newSP(t, h, g.Slug, "https://wiki.example")
	if !strings.Contains(sp.IDPMetadata.EntityID, "/t/"+g.Slug+"/saml/metadata") {
		t.Fatalf("IdP entity id: %s", sp.IDPMetadata.EntityID)
	}
	spMeta, _ := xml.Marshal(sp.Metadata())
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "wiki", "name": "Wiki", "metadata": "<!DOCTYPE x [<!ENTITY a \"b\">]>" + string(spMeta),
		"entitlement_id": ent})
	apptest.Expect(t, resp, body, 400, "metadata with a DTD")
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "wiki", "name": "Wiki", "metadata": string(spMeta),
		"entitlement_id": ent})
	apptest.Expect(t, resp, body, 201, "register the SP")

	browser := func() *apptest.Browser { return apptest.NewBrowser(t) }
	do := func(b *apptest.Browser, method, u string, form url.Values) (*http.Response, string) {
		t.Helper()
		return b.Do(method, u, form)
	}
	field := func(page, name string) string { t.Helper(); return apptest.Field(t, page, name) }
	// authn sends an AuthnRequest with a binding and returns the page the
	// browser ends on, with the request's id.
	authn := func(c *apptest.Browser, binding string) (string, string) {
		t.Helper()
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(binding), binding, crewjam.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		if binding == crewjam.HTTPRedirectBinding {
			u, err := req.Redirect("relay-1", sp)
			if err != nil {
				t.Fatal(err)
			}
			_, page := do(c, "GET", u.String(), nil)
			return page, req.ID
		}
		doc := etree.NewDocument()
		doc.SetRoot(req.Element())
		raw, _ := doc.WriteToBytes()
		_, page := do(c, "POST", sp.GetSSOBindingLocation(binding), url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)},
			"RelayState": {"relay-1"}})
		return page, req.ID
	}
	signIn := func(c *apptest.Browser, page, who string) string {
		t.Helper()
		if !strings.Contains(page, `id="password"`) {
			t.Fatalf("not the sign-in page: %s", page)
		}
		_, page = do(c, "POST", h.Admin+"/t/"+g.Slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")},
			"login": {who + "@" + g.Slug + ".test"}, "password": {"Corr3ct-horse-battery-9"}})
		return page
	}
	assertion := func(page, id string) (*crewjam.Assertion, error) {
		t.Helper()
		if !strings.Contains(page, `action="https://wiki.example/acs"`) || field(page, "RelayState") != "relay-1" {
			t.Fatalf("not a response for the SP: %s", page)
		}
		req, _ := http.NewRequest("POST", "https://wiki.example/acs", strings.NewReader(url.Values{"SAMLResponse": {field(page, "SAMLResponse")}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_ = req.ParseForm()
		a, err := sp.ParseResponse(req, []string{id})
		var ie *crewjam.InvalidResponseError
		if errors.As(err, &ie) {
			err = fmt.Errorf("%w: %v", err, ie.PrivateErr)
		}
		return a, err
	}

	ada := browser()
	page, id := authn(ada, crewjam.HTTPRedirectBinding)
	a, err := assertion(signIn(ada, page, "ada"), id)
	if err != nil {
		t.Fatalf("ada's assertion: %v", err)
	}
	if a.Subject.NameID.Value != "ada@"+g.Slug+".test" || a.Conditions.AudienceRestrictions[0].Audience.Value != sp.EntityID {
		t.Fatalf("assertion: %+v", a.Subject.NameID)
	}
	page, id = authn(ada, crewjam.HTTPPostBinding)
	if _, err := assertion(page, id); err != nil {
		t.Fatalf("the SSO session's assertion (POST binding): %v", err)
	}

	// An SP whose metadata has an encryption key gets its assertion
	// encrypted (AES-256-GCM, the key with RSA-OAEP).
	sec := newSP(t, h, g.Slug, "https://secret.example")
	sec.EncryptionKey, sec.EncryptionCertificate = sec.Key.(*rsa.PrivateKey), sec.Certificate
	secMeta, _ := xml.Marshal(sec.Metadata())
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "secret", "metadata": string(secMeta), "entitlement_id": ent})
	apptest.Expect(t, resp, body, 201, "register an SP with an encryption key")
	secAuthn, err := sec.MakeAuthenticationRequest(sec.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	secURL, _ := secAuthn.Redirect("", sec)
	_, page = do(ada, "GET", secURL.String(), nil)
	raw, _ := base64.StdEncoding.DecodeString(field(page, "SAMLResponse"))
	if !strings.Contains(string(raw), "EncryptedAssertion") || !strings.Contains(string(raw), "aes256-gcm") || strings.Contains(string(raw), "ada@") {
		t.Fatalf("not an encrypted assertion: %s", raw)
	}
	secReq, _ := http.NewRequest("POST", "https://secret.example/acs", strings.NewReader(url.Values{"SAMLResponse": {field(page, "SAMLResponse")}}.Encode()))
	secReq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = secReq.ParseForm()
	if a, err := sec.ParseResponse(secReq, []string{secAuthn.ID}); err != nil || a.Subject.NameID.Value != "ada@"+g.Slug+".test" {
		t.Fatalf("the SP decrypts its assertion: %v", err)
	}

	bob := browser()
	page, id = authn(bob, crewjam.HTTPRedirectBinding)
	page = signIn(bob, page, "bob")
	if _, err := assertion(page, id); err == nil {
		t.Fatal("bob, not entitled, got an assertion")
	}
	raw, _ = base64.StdEncoding.DecodeString(field(page, "SAMLResponse"))
	if !strings.Contains(string(raw), crewjam.StatusRequestDenied) {
		t.Fatalf("bob's response: %s", raw)
	}
	resp, body = h.DoAs(g.Tok, "GET", "/api/v1/audit?action=saml.sso&limit=10", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	if !strings.Contains(string(body), `"outcome":"denied"`) || !strings.Contains(string(body), `"outcome":"success"`) {
		t.Fatalf("audit of SSO: %s", body)
	}

	// IdP-initiated: a link names the SP by key; the SP accepts an
	// unsolicited response only when it allows them.
	_, page = do(ada, "GET", h.Admin+"/t/"+g.Slug+"/saml/sso?sp=wiki&RelayState=relay-1", nil)
	if _, err := assertion(page, ""); err == nil {
		t.Fatal("an SP that does not allow IdP-initiated responses took one")
	}
	sp.AllowIDPInitiated = true
	if a, err := assertion(page, ""); err != nil || a.Subject.NameID.Value != "ada@"+g.Slug+".test" {
		t.Fatalf("IdP-initiated: %v", err)
	}
	sp.AllowIDPInitiated = false
	if r, _ := do(ada, "GET", h.Admin+"/t/"+g.Slug+"/saml/sso?sp=nope", nil); r.StatusCode != 404 {
		t.Fatalf("IdP-initiated to an unknown SP: %d", r.StatusCode)
	}

	// A signed request is answered once: its replay is refused.
	signed, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	su, _ := signed.Redirect("relay-1", sp)
	if _, page := do(ada, "GET", su.String(), nil); !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("a signed request: %s", page)
	}
	if r, page := do(ada, "GET", su.String(), nil); r.StatusCode != 400 || strings.Contains(page, "SAMLResponse") {
		t.Fatalf("its replay: %d %s", r.StatusCode, page)
	}

	// SHA-1 is refused unless the SP is marked legacy; then xavyo signs for
	// it with RSA-SHA1 too. An SP that must sign cannot send unsigned
	// requests.
	sp.SignatureMethod = dsig.RSASHA1SignatureMethod
	if r, page := do(ada, "GET", mustRedirect(t, sp), nil); r.StatusCode != 400 || !strings.Contains(page, "SHA-1") {
		t.Fatalf("a SHA-1 signed request: %d %s", r.StatusCode, page)
	}
	resp, body = h.DoAs(g.Tok, "GET", "/api/v1/saml-service-providers", nil)
	apptest.Expect(t, resp, body, 200, "list")
	spID := regexp.MustCompile(`"id":"([0-9a-f-]+)","key":"wiki"`).FindStringSubmatch(string(body))[1]
	resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/saml-service-providers/"+spID, map[string]any{"legacy_sha1": true})
	apptest.Expect(t, resp, body, 200, "mark the SP legacy")
	_, page = do(ada, "GET", mustRedirect(t, sp), nil)
	raw, _ = base64.StdEncoding.DecodeString(field(page, "SAMLResponse"))
	if !strings.Contains(string(raw), dsig.RSASHA1SignatureMethod) {
		t.Fatalf("the legacy SP's response is not signed with RSA-SHA1: %s", raw)
	}
	resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/saml-service-providers/"+spID, map[string]any{"legacy_sha1": false, "require_signed_requests": true})
	apptest.Expect(t, resp, body, 200, "require signed requests")
	sp.SignatureMethod = ""
	if r, page := do(ada, "GET", mustRedirect(t, sp), nil); r.StatusCode != 400 || !strings.Contains(page, "must be signed") {
		t.Fatalf("an unsigned request where signing is required: %d %s", r.StatusCode, page)
	}
	sp.SignatureMethod = dsig.RSASHA256SignatureMethod

	// XML signature wrapping, where signatures are required: a request
	// whose signed part is not the request itself is refused.
	post := func(el *etree.Element) (*http.Response, string) {
		t.Helper()
		doc := etree.NewDocument()
		doc.SetRoot(el)
		raw, _ := doc.WriteToBytes()
		return do(ada, "POST", sp.GetSSOBindingLocation(crewjam.HTTPPostBinding), url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}})
	}
	wrapped := func(what string, build func(signed *etree.Element) *etree.Element) {
		t.Helper()
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewjam.HTTPPostBinding), crewjam.HTTPPostBinding, crewjam.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		if r, page := post(build(req.Element())); r.StatusCode != 400 || strings.Contains(page, "SAMLResponse") {
			t.Fatalf("%s: %d %s", what, r.StatusCode, page)
		}
	}
	evil := func(signed *etree.Element) *etree.Element {
		e := signed.Copy()
		e.CreateAttr("ID", "id-evil")
		e.CreateAttr("ForceAuthn", "false")
		for _, sig := range e.SelectElements("Signature") {
			e.RemoveChild(sig)
		}
		return e
	}
	wrapped("an unsigned request around a signed one", func(signed *etree.Element) *etree.Element {
		e := evil(signed)
		ext := e.CreateElement("samlp:Extensions")
		ext.AddChild(signed)
		return e
	})
	wrapped("the signature moved to another request", func(signed *etree.Element) *etree.Element {
		e := evil(signed)
		for _, sig := range signed.SelectElements("Signature") {
			e.AddChild(sig.Copy())
		}
		return e
	})
	wrapped("a signed request with its signature broken", func(signed *etree.Element) *etree.Element {
		signed.CreateAttr("AssertionConsumerServiceURL", "https://evil.example/acs")
		return signed
	})
	resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/saml-service-providers/"+spID, map[string]any{"require_signed_requests": false})
	apptest.Expect(t, resp, body, 200, "signatures optional again")

	// Comment injection in a signed LogoutRequest's NameID: the signature
	// covers "ada@….test.evil.example"; a reader of the first text node
	// would see ada. The IdP goes by what is signed: ada stays signed in.
	injected, err := sp.MakeLogoutRequest(sp.GetSLOBindingLocation(crewjam.HTTPPostBinding), "x")
	if err != nil {
		t.Fatal(err)
	}
	injected.Signature = nil
	lel := injected.Element()
	lel.FindElement("./NameID").SetText("ada@" + g.Slug + ".test.evil.example")
	ks := dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{sp.Certificate.Raw}, PrivateKey: sp.Key})
	sctx := dsig.NewDefaultSigningContext(ks)
	sctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := sctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	signedLR, err := sctx.SignEnveloped(lel)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range signedLR.Child { // the signature after Issuer, as the schema orders it
		if el, ok := tok.(*etree.Element); ok && el.Tag == "Signature" {
			signedLR.RemoveChildAt(i)
			signedLR.InsertChildAt(1, el)
			break
		}
	}
	// Then the comment: canonicalization drops it, so the signature holds.
	nameID := signedLR.FindElement("./NameID")
	nameID.SetText("ada@" + g.Slug + ".test")
	nameID.CreateComment("")
	nameID.CreateText(".evil.example")
	ldoc := etree.NewDocument()
	ldoc.SetRoot(signedLR)
	lraw, _ := ldoc.WriteToBytes()
	if !strings.Contains(string(lraw), "<!---->") {
		t.Fatalf("no comment in the NameID: %s", lraw)
	}
	do(ada, "POST", sp.GetSLOBindingLocation(crewjam.HTTPPostBinding), url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(lraw)}})
	if _, page := do(ada, "GET", mustRedirect(t, sp), nil); !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("a LogoutRequest naming someone else (by comment injection) ended ada's session: %s", page)
	}

	// A DTD (entity expansion, external entities) in a message is refused.
	xxe := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-1" Version="2.0" ` +
		`IssueInstant="` + time.Now().UTC().Format(time.RFC3339) + `"><saml:Issuer>&x;</saml:Issuer></samlp:AuthnRequest>`
	if r, page := do(ada, "POST", h.Admin+"/t/"+g.Slug+"/saml/sso", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(xxe))}}); r.StatusCode != 400 ||
		strings.Contains(page, "root:") {
		t.Fatalf("a request with a DTD: %d %s", r.StatusCode, page)
	}

	// Single logout from the SP (a signed LogoutRequest): the SSO session
	// ends and the SP validates the IdP's signed LogoutResponse; the next
	// request needs a sign-in again.
	lu, err := sp.MakeRedirectLogoutRequest("ada@"+g.Slug+".test", "bye")
	if err != nil || lu.Query().Get("Signature") == "" {
		t.Fatalf("logout request: %v %s", err, lu)
	}
	deflated, _ := base64.StdEncoding.DecodeString(lu.Query().Get("SAMLRequest"))
	inflated, _ := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	logoutID := regexp.MustCompile(` ID="([^"]+)"`).FindStringSubmatch(string(inflated))[1]
	r, _ := do(ada, "GET", lu.String(), nil)
	// The session also signed in to secret.example: the IdP sends it a
	// signed LogoutRequest first (through the browser), then answers wiki.
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != 302 || loc == nil || loc.Host != "secret.example" {
		t.Fatalf("single logout to the other SP: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	secLogout, _ := http.NewRequest("GET", loc.String(), nil)
	lreq, err := sec.ValidateLogoutRequest(secLogout)
	if err != nil || lreq.NameID == nil || lreq.NameID.Value != "ada@"+g.Slug+".test" {
		t.Fatalf("the IdP's LogoutRequest to the other SP: %v", err)
	}
	secDone, err := sec.MakeRedirectLogoutResponse(lreq.ID, loc.Query().Get("RelayState"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ = do(ada, "GET", secDone.String(), nil)
	loc, _ = url.Parse(r.Header.Get("Location"))
	if r.StatusCode != 302 || loc == nil || loc.Host != "wiki.example" || loc.Path != "/slo" {
		t.Fatalf("single logout: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	lr, _ := http.NewRequest("GET", loc.String(), nil)
	if _, err := sp.ParseLogoutResponse(lr, []string{logoutID}); err != nil {
		var ie *crewjam.InvalidResponseError
		if errors.As(err, &ie) {
			err = fmt.Errorf("%w: %v", err, ie.PrivateErr)
		}
		t.Fatalf("the IdP's LogoutResponse: %v", err)
	}
	if page, _ = authn(ada, crewjam.HTTPRedirectBinding); !strings.Contains(page, `id="password"`) {
		t.Fatalf("after single logout: %s", page)
	}

	// Requests the IdP refuses: an ACS not in the SP's metadata, an old
	// request, a request of an unknown issuer.
	refused := func(what string, mutate func(r *crewjam.AuthnRequest)) {
		t.Helper()
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		mutate(req)
		u, err := req.Redirect("", sp)
		if err != nil {
			t.Fatal(err)
		}
		to, _ := url.Parse(sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding)) // sent to xavyo whatever it says
		to.RawQuery = u.RawQuery
		r, page := do(ada, "GET", to.String(), nil)
		if strings.Contains(page, "SAMLResponse") && strings.Contains(page, `action="https://evil.example`) {
			t.Fatalf("%s: a response went to %s", what, page)
		}
		if r.StatusCode < 400 && !strings.Contains(page, "status:Requester") {
			t.Fatalf("%s: %d %s", what, r.StatusCode, page)
		}
	}
	refused("an ACS not in the metadata", func(r *crewjam.AuthnRequest) { r.AssertionConsumerServiceURL = "https://evil.example/acs" })
	refused("an old request", func(r *crewjam.AuthnRequest) { r.IssueInstant = time.Now().Add(-time.Hour) })
	refused("an unknown issuer", func(r *crewjam.AuthnRequest) { r.Issuer.Value = "https://evil.example/metadata" })
	refused("another destination", func(r *crewjam.AuthnRequest) { r.Destination = "https://evil.example/sso" })

	// Another tenant does not know the SP.
	other := apptest.NewGovTenant(t, h, "saml2")
	sp2 := newSP(t, h, other.Slug, "https://wiki.example")
	req, _ := sp2.MakeAuthenticationRequest(sp2.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	u, _ := req.Redirect("", sp2)
	if r, _ := do(browser(), "GET", u.String(), nil); r.StatusCode < 400 {
		t.Fatalf("an SP of another tenant: %d", r.StatusCode)
	}
}

// TestSAMLKeyRollover: a tenant's IdP starts with one signing key; a new
// one is published in the metadata before it signs; once activated, an SP
// that refreshed the metadata accepts the responses and one that kept the
// old copy does not; the old key is retired from the metadata, and the
// signing key cannot be.
func TestSAMLKeyRollover(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "roll")
	adaID, _ := g.User("ada", "")
	ent := g.Ent("app.sso", nil)
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "ada may use the app")
	old := newSP(t, h, g.Slug, "https://app.example")
	old.AllowIDPInitiated = true
	meta, _ := xml.Marshal(old.Metadata())
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "app", "metadata": string(meta), "entitlement_id": ent})
	apptest.Expect(t, resp, body, 201, "register the SP")
	type key struct {
		ID      string `json:"id"`
		Signing bool   `json:"signing"`
	}
	keys := func() []key {
		t.Helper()
		resp, body := h.DoAs(g.Tok, "GET", "/api/v1/saml-keys", nil)
		apptest.Expect(t, resp, body, 200, "keys")
		return apptest.Decode[[]key](t, body)
	}
	if k := keys(); len(k) != 1 || !k[0].Signing {
		t.Fatalf("first keys: %+v", k)
	}
	first := keys()[0].ID
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-keys", nil)
	apptest.Expect(t, resp, body, 201, "publish the next key")
	next := apptest.Decode[key](t, body)
	if next.Signing || len(keys()) != 2 {
		t.Fatalf("the next key: %+v %+v", next, keys())
	}
	refreshed := newSP(t, h, g.Slug, "https://app.example") // the same SP, having fetched the metadata again: both certificates
	refreshed.Key, refreshed.Certificate, refreshed.AllowIDPInitiated = old.Key, old.Certificate, true
	if n := len(refreshed.IDPMetadata.IDPSSODescriptors[0].KeyDescriptors); n < 2 {
		t.Fatalf("the metadata publishes %d keys", n)
	}
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-keys/"+next.ID+"/activate", nil)
	apptest.Expect(t, resp, body, 204, "activate the next key")
	if k := keys(); k[0].ID != next.ID || !k[0].Signing || k[1].Signing {
		t.Fatalf("after activation: %+v", k)
	}

	// A response, IdP-initiated (the person signs in first).
	b := apptest.NewBrowser(t)
	get := func(u string, form url.Values) string {
		t.Helper()
		method := "GET"
		if form != nil {
			method = "POST"
		}
		_, page := b.Do(method, u, form)
		return page
	}
	field := func(page, name string) string { t.Helper(); return apptest.Field(t, page, name) }
	page := get(h.Admin+"/t/"+g.Slug+"/saml/sso?sp=app", nil)
	page = get(h.Admin+"/t/"+g.Slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "login": {"ada@" + g.Slug + ".test"},
		"password": {"Corr3ct-horse-battery-9"}})
	parse := func(sp *crewjam.ServiceProvider) error {
		req, _ := http.NewRequest("POST", "https://app.example/acs", strings.NewReader(url.Values{"SAMLResponse": {field(page, "SAMLResponse")}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_ = req.ParseForm()
		_, err := sp.ParseResponse(req, nil)
		var ie *crewjam.InvalidResponseError
		if errors.As(err, &ie) {
			err = fmt.Errorf("%w: %v", err, ie.PrivateErr)
		}
		return err
	}
	if err := parse(refreshed); err != nil {
		t.Fatalf("an SP that refreshed the metadata: %v", err)
	}
	if err := parse(old); err == nil {
		t.Fatal("an SP with the old metadata accepted the new key's signature")
	}

	resp, body = h.DoAs(g.Tok, "DELETE", "/api/v1/saml-keys/"+next.ID, nil)
	apptest.Expect(t, resp, body, 409, "retire the signing key")
	resp, body = h.DoAs(g.Tok, "DELETE", "/api/v1/saml-keys/"+first, nil)
	apptest.Expect(t, resp, body, 204, "retire the old key")
	if k := keys(); len(k) != 1 || k[0].ID != next.ID {
		t.Fatalf("after retiring: %+v", k)
	}
}

// TestSAMLMetadataByURL: a service provider registered by its metadata
// URL: refused for a loopback address unless egress to private addresses
// is allowed; fetched then, and fetched again on demand (a new ACS is
// taken; metadata of another entity changes nothing).
func TestSAMLMetadataByURL(t *testing.T) {
	t.Parallel()
	var served atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write([]byte(served.Load().(string)))
	}))
	defer srv.Close()
	metadata := func(entity, acs string) string {
		return `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + entity + `"><SPSSODescriptor ` +
			`protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><AssertionConsumerService ` +
			`Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="` + acs + `" index="1"/></SPSSODescriptor></EntityDescriptor>`
	}
	served.Store(metadata("https://crm.example/sp", "https://crm.example/acs"))

	strict := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, strict, "murl")
	ent := g.Ent("crm.sso", nil)
	resp, body := strict.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "crm", "metadata_url": srv.URL + "/metadata",
		"entitlement_id": ent})
	if resp.StatusCode != 403 || !strings.Contains(string(body), "egress") {
		t.Fatalf("metadata on a loopback address without private egress: %d %s", resp.StatusCode, body)
	}

	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	g = apptest.NewGovTenant(t, h, "murl")
	ent = g.Ent("crm.sso", nil)
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "crm", "metadata_url": srv.URL + "/metadata",
		"metadata": metadata("https://crm.example/sp", "https://crm.example/acs"), "entitlement_id": ent})
	apptest.Expect(t, resp, body, 400, "both metadata and metadata_url")
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "crm", "metadata_url": srv.URL + "/metadata",
		"entitlement_id": ent})
	apptest.Expect(t, resp, body, 201, "register by URL")
	sp := apptest.Decode[struct {
		ID          string   `json:"id"`
		EntityID    string   `json:"entity_id"`
		ACS         []string `json:"acs_urls"`
		RefreshedAt *string  `json:"refreshed_at"`
	}](t, body)
	if sp.EntityID != "https://crm.example/sp" || sp.RefreshedAt == nil {
		t.Fatalf("registered: %s", body)
	}
	served.Store(metadata("https://crm.example/sp", "https://crm.example/acs2"))
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers/"+sp.ID+"/refresh", nil)
	apptest.Expect(t, resp, body, 200, "refresh")
	if !strings.Contains(string(body), "https://crm.example/acs2") {
		t.Fatalf("after refresh: %s", body)
	}
	served.Store(metadata("https://other.example/sp", "https://other.example/acs"))
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers/"+sp.ID+"/refresh", nil)
	apptest.Expect(t, resp, body, 400, "metadata of another entity")
	resp, body = h.DoAs(g.Tok, "GET", "/api/v1/saml-service-providers/"+sp.ID, nil)
	apptest.Expect(t, resp, body, 200, "get")
	if !strings.Contains(string(body), `"entity_id":"https://crm.example/sp"`) {
		t.Fatalf("changed by a refused refresh: %s", body)
	}
}

// TestSAMLAttributesAndNameID: an SP's attribute mappings (email, given
// name, groups) make the assertion's attributes, its NameID source the
// NameID; its clock skew bounds how old its requests may be.
func TestSAMLAttributesAndNameID(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "attr")
	adaID, _ := g.User("ada", "")
	ent := g.Ent("hr.sso", nil)
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "ada may use HR")
	for _, name := range []string{"Payroll", "Staff"} {
		resp, body = h.DoAs(g.Tok, "POST", "/api/v1/groups", map[string]any{"name": name})
		apptest.Expect(t, resp, body, 201, "group")
		gid := apptest.Decode[struct{ ID string }](t, body).ID
		resp, body = h.DoAs(g.Tok, "PUT", "/api/v1/groups/"+gid+"/members/"+adaID, nil)
		apptest.Expect(t, resp, body, 201, "member")
	}
	sp := newSP(t, h, g.Slug, "https://hr.example")
	meta, _ := xml.Marshal(sp.Metadata())
	mappings := []map[string]any{{"name": "urn:oid:0.9.2342.19200300.100.1.3", "source": "email"}, {"name": "givenName", "source": "given_name"},
		{"name": "memberOf", "source": "groups"}}
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "hr", "metadata": string(meta), "entitlement_id": ent,
		"nameid_format": "persistent", "attributes": []map[string]any{{"name": "x", "source": "password"}}})
	apptest.Expect(t, resp, body, 400, "an attribute of an unknown source")
	resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": "hr", "metadata": string(meta), "entitlement_id": ent,
		"nameid_format": "persistent", "attributes": mappings, "clock_skew_seconds": 30})
	apptest.Expect(t, resp, body, 201, "register the SP")

	b := apptest.NewBrowser(t)
	get := func(u string, form url.Values) (int, string) {
		t.Helper()
		method := "GET"
		if form != nil {
			method = "POST"
		}
		r, page := b.Do(method, u, form)
		return r.StatusCode, page
	}
	field := func(page, name string) string { t.Helper(); return apptest.Field(t, page, name) }
	request := func(age time.Duration) (*crewjam.AuthnRequest, string) {
		t.Helper()
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
		if err != nil {
			t.Fatal(err)
		}
		req.IssueInstant = time.Now().Add(-age)
		u, err := req.Redirect("", sp)
		if err != nil {
			t.Fatal(err)
		}
		return req, u.String()
	}
	req, u := request(0)
	_, page := get(u, nil)
	_, page = get(h.Admin+"/t/"+g.Slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "login": {"ada@" + g.Slug + ".test"},
		"password": {"Corr3ct-horse-battery-9"}})
	r, _ := http.NewRequest("POST", "https://hr.example/acs", strings.NewReader(url.Values{"SAMLResponse": {field(page, "SAMLResponse")}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	a, err := sp.ParseResponse(r, []string{req.ID})
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject.NameID.Value != adaID || a.Subject.NameID.Format != "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" {
		t.Fatalf("NameID: %+v", a.Subject.NameID)
	}
	got := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			for _, v := range at.Values {
				got[at.Name] = append(got[at.Name], v.Value)
			}
		}
	}
	if apptest.JSON(got) != `{"givenName":["ada"],"memberOf":["Payroll","Staff"],"urn:oid:0.9.2342.19200300.100.1.3":["ada@`+g.Slug+`.test"]}` {
		t.Fatalf("attributes: %s", apptest.JSON(got))
	}

	// Its clock skew: 30 s.
	_, u = request(60 * time.Second)
	if st, page := get(u, nil); st != 400 || !strings.Contains(page, "IssueInstant") {
		t.Fatalf("a request 60 s old for an SP allowing 30 s: %d %s", st, page)
	}
	_, u = request(10 * time.Second)
	if _, page := get(u, nil); !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("a request 10 s old: %s", page)
	}
	// Its age is judged when it arrived, not after the sign-in it waits
	// for: 27 s old at arrival, 31 s when the person has signed in.
	b = apptest.NewBrowser(t)
	_, u = request(27 * time.Second)
	_, page = get(u, nil)
	time.Sleep(4 * time.Second)
	_, page = get(h.Admin+"/t/"+g.Slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")}, "login": {"ada@" + g.Slug + ".test"},
		"password": {"Corr3ct-horse-battery-9"}})
	if !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("a request that waited for a sign-in: %s", page)
	}
}

// TestSAMLSignOutAtXavyo: a person signed in to two SAML apps signs out
// on xavyo's sign-out page: each app gets a signed LogoutRequest through
// the browser and answers, then the sign-out finishes (the signed-out
// page) and the SSO session is gone.
func TestSAMLSignOutAtXavyo(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "out")
	adaID, _ := g.User("ada", "")
	ent := g.Ent("apps.sso", nil)
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "ada may use the apps")
	sps := map[string]*crewjam.ServiceProvider{}
	for _, name := range []string{"one", "two"} {
		sp := newSP(t, h, g.Slug, "https://"+name+".example")
		sps[name+".example"] = sp
		meta, _ := xml.Marshal(sp.Metadata())
		resp, body = h.DoAs(g.Tok, "POST", "/api/v1/saml-service-providers", map[string]any{"key": name, "metadata": string(meta), "entitlement_id": ent})
		apptest.Expect(t, resp, body, 201, "register "+name)
	}
	b := apptest.NewBrowser(t)
	do := func(method, u string, form url.Values) (*http.Response, string) {
		t.Helper()
		return b.Do(method, u, form)
	}
	field := func(page, name string) string { t.Helper(); return apptest.Field(t, page, name) }
	_, page := do("GET", mustRedirect(t, sps["one.example"]), nil)
	_, page = do("POST", h.Admin+"/t/"+g.Slug+"/login", url.Values{"tx": {field(page, "tx")}, "csrf": {field(page, "csrf")},
		"login": {"ada@" + g.Slug + ".test"}, "password": {"Corr3ct-horse-battery-9"}})
	if !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("signed in to one: %s", page)
	}
	if _, page = do("GET", mustRedirect(t, sps["two.example"]), nil); !strings.Contains(page, "SAMLResponse") {
		t.Fatalf("signed in to two: %s", page)
	}

	_, page = do("GET", h.Admin+"/t/"+g.Slug+"/logout", nil)
	r, page := do("POST", h.Admin+"/t/"+g.Slug+"/end_session", url.Values{"csrf": {field(page, "csrf")}, "confirm": {"yes"}}) // the form's action
	// The form's answer leaves its page (whose CSP form-action covers the
	// form's redirects) by a refresh to the first application.
	refresh := regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`).FindStringSubmatch(page)
	if r.StatusCode != 200 || refresh == nil {
		t.Fatalf("single logout from xavyo: %d %s", r.StatusCode, page)
	}
	seen := map[string]bool{}
	for i := range 2 {
		next := r.Header.Get("Location")
		if i == 0 {
			next = html.UnescapeString(refresh[1])
		}
		loc, _ := url.Parse(next)
		sp := sps[loc.Host]
		if (i > 0 && r.StatusCode != 302) || sp == nil || seen[loc.Host] {
			t.Fatalf("single logout from xavyo: %d %s %s", r.StatusCode, r.Header.Get("Location"), page)
		}
		seen[loc.Host] = true
		in, _ := http.NewRequest("GET", loc.String(), nil)
		lreq, err := sp.ValidateLogoutRequest(in)
		if err != nil || lreq.NameID == nil || lreq.NameID.Value != "ada@"+g.Slug+".test" {
			t.Fatalf("the LogoutRequest to %s: %v", loc.Host, err)
		}
		answer, err := sp.MakeRedirectLogoutResponse(lreq.ID, loc.Query().Get("RelayState"))
		if err != nil {
			t.Fatal(err)
		}
		r, page = do("GET", answer.String(), nil)
	}
	if r.StatusCode != 200 || !strings.Contains(page, "You are signed out") {
		t.Fatalf("after the apps signed out: %d %s", r.StatusCode, page)
	}
	if _, page = do("GET", mustRedirect(t, sps["one.example"]), nil); !strings.Contains(page, `id="password"`) {
		t.Fatalf("the SSO session outlived the sign-out: %s", page)
	}
	resp, body = h.DoAs(g.Tok, "GET", "/api/v1/audit?action=saml.slo&limit=10", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	if !strings.Contains(string(body), "single logout from xavyo") {
		t.Fatalf("audit: %s", body)
	}
}
