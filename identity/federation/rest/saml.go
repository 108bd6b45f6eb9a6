package rest

import (
	"html/template"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/federation"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// samlProvider is provider for the SAML endpoints (404 for another kind).
func (h *Handler) samlProvider(c *fiber.Ctx) (*tenant.Tenant, *federation.Provider, bool, error) {
	t, _, p, ok, err := h.provider(c)
	if !ok {
		return nil, nil, false, err
	}
	if p.Kind != federation.KindSAML {
		return nil, nil, false, authrest.Error(c, 404, "there is no such identity provider here")
	}
	return t, p, true, nil
}

// metadata is xavyo's service provider metadata for a SAML provider.
func (h *Handler) metadata(c *fiber.Ctx) error {
	t, p, ok, err := h.samlProvider(c)
	if !ok {
		return err
	}
	md, err := h.Federation.SAMLMetadata(store.WithTenant(c.UserContext(), t.ID), p, h.base(t, p))
	if err != nil {
		return authrest.Error(c, 503, apperr.PublicMessage(err))
	}
	c.Set(fiber.HeaderContentType, "application/samlmetadata+xml")
	return c.Send(md)
}

// bouncePage posts a SAML response again, from this site: a cross-site
// POST carries no SameSite=Lax cookie, the POST of a page of ours does.
var bouncePage = template.Must(template.New("bounce").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in…</title></head>
<body><form id="bounce" method="post" action="{{.Action}}">{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<input type="hidden" name="bounced" value="1"><noscript><button type="submit">Continue</button></noscript></form>
<script nonce="{{.Nonce}}">document.getElementById("bounce").submit()</script></body></html>`))

// bounce answers a cross-site POST that came without the binding cookie
// with a page posting the same fields to the same place, from this site.
func (h *Handler) bounce(c *fiber.Ctx, action string, form url.Values, fields ...string) error {
	keep := map[string]string{}
	for _, f := range fields {
		if v := form.Get(f); v != "" {
			keep[f] = v
		}
	}
	nonce := authrest.Nonce()
	authrest.SecureScript(c, nonce)
	return authrest.Page(c, 200, bouncePage, map[string]any{"Action": action, "Nonce": nonce, "Fields": keep})
}

// acs is xavyo's assertion consumer service for a SAML provider.
func (h *Handler) acs(c *fiber.Ctx) error {
	t, p, ok, err := h.samlProvider(c)
	if !ok {
		return err
	}
	ctx := store.WithTenant(c.UserContext(), t.ID)
	form := url.Values{}
	c.Request().PostArgs().VisitAll(func(k, v []byte) { form.Add(string(k), string(v)) })
	browser := c.Cookies(bindCookie)
	if browser == "" && form.Get("bounced") == "" {
		return h.bounce(c, h.base(t, p)+"/acs", form, "SAMLResponse", "RelayState")
	}
	form.Del("bounced")
	id, ss, tx, err := h.Federation.FinishSAML(ctx, p, form, browser, h.base(t, p))
	if err != nil {
		return failed(c, 401, err)
	}
	return h.returned(c, t, ctx, p, id, tx, ss)
}

// slo is xavyo's single logout service for a SAML provider.
func (h *Handler) slo(c *fiber.Ctx) error {
	t, p, ok, err := h.samlProvider(c)
	if !ok {
		return err
	}
	ctx := store.WithTenant(c.UserContext(), t.ID)
	u, err := url.Parse(h.base(t, p) + "/slo")
	if err != nil {
		return authrest.Error(c, 400, "bad request")
	}
	u.RawQuery = string(c.Request().URI().QueryString())
	r := &http.Request{Method: c.Method(), URL: u, Header: http.Header{}, PostForm: url.Values{}}
	c.Request().PostArgs().VisitAll(func(k, v []byte) { r.PostForm.Add(string(k), string(v)) })
	r.Form = r.PostForm
	r = r.WithContext(ctx)
	ans, err := h.Federation.SingleLogout(ctx, p, r, h.base(t, p))
	if err != nil {
		return failed(c, 400, err)
	}
	authrest.Secure(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(ans.Redirect, fiber.StatusFound)
}

// SignOut signs a person signing out at xavyo out of the upstream SAML
// provider their session came from (the browser comes back to resume);
// false: it came from none. A provider that cannot be asked does not
// keep the person signed in here.
func (h *Handler) SignOut(c *fiber.Ctx, t *tenant.Tenant, bs *auth.BrowserSession, resume string) (bool, error) {
	ctx := store.WithTenant(c.UserContext(), t.ID)
	to, err := h.Federation.SignOutUpstream(ctx, bs.ID, func(p *federation.Provider) string { return h.base(t, p) }, resume)
	if err != nil {
		slog.Default().Warn("single logout at the upstream provider could not start", "tenant_id", t.ID, "error", err)
		return false, nil
	}
	if to == "" {
		return false, nil
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return true, c.Redirect(to, fiber.StatusFound)
}
