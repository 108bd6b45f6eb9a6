// Package dpop checks DPoP proofs (RFC 9449): a JWT a client signs with
// a key of its own for each request, naming the request's method and URL,
// so that a token bound to that key (cnf.jkt) is of no use to anyone who
// only holds the token. The key's thumbprint (RFC 7638) is what tokens
// are bound to; replays are refused by the caller, which records each
// proof's jti until the proof is too old to be accepted anyway.
package dpop

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Algorithms are the proof signature algorithms accepted (asymmetric
// only: never none, never a MAC).
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// AlgorithmNames are Algorithms as metadata lists them.
func AlgorithmNames() []string {
	out := make([]string, len(Algorithms))
	for i, a := range Algorithms {
		out[i] = string(a)
	}
	return out
}

// Window is how old a proof may be; Skew how far in the future its iat
// may be (clocks differ).
const (
	Window = 5 * time.Minute
	Skew   = time.Minute
)

// Proof is a checked DPoP proof.
type Proof struct {
	// JKT is the SHA-256 thumbprint of the proof's key (base64url).
	JKT string
	// JTI is the proof's unique id.
	JTI string
	// Nonce is the server nonce the proof carries ("" : none).
	Nonce string
	// Until is when the proof can no longer be accepted: a replay cache
	// keeps its jti until then.
	Until time.Time
}

// ErrInvalid answers a proof that is not a valid DPoP proof for the
// request.
func invalid(why string) error {
	return apperr.New(apperr.KindUnauthenticated, "invalid DPoP proof: %s", why)
}

type claims struct {
	JTI   string          `json:"jti"`
	HTM   string          `json:"htm"`
	HTU   string          `json:"htu"`
	IAT   json.Number     `json:"iat"`
	ATH   string          `json:"ath"`
	Nonce json.RawMessage `json:"nonce"`
}

// Check checks a proof for a request (method and absolute URL, its query
// and fragment ignored) at now; accessToken, when not "", is the token
// the request presents, whose hash the proof must carry (ath).
func Check(raw, method, target, accessToken string, now time.Time) (*Proof, error) {
	if raw == "" || len(raw) > 8<<10 || strings.Count(raw, ".") != 2 {
		return nil, invalid("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(raw, Algorithms)
	if err != nil {
		return nil, invalid("not a JWS signed with an accepted algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("one signature is required")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, invalid("typ must be dpop+jwt")
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, invalid("the header must carry the public key (jwk)")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("the signature does not verify with its jwk")
	}
	var c claims
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, invalid("unreadable claims")
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return nil, invalid("jti is required")
	}
	if c.HTM != method {
		return nil, invalid("htm is not this request's method")
	}
	if !SameTarget(c.HTU, target) {
		return nil, invalid("htu is not this request's URL")
	}
	iat, err := c.IAT.Int64()
	if err != nil {
		return nil, invalid("iat is required")
	}
	at := time.Unix(iat, 0)
	if at.Before(now.Add(-Window)) || at.After(now.Add(Skew)) {
		return nil, invalid("iat is too old or in the future")
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
			return nil, invalid("ath is not the hash of the access token")
		}
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("the jwk has no thumbprint")
	}
	p := &Proof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: c.JTI, Until: at.Add(Window + Skew)}
	if len(c.Nonce) > 0 {
		if err := json.Unmarshal(c.Nonce, &p.Nonce); err != nil {
			return nil, invalid("nonce must be a string")
		}
	}
	return p, nil
}

// SameTarget reports whether a proof's htu names target: scheme and host
// compared without case, default ports dropped, query and fragment
// ignored (RFC 9449 §4.3).
func SameTarget(htu, target string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(target)
	if err1 != nil || err2 != nil || a.Scheme == "" || a.Host == "" {
		return false
	}
	norm := func(u *url.URL) string {
		host := strings.ToLower(u.Hostname())
		port := u.Port()
		scheme := strings.ToLower(u.Scheme)
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			port = ""
		}
		if port != "" {
			host += ":" + port
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(a) == norm(b)
}

// Nonces are server nonces (RFC 9449 §8) without state: a nonce is a time
// step and its MAC; one of this step or the previous is accepted, so any
// replica holding the key checks any other's.
type Nonces struct {
	Key  []byte
	Step time.Duration
}

func (n Nonces) step() time.Duration {
	if n.Step <= 0 {
		return 5 * time.Minute
	}
	return n.Step
}

func (n Nonces) mac(step int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(step)) //nolint:gosec // G115: a time step, never negative
	m := hmac.New(sha256.New, n.Key)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

// Issue is the nonce of now.
func (n Nonces) Issue(now time.Time) string {
	return n.mac(now.UnixNano() / int64(n.step()))
}

// Valid reports whether a nonce is of this step or the previous one.
func (n Nonces) Valid(nonce string, now time.Time) bool {
	cur := now.UnixNano() / int64(n.step())
	for _, s := range []int64{cur, cur - 1} {
		if subtle.ConstantTimeCompare([]byte(nonce), []byte(n.mac(s))) == 1 {
			return true
		}
	}
	return false
}
