// Package seal encrypts secrets at rest with AES-256-GCM under the
// key-encryption key (KEK) of the configuration (docs/design/0000-architecture.md §3). A sealed
// value names the key that sealed it, so a wrong KEK is reported as such
// rather than as corrupt data.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const version byte = 1

// Sealer seals and opens values under one KEK.
type Sealer struct {
	aead  cipher.AEAD
	keyID [4]byte
	prk   []byte // HKDF pseudorandom key of the KEK, for Derive
}

// New returns a Sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("seal: the key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, key, []byte("xavyo-kek-derive"))
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: aead, prk: prk}
	sum := sha256.Sum256(append([]byte("xavyo-kek-id:"), key...))
	copy(s.keyID[:], sum[:4])
	return s, nil
}

// Load returns the Sealer of a base64 KEK, or — when kek is empty — of the
// KEK kept in dataDir/kek, generating that file (mode 0600) the first
// time. generated says whether it did.
func Load(kek, dataDir string) (s *Sealer, generated bool, err error) {
	if kek != "" {
		key, err := base64.StdEncoding.DecodeString(kek)
		if err != nil {
			return nil, false, errors.New("seal: secrets.kek is not base64")
		}
		s, err := New(key)
		return s, false, err
	}
	path := filepath.Join(dataDir, "kek")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("seal: create %s: %w", path, err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, false, err
		}
		s, err := New(key)
		return s, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("seal: read %s: %w", path, err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, false, fmt.Errorf("seal: %s is not base64", path)
	}
	s, err = New(key)
	return s, false, err
}

// Derive returns a 32-byte key for one use (label), derived from the KEK
// (HKDF-SHA256): stable as long as the KEK is, and telling nothing of it
// or of the keys of other labels.
func (s *Sealer) Derive(label string) []byte {
	k, err := hkdf.Expand(sha256.New, s.prk, label, 32)
	if err != nil {
		panic("seal: derive: " + err.Error()) // 32 bytes of SHA-256 HKDF cannot fail
	}
	return k
}

// ErrWrongKey is returned when a value was sealed under another KEK.
var ErrWrongKey = errors.New("seal: value was sealed with a different key-encryption key (check secrets.kek)")

// Seal encrypts plaintext; aad (e.g. the secret's name) binds the
// ciphertext to its place, so it cannot be moved to another.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 0, 1+4+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out = append(out, version)
	out = append(out, s.keyID[:]...)
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("seal: no randomness: " + err.Error())
	}
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, aad)
}

// Open decrypts a value made by Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	hdr := 1 + 4 + s.aead.NonceSize()
	if len(sealed) < hdr+s.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("seal: malformed sealed value")
	}
	if [4]byte(sealed[1:5]) != s.keyID {
		return nil, ErrWrongKey
	}
	pt, err := s.aead.Open(nil, sealed[5:hdr], sealed[hdr:], aad)
	if err != nil {
		return nil, errors.New("seal: sealed value failed authentication")
	}
	return pt, nil
}
