// Package reqid carries a request's ID in its context, so that logs and
// audit records of every layer name the same request.
package reqid

import "context"

type key struct{}

// With returns a context carrying id.
func With(ctx context.Context, id string) context.Context { return context.WithValue(ctx, key{}, id) }

// From returns the request ID of ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
