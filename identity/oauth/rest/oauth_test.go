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
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestOAuthTokenEndpoint: metadata at every well-known form; client
// credentials (Basic and form); resource indicators; scope limits; token
// exchange with act, nested for chains; introspection; revocation; a
// client at another tenant's issuer; secret guessing slowed down.
func TestOAuthTokenEndpoint(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
			slug, other := apptest.UniqueSlug("oa"), apptest.UniqueSlug("ob")
			_, tok := h.TenantAdmin(t, slug)
			h.TenantAdmin(t, other)
			_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
			me := apptest.Decode[userJSON](t, body)
			newNHI := func(v map[string]any) apptest.Agent {
				v["owner_id"] = me.ID
				resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", v)
				apptest.Expect(t, resp, body, 201, "create NHI")
				return apptest.Decode[apptest.Agent](t, body)
			}
			agent := newNHI(map[string]any{"kind": "agent", "slug": "planner", "name": "Planner"})
			agent2 := newNHI(map[string]any{"kind": "agent", "slug": "executor", "name": "Executor"})
			newNHI(map[string]any{"kind": "tool_server", "slug": "github", "name": "GitHub",
				"profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": "https://mcp.example.test/mcp"}}})
			iss := h.Admin + "/t/" + slug

			// Metadata, four ways.
			for _, p := range []string{"/t/" + slug + "/.well-known/oauth-authorization-server", "/t/" + slug + "/.well-known/openid-configuration",
				"/.well-known/oauth-authorization-server/t/" + slug, "/.well-known/openid-configuration/t/" + slug} {
				resp, body := h.DoAs("", "GET", p, nil)
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"issuer":"`+iss+`"`) || !strings.Contains(string(body), `"token_endpoint":"`+iss+`/token"`) {
					t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
				}
			}

			// Client credentials, Basic.
			code, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}}, agent.ClientID, agent.ClientSecret)
			if code != 200 || out["token_type"] != "Bearer" {
				t.Fatalf("client credentials: %d %v", code, out)
			}
			c := apptest.JWTClaims(t, out["access_token"].(string))
			if c["sub"] != agent.ID || c["iss"] != iss || c["client_id"] != agent.ClientID || c["scope"] != "mcp a2a" || c["sub_kind"] != "nhi" {
				t.Fatalf("claims: %v", c)
			}
			if aud := c["aud"]; aud != h.Agent+"/t/"+slug+"/mcp" && !strings.Contains(apptest.JSON(aud), h.Agent+"/t/"+slug+"/mcp") {
				t.Fatalf("default audience: %v", aud)
			}
			// Form authentication, a resource, a narrower scope.
			res := h.Agent + "/t/" + slug + "/mcp/github"
			code, out = h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {agent.ClientID},
				"client_secret": {agent.ClientSecret}, "resource": {res}, "scope": {"mcp"}}, "", "")
			if code != 200 || apptest.JWTClaims(t, out["access_token"].(string))["scope"] != "mcp" || !strings.Contains(apptest.JSON(apptest.JWTClaims(t, out["access_token"].(string))["aud"]), res) {
				t.Fatalf("resource: %d %v", code, out)
			}
			agentToken := out["access_token"].(string)
			for name, v := range map[string]url.Values{
				"unknown tool server": {"grant_type": {"client_credentials"}, "resource": {h.Agent + "/t/" + slug + "/mcp/nope"}},
				"foreign resource":    {"grant_type": {"client_credentials"}, "resource": {"https://evil.example.test/mcp"}},
				"other tenant":        {"grant_type": {"client_credentials"}, "resource": {h.Agent + "/t/" + other + "/mcp"}},
			} {
				if code, out := h.Form("/t/"+slug+"/token", v, agent.ClientID, agent.ClientSecret); code != 400 || out["error"] != "invalid_target" {
					t.Errorf("%s: %d %v", name, code, out)
				}
			}
			if code, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, agent.ClientID, agent.ClientSecret); code != 400 || out["error"] != "invalid_scope" {
				t.Fatalf("scope beyond the client: %d %v", code, out)
			}
			if code, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"password"}}, agent.ClientID, agent.ClientSecret); code != 400 || out["error"] != "unsupported_grant_type" {
				t.Fatalf("unsupported grant: %d %v", code, out)
			}
			if code, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "client_secret": {agent.ClientSecret}}, agent.ClientID, agent.ClientSecret); code != 400 {
				t.Fatalf("two authentication methods: %d %v", code, out)
			}

			// Token exchange: the planner acts for the admin user; the executor acts on that.
			exchange := func(subject, clientID, secret string) (int, map[string]any) {
				return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
					"subject_token": {subject}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
					"resource": {res}, "scope": {"mcp"}}, clientID, secret)
			}
			code, out = exchange(tok, agent.ClientID, agent.ClientSecret)
			if code != 200 || out["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
				t.Fatalf("exchange: %d %v", code, out)
			}
			ex := apptest.JWTClaims(t, out["access_token"].(string))
			act, _ := ex["act"].(map[string]any)
			if ex["sub"] != me.ID || act == nil || act["sub"] != agent.ID || ex["scope"] != "mcp" {
				t.Fatalf("exchanged claims: %v", ex)
			}
			code, out = exchange(out["access_token"].(string), agent2.ClientID, agent2.ClientSecret)
			if code != 200 {
				t.Fatalf("second hop: %d %v", code, out)
			}
			chain := apptest.JWTClaims(t, out["access_token"].(string))
			outer, _ := chain["act"].(map[string]any)
			inner, _ := outer["act"].(map[string]any)
			if chain["sub"] != me.ID || outer["sub"] != agent2.ID || inner == nil || inner["sub"] != agent.ID {
				t.Fatalf("act chain: %v", chain)
			}
			if code, out := exchange("not-a-token", agent.ClientID, agent.ClientSecret); code != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("bad subject token: %d %v", code, out)
			}

			// Introspection and revocation.
			code, out = h.Form("/t/"+slug+"/introspect", url.Values{"token": {agentToken}}, agent.ClientID, agent.ClientSecret)
			if code != 200 || out["active"] != true || out["sub"] != agent.ID {
				t.Fatalf("introspect: %d %v", code, out)
			}
			if code, _ := h.Form("/t/"+slug+"/revoke", url.Values{"token": {agentToken}}, agent.ClientID, agent.ClientSecret); code != 200 {
				t.Fatalf("revoke: %d", code)
			}
			if _, out = h.Form("/t/"+slug+"/introspect", url.Values{"token": {agentToken}}, agent.ClientID, agent.ClientSecret); out["active"] != false {
				t.Fatalf("revoked token still active: %v", out)
			}
			if code, out = h.Form("/t/"+slug+"/introspect", url.Values{"token": {"garbage"}}, agent.ClientID, agent.ClientSecret); code != 200 || out["active"] != false {
				t.Fatalf("garbage: %d %v", code, out)
			}

			// A tenant's client is unknown at another tenant's issuer.
			if code, out := h.Form("/t/"+other+"/token", url.Values{"grant_type": {"client_credentials"}}, agent.ClientID, agent.ClientSecret); code != 401 || out["error"] != "invalid_client" {
				t.Fatalf("cross-tenant client: %d %v", code, out)
			}
			// Guessing the secret is slowed down: after ten failures even the right one waits.
			for range 10 {
				h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}}, agent2.ClientID, "xvs_wrong-guess-0000000000")
			}
			if code, _ := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}}, agent2.ClientID, agent2.ClientSecret); code != 429 {
				t.Fatalf("guessing not slowed down: %d", code)
			}
		})
	}
}

// TestPrivateKeyJWT: a client registers a public key and authenticates
// with signed assertions; replays, wrong audiences, unregistered keys,
// expired and mismatched assertions are refused.
func TestPrivateKeyJWT(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("pk")
	_, tok := h.TenantAdmin(t, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "service_account", "slug": "ci", "name": "CI", "owner_id": me.ID,
		"profile": map[string]any{"service_account": map[string]any{"purpose": "deploys"}}})
	apptest.Expect(t, resp, body, 201, "create NHI")
	sa := apptest.Decode[apptest.Agent](t, body)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: key.Public(), KeyID: "ci-1", Use: "sig", Algorithm: "ES256"}.MarshalJSON()
	resp, body = h.DoAs(tok, "PUT", "/api/v1/nhis/"+sa.ID+"/client-keys", map[string]any{"keys": []json.RawMessage{pub}})
	apptest.Expect(t, resp, body, 200, "register key")

	endpoint := h.App.Config().Admin.PublicURL + "/t/" + slug + "/token"
	stranger := func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	assertion := func(signer *ecdsa.PrivateKey, kid string, mut func(*jwt.Claims)) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: signer, KeyID: kid}}, nil)
		c := jwt.Claims{Issuer: sa.ClientID, Subject: sa.ClientID, Audience: jwt.Audience{endpoint}, ID: uuid.NewString(),
			IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}
		if mut != nil {
			mut(&c)
		}
		raw, _ := jwt.Signed(s).Claims(c).Serialize()
		return raw
	}
	post := func(a string) (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {a}}, "", "")
	}
	// RFC 7523 §2.1: the assertion itself as the grant.
	grant := func(a string) (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {a}}, "", "")
	}
	if code, out := grant(assertion(key, "ci-1", nil)); code != 200 || apptest.JWTClaims(t, out["access_token"].(string))["sub"] != sa.ID {
		t.Fatalf("jwt-bearer grant: %d %v", code, out)
	}
	if code, out := grant(assertion(stranger(), "ci-1", nil)); code != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("jwt-bearer grant with a stranger's key: %d %v", code, out)
	}
	good := assertion(key, "ci-1", nil)
	if code, out := post(good); code != 200 || apptest.JWTClaims(t, out["access_token"].(string))["sub"] != sa.ID {
		t.Fatalf("private_key_jwt: %d %v", code, out)
	}
	if code, _ := post(good); code != 401 {
		t.Fatalf("replayed assertion: %d", code)
	}
	for name, a := range map[string]string{
		"unregistered key": assertion(stranger(), "ci-1", nil),
		"wrong audience":   assertion(key, "ci-1", func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://elsewhere.example.test/token"} }),
		"expired":          assertion(key, "ci-1", func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }),
		"too long-lived":   assertion(key, "ci-1", func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(48 * time.Hour)) }),
		"iss is not sub":   assertion(key, "ci-1", func(c *jwt.Claims) { c.Issuer = "someone-else" }),
		"no jti":           assertion(key, "ci-1", func(c *jwt.Claims) { c.ID = "" }),
		"garbage":          "a.b.c",
	} {
		if code, out := post(a); code != 401 || out["error"] != "invalid_client" {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
}

// TestMTLSClientAuthBindsTokens: at the agent plane's mTLS alias an agent
// authenticates with its xavyo certificate and gets a token bound to it
// (cnf.x5t#S256); without a certificate, or at another tenant, it is refused.
func TestMTLSClientAuthBindsTokens(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug, other := apptest.UniqueSlug("mt"), apptest.UniqueSlug("mu")
	_, tok := h.TenantAdmin(t, slug)
	h.TenantAdmin(t, other)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	_, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "bot", "name": "Bot", "owner_id": me.ID})
	agent := apptest.Decode[apptest.Agent](t, body)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
	apptest.Expect(t, resp, body, 201, "issue")
	cert := apptest.Decode[struct {
		apptest.Issued
		Fingerprint string `json:"fingerprint"`
	}](t, body)
	_, md := h.DoAs("", "GET", "/.well-known/oauth-authorization-server/t/"+slug, nil)
	alias := h.App.Config().Agent.PublicURL + "/t/" + slug + "/oauth/token"
	if !strings.Contains(string(md), `"mtls_endpoint_aliases":{"token_endpoint":"`+alias+`"}`) || !strings.Contains(string(md), "tls_client_auth") {
		t.Fatalf("metadata: %s", md)
	}
	post := func(c *http.Client, s string) (int, map[string]any) {
		resp, err := c.Post(h.Agent+"/t/"+s+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	withCert := h.MTLSClient(cert.KeyPair(t, ""))
	code, out := post(withCert, slug)
	if code != 200 {
		t.Fatalf("mTLS client credentials: %d %v", code, out)
	}
	c := apptest.JWTClaims(t, out["access_token"].(string))
	cnf, _ := c["cnf"].(map[string]any)
	if c["sub"] != agent.ID || cnf == nil || cnf["x5t#S256"] != cert.Fingerprint {
		t.Fatalf("bound token: %v", c)
	}
	if code, _ := post(h.TLS, slug); code != 401 {
		t.Fatalf("without a certificate: %d", code)
	}
	if code, _ := post(withCert, other); code != 401 {
		t.Fatalf("at another tenant: %d", code)
	}
}

// TestBoundTokenNeedsItsCertificate: a token bound to a certificate
// (obtained at the mTLS alias) is refused where it is presented without
// that certificate, and still introspects as active.
func TestBoundTokenNeedsItsCertificate(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("bd")
	_, tok := h.TenantAdmin(t, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	_, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "bot", "name": "Bot", "owner_id": me.ID})
	agent := apptest.Decode[apptest.Agent](t, body)
	_, body = h.DoAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
	cert := apptest.Decode[apptest.Issued](t, body)
	withCert := h.MTLSClient(cert.KeyPair(t, ""))
	// The agent exchanges the admin's token for one bound to its certificate, for the admin API.
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tok},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "resource": {h.App.Config().Admin.PublicURL + "/api/v1"}}
	resp, err := withCert.Post(h.Agent+"/t/"+slug+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("bound exchange: %d %v", resp.StatusCode, out)
	}
	bound := out["access_token"].(string)
	if r, body := h.DoAs(bound, "GET", "/api/v1/me", nil); r.StatusCode != 401 || !strings.Contains(string(body), "without its certificate") {
		t.Fatalf("bound token without its certificate: %d %s", r.StatusCode, body)
	}
	if code, out := h.Form("/t/"+slug+"/introspect", url.Values{"token": {bound}}, agent.ClientID, agent.ClientSecret); code != 200 || out["active"] != true || out["cnf"] == nil {
		t.Fatalf("introspection of a bound token: %d %v", code, out)
	}
}

// TestSelfSignedClientAuth: a client that registered a self-signed
// certificate (x5c of one of its keys) authenticates with it at the mTLS
// alias and gets a token bound to it; an unregistered self-signed
// certificate, another client's id or tenant, or a certificate signed by a stranger
// are refused, and a self-signed certificate is no identity elsewhere.
func TestSelfSignedClientAuth(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug, otherSlug := apptest.UniqueSlug("ss"), apptest.UniqueSlug("st")
	_, tok := h.TenantAdmin(t, slug)
	h.TenantAdmin(t, otherSlug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	mk := func(name string) (*x509.Certificate, tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}
	}
	nhi := func(s string) apptest.Agent {
		resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": s, "name": s, "owner_id": me.ID})
		apptest.Expect(t, resp, body, 201, "create NHI")
		return apptest.Decode[apptest.Agent](t, body)
	}
	agent, other := nhi("bot"), nhi("other")
	cert, pair := mk("bot")
	pub, _ := jose.JSONWebKey{Key: pair.PrivateKey.(*ecdsa.PrivateKey).Public(), KeyID: "bot-tls", Use: "sig", Algorithm: "ES256",
		Certificates: []*x509.Certificate{cert}}.MarshalJSON()
	resp, body := h.DoAs(tok, "PUT", "/api/v1/nhis/"+agent.ID+"/client-keys", map[string]any{"keys": []json.RawMessage{pub}})
	apptest.Expect(t, resp, body, 200, "register certificate")
	_, md := h.DoAs("", "GET", "/.well-known/oauth-authorization-server/t/"+slug, nil)
	if !strings.Contains(string(md), "self_signed_tls_client_auth") {
		t.Fatalf("metadata: %s", md)
	}
	postAt := func(c *http.Client, at, clientID string) (int, map[string]any) {
		resp, err := c.Post(h.Agent+"/t/"+at+"/oauth/token", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	post := func(c *http.Client, clientID string) (int, map[string]any) { return postAt(c, slug, clientID) }
	withCert := h.MTLSClient(pair)
	code, out := post(withCert, agent.ClientID)
	if code != 200 {
		t.Fatalf("self-signed client credentials: %d %v", code, out)
	}
	sum := sha256.Sum256(cert.Raw)
	c := apptest.JWTClaims(t, out["access_token"].(string))
	if cnf, _ := c["cnf"].(map[string]any); c["sub"] != agent.ID || cnf == nil || cnf["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Fatalf("bound token: %v", c)
	}
	if code, _ := post(withCert, other.ClientID); code != 401 {
		t.Fatalf("another client's id with this certificate: %d", code)
	}
	if code, _ := postAt(withCert, otherSlug, agent.ClientID); code != 401 {
		t.Fatalf("at another tenant: %d", code)
	}
	if code, _ := post(withCert, ""); code != 401 {
		t.Fatalf("no client_id: %d", code)
	}
	_, unregistered := mk("bot")
	if code, _ := post(h.MTLSClient(unregistered), agent.ClientID); code != 401 {
		t.Fatalf("unregistered self-signed certificate: %d", code)
	}
	// A leaf signed by a stranger's CA fails the handshake.
	caCert, caPair := mk("stranger CA")
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "bot"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}, caCert, leafKey.Public(), caPair.PrivateKey)
	if _, err := h.MTLSClient(tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}).Post(h.Agent+"/t/"+slug+"/oauth/token",
		"application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials")); err == nil {
		t.Fatal("a certificate from an untrusted CA passed the handshake")
	}
	// A self-signed certificate names no principal on the agent plane.
	if code, _, _ := apptest.Get(t, withCert, h.Agent+"/t/"+slug+"/pki/identity"); code != 401 {
		t.Fatalf("self-signed certificate as an identity: %d", code)
	}
}
