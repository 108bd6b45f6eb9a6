package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/dpop/dpoptest"
)

const target = "https://as.example/t/acme/token"

// TestCheck: a proof for the request is accepted with its key's
// thumbprint; proofs for another method or URL, too old or from the
// future, without jti, with another token's ath, with no typ, signed
// with none or a MAC, or with a private key in the header are refused.
func TestCheck(t *testing.T) {
	k := dpoptest.New()
	now := time.Now()
	p, err := dpop.Check(k.Proof("POST", target+"?x=1", "", "", nil), "POST", "HTTPS://AS.example:443/t/acme/token", "", now)
	if err != nil || p.JKT != k.JKT() || p.JTI == "" || !p.Until.After(now) {
		t.Fatalf("a good proof: %+v %v", p, err)
	}
	if p, err := dpop.Check(k.Proof("GET", target, "tok", "n-1", nil), "GET", target, "tok", now); err != nil || p.Nonce != "n-1" {
		t.Fatalf("with ath and nonce: %+v %v", p, err)
	}
	for name, proof := range map[string]string{
		"another method":       k.Proof("GET", target, "", "", nil),
		"another URL":          k.Proof("POST", "https://as.example/t/other/token", "", "", nil),
		"another port":         k.Proof("POST", "https://as.example:8443/t/acme/token", "", "", nil),
		"too old":              k.Proof("POST", target, "", "", map[string]any{"iat": now.Add(-10 * time.Minute).Unix()}),
		"from the future":      k.Proof("POST", target, "", "", map[string]any{"iat": now.Add(10 * time.Minute).Unix()}),
		"no jti":               k.Proof("POST", target, "", "", map[string]any{"jti": nil}),
		"no iat":               k.Proof("POST", target, "", "", map[string]any{"iat": nil}),
		"ath of another token": k.Proof("POST", target, "other", "", nil),
		"not a JWS":            "a.b",
		"alg none":             unsigned(t, k),
		"a MAC":                mac(t),
		"a private jwk":        privateJWK(t),
		"no typ":               noTyp(t, k),
	} {
		tok := ""
		if name == "ath of another token" {
			tok = "this"
		}
		if _, err := dpop.Check(proof, "POST", target, tok, now); err == nil || !strings.Contains(err.Error(), "invalid DPoP proof") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func unsigned(t *testing.T, k *dpoptest.Key) string {
	t.Helper()
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: &k.Private.PublicKey})
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"dpop+jwt","jwk":` + string(jwk) + `}`))
	c := base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"x","htm":"POST","htu":"` + target + `","iat":` + jsonNow() + `}`))
	return h + "." + c + "."
}

func jsonNow() string { b, _ := json.Marshal(time.Now().Unix()); return string(b) }

func mac(t *testing.T) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
		(&jose.SignerOptions{}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := s.Sign([]byte(`{"jti":"x","htm":"POST","htu":"` + target + `","iat":` + jsonNow() + `}`))
	out, _ := jws.CompactSerialize()
	return out
}

func privateJWK(t *testing.T) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: k}}}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := s.Sign([]byte(`{"jti":"x","htm":"POST","htu":"` + target + `","iat":` + jsonNow() + `}`))
	out, _ := jws.CompactSerialize()
	return out
}

func noTyp(t *testing.T, k *dpoptest.Key) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Private}, &jose.SignerOptions{EmbedJWK: true})
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := s.Sign([]byte(`{"jti":"x","htm":"POST","htu":"` + target + `","iat":` + jsonNow() + `}`))
	out, _ := jws.CompactSerialize()
	return out
}

// TestNonces: a nonce is good for its step and the next, from any
// holder of the key, and no other.
func TestNonces(t *testing.T) {
	n := dpop.Nonces{Key: []byte("k1"), Step: time.Minute}
	now := time.Now()
	v := n.Issue(now)
	if !n.Valid(v, now) || !n.Valid(v, now.Add(time.Minute)) || n.Valid(v, now.Add(3*time.Minute)) {
		t.Fatal("steps")
	}
	if (dpop.Nonces{Key: []byte("k2"), Step: time.Minute}).Valid(v, now) || n.Valid("x", now) {
		t.Fatal("another key's nonce, or a made-up one")
	}
}

// FuzzCheck: any text is a proof or refused, never a panic.
func FuzzCheck(f *testing.F) {
	k := dpoptest.New()
	f.Add(k.Proof("POST", target, "", "", nil))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := dpop.Check(raw, "POST", target, "", time.Now())
		if err == nil && (p.JKT == "" || p.JTI == "") {
			t.Fatalf("accepted without key or jti: %q", raw)
		}
	})
}
