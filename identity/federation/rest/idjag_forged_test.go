package rest_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// signIDJAG signs claims as the test OP, with a typ header.
func (op *testOP) signIDJAG(t *testing.T, claims map[string]any, typ string) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: op.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := s.Sign(payload)
	out, _ := jws.CompactSerialize()
	return out
}

// TestIDJAGRefused: ID-JAGs from a trusted enterprise IdP (a loopback
// provider the test signs with) that are expired, issued in the future,
// for another audience or client, without jti or subject, of another
// type, unsigned (alg none) or signed by an unknown key are refused, and
// nobody is created; the honest one is accepted once.
func TestIDJAGRefused(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	op := newTestOP(t, "")
	o := newOIDCTenant(t, h, "jag", "corp", op, map[string]any{"id_jag": true, "jit": true, "trust_email": true})
	issuer := h.Admin + "/t/" + o.slug
	resp, body := h.DoAs(o.tok, "POST", "/api/v1/clients", map[string]any{"name": "MCP client", "redirect_uris": []string{"https://client.example/cb"},
		"token_endpoint_auth_method": "client_secret_basic"})
	apptest.Expect(t, resp, body, 201, "client")
	cl := apptest.Decode[struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}](t, body)
	now := time.Now().Unix()
	good := func() map[string]any {
		return map[string]any{"iss": op.Issuer(), "sub": "emp-42", "aud": issuer, "client_id": cl.ClientID, "jti": rand8(), "iat": now, "exp": now + 300,
			"scope": "mcp", "email": "kai@jag.test"}
	}
	with := func(change func(c map[string]any)) map[string]any { c := good(); change(c); return c }
	redeem := func(jag string) (int, map[string]any) {
		t.Helper()
		return h.Form("/t/"+o.slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jag}},
			cl.ClientID, cl.ClientSecret)
	}
	stranger := newTestOP(t, "")
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"oauth-id-jag+jwt"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(apptest.JSON(good()))) + "."
	for name, jag := range map[string]string{
		"expired":           op.signIDJAG(t, with(func(c map[string]any) { c["iat"], c["exp"] = now-900, now-600 }), "oauth-id-jag+jwt"),
		"from the future":   op.signIDJAG(t, with(func(c map[string]any) { c["iat"], c["exp"] = now+3600, now+3900 }), "oauth-id-jag+jwt"),
		"another audience":  op.signIDJAG(t, with(func(c map[string]any) { c["aud"] = h.Admin + "/t/elsewhere" }), "oauth-id-jag+jwt"),
		"another client":    op.signIDJAG(t, with(func(c map[string]any) { c["client_id"] = "someone-else" }), "oauth-id-jag+jwt"),
		"no jti":            op.signIDJAG(t, with(func(c map[string]any) { delete(c, "jti") }), "oauth-id-jag+jwt"),
		"no subject":        op.signIDJAG(t, with(func(c map[string]any) { delete(c, "sub") }), "oauth-id-jag+jwt"),
		"alg none":          unsigned,
		"an unknown key":    stranger.signIDJAG(t, with(func(c map[string]any) { c["iss"] = op.Issuer() }), "oauth-id-jag+jwt"),
		"an untrusted iss":  stranger.signIDJAG(t, with(func(c map[string]any) { c["iss"] = stranger.Issuer() }), "oauth-id-jag+jwt"),
		"an ID token (typ)": op.signIDJAG(t, good(), "JWT"),
	} {
		// Not typed as an ID-JAG, a JWT is an NHI's own assertion, which
		// comes without client authentication: invalid_request.
		if status, out := redeem(jag); status != 400 || (out["error"] != "invalid_grant" && out["error"] != "invalid_request") {
			t.Errorf("%s: %d %v", name, status, out)
		}
	}
	if u := findUser(t, h, o.tok, "kai@jag.test"); u != nil {
		t.Fatalf("a refused ID-JAG created %+v", u)
	}
	jag := op.signIDJAG(t, good(), "oauth-id-jag+jwt")
	status, out := redeem(jag)
	if status != 200 || !strings.Contains(apptest.JSON(apptest.JWTClaims(t, out["access_token"].(string))["amr"]), "fed") {
		t.Fatalf("the honest ID-JAG: %d %v", status, out)
	}
	if u := findUser(t, h, o.tok, "kai@jag.test"); u == nil {
		t.Fatal("no just-in-time person")
	}
	if status, _ := redeem(jag); status != 400 {
		t.Fatalf("replayed: %d", status)
	}
}

func rand8() string { return rand.Text() }
