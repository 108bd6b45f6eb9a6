package rest

import (
	"context"
	"errors"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The authorization endpoint and its consent page. A person with a live
// SSO session that satisfies the request is answered at once (a code, or
// the consent page when the client needs it); anyone else goes through
// the tenant's sign-in pages (identity/signin) with an auth transaction
// holding the request, and comes back through Resume.

// purposeAuthorize is the auth transactions of authorization requests.
const purposeAuthorize = "authorize"

// The consent page: the client, where the browser goes next, what it
// asks; Allow or Deny post back with the CSRF token.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.Title}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
button{margin:1rem .5rem 0 0;padding:.5rem 1rem}code{background:#eee;padding:0 .2rem}</style></head>
<body>{{if .Logo}}<img src="{{.Logo}}" alt="" width="64" height="64">{{end}}<h1>{{.W.Allow}} {{.Client}}{{.W.Q}}</h1>
<p>{{if .Home}}<a href="{{.Home}}" rel="noopener noreferrer" target="_blank"><strong>{{.Client}}</strong></a>{{else}}<strong>{{.Client}}</strong>{{end}} ({{.W.Returning}} <code>{{.Host}}</code>) {{.W.Asks}} <strong>{{.Tenant}}</strong>{{.W.Colon}}</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
{{if or .Policy .Terms}}<p>{{.W.Read}} {{if .Policy}}<a href="{{.Policy}}" rel="noopener noreferrer" target="_blank">{{.W.Policy}}</a>{{end}}{{if and .Policy .Terms}} {{.W.And}} {{end}}{{if .Terms}}<a href="{{.Terms}}" rel="noopener noreferrer" target="_blank">{{.W.Terms}}</a>{{end}}.</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="tx" value="{{.Tx}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="consent" value="allow">{{.W.AllowButton}}</button><button type="submit" name="consent" value="deny">{{.W.Deny}}</button></form></body></html>`))

// consentWords are the consent page's words per language.
type consentWords struct {
	Title, Allow, Returning, Asks, Read, Policy, And, Terms, AllowButton, Deny string
	// Q and Colon are the question mark and colon as the language writes
	// them.
	Q, Colon string
	// Scopes says what each scope lets a client do.
	Scopes map[string]string
}

var consentCatalog = map[string]consentWords{
	"en": {Title: "Allow access", Allow: "Allow", Returning: "returning to", Asks: "asks to act for you at", Read: "Read its",
		Policy: "privacy policy", And: "and", Terms: "terms of service", AllowButton: "Allow", Deny: "Deny", Q: "?", Colon: ":",
		Scopes: map[string]string{"openid": "know who you are", "profile": "see your name", "email": "see your email address",
			"offline_access": "keep acting for you while you are away", "mcp": "call tools for you through the MCP gateway", "a2a": "call agents for you"}},
	"fr": {Title: "Autoriser l'accès", Allow: "Autoriser", Returning: "qui revient à", Asks: "demande à agir pour vous chez", Read: "Lisez sa",
		Policy: "politique de confidentialité", And: "et ses", Terms: "conditions d'utilisation", AllowButton: "Autoriser", Deny: "Refuser",
		Q: "\u00a0?", Colon: "\u00a0:",
		Scopes: map[string]string{"openid": "savoir qui vous êtes", "profile": "voir votre nom", "email": "voir votre adresse électronique",
			"offline_access": "continuer à agir pour vous en votre absence", "mcp": "appeler des outils pour vous via la passerelle MCP",
			"a2a": "appeler des agents pour vous"}},
}

var authorizeParams = []string{"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method", "nonce",
	"max_age", "login_hint", "id_token_hint", "response_mode", "prompt", "acr_values"}

const consentCSRFCookie = "xv_consent_csrf"

func (h *Handler) authorizeGet(c *fiber.Ctx) error  { return h.authorize(c, false) }
func (h *Handler) authorizePost(c *fiber.Ctx) error { return h.authorize(c, true) }

// authorize is the authorization endpoint (GET, or POST of the same
// parameters as a form).
func (h *Handler) authorize(c *fiber.Ctx, posted bool) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return authrest.TenantPage(c, err)
	}
	params := url.Values{}
	if posted {
		for _, k := range append(authorizeParams, "resource") {
			for _, v := range formMulti(c, k) {
				params.Add(k, v)
			}
		}
	} else {
		params, _ = url.ParseQuery(string(c.Context().QueryArgs().QueryString()))
	}
	req, ok, err := h.validate(c, ctx, t, params)
	if !ok {
		return err
	}
	bs, err := h.Pages.SessionOf(c, t)
	if err != nil {
		return authrest.Error(c, 503, "the sign-in is unavailable; try again")
	}
	// A live SSO session signs the person in without a page, unless the
	// client asks for a new sign-in (prompt=login) or the last one is
	// older than max_age, or it expects someone else (id_token_hint).
	if bs == nil || req.Prompted("login") || req.Prompted("select_account") ||
		(req.MaxAge >= 0 && time.Since(bs.AuthTime) > time.Duration(req.MaxAge)*time.Second) ||
		(req.Hint != nil && !req.Hint.Names(bs.UserID)) || !req.SatisfiedBy(bs.AMR) {
		if req.Prompted("none") {
			// No page may be shown: the client hears why.
			return h.redirectError(c, t, req, "login_required", "the person must sign in")
		}
		return h.Pages.Begin(c, t, purposeAuthorize, request(params))
	}
	return h.finish(c, ctx, t, req, params, nil, bs)
}

// request is what an auth transaction keeps of an authorization request:
// its parameters (re-validated when it resumes). Of prompt only consent
// stays: the sign-in that follows answers login and select_account.
func request(params url.Values) string {
	keep := url.Values{}
	for _, k := range append(authorizeParams, "resource") {
		if k != "prompt" && len(params[k]) > 0 {
			keep[k] = params[k]
		}
	}
	if slices.Contains(strings.Fields(params.Get("prompt")), "consent") {
		keep.Set("prompt", "consent")
	}
	return keep.Encode()
}

// validate checks an authorization request. A request without a trusted
// redirect URI gets an error page, others their error at the client; ok
// false: the browser was answered.
func (h *Handler) validate(c *fiber.Ctx, ctx context.Context, t *tenant.Tenant, params url.Values) (*oauth.AuthorizeRequest, bool, error) {
	req, err := h.Server.ValidateAuthorize(ctx, t.Slug, params.Get, func(k string) []string { return params[k] })
	var rerr oauth.RedirectError
	switch {
	case errors.As(err, &rerr):
		return nil, false, h.redirectError(c, t, req, rerr.E.Code, rerr.E.Description)
	case err != nil:
		var oe *oauth.Error
		if !errors.As(err, &oe) {
			return nil, false, authrest.Error(c, 500, "the sign-in could not start")
		}
		return nil, false, authrest.Error(c, oe.Status, oe.Description)
	}
	return req, true, nil
}

func (h *Handler) redirectError(c *fiber.Ctx, t *tenant.Tenant, req *oauth.AuthorizeRequest, code, desc string) error {
	return respond(c, req, url.Values{"error": {code}, "error_description": {desc}, "state": {req.State}, "iss": {h.Server.Issuer(t.Slug)}})
}

// finish answers a signed-in person's request: the code, once they have
// allowed the client what it asks (first-party clients and earlier
// consents aside); otherwise the consent page, under an auth transaction
// bound to their session (x, when the request already has one).
func (h *Handler) finish(c *fiber.Ctx, ctx context.Context, t *tenant.Tenant, req *oauth.AuthorizeRequest, params url.Values, x *auth.Transaction,
	bs *auth.BrowserSession) error {
	need, err := h.Server.NeedsConsent(ctx, req, bs.UserID)
	if err != nil {
		return authrest.Error(c, 503, "the sign-in is unavailable; try again")
	}
	if need {
		if req.Prompted("none") {
			return h.redirectError(c, t, req, "consent_required", "the person must allow this client first")
		}
		if x == nil {
			if x, err = h.Auth.StartTransaction(ctx, t, purposeAuthorize, request(params), bs.ID); err != nil {
				return authrest.Error(c, 503, "the sign-in is unavailable; try again")
			}
		}
		return h.Pages.SendTo(c, "/t/"+t.Slug+"/consent", x)
	}
	return h.issue(c, ctx, t, req, x, bs)
}

// issue hands out the code and ends the request's transaction.
func (h *Handler) issue(c *fiber.Ctx, ctx context.Context, t *tenant.Tenant, req *oauth.AuthorizeRequest, x *auth.Transaction, bs *auth.BrowserSession) error {
	code, err := h.Server.IssueCode(ctx, req, bs.UserID, oauth.SignIn{SessionID: bs.ID, AuthTime: bs.AuthTime, AMR: bs.AMR})
	if err != nil {
		return authrest.Error(c, 500, "the sign-in could not be completed")
	}
	if x != nil {
		// A leftover transaction expires on its own; the code is issued.
		_ = h.Auth.EndTransaction(ctx, t, x)
	}
	return respond(c, req, url.Values{"code": {code}, "state": {req.State}, "iss": {h.Server.Issuer(t.Slug)}})
}

// authorizeFlow resumes authorization requests after the sign-in.
type authorizeFlow struct{ h *Handler }

func (f authorizeFlow) Describe(ctx context.Context, t *tenant.Tenant, x *auth.Transaction) (authrest.Prompt, error) {
	params, err := url.ParseQuery(x.Request)
	if err != nil {
		return authrest.Prompt{}, auth.ErrNoTransaction
	}
	name, err := f.h.Server.ClientName(ctx, params.Get("client_id"))
	if err != nil {
		return authrest.Prompt{}, apperr.New(apperr.KindInvalidArgument, "the application that asked is no longer registered")
	}
	return authrest.Prompt{Client: name, Asks: params.Get("scope"), LoginHint: params.Get("login_hint"), ReturnTo: params.Get("redirect_uri")}, nil
}

func (f authorizeFlow) Resume(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, bs *auth.BrowserSession) error {
	params, _ := url.ParseQuery(x.Request)
	ctx := store.WithTenant(c.UserContext(), t.ID)
	req, ok, err := f.h.validate(c, ctx, t, params)
	if !ok {
		return err
	}
	return f.h.finish(c, ctx, t, req, params, x, bs)
}

// consent is the consent page of a signed-in person's request.
func (h *Handler) consent(c *fiber.Ctx) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return authrest.TenantPage(c, err)
	}
	x, bs, ok, err := h.Pages.Resumable(c, t, purposeAuthorize)
	if !ok {
		return err
	}
	params, _ := url.ParseQuery(x.Request)
	req, ok, err := h.validate(c, ctx, t, params)
	if !ok {
		return err
	}
	iss := h.Server.Issuer(t.Slug)
	if c.Method() == fiber.MethodPost {
		if !authrest.FormTokenOK(c, consentCSRFCookie) {
			return authrest.Error(c, 403, "The form expired; go back to the application and try again.")
		}
		if c.FormValue("consent") != "allow" {
			_ = h.Auth.EndTransaction(ctx, t, x)
			return h.redirectError(c, t, req, "access_denied", "the person did not allow this client")
		}
		if err := h.Server.Consent(ctx, req, bs.UserID); err != nil {
			return authrest.Error(c, 503, "the sign-in could not be completed")
		}
		authrest.Secure(c, req.RedirectURI)
		return h.issue(c, ctx, t, req, x, bs)
	}
	token := authrest.FormToken(c, consentCSRFCookie, "/t/"+t.Slug+"/consent", iss)
	authrest.Secure(c, req.RedirectURI)
	host := authrest.Origin(req.RedirectURI)
	if host == "" {
		host = req.RedirectURI
	}
	if o := authrest.Origin(req.Profile.LogoURI); o != "" {
		// The registered logo is the one image the page loads.
		c.Set("Content-Security-Policy", c.GetRespHeader("Content-Security-Policy")+"; img-src "+o)
	}
	p := req.Profile
	lang := authrest.Lang(c, t)
	w := consentCatalog[lang]
	return authrest.Page(c, 200, consentPage, map[string]any{"Lang": lang, "W": w, "Tenant": t.Name, "Client": req.ClientName, "Host": host,
		"Scopes": describeScopes(w, req.Scope),
		"Tx":     x.ID, "CSRF": token, "Action": "/t/" + t.Slug + "/consent", "Logo": p.LogoURI, "Home": p.ClientURI, "Policy": p.PolicyURI, "Terms": p.TOSURI})
}

// describeScopes says in words what each scope lets a client do.
func describeScopes(w consentWords, scopes []string) []string {
	var words []string
	for _, sc := range scopes {
		if d, ok := w.Scopes[sc]; ok {
			words = append(words, d)
		}
	}
	return words
}

func formMulti(c *fiber.Ctx, k string) []string {
	var out []string
	for _, v := range c.Request().PostArgs().PeekMulti(k) {
		out = append(out, string(v))
	}
	if len(out) == 0 {
		for _, v := range c.Context().QueryArgs().PeekMulti(k) {
			out = append(out, string(v))
		}
	}
	return out
}

// dropEmpty removes the parameters whose one value is empty.
func dropEmpty(v url.Values) {
	for k, vals := range v {
		if len(vals) == 1 && vals[0] == "" {
			delete(v, k)
		}
	}
}

func redirect(c *fiber.Ctx, to string, v url.Values) error {
	dropEmpty(v)
	sep := "?"
	if strings.Contains(to, "?") {
		sep = "&"
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(to+sep+v.Encode(), fiber.StatusFound)
}

// formPostPage carries an authorization response to the client by a
// POST from the browser (OAuth 2.0 Form Post Response Mode).
var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in…</title></head>
<body><form method="post" action="{{.Action}}">
{{range $k, $v := .Values}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><button type="submit">Continue</button></noscript></form>
<script nonce="{{.Nonce}}">document.forms[0].submit()</script></body></html>`))

// respond sends an authorization response to the client's redirect URI
// in the response mode it asked for.
func respond(c *fiber.Ctx, req *oauth.AuthorizeRequest, v url.Values) error {
	switch req.ResponseMode {
	case "fragment":
		dropEmpty(v)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Redirect(req.RedirectURI+"#"+v.Encode(), fiber.StatusFound)
	case "form_post":
		values := map[string]string{}
		for k := range v {
			if v.Get(k) != "" {
				values[k] = v.Get(k)
			}
		}
		target, err := url.Parse(req.RedirectURI)
		if err != nil {
			return authrest.Error(c, 400, "the redirect URI is not usable")
		}
		nonce := authrest.Nonce()
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set("X-Frame-Options", "DENY")
		c.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+target.Scheme+"://"+target.Host)
		return authrest.Page(c, 200, formPostPage, map[string]any{"Action": req.RedirectURI, "Values": values, "Nonce": nonce})
	}
	return redirect(c, req.RedirectURI, v)
}
