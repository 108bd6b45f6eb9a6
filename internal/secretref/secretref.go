// Package secretref resolves secret references: wherever configuration or
// a tenant object holds a secret, it may name where the secret lives
// instead of holding it.
//
//	env:NAME                the environment variable NAME
//	file:/path              the file's content (one trailing newline dropped)
//	file:/path#key.sub      a member of the JSON document in the file
//	sealed:<base64>         a value sealed with the KEK (tenant objects)
//	vault:<mount>/<path>#f  a Vault secret (not served yet: an error)
//
// Any other value is the secret itself. Failures are errors that name the
// reference, never the secret.
package secretref

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/xavyo/xavyo/internal/seal"
)

// Prefixes of the reference kinds.
const (
	Env    = "env:"
	File   = "file:"
	Sealed = "sealed:"
	Vault  = "vault:"
)

// maxFile bounds a secret file: secrets are small, and a reference to a
// large file is a mistake better reported than read.
const maxFile = 1 << 20

// Resolver resolves references.
type Resolver struct {
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Sealer opens sealed values (none: sealed references fail).
	Sealer *seal.Sealer
}

// IsReference reports whether v names a secret rather than being one.
func IsReference(v string) bool {
	for _, p := range []string{Env, File, Sealed, Vault} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// Resolve returns the secret ref names. aad binds a sealed value to what
// holds it (the same aad that sealed it); other kinds ignore it.
func (r Resolver) Resolve(ref string, aad []byte) (string, error) {
	switch {
	case strings.HasPrefix(ref, Env):
		name := ref[len(Env):]
		if name == "" || strings.ContainsAny(name, "= \t\n") {
			return "", fmt.Errorf("secret reference %q: not an environment variable name", ref)
		}
		get := r.Getenv
		if get == nil {
			get = os.Getenv
		}
		v := get(name)
		if v == "" {
			return "", fmt.Errorf("secret reference %q: the environment variable is not set", ref)
		}
		return v, nil
	case strings.HasPrefix(ref, File):
		return readFile(ref)
	case strings.HasPrefix(ref, Sealed):
		if r.Sealer == nil {
			return "", fmt.Errorf("secret reference %q: sealed values are opened only where the store's KEK is known", Redact(ref))
		}
		raw, err := base64.RawURLEncoding.DecodeString(ref[len(Sealed):])
		if err != nil {
			return "", fmt.Errorf("secret reference %q: not base64url", Redact(ref))
		}
		v, err := r.Sealer.Open(raw, aad)
		if err != nil {
			return "", fmt.Errorf("secret reference %q: %w", Redact(ref), err)
		}
		return string(v), nil
	case strings.HasPrefix(ref, Vault):
		return "", fmt.Errorf("secret reference %q: Vault references are not served by this version", ref)
	}
	return ref, nil
}

// Seal returns the sealed reference of a plain secret, bound to aad: what
// a tenant object stores when given the secret itself. A value that is
// already a reference is kept as it is.
func Seal(s *seal.Sealer, v string, aad []byte) string {
	if IsReference(v) {
		return v
	}
	return Sealed + base64.RawURLEncoding.EncodeToString(s.Seal([]byte(v), aad))
}

// Redact is how a reference may be shown: env and file references as they
// are (they name a place, not a secret), sealed values shortened, plain
// secrets not at all.
func Redact(ref string) string {
	switch {
	case strings.HasPrefix(ref, Sealed):
		if len(ref) > len(Sealed)+8 {
			return ref[:len(Sealed)+8] + "…"
		}
		return ref
	case IsReference(ref):
		return ref
	case ref == "":
		return ""
	}
	return "[secret]"
}

func readFile(ref string) (string, error) {
	path, member, _ := strings.Cut(ref[len(File):], "#")
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("secret reference %q: the path must be absolute", ref)
	}
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the file
	if err != nil {
		return "", fmt.Errorf("secret reference %q: %w", ref, unwrapPath(err))
	}
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return "", fmt.Errorf("secret reference %q: %w", ref, unwrapPath(err))
	}
	if len(raw) > maxFile {
		return "", fmt.Errorf("secret reference %q: the file is over 1 MiB", ref)
	}
	if member == "" {
		v := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("secret reference %q: the file is empty", ref)
		}
		return v, nil
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("secret reference %q: the file is not JSON", ref)
	}
	for _, k := range strings.Split(member, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return "", fmt.Errorf("secret reference %q: no member %q", ref, member)
		}
		if doc, ok = m[k]; !ok {
			return "", fmt.Errorf("secret reference %q: no member %q", ref, member)
		}
	}
	v, ok := doc.(string)
	if !ok || v == "" {
		return "", fmt.Errorf("secret reference %q: member %q is not a non-empty string", ref, member)
	}
	return v, nil
}

// unwrapPath drops the path from an *os.PathError (the reference already
// names it).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
