// Package rest serves sign-in through upstream identity providers: the
// registry under /api/v1/identity-providers, a person's linked
// identities under /api/v1/me/linked-identities, and the pages
// /t/{slug}/login/federation/{idp} (sends the browser upstream) and
// /t/{slug}/federation/{idp}/callback (where it comes back).
package rest

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/federation"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// purposeLink is the auth transactions of people proving the account an
// upstream identity is to be linked to.
const purposeLink = "federation.link"

// bindCookie binds a sign-in sent upstream to the browser that started
// it (a login CSRF sends a victim's browser back with the attacker's
// code: its attempt was started in another browser).
const bindCookie = "xv_fed"

// PageAuth is what the pages need of identity/auth.
type PageAuth interface {
	StartTransaction(ctx context.Context, t *tenant.Tenant, purpose, request string, session uuid.UUID) (*auth.Transaction, error)
	Transaction(ctx context.Context, t *tenant.Tenant, id string) (*auth.Transaction, error)
	EndTransaction(ctx context.Context, t *tenant.Tenant, x *auth.Transaction) error
}

// Handler serves the routes.
type Handler struct {
	Federation *federation.Service
	Directory  *directory.Service
	Tenants    *tenant.Service
	Auth       PageAuth
	Pages      *authrest.Pages
	// Issuer is a tenant's issuer URL (…/t/{slug}).
	Issuer func(slug string) string
}

// Mount registers the REST routes.
func (h *Handler) Mount(api *httpx.API) {
	tags := []string{"identity providers"}
	admin := []string{principal.RoleTenantAdmin}
	read := []string{principal.RoleTenantAdmin, principal.RoleAuditor}
	api.Handle(httpx.Route{Method: "GET", Path: "/identity-providers", OperationID: "listIdentityProviders",
		Summary: "The tenant's upstream identity providers", Tags: tags, Roles: read, Response: []federation.Provider{}, Handler: func(c *fiber.Ctx) error {
			out, err := h.Federation.List(c.UserContext())
			if err != nil {
				return err
			}
			if out == nil {
				out = []*federation.Provider{}
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/identity-providers", OperationID: "createIdentityProvider",
		Summary: "Register an upstream identity provider (OpenID Connect, or a preset: google, microsoft, github)", Tags: tags, Roles: admin,
		Request: federation.Input{}, Response: federation.Provider{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			var in federation.Input
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			out, err := h.Federation.Create(c.UserContext(), in)
			if err != nil {
				return err
			}
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "GET", Path: "/identity-providers/:id", OperationID: "getIdentityProvider",
		Summary: "An upstream identity provider", Tags: tags, Roles: read, Response: federation.Provider{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			out, err := h.Federation.Get(c.UserContext(), id)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/identity-providers/:id", OperationID: "updateIdentityProvider",
		Summary: "Change an upstream identity provider (its key stays; settings are replaced whole)", Tags: tags, Roles: admin,
		Request: federation.Input{}, Response: federation.Provider{}, IfMatch: true, Handler: func(c *fiber.Ctx) error {
			var in federation.Input
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			ver, err := httpx.IfMatch(c)
			if err != nil {
				return err
			}
			out, err := h.Federation.Update(c.UserContext(), id, in, ver)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/identity-providers/:id/refresh", OperationID: "refreshIdentityProvider",
		Summary: "Fetch a SAML provider's metadata again from its metadata_url (done daily anyway)", Tags: tags, Roles: admin,
		Response: federation.Provider{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			out, err := h.Federation.Refresh(c.UserContext(), id)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/identity-providers/:id", OperationID: "deleteIdentityProvider",
		Summary: "Remove an upstream identity provider (the identities linked through it stay)", Tags: tags, Roles: admin, Status: 204,
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.Federation.Delete(c.UserContext(), id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
	me := []string{"me"}
	api.Handle(httpx.Route{Method: "GET", Path: "/me/linked-identities", OperationID: "listMyLinkedIdentities",
		Summary: "The upstream identities the caller signs in with", Tags: me, Response: []directory.Link{}, Handler: func(c *fiber.Ctx) error {
			user, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			out, err := h.Directory.Links(c.UserContext(), user)
			if err != nil {
				return err
			}
			if out == nil {
				out = []*directory.Link{}
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/me/linked-identities/:id", OperationID: "unlinkMyIdentity",
		Summary: "Stop signing in with an upstream identity", Tags: me, Status: 204, StepUp: true, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			user, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			if err := h.Directory.Unlink(c.UserContext(), user, id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
}

// MountPages registers the pages and the flow of linking an account.
func (h *Handler) MountPages(app *fiber.App) {
	app.Get("/t/:slug/login/federation/:idp", h.start)
	app.Get("/t/:slug/federation/:idp/callback", h.callback)
	app.Post("/t/:slug/federation/:idp/callback", h.callback) // response_mode=form_post
	app.Get("/t/:slug/federation/:idp/metadata", h.metadata)
	app.Post("/t/:slug/federation/:idp/acs", h.acs)
	app.Get("/t/:slug/federation/:idp/slo", h.slo)
	app.Post("/t/:slug/federation/:idp/slo", h.slo)
	h.Pages.Register(purposeLink, linkFlow{h})
}

func (h *Handler) callbackURL(t *tenant.Tenant, p *federation.Provider) string {
	return h.base(t, p) + "/callback"
}

// base is the absolute URL of a provider's endpoints at xavyo.
func (h *Handler) base(t *tenant.Tenant, p *federation.Provider) string {
	return h.Issuer(t.Slug) + "/federation/" + p.Key
}

// provider resolves a page request's tenant and enabled provider; ok
// false: the page was answered.
func (h *Handler) provider(c *fiber.Ctx) (*tenant.Tenant, context.Context, *federation.Provider, bool, error) {
	t, err := h.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return nil, nil, nil, false, authrest.TenantPage(c, err)
	}
	ctx := store.WithTenant(c.UserContext(), t.ID)
	p, err := h.Federation.ByKey(ctx, c.Params("idp"))
	switch {
	case apperr.KindOf(err) == apperr.KindNotFound || (err == nil && !p.Enabled):
		return nil, nil, nil, false, authrest.Error(c, 404, "there is no such identity provider here")
	case err != nil:
		return nil, nil, nil, false, authrest.Error(c, 503, "the sign-in is unavailable; try again")
	}
	return t, ctx, p, true, nil
}

// start sends the browser to the provider, for the transaction it names
// (none: a sign-in for itself).
func (h *Handler) start(c *fiber.Ctx) error {
	t, ctx, p, ok, err := h.provider(c)
	if !ok {
		return err
	}
	tx := ""
	if c.Query("tx") != "" {
		x, ok, err := h.Pages.TransactionOf(c, t)
		if !ok {
			return err
		}
		tx = x.ID
	} else if p.Kind == federation.KindSAML {
		// The upstream session is kept with the sign-in's transaction
		// until the session it opens is known.
		x, err := h.Auth.StartTransaction(ctx, t, authrest.PurposeSignIn, "", uuid.Nil)
		if err != nil {
			return authrest.Error(c, 503, "the sign-in is unavailable; try again")
		}
		tx = x.ID
	}
	browser := c.Cookies(bindCookie)
	if len(browser) != 43 {
		browser = federation.NewBrowserSecret()
	}
	var to string
	if p.Kind == federation.KindSAML {
		to, err = h.Federation.BeginSAML(ctx, p, tx, browser, h.base(t, p))
	} else {
		to, err = h.Federation.Begin(ctx, p, tx, browser, h.callbackURL(t, p), c.Query("login_hint"))
	}
	if err != nil {
		return authrest.Error(c, 503, apperr.PublicMessage(err))
	}
	// Over TLS the binding cookie goes with the SAML provider's cross-site
	// POST; on plain HTTP (development) the POST is bounced through a
	// same-site form first.
	secure := strings.HasPrefix(h.Issuer(t.Slug), "https://")
	same := fiber.CookieSameSiteLaxMode
	if secure {
		same = fiber.CookieSameSiteNoneMode
	}
	c.Cookie(&fiber.Cookie{Name: bindCookie, Value: browser, Path: "/t/" + t.Slug, HTTPOnly: true, SameSite: same, Secure: secure,
		Expires: time.Now().Add(federation.AttemptLifetime)})
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(to, fiber.StatusFound)
}

// knownAMR are the RFC 8176 method values an upstream's amr may carry
// into xavyo's.
var knownAMR = []string{"face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia"}

// callback is where the provider sends the browser back: the sign-in is
// verified, its person found (or created, or their account to be proved
// for a link) and signed in.
func (h *Handler) callback(c *fiber.Ctx) error {
	t, ctx, p, ok, err := h.provider(c)
	if !ok {
		return err
	}
	params := url.Values{}
	if c.Method() == fiber.MethodPost {
		c.Request().PostArgs().VisitAll(func(k, v []byte) { params.Add(string(k), string(v)) })
		if c.Cookies(bindCookie) == "" && params.Get("bounced") == "" {
			return h.bounce(c, h.callbackURL(t, p), params, "code", "state", "user", "error")
		}
	} else {
		params, _ = url.ParseQuery(string(c.Request().URI().QueryString()))
	}
	if e := params.Get("error"); e != "" {
		msg := "the sign-in at " + p.Name + " did not complete (" + trunc(e, 64) + ")"
		return authrest.Error(c, 401, msg)
	}
	id, tx, err := h.Federation.Finish(ctx, p, params.Get("state"), params.Get("code"), c.Cookies(bindCookie), h.callbackURL(t, p), params)
	if err != nil {
		return failed(c, 401, err)
	}
	return h.returned(c, t, ctx, p, id, tx, nil)
}

// failed answers a sign-in that cannot go on: status, or 503 when xavyo
// or the provider cannot answer now.
func failed(c *fiber.Ctx, status int, err error) error {
	if k := apperr.KindOf(err); k == apperr.KindUnavailable || k == apperr.KindInternal {
		status = 503
	}
	return authrest.Error(c, status, apperr.PublicMessage(err))
}

// returned goes on with an upstream identity, for the transaction tx
// names ("" : a sign-in for itself).
func (h *Handler) returned(c *fiber.Ctx, t *tenant.Tenant, ctx context.Context, p *federation.Provider, id *federation.Identity, tx string,
	ss *federation.SAMLSession) error {
	var x *auth.Transaction
	if tx != "" {
		var err error
		if x, err = h.Auth.Transaction(ctx, t, tx); err != nil {
			return authrest.Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
		}
	}
	return h.signedIn(c, t, ctx, p, id, x, ss)
}

// signedIn goes on with an upstream identity: the person it is (found,
// created, or to be proved for a link) signs in, for transaction x; ss
// is the SAML session it came from (nil: none).
func (h *Handler) signedIn(c *fiber.Ctx, t *tenant.Tenant, ctx context.Context, p *federation.Provider, id *federation.Identity,
	x *auth.Transaction, ss *federation.SAMLSession) error {
	out, err := h.Federation.SignIn(ctx, p, id)
	if err != nil {
		return failed(c, 403, err)
	}
	if out.LinkTo != nil {
		tx := ""
		if x != nil {
			tx = x.ID
		}
		sealed := h.Federation.SealLink(ctx, federation.PendingLink{Provider: p.Key, Subject: id.Subject, User: out.LinkTo.ID, Tx: tx})
		lx, err := h.Auth.StartTransaction(ctx, t, purposeLink, sealed, uuid.Nil)
		if err != nil {
			return authrest.Error(c, 503, "the sign-in is unavailable; try again")
		}
		if ss != nil {
			// The proof's sign-in opens the session.
			if err := h.Federation.RecordSAMLSession(ctx, p, lx.ID, out.LinkTo.ID, ss); err != nil {
				return authrest.Error(c, 503, "the sign-in is unavailable; try again")
			}
		}
		return h.Pages.SendTo(c, "/t/"+t.Slug+"/login", lx)
	}
	if ss != nil && x != nil {
		if err := h.Federation.RecordSAMLSession(ctx, p, x.ID, out.User.ID, ss); err != nil {
			return authrest.Error(c, 503, "the sign-in is unavailable; try again")
		}
	}
	amr := []string{"fed"}
	for _, m := range id.AMR {
		if slices.Contains(knownAMR, m) && !slices.Contains(amr, m) && (m != "mfa" || p.TrustMFA) {
			amr = append(amr, m)
		}
	}
	return h.Pages.Authenticated(c, t, x, out.User, amr, p.TrustMFA && slices.Contains(id.AMR, "mfa"))
}

func trunc(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n]
	}
	return s
}

// linkFlow is a person proving the account an upstream identity is
// linked to: they sign in to it on the login page, then the link is made
// and the sign-in they started goes on, in that session.
type linkFlow struct{ h *Handler }

func (f linkFlow) pending(ctx context.Context, x *auth.Transaction) (*federation.PendingLink, *federation.Provider, error) {
	l, err := f.h.Federation.OpenLink(ctx, x.Request)
	if err != nil {
		return nil, nil, err
	}
	p, err := f.h.Federation.ByKey(ctx, l.Provider)
	if err != nil {
		return nil, nil, err
	}
	return l, p, nil
}

func (f linkFlow) Describe(ctx context.Context, _ *tenant.Tenant, x *auth.Transaction) (authrest.Prompt, error) {
	l, p, err := f.pending(ctx, x)
	if err != nil {
		return authrest.Prompt{}, err
	}
	u, err := f.h.Directory.GetUser(ctx, l.User)
	if err != nil {
		return authrest.Prompt{}, err
	}
	return authrest.Prompt{Link: p.Name, LoginHint: u.Email}, nil
}

func (f linkFlow) Resume(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, bs *auth.BrowserSession) error {
	ctx := store.WithTenant(c.UserContext(), t.ID)
	l, p, err := f.pending(ctx, x)
	if err != nil {
		return authrest.Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	if bs.UserID != l.User {
		return authrest.Error(c, 403, "you signed in to another account than the one of this address: nothing was linked")
	}
	if err := f.h.Federation.Link(ctx, p, bs.UserID, l.Subject); err != nil {
		return authrest.Error(c, 409, apperr.PublicMessage(err))
	}
	_ = f.h.Auth.EndTransaction(ctx, t, x)
	var orig *auth.Transaction
	if l.Tx != "" {
		if orig, err = f.h.Auth.Transaction(ctx, t, l.Tx); err != nil {
			return authrest.Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
		}
	}
	return f.h.Pages.Continue(c, t, orig, bs)
}
