package rest_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testOP is an OpenID provider on loopback whose answers a test shapes:
// the discovery document, the ID token's claims and how it is signed. It
// stands for the providers that cannot be reached from here (Google,
// Microsoft), serving their documented shapes, and for the attacks an
// honest provider never makes (a wrong issuer, audience or nonce, alg
// none, …). It checks what a provider checks of xavyo: the client's
// secret, the redirect URI and the PKCE verifier.
type testOP struct {
	t        *testing.T
	srv      *httptest.Server
	key      *rsa.PrivateKey
	prefix   string
	clientID string
	secret   string

	mu sync.Mutex
	// discoIssuer is the issuer the discovery document names (default
	// the issuer URL).
	discoIssuer string
	// claims shapes the ID token of a code (nonce as asked).
	claims func(nonce, accessToken string) map[string]any
	// alg signs the ID token: RS256 (default), none or HS256 (with the
	// client secret).
	alg      string
	userinfo map[string]any
	codes    map[string]opCode
	// asked are the authorization requests' parameters.
	asked []url.Values
	// clientAuth, when set, checks the token request's client
	// authentication instead of HTTP Basic with the secret.
	clientAuth func(r *http.Request) bool
	// user is the "user" field of a form_post answer (Apple's).
	user string
}

type opCode struct {
	nonce, redirect, challenge string
}

func newTestOP(t *testing.T, prefix string) *testOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &testOP{t: t, key: key, prefix: prefix, clientID: "xavyo-client", secret: "op-secret-" + rand.Text(), codes: map[string]opCode{}}
	mux := http.NewServeMux()
	mux.HandleFunc(prefix+"/.well-known/openid-configuration", op.discovery)
	mux.HandleFunc(prefix+"/authorize", op.authorize)
	mux.HandleFunc(prefix+"/token", op.token)
	mux.HandleFunc(prefix+"/jwks", op.jwks)
	mux.HandleFunc(prefix+"/userinfo", op.userinfoEndpoint)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	op.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	op.srv.Start()
	t.Cleanup(op.srv.Close)
	return op
}

// Issuer is the issuer URL xavyo is configured with.
func (op *testOP) Issuer() string { return op.srv.URL + op.prefix }

func (op *testOP) set(f func(op *testOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

func (op *testOP) discovery(w http.ResponseWriter, _ *http.Request) {
	op.mu.Lock()
	iss := op.discoIssuer
	op.mu.Unlock()
	if iss == "" {
		iss = op.Issuer()
	}
	base := op.Issuer()
	_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
		"jwks_uri": base + "/jwks", "userinfo_endpoint": base + "/userinfo", "response_types_supported": []string{"code"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported": []string{"S256"}})
}

func (op *testOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op.mu.Lock()
	op.asked = append(op.asked, q)
	code := rand.Text()
	op.codes[code] = opCode{nonce: q.Get("nonce"), redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	op.mu.Unlock()
	if q.Get("client_id") != op.clientID || q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" {
		http.Error(w, "bad authorization request", 400)
		return
	}
	if q.Get("response_mode") == "form_post" {
		op.mu.Lock()
		user := op.user
		op.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<html><body><form method="post" action="` + html.EscapeString(q.Get("redirect_uri")) + `">` +
			`<input type="hidden" name="code" value="` + code + `"><input type="hidden" name="state" value="` + html.EscapeString(q.Get("state")) + `">` +
			`<input type="hidden" name="user" value="` + html.EscapeString(user) + `"></form></body></html>`))
		return
	}
	to, _ := url.Parse(q.Get("redirect_uri"))
	v := to.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	to.RawQuery = v.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (op *testOP) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	op.mu.Lock()
	auth := op.clientAuth
	op.mu.Unlock()
	id, secret, ok := r.BasicAuth()
	if (auth != nil && !auth(r)) || (auth == nil && (!ok || id != op.clientID || secret != op.secret)) {
		w.WriteHeader(401)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		return
	}
	op.mu.Lock()
	c, found := op.codes[r.PostForm.Get("code")]
	delete(op.codes, r.PostForm.Get("code"))
	claims, alg := op.claims, op.alg
	op.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !found || c.redirect != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	at := "at-" + rand.Text()
	idt := op.sign(claims(c.nonce, at), alg)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

func (op *testOP) sign(claims map[string]any, alg string) string {
	payload, _ := json.Marshal(claims)
	switch alg {
	case "none":
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		return hdr + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	case "HS256":
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(op.secret)}, nil)
		if err != nil {
			op.t.Fatal(err)
		}
		jws, _ := s.Sign(payload)
		out, _ := jws.CompactSerialize()
		return out
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: op.key, KeyID: "k1"}}, nil)
	if err != nil {
		op.t.Fatal(err)
	}
	jws, _ := s.Sign(payload)
	out, _ := jws.CompactSerialize()
	return out
}

func (op *testOP) jwks(w http.ResponseWriter, _ *http.Request) {
	_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &op.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

func (op *testOP) userinfoEndpoint(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	ui := op.userinfo
	op.mu.Unlock()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer at-") || ui == nil {
		w.WriteHeader(401)
		return
	}
	_ = json.NewEncoder(w).Encode(ui)
}

// atHash is the at_hash of an access token for RS256.
func atHash(at string) string {
	sum := sha256.Sum256([]byte(at))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
