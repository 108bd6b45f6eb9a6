package rest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
)

// What every sign-in page shares: headers, CSRF tokens, the SSO cookie.

// ErrorPage says why a sign-in cannot go on.
var ErrorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}</style></head>
<body><h1>This sign-in request cannot continue</h1><p>{{.}}</p></body></html>`))

// Page renders a page.
func Page(c *fiber.Ctx, status int, t *template.Template, data any) error {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).SendString(b.String())
}

// Error renders the error page.
func Error(c *fiber.Ctx, status int, msg string) error {
	Secure(c)
	return Page(c, status, ErrorPage, msg)
}

// Secure sets the headers of every sign-in and sign-out page: never
// cached, never framed, no Referer (their URLs carry requests), and a CSP
// with no script. Their forms post to the pages themselves, whose answer
// may redirect the browser on to a client (returnTo): browsers apply
// form-action to that redirect too, so the client's origin is allowed.
func Secure(c *fiber.Ctx, returnTo ...string) {
	SecureScript(c, "", returnTo...)
}

// SecureScript is Secure for a page that runs its one inline script,
// the one carrying nonce ("" for none).
func SecureScript(c *fiber.Ctx, nonce string, returnTo ...string) {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	action := "'self'"
	for _, r := range returnTo {
		if o := Origin(r); o != "" {
			action += " " + o
		}
	}
	script := ""
	if nonce != "" {
		script = "; script-src 'nonce-" + nonce + "'"
	}
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"+script+"; form-action "+action)
}

// Origin is a URL's origin as a CSP source: scheme://host[:port], or
// scheme: for a private-use scheme ("" for what is neither).
func Origin(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "":
		return ""
	case u.Host != "" && (u.Scheme == "http" || u.Scheme == "https"):
		return u.Scheme + "://" + u.Host
	case u.Host == "" && strings.Contains(u.Scheme, "."):
		return u.Scheme + ":"
	}
	return ""
}

// FormToken sets a page's CSRF cookie (double submit: the form carries
// the same value), scoped to the page's path, and returns the value.
func FormToken(c *fiber.Ctx, name, path, issuer string) string {
	token := Nonce()
	c.Cookie(&fiber.Cookie{Name: name, Value: token, Path: path, HTTPOnly: true, SameSite: "Strict", Secure: strings.HasPrefix(issuer, "https://")})
	return token
}

// FormTokenOK reports whether a posted form carries its page's CSRF token.
func FormTokenOK(c *fiber.Ctx, name string) bool {
	cookie := c.Cookies(name)
	return cookie != "" && subtle.ConstantTimeCompare([]byte(cookie), []byte(c.FormValue("csrf"))) == 1
}

// Nonce is 128 random bits in hex (CSRF tokens, CSP nonces).
func Nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SSOCookie is the SSO session cookie of a tenant (DESIGN §12): over TLS
// `__Host-xv_sso_<tenant id>` (path /, Secure, SameSite=None, so that
// cross-site returns carry it); on plain HTTP (development)
// `xv_sso_<tenant id>` with path /t/{slug} and SameSite=Lax. Always
// HttpOnly. Forms are protected by CSRF tokens, not by SameSite.
func SSOCookie(t *tenant.Tenant, issuer string) *fiber.Cookie {
	if strings.HasPrefix(issuer, "https://") {
		return &fiber.Cookie{Name: "__Host-xv_sso_" + t.ID.String(), Path: "/", Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteNoneMode}
	}
	return &fiber.Cookie{Name: "xv_sso_" + t.ID.String(), Path: "/t/" + t.Slug, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode}
}

// ClearSSO removes the SSO cookie from the browser.
func ClearSSO(c *fiber.Ctx, t *tenant.Tenant, issuer string) {
	sso := SSOCookie(t, issuer)
	sso.Value, sso.Expires = "", time.Unix(1, 0)
	c.Cookie(sso)
}

// TenantPage answers a page request whose tenant cannot serve it: unknown
// (404), suspended (403) or unavailable (503).
func TenantPage(c *fiber.Ctx, err error) error {
	switch apperr.KindOf(err) {
	case apperr.KindNotFound:
		return Error(c, 404, "unknown issuer")
	case apperr.KindPermissionDenied:
		return Error(c, 403, apperr.PublicMessage(err))
	}
	return Error(c, 503, "this page is unavailable; try again")
}

// Lang is the language of a page: the first of the browser's
// (Accept-Language, in order) that the pages speak (en, fr), else the
// tenant's (branding.locale), else English.
func Lang(c *fiber.Ctx, t *tenant.Tenant) string {
	for _, part := range strings.Split(c.Get(fiber.HeaderAcceptLanguage), ",") {
		tag, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(q) == "q=0" {
			continue
		}
		switch primary, _, _ := strings.Cut(strings.ToLower(tag), "-"); primary {
		case "en", "fr":
			return primary
		}
	}
	if l := tenant.PoliciesOf(t).Branding.Locale; l != "" {
		return l
	}
	return "en"
}
