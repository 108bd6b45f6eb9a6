// Package principal defines who is making a request: the one type every
// plane's authentication puts in the request context (docs/design/0000-architecture.md §11).
package principal

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Kind is the kind of subject behind a principal.
type Kind string

// Principal kinds.
const (
	KindUser      Kind = "user"
	KindNHI       Kind = "nhi"
	KindBootstrap Kind = "bootstrap"
)

// AuthMethod is how the principal authenticated.
type AuthMethod string

// Authentication methods of docs/design/0000-architecture.md §11.
const (
	MethodPassword      AuthMethod = "password"
	MethodMFA           AuthMethod = "mfa"
	MethodMTLS          AuthMethod = "mtls"
	MethodClientSecret  AuthMethod = "client_secret"
	MethodPrivateKeyJWT AuthMethod = "private_key_jwt"
	MethodTokenExchange AuthMethod = "token_exchange"
	MethodAPIKey        AuthMethod = "api_key"
	MethodBootstrap     AuthMethod = "bootstrap"
)

// Admin roles checked by the admin API.
const (
	RoleSuperAdmin      = "super_admin"
	RoleTenantAdmin     = "tenant_admin"
	RoleGovernanceAdmin = "governance_admin"
	RoleAuditor         = "auditor"
	RoleViewer          = "viewer"
)

// Actor is one link of a delegation chain (the JWT `act` claim).
type Actor struct {
	SubjectID string `json:"sub"`
	ClientID  string `json:"client_id,omitempty"`
	Kind      Kind   `json:"kind,omitempty"`
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// TenantID is the tenant the principal belongs to; uuid.Nil for the
	// platform bootstrap principal, which belongs to no tenant.
	TenantID uuid.UUID
	Kind     Kind
	// SubjectID identifies the user or NHI (or "bootstrap").
	SubjectID string
	// NHIKind is the NHI kind (agent, tool_server, service_account) when Kind is nhi.
	NHIKind    string
	AuthMethod AuthMethod
	ClientID   string
	Scopes     []string
	AdminRoles []string
	// Actors is the delegation chain, outermost first.
	Actors []Actor
	// CertThumbprint is the base64url SHA-256 of the client certificate
	// (x5t#S256) the request was made with, if any.
	CertThumbprint string
	// DPoPKey is the thumbprint of the DPoP key the caller's token is
	// bound to and the request proved ("" : none).
	DPoPKey string
	// TokenID is the jti of the access token, if any.
	TokenID string
	// SessionID is the login session the token belongs to (sid), if any.
	SessionID string
	// AMR are how a person authenticated (RFC 8176: pwd, otp, mfa, …),
	// and AuthTime when (zero: unknown).
	AMR      []string
	AuthTime time.Time
}

// StrongSince reports whether p is a person who signed in with a second
// factor at or after t (not with an API key).
func (p *Principal) StrongSince(t time.Time) bool {
	return p != nil && p.AuthMethod != MethodAPIKey && slices.Contains(p.AMR, "mfa") && !p.AuthTime.IsZero() && !p.AuthTime.Before(t)
}

// HasRole reports whether p holds the admin role r. super_admin holds
// every role.
func (p *Principal) HasRole(r string) bool {
	if p == nil {
		return false
	}
	return slices.Contains(p.AdminRoles, RoleSuperAdmin) || slices.Contains(p.AdminRoles, r)
}

// ScopePasswordChange is the only scope of a token whose user must change
// their password before doing anything else.
const ScopePasswordChange = "password_change"

// Restricted reports whether p may only change its password.
func (p *Principal) Restricted() bool { return p.HasScope(ScopePasswordChange) }

// HasScope reports whether p was granted scope s.
func (p *Principal) HasScope(s string) bool {
	return p != nil && slices.Contains(p.Scopes, s)
}

// IsSuperAdmin reports whether p is a platform super admin.
func (p *Principal) IsSuperAdmin() bool {
	return p != nil && slices.Contains(p.AdminRoles, RoleSuperAdmin)
}

type ctxKey struct{}

// With returns a context carrying p.
func With(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal of ctx, or nil when the request is
// unauthenticated.
func From(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
