// Package clientcert carries, in a request's context, the self-signed
// client certificate the agent plane accepted in the handshake but mapped
// to no principal: only a client that registered that very certificate
// may use it (RFC 8705 self_signed_tls_client_auth).
package clientcert

import "context"

type key struct{}

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
