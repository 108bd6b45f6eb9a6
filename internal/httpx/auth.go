package httpx

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Authenticator turns the Authorization header's scheme and token into a
// principal. It returns (nil, nil) when the credentials are not of its
// kind, so the next one may try, and an Unauthenticated error when they
// are but do not verify.
type Authenticator interface {
	Authenticate(ctx context.Context, scheme, token string) (*principal.Principal, error)
}

// TenantResolver says whether a tenant exists and may be used: an error
// of kind NotFound for unknown or deleted tenants.
type TenantResolver interface {
	ActiveTenant(ctx context.Context, id uuid.UUID) error
}

// CrossTenantAuditor records a super admin acting inside another tenant.
type CrossTenantAuditor interface {
	CrossTenant(ctx context.Context, p *principal.Principal, tenant uuid.UUID, method, path string)
}

const (
	localPrincipal = "xavyo.principal"
	localTenant    = "xavyo.tenant"
)

// authenticate runs the authenticators on the Authorization header. A
// request without one stays anonymous; routes decide if that is enough.
func authenticate(authns []Authenticator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := c.Get(fiber.HeaderAuthorization)
		if h == "" {
			return c.Next()
		}
		scheme, token, ok := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			return apperr.New(apperr.KindUnauthenticated, "malformed Authorization header")
		}
		c.SetUserContext(reqid.WithClientIP(c.UserContext(), c.IP()))
		for _, a := range authns {
			p, err := a.Authenticate(c.UserContext(), scheme, token)
			if err != nil {
				return err
			}
			if p != nil {
				c.Locals(localPrincipal, p)
				c.SetUserContext(principal.With(c.UserContext(), p))
				return c.Next()
			}
		}
		return apperr.New(apperr.KindUnauthenticated, "credentials not recognized")
	}
}

// Principal returns the request's authenticated principal, or nil.
func Principal(c *fiber.Ctx) *principal.Principal {
	p, _ := c.Locals(localPrincipal).(*principal.Principal)
	return p
}

// authorize enforces a route's access rule: the one place roles are
// checked. There is no bypass: super_admin passes because HasRole says so.
func authorize(r *Route, tenants TenantResolver, stepUp StepUpPolicy) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if r.Public {
			return c.Next()
		}
		p := Principal(c)
		if p == nil {
			return apperr.New(apperr.KindUnauthenticated, "authentication required")
		}
		// The caller's own tenant must be served (one status policy for
		// both planes): a suspended tenant's people and NHIs are refused
		// on every route, whatever the route works on.
		if p.TenantID != uuid.Nil && tenants != nil {
			if err := tenants.ActiveTenant(c.UserContext(), p.TenantID); err != nil {
				if apperr.KindOf(err) == apperr.KindNotFound {
					return apperr.New(apperr.KindUnauthenticated, "the credential's tenant no longer exists")
				}
				return err
			}
		}
		if p.Restricted() && !r.AllowRestricted {
			return apperr.New(apperr.KindPermissionDenied, "password change required: POST /api/v1/auth/password first")
		}
		if r.Scope == ScopePlatform && !p.IsSuperAdmin() {
			return apperr.New(apperr.KindPermissionDenied, "platform operation: super_admin required")
		}
		if len(r.Roles) > 0 {
			ok := false
			for _, role := range r.Roles {
				if p.HasRole(role) {
					ok = true
					break
				}
			}
			if !ok {
				return apperr.New(apperr.KindPermissionDenied, "role required: %s", strings.Join(r.Roles, " or "))
			}
		}
		if r.StepUp {
			if err := requireStepUp(c, p, stepUp); err != nil {
				return err
			}
		}
		return c.Next()
	}
}

// requireStepUp refuses a principal without a recent sign-in with a
// second factor where its tenant asks for step-up (RFC 9470).
func requireStepUp(c *fiber.Ctx, p *principal.Principal, stepUp StepUpPolicy) error {
	if stepUp == nil || p == nil || p.TenantID == uuid.Nil {
		return nil
	}
	on, maxAge, err := stepUp.StepUp(c.UserContext(), p.TenantID)
	if err != nil {
		return err
	}
	if on && !p.StrongSince(time.Now().Add(-maxAge)) {
		// RFC 9470: sign in again with a second factor.
		c.Set(fiber.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer error="insufficient_user_authentication", `+
			`error_description="a recent sign-in with a second factor is required", acr_values="%s", max_age=%d`, ACRMFA, int(maxAge.Seconds())))
		return apperr.New(apperr.KindUnauthenticated, "this operation needs a sign-in with a second factor within the last %d seconds (not an API key)",
			int(maxAge.Seconds()))
	}
	return nil
}

// stepUpWhen asks for step-up where a route's request is risky by its
// content (after the tenant is scoped, so the predicate may read it).
func stepUpWhen(r *Route, stepUp StepUpPolicy) fiber.Handler {
	return func(c *fiber.Ctx) error {
		risky, err := r.StepUpWhen(c)
		if err != nil {
			return err
		}
		if risky {
			if err := requireStepUp(c, Principal(c), stepUp); err != nil {
				return err
			}
		}
		return c.Next()
	}
}

// ACRMFA is the authentication context class step-up asks for.
const ACRMFA = "urn:xavyo:acr:mfa"

// StepUpPolicy says whether a tenant's risky operations need a recent
// sign-in with a second factor, and how recent (identity/tenant).
type StepUpPolicy interface {
	StepUp(ctx context.Context, tenant uuid.UUID) (bool, time.Duration, error)
}

// scopeTenant puts the tenant a tenant-scoped request works in into its
// context: the principal's own, or — for a super admin only — the one
// named by X-Tenant-ID, which is audited.
func scopeTenant(res TenantResolver, aud CrossTenantAuditor) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := Principal(c)
		tenant := uuid.Nil
		if p != nil {
			tenant = p.TenantID
		}
		if h := c.Get("X-Tenant-ID"); h != "" {
			id, err := uuid.Parse(h)
			if err != nil || id == uuid.Nil {
				return apperr.Invalid("X-Tenant-ID", "must be a tenant UUID")
			}
			if id != tenant {
				if !p.IsSuperAdmin() {
					return apperr.New(apperr.KindPermissionDenied, "X-Tenant-ID is reserved to super admins")
				}
				if aud != nil {
					aud.CrossTenant(c.UserContext(), p, id, c.Method(), c.Path())
				}
			}
			tenant = id
		}
		if tenant == uuid.Nil {
			return apperr.Invalid("X-Tenant-ID", "this operation works inside a tenant: name one")
		}
		// The caller's own tenant was admitted by authorize already.
		if p == nil || tenant != p.TenantID {
			if err := res.ActiveTenant(c.UserContext(), tenant); err != nil {
				return err
			}
		}
		c.Locals(localTenant, tenant.String())
		c.SetUserContext(store.WithTenant(c.UserContext(), tenant))
		return c.Next()
	}
}

// OperatorOnly admits platform operators (a super_admin principal: an
// operator's token or the bootstrap token) and, when token is set, a
// scraper presenting it as a bearer token; everyone else gets 401 or 403.
func OperatorOnly(token string, authns ...Authenticator) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := c.Get(fiber.HeaderAuthorization)
		scheme, cred, _ := strings.Cut(h, " ")
		cred = strings.TrimSpace(cred)
		if h == "" || cred == "" {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="xavyo operators"`)
			return apperr.New(apperr.KindUnauthenticated, "operators only: present an operator's token or the metrics token")
		}
		if token != "" && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(cred), []byte(token)) == 1 {
			return c.Next()
		}
		for _, a := range authns {
			p, err := a.Authenticate(c.UserContext(), scheme, cred)
			if err != nil {
				return err
			}
			if p != nil {
				if !p.IsSuperAdmin() {
					return apperr.New(apperr.KindPermissionDenied, "operators only")
				}
				return c.Next()
			}
		}
		return apperr.New(apperr.KindUnauthenticated, "credentials not recognized")
	}
}

// Self returns the user a request's principal is, in the request's
// tenant: the "me" routes' subject. Other principals (NHIs, operators of
// another tenant) are refused.
func Self(ctx context.Context) (uuid.UUID, error) {
	p := principal.From(ctx)
	tid, _ := store.TenantFrom(ctx)
	if p == nil || p.Kind != principal.KindUser || p.TenantID != tid {
		return uuid.Nil, apperr.New(apperr.KindPermissionDenied, "only a user of this tenant has an account here")
	}
	id, err := uuid.Parse(p.SubjectID)
	if err != nil {
		return uuid.Nil, apperr.New(apperr.KindPermissionDenied, "not a user")
	}
	return id, nil
}
