// Package dpoptest is a DPoP client key for tests: it signs proofs as a
// client does (RFC 9449 §4), and can be told to get them wrong.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key is a client's DPoP key (ES256).
type Key struct {
	Private *ecdsa.PrivateKey
	// Now stamps iat (default time.Now).
	Now func() time.Time
}

// New makes a key.
func New() *Key {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &Key{Private: k}
}

// JKT is the key's thumbprint, as tokens bound to it carry it.
func (k *Key) JKT() string {
	tp, _ := (&jose.JSONWebKey{Key: &k.Private.PublicKey}).Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// Proof is a proof for a request; accessToken ("" : none) gives ath,
// nonce ("" : none) the server's nonce. extra claims replace the
// defaults (a test's wrong values).
func (k *Key) Proof(method, url, accessToken, nonce string, extra map[string]any) string {
	now := time.Now
	if k.Now != nil {
		now = k.Now
	}
	c := map[string]any{"jti": rand.Text(), "htm": method, "htu": url, "iat": now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	for key, v := range extra {
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Private}, opts)
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}
