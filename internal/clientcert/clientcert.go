// Package clientcert carries, in a request's context, what the agent
// plane's handshake proved about the client certificate: a self-signed
// certificate it accepted but mapped to no principal (only a client that
// registered that very certificate may use it: RFC 8705
// self_signed_tls_client_auth), or a certificate it verified to a trusted
// CA (RFC 8705 tls_client_auth, matched by subject).
package clientcert

import (
	"context"
	"crypto/x509"
)

type (
	key         struct{}
	verifiedKey struct{}
)

// WithSelfSigned returns a context carrying the certificate's x5t#S256.
func WithSelfSigned(ctx context.Context, thumbprint string) context.Context {
	return context.WithValue(ctx, key{}, thumbprint)
}

// SelfSigned returns the x5t#S256 of the request's self-signed
// certificate, or "".
func SelfSigned(ctx context.Context) string {
	t, _ := ctx.Value(key{}).(string)
	return t
}

// Verified is a client certificate chained to a trusted CA.
type Verified struct {
	Leaf       *x509.Certificate
	Thumbprint string // x5t#S256
}

// WithVerified returns a context carrying a verified certificate.
func WithVerified(ctx context.Context, v Verified) context.Context {
	return context.WithValue(ctx, verifiedKey{}, v)
}

// VerifiedOf returns the request's verified certificate (Leaf nil: none).
func VerifiedOf(ctx context.Context) Verified {
	v, _ := ctx.Value(verifiedKey{}).(Verified)
	return v
}
