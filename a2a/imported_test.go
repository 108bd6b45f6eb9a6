package a2a

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// signer signs cards as a remote agent would: ES256, detached, jku.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
}

func (s signer) sign(t *testing.T, card map[string]json.RawMessage, hdr map[jose.HeaderKey]any) map[string]json.RawMessage {
	t.Helper()
	canon, _, err := cardDigest(card)
	if err != nil {
		t.Fatal(err)
	}
	opts := &jose.SignerOptions{ExtraHeaders: hdr}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.Sign(canon)
	if err != nil {
		t.Fatal(err)
	}
	compact, _ := obj.DetachedCompactSerialize()
	parts := strings.Split(compact, ".")
	out := map[string]json.RawMessage{}
	for k, v := range card {
		out[k] = v
	}
	out["signatures"], _ = json.Marshal([]map[string]string{{"protected": parts[0], "signature": parts[2]}})
	return out
}

func newSigner(t *testing.T, kid string) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: k, kid: kid}
}

// TestCardSignatures: the known ways to pass off a card — altered content,
// alg none, a key from another host, an unknown key, garbage — are
// refused; a good signature verifies; an unsigned card is unsigned.
func TestCardSignatures(t *testing.T) {
	good := newSigner(t, "k1")
	stranger := newSigner(t, "k2")
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &good.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	defer srv.Close()
	h := New(Config{Fetch: srv.Client()})
	endpoint := srv.URL + "/agent" // the card's host is the JWKS host
	jku := srv.URL + "/jwks"
	card := map[string]json.RawMessage{"name": json.RawMessage(`"Remote"`), "version": json.RawMessage(`"1"`),
		"skills": json.RawMessage(`[{"id":"a","name":"A","description":"a","tags":["a"]}]`)}
	verify := func(c map[string]json.RawMessage, ep string) (bool, error) {
		canon, _, err := cardDigest(c)
		if err != nil {
			t.Fatal(err)
		}
		return h.verifySignatures(context.Background(), c, canon, ep)
	}
	if ok, err := verify(card, endpoint); ok || err != nil {
		t.Fatalf("unsigned: %v %v", ok, err)
	}
	signed := good.sign(t, card, map[jose.HeaderKey]any{"jku": jku})
	if ok, err := verify(signed, endpoint); !ok || err != nil {
		t.Fatalf("a good signature: %v %v", ok, err)
	}
	// Key order and whitespace do not matter (RFC 8785).
	var m map[string]any
	raw, _ := json.Marshal(signed)
	_ = json.Unmarshal(raw, &m)
	pretty, _ := json.MarshalIndent(m, "", "   ")
	var reparsed map[string]json.RawMessage
	_ = json.Unmarshal(pretty, &reparsed)
	if ok, err := verify(reparsed, endpoint); !ok || err != nil {
		t.Fatalf("the same card, formatted otherwise: %v %v", ok, err)
	}
	altered := map[string]json.RawMessage{}
	for k, v := range signed {
		altered[k] = v
	}
	altered["name"] = json.RawMessage(`"Remote (official)"`)
	none := map[string]json.RawMessage{}
	for k, v := range card {
		none[k] = v
	}
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1","jku":"` + jku + `"}`))
	none["signatures"], _ = json.Marshal([]map[string]string{{"protected": hdr, "signature": ""}})
	for name, c := range map[string]struct {
		card map[string]json.RawMessage
		ep   string
	}{
		"altered after signing":  {altered, endpoint},
		"alg none":               {none, endpoint},
		"a key of another host":  {signed, strings.Replace(endpoint, "127.0.0.1", "localhost", 1)},
		"a key not in the JWKS":  {stranger.sign(t, card, map[jose.HeaderKey]any{"jku": jku}), endpoint},
		"no jku":                 {good.sign(t, card, nil), endpoint},
		"signatures not a list":  {map[string]json.RawMessage{"name": json.RawMessage(`"x"`), "signatures": json.RawMessage(`{"a":1}`)}, endpoint},
		"garbage protected part": {map[string]json.RawMessage{"name": json.RawMessage(`"x"`), "signatures": json.RawMessage(`[{"protected":"@@","signature":"x"}]`)}, endpoint},
	} {
		if ok, err := verify(c.card, c.ep); ok || err == nil {
			t.Errorf("%s: verified (%v, %v)", name, ok, err)
		}
	}
}

// FuzzCardDigest: any JSON object a remote agent serves is digested
// without panicking, and a card's digest ignores its signatures.
func FuzzCardDigest(f *testing.F) {
	f.Add([]byte(`{"name":"a","signatures":[{"protected":"e30","signature":"x"}]}`))
	f.Add([]byte(`{"b":1.0e2,"a":"\u00e9","c":[true,null,{"z":-0}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var card map[string]json.RawMessage
		if json.Unmarshal(in, &card) != nil {
			return
		}
		canon, hash, err := cardDigest(card)
		if err != nil {
			return
		}
		delete(card, "signatures")
		again, hash2, err := cardDigest(card)
		if err != nil || hash != hash2 || string(canon) != string(again) {
			t.Fatalf("signatures changed the digest: %s", in)
		}
		h := New(Config{Fetch: &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, context.Canceled })}})
		card["signatures"] = json.RawMessage(in)
		_, _ = h.verifySignatures(context.Background(), card, canon, "http://127.0.0.1/agent")
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
