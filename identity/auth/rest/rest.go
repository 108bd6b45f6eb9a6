// Package rest serves sign-in, sessions, the caller's own account,
// tenant policies and signing keys under /api/v1, and each tenant
// issuer's JWKS and userinfo under /t/{slug}.
package rest

import (
	"context"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/mfa"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

var (
	adminRoles  = []string{principal.RoleTenantAdmin}
	auditRoles  = []string{principal.RoleTenantAdmin, principal.RoleAuditor}
	policyRoles = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer}
)

// Handler serves authentication and account routes.
type Handler struct {
	Auth      *auth.Service
	Directory *directory.Service
	Tenants   *tenant.Service
	Tokens    *token.Service
	// Subjects names people as each relying party knows them (pairwise
	// subjects); nil: by their id.
	Subjects interface {
		SubjectFor(ctx context.Context, clientID string, user uuid.UUID) (string, error)
	}
}

// RefreshInput presents a refresh token.
type RefreshInput struct {
	RefreshToken string `json:"refresh_token"`
}

// RotateInput chooses the algorithm of the new key.
type RotateInput struct {
	Alg string `json:"alg,omitempty" doc:"ES256 (default) or RS256"`
}

// PoliciesOutput is a tenant's policies with the tenant version they belong to.
type PoliciesOutput struct {
	tenant.Policies
	Version int64 `json:"version"`
}

// Mount registers the /api/v1 routes.
func (h *Handler) Mount(api *httpx.API) {
	a := []string{"authentication"}
	me := []string{"my account"}
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/login", OperationID: "login", Summary: "Sign in with a password",
		Tags: a, Public: true, Scope: httpx.ScopeNone, Request: auth.LoginInput{}, Response: auth.Tokens{}, Handler: h.login})
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/login/mfa", OperationID: "loginMFA",
		Summary: "Complete a sign-in that answered mfa_required: a code of the person's authenticator app, a recovery code, or an assertion of their passkey or security key",
		Tags:    a, Public: true, Scope: httpx.ScopeNone, Request: auth.LoginMFAInput{}, Response: auth.Tokens{}, Handler: signIn(h.Auth.LoginMFA)})
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/passkey/begin", OperationID: "beginPasskeyLogin",
		Summary: "Start a sign-in with a passkey, without a username: the options for navigator.credentials.get",
		Tags:    a, Public: true, Scope: httpx.ScopeNone, Request: auth.PasskeyBeginInput{}, Response: mfa.Ceremony{}, Handler: func(c *fiber.Ctx) error {
			var in auth.PasskeyBeginInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			out, err := h.Auth.BeginPasskey(c.UserContext(), in)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/passkey", OperationID: "loginPasskey",
		Summary: "Sign in with a passkey (the authenticator verifies the person: amr hwk user mfa)",
		Tags:    a, Public: true, Scope: httpx.ScopeNone, Request: auth.PasskeyInput{}, Response: auth.Tokens{}, Handler: signIn(h.Auth.LoginPasskey)})
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/refresh", OperationID: "refresh", Summary: "Exchange a refresh token (rotates it)",
		Tags: a, Public: true, Scope: httpx.ScopeNone, Request: RefreshInput{}, Response: auth.Tokens{}, Handler: h.refresh})
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/logout", OperationID: "logout", Summary: "End the current session",
		Tags: a, Scope: httpx.ScopeNone, AllowRestricted: true, Status: 204, Handler: h.logout})
	api.Handle(httpx.Route{Method: "POST", Path: "/auth/password", OperationID: "changePassword",
		Summary: "Change your password (ends your other sessions, opens a new one)", Tags: a, Scope: httpx.ScopeNone, AllowRestricted: true,
		Request: auth.ChangePasswordInput{}, Response: auth.Tokens{}, Handler: h.changePassword})

	api.Handle(httpx.Route{Method: "GET", Path: "/me", OperationID: "getMe", Summary: "Your user record", Tags: me,
		Response: directory.User{}, Handler: h.me})
	api.Handle(httpx.Route{Method: "GET", Path: "/me/sessions", OperationID: "listMySessions", Summary: "Your live sessions", Tags: me,
		Response: []auth.Session{}, Handler: h.mySessions})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/me/sessions/:id", OperationID: "revokeMySession", Summary: "End one of your sessions",
		Tags: me, Status: 204, Handler: h.revokeMySession})

	s := []string{"sessions"}
	api.Handle(httpx.Route{Method: "GET", Path: "/users/:id/sessions", OperationID: "listUserSessions", Summary: "A user's sessions",
		Tags: s, Roles: auditRoles, Response: []auth.Session{}, Query: []httpx.Param{{Name: "all", Type: "boolean", Description: "include ended sessions"}},
		Handler: h.userSessions})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/sessions/:id", OperationID: "revokeSession", Summary: "End any session",
		Tags: s, Roles: adminRoles, Status: 204, Handler: h.revokeSession})

	p := []string{"policies"}
	api.Handle(httpx.Route{Method: "GET", Path: "/policies", OperationID: "getPolicies", Summary: "Password, lockout and session policies",
		Tags: p, Roles: policyRoles, Response: PoliciesOutput{}, Handler: h.getPolicies})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/policies", OperationID: "setPolicies", Summary: "Change the policies (fields left out keep their values)",
		Tags: p, Roles: adminRoles, Request: tenant.Policies{}, Response: PoliciesOutput{}, IfMatch: true, Handler: h.setPolicies})

	k := []string{"signing keys"}
	api.Handle(httpx.Route{Method: "GET", Path: "/keys", OperationID: "listKeys", Summary: "The tenant's token signing keys",
		Tags: k, Roles: auditRoles, Response: []token.KeyInfo{}, Handler: h.keys})
	api.Handle(httpx.Route{Method: "POST", Path: "/keys/rotate", OperationID: "rotateKey", StepUp: true,
		Summary: "Make a new signing key; the old one verifies until its overlap ends", Tags: k, Roles: adminRoles,
		Request: RotateInput{}, Response: token.KeyInfo{}, Status: 201, Handler: h.rotate})
}

func client(c *fiber.Ctx) auth.Client {
	return auth.Client{IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent)}
}

// signIn serves the routes that answer tokens: a JSON body in, the
// tokens out, never cached.
func signIn[In any](act func(context.Context, In, auth.Client) (*auth.Tokens, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in In
		if err := httpx.DecodeJSON(c, &in); err != nil {
			return err
		}
		out, err := act(c.UserContext(), in, client(c))
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(out)
	}
}

func (h *Handler) login(c *fiber.Ctx) error { return signIn(h.Auth.Login)(c) }

func (h *Handler) refresh(c *fiber.Ctx) error {
	var in RefreshInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	out, err := h.Auth.Refresh(c.UserContext(), in.RefreshToken)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func (h *Handler) logout(c *fiber.Ctx) error {
	if err := h.Auth.Logout(c.UserContext()); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func (h *Handler) changePassword(c *fiber.Ctx) error { return signIn(h.Auth.ChangePassword)(c) }

// self returns the calling user's ID in the request's tenant.
func (h *Handler) me(c *fiber.Ctx) error {
	id, err := httpx.Self(c.UserContext())
	if err != nil {
		return err
	}
	u, err := h.Directory.GetUser(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (h *Handler) mySessions(c *fiber.Ctx) error {
	id, err := httpx.Self(c.UserContext())
	if err != nil {
		return err
	}
	ss, err := h.Auth.Sessions(c.UserContext(), id, false)
	if err != nil {
		return err
	}
	return c.JSON(ss)
}

func (h *Handler) revokeMySession(c *fiber.Ctx) error {
	id, err := httpx.Self(c.UserContext())
	if err != nil {
		return err
	}
	sid, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	if err := h.Auth.RevokeSession(c.UserContext(), sid, &id); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func (h *Handler) userSessions(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	all := c.Query("all") == "true"
	if s := c.Query("all"); s != "" && s != "true" && s != "false" {
		return apperr.Invalid("all", "must be true or false")
	}
	ss, err := h.Auth.Sessions(c.UserContext(), id, all)
	if err != nil {
		return err
	}
	return c.JSON(ss)
}

func (h *Handler) revokeSession(c *fiber.Ctx) error {
	sid, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	if err := h.Auth.RevokeSession(c.UserContext(), sid, nil); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func (h *Handler) getPolicies(c *fiber.Ctx) error {
	tid, _ := store.TenantFrom(c.UserContext())
	p, v, err := h.Tenants.Policies(c.UserContext(), tid)
	if err != nil {
		return err
	}
	httpx.SetETag(c, v)
	return c.JSON(PoliciesOutput{Policies: p, Version: v})
}

func (h *Handler) setPolicies(c *fiber.Ctx) error {
	tid, _ := store.TenantFrom(c.UserContext())
	v, err := httpx.IfMatch(c)
	if err != nil {
		return err
	}
	// Decode over the current policies: what the body leaves out stays.
	in, _, err := h.Tenants.Policies(c.UserContext(), tid)
	if err != nil {
		return err
	}
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	p, nv, err := h.Tenants.SetPolicies(c.UserContext(), tid, in, v)
	if err != nil {
		return err
	}
	httpx.SetETag(c, nv)
	return c.JSON(PoliciesOutput{Policies: p, Version: nv})
}

func (h *Handler) keys(c *fiber.Ctx) error {
	tid, _ := store.TenantFrom(c.UserContext())
	ks, err := h.Tokens.Keys(c.UserContext(), tid)
	if err != nil {
		return err
	}
	if ks == nil {
		ks = []token.KeyInfo{}
	}
	return c.JSON(ks)
}

func (h *Handler) rotate(c *fiber.Ctx) error {
	tid, _ := store.TenantFrom(c.UserContext())
	var in RotateInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	if in.Alg != "" && in.Alg != token.ES256 && in.Alg != token.RS256 {
		return apperr.Invalid("alg", "must be ES256 or RS256")
	}
	k, err := h.Tokens.Rotate(c.UserContext(), tid, in.Alg)
	if err != nil {
		return err
	}
	return c.Status(201).JSON(k)
}

// MountIssuer serves each tenant issuer's JWKS and userinfo under
// /t/{slug}. Tokens of another tenant are refused there.
func (h *Handler) MountIssuer(app *fiber.App) {
	app.Get("/t/:slug/jwks", h.jwks)
	app.Get("/t/:slug/userinfo", h.userinfo)
	app.Post("/t/:slug/userinfo", h.userinfo)
}

func (h *Handler) issuerTenant(c *fiber.Ctx) (*tenant.Tenant, error) {
	t, err := h.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nil, apperr.NotFound("issuer")
	}
	return t, err
}

func (h *Handler) jwks(c *fiber.Ctx) error {
	t, err := h.issuerTenant(c)
	if err != nil {
		return err
	}
	set, err := h.Tokens.JWKS(c.UserContext(), t.ID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(set)
}

// userinfo answers OpenID Connect Core §5.3 for the bearer's user.
func (h *Handler) userinfo(c *fiber.Ctx) error {
	t, err := h.issuerTenant(c)
	if err != nil {
		return err
	}
	raw, ok := bearer(c.Get(fiber.HeaderAuthorization))
	if !ok {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
		return apperr.New(apperr.KindUnauthenticated, "a bearer token is required")
	}
	cl, err := h.Tokens.Verify(c.UserContext(), raw, token.Expect{Tenant: t.ID})
	if err != nil {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
		return err
	}
	if !slices.Contains(strings.Fields(cl.Scope), "openid") {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer error="insufficient_scope", scope="openid"`)
		return apperr.New(apperr.KindPermissionDenied, "the token lacks the openid scope")
	}
	uid, err := uuid.Parse(cl.Subject)
	if err != nil || cl.SubjectKind != string(principal.KindUser) {
		return apperr.New(apperr.KindPermissionDenied, "userinfo is for user tokens")
	}
	u, err := h.Directory.GetUser(store.WithTenant(c.UserContext(), t.ID), uid)
	if err != nil {
		return err
	}
	sub := u.ID.String()
	if h.Subjects != nil {
		// OpenID Connect Core §8: the client that holds the token knows
		// the person by the subject of its ID tokens.
		if sub, err = h.Subjects.SubjectFor(store.WithTenant(c.UserContext(), t.ID), cl.ClientID, u.ID); err != nil {
			return err
		}
	}
	out := map[string]any{"sub": sub, "email": u.Email, "email_verified": u.Status != directory.StatusPendingVerification,
		"name": u.DisplayName, "given_name": u.GivenName, "family_name": u.FamilyName, "updated_at": u.UpdatedAt.Unix()}
	if u.Username != nil {
		out["preferred_username"] = *u.Username
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func bearer(h string) (string, bool) {
	if len(h) > 7 && (h[:7] == "Bearer " || h[:7] == "bearer ") {
		return h[7:], true
	}
	return "", false
}
