package rest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestConfidentialWebApp: an admin registers a web application with a
// secret (shown once, never listed or audited); it runs the code flow
// with or without PKCE and must authenticate, with the method it
// registered, to redeem its code and refresh; a code issued with a
// challenge still needs its verifier.
func TestConfidentialWebApp(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) { confidentialWebApp(t, flavor) })
	}
}

func confidentialWebApp(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("web")
	_, tok := h.TenantAdmin(t, slug)
	redirectURI := "https://app.example/callback"
	resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Wiki", "redirect_uris": []string{redirectURI},
		"first_party": true, "token_endpoint_auth_method": "client_secret_basic"})
	apptest.Expect(t, resp, body, 201, "register a web app")
	app := apptest.Decode[struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		ClientType   string `json:"client_type"`
		Method       string `json:"token_endpoint_auth_method"`
	}](t, body)
	if !strings.HasPrefix(app.ClientSecret, "xvs_") || app.ClientType != "confidential" || app.Method != "client_secret_basic" {
		t.Fatalf("registration: %s", body)
	}
	for _, path := range []string{"/api/v1/clients", "/api/v1/audit?action=oauth.client.create"} {
		resp, body = h.DoAs(tok, "GET", path, nil)
		apptest.Expect(t, resp, body, 200, path)
		if strings.Contains(string(body), app.ClientSecret) || !strings.Contains(string(body), app.ClientID) {
			t.Fatalf("%s shows the secret (or not the client): %s", path, body)
		}
	}
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Bad", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_jwt"})
	apptest.Expect(t, resp, body, 400, "an unknown method")
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@web.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")

	// code signs Ada in for the web app (with a PKCE challenge when given).
	code := func(challenge string) string {
		t.Helper()
		v := url.Values{"response_type": {"code"}, "client_id": {app.ClientID}, "redirect_uri": {redirectURI}, "state": {"st"}, "scope": {"openid offline_access"}}
		if challenge != "" {
			v.Set("code_challenge", challenge)
			v.Set("code_challenge_method", "S256")
		}
		resp, _ := pageLogin(t, h, h.Admin+"/t/"+slug+"/authorize?"+v.Encode(), "ada@web.test", "Analytical-engine-1843", true)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || loc.Query().Get("code") == "" {
			t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}
	redeem := func(c string, extra url.Values, id, secret string) (int, map[string]any) {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}}
		for k := range extra {
			v.Set(k, extra.Get(k))
		}
		return h.Form("/t/"+slug+"/token", v, id, secret)
	}

	// Without PKCE: the secret, by Basic, is what redeems the code.
	c1 := code("")
	for name, try := range map[string]func() (int, map[string]any){
		"no authentication": func() (int, map[string]any) { return redeem(c1, url.Values{"client_id": {app.ClientID}}, "", "") },
		"a wrong secret":    func() (int, map[string]any) { return redeem(c1, nil, app.ClientID, app.ClientSecret+"x") },
		"the secret in the form (registered for Basic)": func() (int, map[string]any) {
			return redeem(c1, url.Values{"client_id": {app.ClientID}, "client_secret": {app.ClientSecret}}, "", "")
		},
		"a verifier for a code without a challenge": func() (int, map[string]any) {
			return redeem(c1, url.Values{"code_verifier": {strings.Repeat("v", 43)}}, app.ClientID, app.ClientSecret)
		},
	} {
		if st, out := try(); st < 400 {
			t.Fatalf("%s: %d %v", name, st, out)
		}
	}
	st, out := redeem(c1, nil, app.ClientID, app.ClientSecret)
	if st != 200 || out["id_token"] == nil || out["refresh_token"] == nil {
		t.Fatalf("redeem with the secret: %d %v", st, out)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {out["refresh_token"].(string)}}
	if st, _ := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ClientID},
		"refresh_token": {out["refresh_token"].(string)}}, "", ""); st != 401 {
		t.Fatalf("refresh without authentication: %d", st)
	}
	if st, out := h.Form("/t/"+slug+"/token", refresh, app.ClientID, app.ClientSecret); st != 200 || out["access_token"] == nil {
		t.Fatalf("refresh with the secret: %d %v", st, out)
	}

	// With PKCE: the verifier too.
	verifier := strings.Repeat("w", 20) + "-verifier-0123456789abcdef"
	sum := sha256.Sum256([]byte(verifier))
	c2 := code(base64.RawURLEncoding.EncodeToString(sum[:]))
	if st, out := redeem(c2, nil, app.ClientID, app.ClientSecret); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("a code with a challenge, redeemed without its verifier: %d %v", st, out)
	}
	c3 := code(base64.RawURLEncoding.EncodeToString(sum[:]))
	if st, out := redeem(c3, url.Values{"code_verifier": {verifier}}, app.ClientID, app.ClientSecret); st != 200 {
		t.Fatalf("with the verifier and the secret: %d %v", st, out)
	}

	// private_key_jwt: the application signs an assertion with a key it
	// registered (public keys only), once per assertion.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := jose.JSONWebKey{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Leaky", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256"}}}})
	apptest.Expect(t, resp, body, 400, "a private key in jwks")
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Signed wiki", "redirect_uris": []string{redirectURI},
		"first_party": true, "token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{pub}}})
	apptest.Expect(t, resp, body, 201, "register a private_key_jwt app")
	signed := apptest.Decode[struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}](t, body)
	if signed.ClientSecret != "" {
		t.Fatal("a private_key_jwt client got a secret")
	}
	assertion := func(k *ecdsa.PrivateKey) string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, nil)
		raw, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: signed.ClientID, Subject: signed.ClientID, ID: strings.Repeat("j", 8) + time.Now().Format("150405.000000"),
			Audience: jwt.Audience{h.App.Config().Admin.PublicURL + "/t/" + slug + "/token"}, Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	app.ClientID = signed.ClientID
	c4 := code("")
	good := assertion(key)
	withAssertion := func(a string) url.Values {
		return url.Values{"client_id": {signed.ClientID}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	if st, out := redeem(c4, withAssertion(assertion(other)), "", ""); st != 401 {
		t.Fatalf("an assertion signed with another key: %d %v", st, out)
	}
	if st, out := redeem(c4, withAssertion(good), "", ""); st != 200 || out["access_token"] == nil {
		t.Fatalf("redeem with a signed assertion: %d %v", st, out)
	}
	c5 := code("")
	if st, out := redeem(c5, withAssertion(good), "", ""); st != 401 {
		t.Fatalf("a replayed assertion: %d %v", st, out)
	}
	if st, out := redeem(c5, nil, signed.ClientID, "xvs_guess"); st != 401 {
		t.Fatalf("a secret for a private_key_jwt client: %d %v", st, out)
	}
}
