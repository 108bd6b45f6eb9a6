package rest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/identity/tenant"
)

// The login page. It carries the authorization request in hidden fields
// and a CSRF token that must match the cookie set with the page (double
// submit; SameSite=Strict). MFA and consent steps slot in after the
// password check.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem}
button{margin-top:1rem;padding:.5rem 1rem}.err{color:#b00020}</style></head>
<body><h1>Sign in</h1><p><strong>{{.Client}}</strong> asks to act for you{{if .Scope}} ({{.Scope}}){{end}}.</p>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="login">Email or username</label><input id="login" name="login" type="text" autocomplete="username" value="{{.LoginHint}}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>`))

// The consent page: the client, where the browser goes next, what it
// asks; Allow or Deny post back with the CSRF token.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
button{margin:1rem .5rem 0 0;padding:.5rem 1rem}code{background:#eee;padding:0 .2rem}</style></head>
<body>{{if .Logo}}<img src="{{.Logo}}" alt="" width="64" height="64">{{end}}<h1>Allow {{.Client}}?</h1>
<p>{{if .Home}}<a href="{{.Home}}" rel="noopener noreferrer" target="_blank"><strong>{{.Client}}</strong></a>{{else}}<strong>{{.Client}}</strong>{{end}} (returning to <code>{{.Host}}</code>) asks to act for you at <strong>{{.Tenant}}</strong>:</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
{{if or .Policy .Terms}}<p>Read its {{if .Policy}}<a href="{{.Policy}}" rel="noopener noreferrer" target="_blank">privacy policy</a>{{end}}{{if and .Policy .Terms}} and {{end}}{{if .Terms}}<a href="{{.Terms}}" rel="noopener noreferrer" target="_blank">terms of service</a>{{end}}.</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="consent" value="allow">Allow</button><button type="submit" name="consent" value="deny">Deny</button></form></body></html>`))

// scopeWords says what each scope lets a client do.
var scopeWords = map[string]string{
	"openid":         "know who you are",
	"profile":        "see your name",
	"email":          "see your email address",
	"offline_access": "keep acting for you while you are away",
	"mcp":            "call tools for you through the MCP gateway",
	"a2a":            "call agents for you",
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization error</title></head>
<body><h1>This sign-in request cannot continue</h1><p>{{.}}</p></body></html>`))

var authorizeParams = []string{"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method", "nonce",
	"max_age", "login_hint", "id_token_hint", "response_mode"}

const csrfCookie = "xv_csrf"

func (h *Handler) authorizeGet(c *fiber.Ctx) error  { return h.authorize(c, false) }
func (h *Handler) authorizePost(c *fiber.Ctx) error { return h.authorize(c, true) }

func (h *Handler) authorize(c *fiber.Ctx, posted bool) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return tenantPage(c, err)
	}
	get := c.Query
	multi := func(k string) []string {
		var out []string
		for _, v := range c.Context().QueryArgs().PeekMulti(k) {
			out = append(out, string(v))
		}
		return out
	}
	if posted {
		get = func(k string, _ ...string) string { return c.FormValue(k) }
		multi = func(k string) []string { return formMulti(c, k) }
	}
	q := func(k string) string { return get(k) }
	req, err := h.Server.ValidateAuthorize(ctx, t.Slug, q, multi)
	iss := h.Server.Issuer(t.Slug)
	var rerr oauth.RedirectError
	switch {
	case errors.As(err, &rerr):
		return respond(c, req, url.Values{"error": {rerr.E.Code}, "error_description": {rerr.E.Description}, "state": {req.State}, "iss": {iss}})
	case err != nil:
		// No trusted redirect URI: an error page, never a redirect.
		var oe *oauth.Error
		if !errors.As(err, &oe) {
			return page(c, 500, errorPage, "the sign-in could not start")
		}
		return page(c, oe.Status, errorPage, oe.Description)
	}
	hidden := map[string]string{}
	for _, k := range authorizeParams {
		hidden[k] = q(k)
	}
	hidden["redirect_uri"] = req.RedirectURI
	redirectErr := func(code, desc string) error {
		return respond(c, req, url.Values{"error": {code}, "error_description": {desc}, "state": {req.State}, "iss": {iss}})
	}
	show := func(status int, msg string) error {
		if req.Prompted("none") {
			// No page may be shown: the client hears why.
			return redirectErr("login_required", "the person must sign in")
		}
		token := formToken(c, csrfCookie, "/t/"+t.Slug+"/authorize", iss)
		secure(c, req.RedirectURI)
		return page(c, status, loginPage, map[string]any{"Tenant": t.Name, "Client": req.ClientName, "Scope": strings.Join(req.Scope, " "),
			"Hidden": hidden, "CSRF": token, "Action": "/t/" + t.Slug + "/authorize" + resourceQuery(req.Resources), "Error": msg,
			"LoginHint": req.LoginHint})
	}
	issue := func(user uuid.UUID, in oauth.SignIn) error {
		code, err := h.Server.IssueCode(ctx, req, user, in)
		if err != nil {
			return page(c, 500, errorPage, "the sign-in could not be completed")
		}
		return respond(c, req, url.Values{"code": {code}, "state": {req.State}, "iss": {iss}})
	}
	// finish hands out the code once the person has allowed the client
	// what it asks (first-party clients and earlier consents aside).
	finish := func(user uuid.UUID, in oauth.SignIn) error {
		need, err := h.Server.NeedsConsent(ctx, req, user)
		if err != nil {
			return page(c, 503, errorPage, "the sign-in is unavailable; try again")
		}
		if !need {
			return issue(user, in)
		}
		if req.Prompted("none") {
			return redirectErr("consent_required", "the person must allow this client first")
		}
		token := formToken(c, csrfCookie, "/t/"+t.Slug+"/authorize", iss)
		secure(c, req.RedirectURI)
		host := origin(req.RedirectURI)
		if host == "" {
			host = req.RedirectURI
		}
		if o := origin(req.Profile.LogoURI); o != "" {
			// The registered logo is the one image the page loads.
			c.Set("Content-Security-Policy", c.GetRespHeader("Content-Security-Policy")+"; img-src "+o)
		}
		p := req.Profile
		return page(c, 200, consentPage, map[string]any{"Tenant": t.Name, "Client": req.ClientName, "Host": host, "Scopes": describeScopes(req.Scope),
			"Hidden": hidden, "CSRF": token, "Action": "/t/" + t.Slug + "/authorize" + resourceQuery(req.Resources),
			"Logo": p.LogoURI, "Home": p.ClientURI, "Policy": p.PolicyURI, "Terms": p.TOSURI})
	}
	sso := ssoCookie(t, iss)
	if posted && c.FormValue("consent") != "" {
		// The person's answer on the consent page, for their SSO session.
		bs, err := h.Auth.BrowserSessionOf(ctx, t, c.Cookies(sso.Name))
		switch {
		case err != nil:
			return page(c, 503, errorPage, "the sign-in is unavailable; try again")
		case bs == nil:
			return show(200, "")
		case !formTokenOK(c, csrfCookie):
			return show(403, "The form expired; please sign in again.")
		case c.FormValue("consent") != "allow":
			return redirectErr("access_denied", "the person did not allow this client")
		}
		if err := h.Server.Consent(ctx, req, bs.UserID); err != nil {
			return page(c, 503, errorPage, "the sign-in could not be completed")
		}
		return issue(bs.UserID, oauth.SignIn{SessionID: bs.ID, AuthTime: bs.AuthTime, AMR: bs.AMR})
	}
	if !posted || c.FormValue("password") == "" {
		// A live SSO session signs the person in without a page, unless
		// the client asks for a new sign-in (prompt=login) or the last
		// one is older than max_age.
		bs, err := h.Auth.BrowserSessionOf(ctx, t, c.Cookies(sso.Name))
		if err != nil {
			return page(c, 503, errorPage, "the sign-in is unavailable; try again")
		}
		if bs == nil || req.Prompted("login") || req.Prompted("select_account") ||
			(req.MaxAge >= 0 && time.Since(bs.AuthTime) > time.Duration(req.MaxAge)*time.Second) ||
			(req.Hint != nil && !req.Hint.Names(bs.UserID)) {
			return show(200, "")
		}
		return finish(bs.UserID, oauth.SignIn{SessionID: bs.ID, AuthTime: bs.AuthTime, AMR: bs.AMR})
	}
	if !formTokenOK(c, csrfCookie) {
		return show(403, "The form expired; please sign in again.")
	}
	_, u, mustChange, err := h.Auth.CheckPassword(ctx, t.Slug, c.FormValue("login"), c.FormValue("password"))
	if err != nil {
		return show(401, "Wrong email, username or password.")
	}
	if mustChange {
		return show(403, "You must change your password before signing in to applications.")
	}
	bs, err := h.openSession(c, ctx, t, u, sso)
	if err != nil {
		return page(c, 500, errorPage, "the sign-in could not be completed")
	}
	return finish(u.ID, oauth.SignIn{SessionID: bs.ID, AuthTime: bs.AuthTime, AMR: bs.AMR})
}

// openSession opens the SSO session of a person who has just signed in
// with their password, and sets its cookie: every sign-in a new session
// (a new cookie value), living as the tenant's policy says.
func (h *Handler) openSession(c *fiber.Ctx, ctx context.Context, t *tenant.Tenant, u *directory.User, sso *fiber.Cookie) (*auth.BrowserSession, error) {
	bs, value, err := h.Auth.OpenBrowserSession(ctx, t, u, []string{"pwd"}, auth.Client{IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent)})
	if err != nil {
		return nil, err
	}
	sso.Value = value
	sso.Expires = time.Now().Add(time.Duration(tenant.PoliciesOf(t).Session.LifetimeHours) * time.Hour)
	c.Cookie(sso)
	return bs, nil
}

// describeScopes says in words what each scope lets a client do.
func describeScopes(scopes []string) []string {
	var words []string
	for _, sc := range scopes {
		if w, ok := scopeWords[sc]; ok {
			words = append(words, w)
		}
	}
	return words
}

// ssoCookie is the SSO session cookie of a tenant (docs/design §12): over
// TLS `__Host-xv_sso_<tenant id>` (path /, Secure, SameSite=None, so that
// cross-site returns carry it); on plain HTTP (development)
// `xv_sso_<tenant id>` with path /t/{slug} and SameSite=Lax. Always
// HttpOnly. Forms are protected by CSRF tokens, not by SameSite.
func ssoCookie(t *tenant.Tenant, issuer string) *fiber.Cookie {
	if strings.HasPrefix(issuer, "https://") {
		return &fiber.Cookie{Name: "__Host-xv_sso_" + t.ID.String(), Path: "/", Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteNoneMode}
	}
	return &fiber.Cookie{Name: "xv_sso_" + t.ID.String(), Path: "/t/" + t.Slug, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode}
}

// tenantPage answers a page request whose tenant cannot serve it: unknown
// (404), suspended or unavailable (their own status and words).
func tenantPage(c *fiber.Ctx, err error) error {
	if oe := oauth.AsError(err); oe.Status != 404 {
		return page(c, oe.Status, errorPage, oe.Description)
	}
	return page(c, 404, errorPage, "unknown issuer")
}

func resourceQuery(res []string) string {
	if len(res) == 0 {
		return ""
	}
	v := url.Values{"resource": res}
	return "?" + v.Encode()
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

// formToken sets a page's CSRF cookie (double submit: the form carries
// the same value), scoped to the page's path, and returns the value.
func formToken(c *fiber.Ctx, name, path, issuer string) string {
	token := newCSRF()
	c.Cookie(&fiber.Cookie{Name: name, Value: token, Path: path, HTTPOnly: true, SameSite: "Strict", Secure: strings.HasPrefix(issuer, "https://")})
	return token
}

// formTokenOK reports whether a posted form carries its page's CSRF token.
func formTokenOK(c *fiber.Ctx, name string) bool {
	cookie := c.Cookies(name)
	return cookie != "" && subtle.ConstantTimeCompare([]byte(cookie), []byte(c.FormValue("csrf"))) == 1
}

func newCSRF() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
			return page(c, 400, errorPage, "the redirect URI is not usable")
		}
		nonce := newCSRF()
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set("X-Frame-Options", "DENY")
		c.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+target.Scheme+"://"+target.Host)
		return page(c, 200, formPostPage, map[string]any{"Action": req.RedirectURI, "Values": values, "Nonce": nonce})
	}
	return redirect(c, req.RedirectURI, v)
}

func page(c *fiber.Ctx, status int, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).SendString(b.String())
}
