package rest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// certificate makes a client certificate for subject, signed by parent
// (self-signed when nil).
func certificate(t *testing.T, subject pkix.Name, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}
}

// TestRelyingPartyCertificates: web applications authenticate at the
// mTLS token endpoint with a certificate (RFC 8705): tls_client_auth by
// the subject DN of a certificate from a CA the deployment trusts,
// self_signed_tls_client_auth by a certificate they registered; tokens
// are bound to it when they asked. Another subject, another certificate,
// or no certificate at the admin plane's endpoint fail.
func TestRelyingPartyCertificates(t *testing.T) {
	dir := t.TempDir()
	caCert, caPair := certificate(t, pkix.Name{CommonName: "Example partners CA"}, nil, nil, true)
	caFile := filepath.Join(dir, "partners.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(apptest.Env(t, store.SQLite, filepath.Join(dir, "data")), "XAVYO_AGENT_TLS_CLIENT_CA_FILE="+caFile)
	h := apptest.Start(t, env, apptest.Options{})
	slug := apptest.UniqueSlug("rpc")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@rpc.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	const cb = "https://wiki.example/cb"

	caKey := caPair.PrivateKey.(*ecdsa.PrivateKey)
	_, wikiPair := certificate(t, pkix.Name{CommonName: "wiki", Organization: []string{"Example"}}, caCert, caKey, false)
	_, otherPair := certificate(t, pkix.Name{CommonName: "intruder", Organization: []string{"Example"}}, caCert, caKey, false)
	selfCert, selfPair := certificate(t, pkix.Name{CommonName: "blog"}, nil, nil, false)
	_, strangerPair := certificate(t, pkix.Name{CommonName: "blog"}, nil, nil, false)
	jwk, _ := jose.JSONWebKey{Key: selfPair.PrivateKey.(*ecdsa.PrivateKey).Public(), KeyID: "blog", Certificates: []*x509.Certificate{selfCert}}.MarshalJSON()

	register := func(v map[string]any) string {
		t.Helper()
		v["redirect_uris"], v["first_party"] = []string{cb}, true
		resp, body := h.DoAs(tok, "POST", "/api/v1/clients", v)
		apptest.Expect(t, resp, body, 201, "register "+v["name"].(string))
		return apptest.Decode[struct {
			ClientID string `json:"client_id"`
		}](t, body).ClientID
	}
	wiki := register(map[string]any{"name": "Wiki", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "cn=WIKI, o=example"})
	wiki2 := register(map[string]any{"name": "Wiki2", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=wiki,O=Example"})
	// The RDNs in another order are another name.
	reversed := register(map[string]any{"name": "Reversed", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "O=Example,CN=wiki"})
	blog := register(map[string]any{"name": "Blog", "token_endpoint_auth_method": "self_signed_tls_client_auth",
		"jwks": map[string]any{"keys": []json.RawMessage{jwk}}, "tls_client_certificate_bound_access_tokens": true})

	br := newBrowser(t, h, slug, "ada@rpc.test", "Analytical-engine-1843")
	codeFor := func(clientID string) string {
		t.Helper()
		q, resp, page := br.authorize(clientID, cb)
		if q.Get("code") == "" {
			t.Fatalf("sign-in for %s: %d %s", clientID, resp.StatusCode, page)
		}
		return q.Get("code")
	}
	redeem := func(c *http.Client, clientID, code string) (int, map[string]any) {
		t.Helper()
		v := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code}, "redirect_uri": {cb}, "code_verifier": {testVerifier}}
		resp, err := c.Post(h.Agent+"/t/"+slug+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	// tls_client_auth: the subject matches whatever the case and spacing;
	// another subject from the same CA does not.
	if st, out := redeem(h.MTLSClient(wikiPair), reversed, codeFor(reversed)); st != 401 {
		t.Fatalf("the subject's RDNs in another order: %d %v", st, out)
	}
	for _, clientID := range []string{wiki, wiki2} {
		c := codeFor(clientID)
		if st, out := redeem(h.MTLSClient(otherPair), clientID, c); st != 401 {
			t.Fatalf("another subject of the trusted CA: %d %v", st, out)
		}
		if st, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {c},
			"redirect_uri": {cb}, "code_verifier": {testVerifier}}, "", ""); st != 401 {
			t.Fatalf("at the admin plane without a certificate: %d %v", st, out)
		}
		st, out := redeem(h.MTLSClient(wikiPair), clientID, c)
		if st != 200 || out["id_token"] == nil {
			t.Fatalf("tls_client_auth: %d %v", st, out)
		}
		if cnf := apptest.JWTClaims(t, out["access_token"].(string))["cnf"]; cnf != nil {
			t.Fatalf("a token bound though the client did not ask: %v", cnf)
		}
	}

	// self_signed_tls_client_auth with bound tokens, for the code and for
	// refreshing.
	c := codeFor(blog)
	if st, out := redeem(h.MTLSClient(strangerPair), blog, c); st != 401 {
		t.Fatalf("a certificate the client did not register: %d %v", st, out)
	}
	if st, out := redeem(h.MTLSClient(wikiPair), blog, c); st != 401 {
		t.Fatalf("a CA-issued certificate for a self-signed client: %d %v", st, out)
	}
	st, out := redeem(h.MTLSClient(selfPair), blog, c)
	sum := sha256.Sum256(selfCert.Raw)
	thumb := base64.RawURLEncoding.EncodeToString(sum[:])
	if cnf, _ := apptest.JWTClaims(t, out["access_token"].(string))["cnf"].(map[string]any); st != 200 || cnf["x5t#S256"] != thumb {
		t.Fatalf("self_signed_tls_client_auth: %d %v", st, out)
	}
	v := url.Values{"grant_type": {"refresh_token"}, "client_id": {blog}, "refresh_token": {out["refresh_token"].(string)}}
	if st, _ := h.Form("/t/"+slug+"/token", v, "", ""); st != 401 {
		t.Fatalf("refresh at the admin plane without the certificate: %d", st)
	}
	resp, err := h.MTLSClient(selfPair).Post(h.Agent+"/t/"+slug+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var refreshed map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&refreshed)
	resp.Body.Close()
	if cnf, _ := apptest.JWTClaims(t, refreshed["access_token"].(string))["cnf"].(map[string]any); resp.StatusCode != 200 || cnf["x5t#S256"] != thumb {
		t.Fatalf("refresh over mTLS: %d %v", resp.StatusCode, refreshed)
	}
}

// TestFrontchannelLogout: signing out loads each front-channel logout URI
// of the relying parties the session signed the person in to (with iss
// and sid where asked) in frames the page's CSP allows, then goes back to
// the registered address.
func TestFrontchannelLogout(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("fc")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@fc.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	register := func(v map[string]any) string {
		t.Helper()
		v["first_party"] = true
		resp, body := h.DoAs(tok, "POST", "/api/v1/clients", v)
		apptest.Expect(t, resp, body, 201, "register")
		return apptest.Decode[struct {
			ClientID string `json:"client_id"`
		}](t, body).ClientID
	}
	mail := register(map[string]any{"name": "Mail", "redirect_uris": []string{"https://mail.example/cb"}, "post_logout_redirect_uris": []string{"https://mail.example/bye"},
		"frontchannel_logout_uri": "https://mail.example/fc?x=1", "frontchannel_logout_session_required": true})
	chat := register(map[string]any{"name": "Chat", "redirect_uris": []string{"https://chat.example/cb"}, "frontchannel_logout_uri": "https://chat.example/fc"})
	quiet := register(map[string]any{"name": "Quiet", "redirect_uris": []string{"https://quiet.example/cb"}})

	br := newBrowser(t, h, slug, "ada@fc.test", "Analytical-engine-1843")
	id := br.tokens(mail, "https://mail.example/cb")["id_token"].(string)
	br.tokens(chat, "https://chat.example/cb")
	br.tokens(quiet, "https://quiet.example/cb")
	sid := apptest.JWTClaims(t, id)["sid"].(string)
	iss := h.App.Config().Admin.PublicURL + "/t/" + slug

	resp, page := br.do("GET", h.Admin+"/t/"+slug+"/end_session?"+url.Values{"id_token_hint": {id}, "post_logout_redirect_uri": {"https://mail.example/bye"},
		"state": {"s&1"}}.Encode(), nil)
	mailFrame := "https://mail.example/fc?" + url.Values{"iss": {iss}, "sid": {sid}, "x": {"1"}}.Encode()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{`src="` + strings.ReplaceAll(mailFrame, "&", "&amp;") + `"`, `src="https://chat.example/fc"`,
		`href="https://mail.example/bye?state=s%261"`, `<script nonce="`} {
		if resp.StatusCode != 200 || !strings.Contains(page, want) {
			t.Fatalf("sign-out page lacks %s: %d %s", want, resp.StatusCode, page)
		}
	}
	if strings.Contains(page, "quiet.example") || !regexp.MustCompile(`frame-src (https://mail\.example https://chat\.example|https://chat\.example https://mail\.example);`).MatchString(csp) ||
		!strings.Contains(csp, "script-src 'nonce-") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("sign-out page: CSP %q; %s", csp, page)
	}
	if q, _, _ := br.authorize(chat, "https://chat.example/cb", "prompt", "none"); q.Get("error") != "login_required" {
		t.Fatalf("after signing out: %v", q)
	}
}

// TestAgentDeviceGrant: an agent started by a person asks for a device
// authorization with its own credentials; the person allows it on the
// device page (which says it is an agent); the agent's token names the
// person as subject and the agent as actor, and ends with the person's
// SSO session.
func TestAgentDeviceGrant(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("adg")
	_, tok := h.TenantAdmin(t, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	owner := apptest.Decode[userJSON](t, body)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "helper", "name": "Helper", "owner_id": owner.ID})
	apptest.Expect(t, resp, body, 201, "agent")
	agent := apptest.Decode[apptest.Agent](t, body)
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@adg.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	ada := apptest.Decode[userJSON](t, body).ID

	if st, out := h.Form("/t/"+slug+"/device_authorization", url.Values{"scope": {"mcp"}}, agent.ClientID, "wrong"); st != 401 {
		t.Fatalf("an agent with a wrong secret: %d %v", st, out)
	}
	st, d := h.Form("/t/"+slug+"/device_authorization", url.Values{"scope": {"mcp"}}, agent.ClientID, agent.ClientSecret)
	if st != 200 || d["user_code"] == nil {
		t.Fatalf("device authorization by an agent: %d %v", st, d)
	}
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {d["device_code"].(string)}}
	if st, out := h.Form("/t/"+slug+"/token", poll, agent.ClientID, agent.ClientSecret); st != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", st, out)
	}

	br := newBrowser(t, h, slug, "ada@adg.test", "Analytical-engine-1843")
	code := d["user_code"].(string)
	// Not signed in: the sign-in page, then back to the device page.
	resp, page := br.do("GET", h.Admin+"/t/"+slug+"/device?user_code="+code, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("device page: %d %s", resp.StatusCode, page)
	}
	resp, page = br.submit(page, url.Values{"login": {"ada@adg.test"}, "password": {"Analytical-engine-1843"}})
	if resp.StatusCode != 200 || !strings.Contains(page, "The agent <strong>Helper</strong>") {
		t.Fatalf("the decision page: %d %s", resp.StatusCode, page)
	}
	resp, page = br.submit(page, url.Values{"decision": {"allow"}})
	if resp.StatusCode != 200 || !strings.Contains(page, "connected") {
		t.Fatalf("allow: %d %s", resp.StatusCode, page)
	}
	time.Sleep(5 * time.Second) // the polling interval
	if st, out := h.Form("/t/"+slug+"/token", poll, "", ""); st != 401 {
		t.Fatalf("the agent's device code without its credentials: %d %v", st, out)
	}
	st, out := h.Form("/t/"+slug+"/token", poll, agent.ClientID, agent.ClientSecret)
	if st != 200 || out["refresh_token"] != nil {
		t.Fatalf("the agent's token: %d %v", st, out)
	}
	c := apptest.JWTClaims(t, out["access_token"].(string))
	act, _ := c["act"].(map[string]any)
	if c["sub"] != ada || c["client_id"] != agent.ClientID || act["sub"] != agent.ID || c["scope"] != "mcp" {
		t.Fatalf("the agent's token: %v", c)
	}
	if st, again := h.Form("/t/"+slug+"/token", poll, agent.ClientID, agent.ClientSecret); st != 400 || again["error"] != "invalid_grant" {
		t.Fatalf("the device code twice: %d %v", st, again)
	}
	// The person signs out: the agent's token ends with the session.
	introspect := func() bool {
		_, r := h.Form("/t/"+slug+"/introspect", url.Values{"token": {out["access_token"].(string)}}, agent.ClientID, agent.ClientSecret)
		return r["active"] == true
	}
	if !introspect() {
		t.Fatal("the agent's token is not active")
	}
	resp, page = br.do("GET", h.Admin+"/t/"+slug+"/logout", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `value="yes"`) {
		t.Fatalf("sign-out page: %d %s", resp.StatusCode, page)
	}
	if resp, page = br.submit(page, url.Values{"confirm": {"yes"}}); resp.StatusCode != 200 {
		t.Fatalf("sign out: %d %s", resp.StatusCode, page)
	}
	if introspect() {
		t.Fatal("the agent's token outlived the person's session")
	}
}
