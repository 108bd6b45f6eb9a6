// Package apperr defines the error kinds every module returns and every
// protocol renders. An Error separates the message safe to show a client
// from the internal cause, which is only logged.
package apperr

import (
	"errors"
	"fmt"
)

// Kind classifies an error for rendering (HTTP status, OAuth error code,
// JSON-RPC code) without exposing its cause.
type Kind int

// The kinds of docs/design/0000-architecture.md §9.
const (
	KindInternal Kind = iota
	KindNotFound
	KindAlreadyExists
	KindInvalidArgument
	KindUnauthenticated
	KindPermissionDenied
	KindConflict
	KindRateLimited
	KindUnavailable
	KindPreconditionFailed
	KindTooLarge
	// KindUnprocessable: well-formed, but it cannot be done as asked (an
	// idempotency key reused for another request).
	KindUnprocessable
)

var kindNames = map[Kind]string{
	KindInternal:           "internal",
	KindNotFound:           "not_found",
	KindAlreadyExists:      "already_exists",
	KindInvalidArgument:    "invalid_argument",
	KindUnauthenticated:    "unauthenticated",
	KindPermissionDenied:   "permission_denied",
	KindConflict:           "conflict",
	KindRateLimited:        "rate_limited",
	KindUnavailable:        "unavailable",
	KindPreconditionFailed: "precondition_failed",
	KindTooLarge:           "too_large",
	KindUnprocessable:      "unprocessable",
}

// String returns the kind's stable snake_case name.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "internal"
}

// HTTPStatus is the kind's HTTP status, the same in every protocol that
// answers over HTTP (problem+json, OAuth errors, JSON-RPC and A2A error
// responses).
func (k Kind) HTTPStatus() int {
	switch k {
	case KindNotFound:
		return 404
	case KindAlreadyExists, KindConflict:
		return 409
	case KindInvalidArgument:
		return 400
	case KindUnauthenticated:
		return 401
	case KindPermissionDenied:
		return 403
	case KindRateLimited:
		return 429
	case KindUnavailable:
		return 503
	case KindPreconditionFailed:
		return 412
	case KindTooLarge:
		return 413
	case KindUnprocessable:
		return 422
	}
	return 500
}

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an application error: a kind, a message that may be shown to
// clients, optional field errors, and an internal cause that must not be.
type Error struct {
	Kind    Kind
	Message string
	Fields  []FieldError
	Cause   error
}

// Error implements error; it includes the cause for logs.
func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is an *Error of the same kind, so that
// errors.Is(err, apperr.ErrNotFound) works for any not-found error.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) && t.Message == "" && t.Cause == nil {
		return t.Kind == e.Kind
	}
	return false
}

// Sentinels for errors.Is checks by kind.
var (
	ErrNotFound           = &Error{Kind: KindNotFound}
	ErrAlreadyExists      = &Error{Kind: KindAlreadyExists}
	ErrInvalidArgument    = &Error{Kind: KindInvalidArgument}
	ErrUnauthenticated    = &Error{Kind: KindUnauthenticated}
	ErrPermissionDenied   = &Error{Kind: KindPermissionDenied}
	ErrConflict           = &Error{Kind: KindConflict}
	ErrRateLimited        = &Error{Kind: KindRateLimited}
	ErrUnavailable        = &Error{Kind: KindUnavailable}
	ErrPreconditionFailed = &Error{Kind: KindPreconditionFailed}
	ErrInternal           = &Error{Kind: KindInternal}
)

// New returns an error of kind k with a client-safe message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a client-safe message and an
// internal cause.
func Wrap(cause error, k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// NotFound returns a not-found error for the named thing.
func NotFound(what string) *Error { return New(KindNotFound, "%s not found", what) }

// Invalid returns an invalid-argument error naming one field.
func Invalid(field, msg string) *Error {
	return &Error{Kind: KindInvalidArgument, Message: "invalid " + field + ": " + msg,
		Fields: []FieldError{{Field: field, Message: msg}}}
}

// KindOf returns the kind of err: the kind of the first *Error in its
// chain, or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// PublicMessage returns the message safe to show a client: the message of
// the first *Error in the chain, or a generic text for internal errors.
func PublicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal && e.Message != "" {
		return e.Message
	}
	return "internal error"
}

// FieldsOf returns the field errors of the first *Error in err's chain.
func FieldsOf(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
