package seal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xavyo/xavyo/internal/seal"
)

func TestSealOpen(t *testing.T) {
	s, gen, err := seal.Load("", t.TempDir())
	if err != nil || !gen {
		t.Fatal(err, gen)
	}
	ct := s.Seal([]byte("secret"), []byte("name-a"))
	pt, err := s.Open(ct, []byte("name-a"))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("%q %v", pt, err)
	}
	if bytes.Contains(ct, []byte("secret")) {
		t.Fatal("plaintext visible in ciphertext")
	}
	if _, err := s.Open(ct, []byte("name-b")); err == nil {
		t.Fatal("opened under another name")
	}
	flipped := bytes.Clone(ct)
	flipped[len(flipped)-1] ^= 1
	if _, err := s.Open(flipped, []byte("name-a")); err == nil {
		t.Fatal("opened a tampered value")
	}
	if _, err := s.Open(ct[:10], []byte("name-a")); err == nil {
		t.Fatal("opened a truncated value")
	}
	other, _, _ := seal.Load("", t.TempDir())
	if _, err := other.Open(ct, []byte("name-a")); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestGeneratedKeyPersists(t *testing.T) {
	dir := t.TempDir()
	a, gen, err := seal.Load("", dir)
	if err != nil || !gen {
		t.Fatal(err)
	}
	b, gen, err := seal.Load("", dir)
	if err != nil || gen {
		t.Fatal(err, gen)
	}
	if _, err := b.Open(a.Seal([]byte("x"), nil), nil); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, "kek"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("kek file mode %v", st.Mode())
	}
	if _, _, err := seal.Load("bm90LWJhc2U2NA", dir); err == nil {
		t.Fatal("accepted a short key")
	}
}

func TestDerive(t *testing.T) {
	a, _ := seal.New([]byte("0123456789abcdef0123456789abcdef"))
	a2, _ := seal.New([]byte("0123456789abcdef0123456789abcdef"))
	b, _ := seal.New([]byte("fedcba9876543210fedcba9876543210"))
	k := a.Derive("oidc pairwise subjects")
	if len(k) != 32 || string(k) != string(a2.Derive("oidc pairwise subjects")) {
		t.Fatal("a derived key is not stable under the same KEK")
	}
	if string(k) == string(a.Derive("another use")) || string(k) == string(b.Derive("oidc pairwise subjects")) {
		t.Fatal("derived keys of other labels or KEKs collide")
	}
}
