// Package mfatest is a software WebAuthn authenticator and its browser,
// for tests: it answers the options xavyo gives (the JSON forms of
// PublicKeyCredentialCreationOptions and …RequestOptions) as a platform
// authenticator with ES256 keys and "none" attestation would, and can be
// told to misbehave (another origin, relying party or challenge, a
// counter gone backwards) for the negative tests.
package mfatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator holds discoverable ES256 credentials.
type Authenticator struct {
	// Origin is the origin the browser reports.
	Origin string
	// AAGUID is the authenticator's model (zero by default, as browsers
	// report it without attestation).
	AAGUID [16]byte
	// NoCounter: the authenticator keeps no signature counter (always 0,
	// as synced passkeys do).
	NoCounter bool
	// Packed: registrations carry a packed self attestation (signed with
	// the new credential's key) instead of none.
	Packed bool
	creds  []*Credential
}

// Credential is one of an authenticator's credentials.
type Credential struct {
	ID      []byte
	User    []byte
	RPID    string
	Key     *ecdsa.PrivateKey
	Counter uint32
}

// Fault makes an answer misbehave.
type Fault struct {
	// Origin, RPID and Challenge replace what the answer says (the
	// challenge as its base64url form).
	Origin, RPID, Challenge string
	// Counter, when set, is the signature counter used.
	Counter *uint32
	// Credential picks the credential to answer with (default: the first
	// allowed, or the first for the relying party).
	Credential *Credential
	// NoUserVerification clears the UV flag.
	NoUserVerification bool
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// Credentials are the authenticator's credentials, oldest first.
func (a *Authenticator) Credentials() []*Credential { return a.creds }

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

func (a *Authenticator) authData(rpID string, flags byte, counter uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append([]byte{}, h[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, attested...)
}

func clientData(typ, challenge, origin string) []byte {
	raw, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return raw
}

// Create answers creation options (the publicKey member) with a new
// credential, as PublicKeyCredential.toJSON() gives it.
func (a *Authenticator) Create(options json.RawMessage, f Fault) ([]byte, *Credential, error) {
	var o struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, err
	}
	user, err := unb64(o.User.ID)
	if err != nil || o.RP.ID == "" || o.Challenge == "" {
		return nil, nil, errors.New("mfatest: creation options without rp.id, user.id or challenge")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	c := &Credential{ID: id, User: user, RPID: o.RP.ID, Key: key}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, nil, err
	}
	point := pub.Bytes() // 0x04 || X || Y
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: point[1:33], -3: point[33:65]})
	if err != nil {
		return nil, nil, err
	}
	attested := append([]byte{}, a.AAGUID[:]...)
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(id)))
	attested = append(attested, id...)
	attested = append(attested, cose...)
	rpID, origin, challenge := pick(f.RPID, o.RP.ID), pick(f.Origin, a.Origin), pick(f.Challenge, o.Challenge)
	flags := byte(flagUP | flagUV | flagAT)
	if f.NoUserVerification {
		flags &^= flagUV
	}
	ad := a.authData(rpID, flags, 0, attested)
	cd := clientData("webauthn.create", challenge, origin)
	format, stmt := "none", map[string]any{}
	if a.Packed {
		sum := sha256.Sum256(cd)
		digest := sha256.Sum256(append(append([]byte{}, ad...), sum[:]...))
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			return nil, nil, err
		}
		format, stmt = "packed", map[string]any{"alg": -7, "sig": sig}
	}
	att, err := webauthncbor.Marshal(map[string]any{"fmt": format, "attStmt": stmt, "authData": ad})
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(map[string]any{"id": b64(id), "rawId": b64(id), "type": "public-key", "authenticatorAttachment": "platform",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64(cd), "attestationObject": b64(att),
			"transports": []string{"internal"}}})
	if err != nil {
		return nil, nil, err
	}
	a.creds = append(a.creds, c)
	return out, c, nil
}

// Get answers request options (the publicKey member) with an assertion,
// as PublicKeyCredential.toJSON() gives it; each answer counts one more
// signature.
func (a *Authenticator) Get(options json.RawMessage, f Fault) ([]byte, error) {
	var o struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		Allow     []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	c := f.Credential
	for _, cr := range a.creds {
		if c != nil {
			break
		}
		if cr.RPID != o.RPID {
			continue
		}
		if len(o.Allow) == 0 {
			c = cr
		}
		for _, al := range o.Allow {
			if al.ID == b64(cr.ID) {
				c = cr
			}
		}
	}
	if c == nil {
		return nil, fmt.Errorf("mfatest: no credential for %q", o.RPID)
	}
	if !a.NoCounter {
		c.Counter++
	}
	counter := c.Counter
	if f.Counter != nil {
		counter = *f.Counter
	}
	flags := byte(flagUP | flagUV)
	if f.NoUserVerification {
		flags &^= flagUV
	}
	ad := a.authData(pick(f.RPID, o.RPID), flags, counter, nil)
	cd := clientData("webauthn.get", pick(f.Challenge, o.Challenge), pick(f.Origin, a.Origin))
	sum := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), sum[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": b64(c.ID), "rawId": b64(c.ID), "type": "public-key", "authenticatorAttachment": "platform",
		"clientExtensionResults": map[string]any{},
		"response":               map[string]any{"clientDataJSON": b64(cd), "authenticatorData": b64(ad), "signature": b64(sig), "userHandle": b64(c.User)}})
}

func pick(override, value string) string {
	if override != "" {
		return override
	}
	return value
}
