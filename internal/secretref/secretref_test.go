package secretref

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/seal"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "token")
	if err := os.WriteFile(plain, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(doc, []byte(`{"smtp":{"password":"p@ss"},"n":3,"empty":""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Resolver{Getenv: func(k string) string { return map[string]string{"XV_SECRET": "from-env"}[k] }}
	for _, tc := range []struct{ ref, want string }{
		{"env:XV_SECRET", "from-env"},
		{"file:" + plain, "s3cret-from-file"},
		{"file:" + doc + "#smtp.password", "p@ss"},
		{"just-a-value", "just-a-value"},
	} {
		got, err := r.Resolve(tc.ref, nil)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ ref, names string }{
		{"env:XV_MISSING", "env:XV_MISSING"},
		{"env:", "env:"},
		{"file:relative/path", "file:relative/path"},
		{"file:" + filepath.Join(dir, "nope"), "nope"},
		{"file:" + empty, "empty"},
		{"file:" + big, "over 1 MiB"},
		{"file:" + plain + "#a", "not JSON"},
		{"file:" + doc + "#smtp.user", "no member"},
		{"file:" + doc + "#smtp.password.x", "no member"},
		{"file:" + doc + "#n", "not a non-empty string"},
		{"file:" + doc + "#empty", "not a non-empty string"},
		{"vault:secret/data/x#y", "vault:secret/data/x#y"},
		{"sealed:AAAA", "sealed"},
	} {
		_, err := r.Resolve(tc.ref, nil)
		if err == nil || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("Resolve(%q) error = %v; want one naming %q", tc.ref, err, tc.names)
		}
	}
}

func TestSealedReferences(t *testing.T) {
	s, err := seal.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	ref := Seal(s, "client-secret", []byte("tenant-a/idp-1"))
	if !strings.HasPrefix(ref, Sealed) || strings.Contains(ref, "client-secret") {
		t.Fatalf("sealed reference %q", ref)
	}
	if Seal(s, "env:X", nil) != "env:X" {
		t.Fatal("a reference was sealed again")
	}
	r := Resolver{Sealer: s}
	if got, err := r.Resolve(ref, []byte("tenant-a/idp-1")); err != nil || got != "client-secret" {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	// Bound to what holds it: another object's (or tenant's) aad fails.
	if _, err := r.Resolve(ref, []byte("tenant-b/idp-1")); err == nil {
		t.Fatal("a sealed value opened under another binding")
	}
	other, _ := seal.New([]byte("fedcba9876543210fedcba9876543210"))
	if _, err := (Resolver{Sealer: other}).Resolve(ref, []byte("tenant-a/idp-1")); err == nil {
		t.Fatal("a sealed value opened under another KEK")
	}
	if _, err := (Resolver{}).Resolve(ref, nil); err == nil || strings.Contains(err.Error(), ref) {
		t.Fatalf("no sealer: error %v (must fail without echoing the whole value)", err)
	}
	if got := Redact(ref); len(got) >= len(ref) {
		t.Fatalf("Redact(%q) = %q", ref, got)
	}
	if Redact("hunter2-plain") != "[secret]" || Redact("env:X") != "env:X" {
		t.Fatal("Redact")
	}
}
