// Package reqid carries a request's ID in its context, so that logs and
// audit records of every layer name the same request.
package reqid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

type key struct{}

// With returns a context carrying id.
func With(ctx context.Context, id string) context.Context { return context.WithValue(ctx, key{}, id) }

// From returns the request ID of ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// Valid reports whether a client-supplied request ID may be reused: 1 to
// 128 characters of [A-Za-z0-9._-], so it is safe in logs and headers.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// New returns a random request ID.
func New() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// OrNew returns s when Valid, else a new ID.
func OrNew(s string) string {
	if Valid(s) {
		return s
	}
	return New()
}

type ipKey struct{}

// WithClientIP returns a context carrying the client's address (as the
// admin plane sees it), for checks that depend on it (API keys' allow
// lists).
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

// ClientIP returns the client's address of ctx, or "".
func ClientIP(ctx context.Context) string {
	ip, _ := ctx.Value(ipKey{}).(string)
	return ip
}
