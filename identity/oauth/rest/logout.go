package rest

import (
	"context"
	"encoding/json"
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
)

// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at
// /t/{slug}/end_session. With an id_token_hint of the signed-in person the
// session ends at once; otherwise the person confirms on a page (a CSRF
// token in the form), so that a link cannot sign anyone out. The browser
// goes back only to a post_logout_redirect_uri registered for the client
// (exact match), with state; else a page says the person is signed out.

var logoutPage = template.Must(template.New("logout").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.SignOut}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}button{margin-top:1rem;padding:.5rem 1rem}</style></head>
<body><h1>{{.W.SignOut}}</h1><p>{{.W.SignOutOf}} <strong>{{.Tenant}}</strong>{{if .Client}}{{.W.As}} <strong>{{.Client}}</strong> {{.W.Asks}}{{end}}{{.W.Q}}</p>
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="confirm" value="yes">{{.W.SignOut}}</button></form></body></html>`))

var signedOutPage = template.Must(template.New("signed-out").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.SignedOut}} — {{.Tenant}}</title></head>
<body><h1>{{.W.SignedOut}}</h1><p>{{.W.SignedOutOf}} {{.Tenant}}. {{.W.Close}}</p></body></html>`))

// frontchannelPage says the person is signed out while it loads each
// relying party's front-channel logout URI in a hidden frame, then (with
// a return address) goes back once they loaded, or after 5 s.
var frontchannelPage = template.Must(template.New("frontchannel").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.SignedOut}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}iframe{display:none}</style></head>
<body><h1>{{.W.SignedOut}}</h1><p>{{.W.SignedOutOf}} {{.Tenant}}{{if .Next}}{{.W.Back}}{{else}}. {{.W.Close}}{{end}}</p>
{{range .Frames}}<iframe src="{{.}}" title="signing out of an application"></iframe>
{{end}}{{if .Next}}<p><a id="next" href="{{.Next}}">{{.W.Continue}}</a></p>
<script nonce="{{.Nonce}}">(function(){var f=document.querySelectorAll("iframe"),n=f.length,done=false;
function go(){if(!done){done=true;location.replace(document.getElementById("next").href)}}
f.forEach(function(x){x.addEventListener("load",function(){if(--n<=0)go()})});if(n===0)go();setTimeout(go,5000)})();</script>{{end}}
</body></html>`))

// logoutWords are the sign-out pages' words per language.
type logoutWords struct {
	SignOut, SignOutOf, As, Asks, Q, SignedOut, SignedOutOf, Close, Back, Continue string
}

var logoutCatalog = map[string]logoutWords{
	"en": {SignOut: "Sign out", SignOutOf: "Sign out of", As: ", as", Asks: "asks", Q: "?", SignedOut: "You are signed out",
		SignedOutOf: "You have signed out of", Close: "You may close this window.", Back: "; taking you back…", Continue: "Continue"},
	"fr": {SignOut: "Se déconnecter", SignOutOf: "Vous déconnecter de", As: ", comme", Asks: "le demande", Q: "\u00a0?",
		SignedOut: "Vous êtes déconnecté·e", SignedOutOf: "Vous vous êtes déconnecté·e de", Close: "Vous pouvez fermer cette fenêtre.",
		Back: " ; retour en cours…", Continue: "Continuer"},
}

const logoutCSRFCookie = "xv_logout_csrf"

// purposeSignOut is the auth transactions of sign-outs waiting for other
// protocols' applications to sign out.
const purposeSignOut = "signout"

// signOutRequest is what a waiting sign-out goes on with.
type signOutRequest struct {
	ClientID string `json:"c,omitempty"`
	Back     string `json:"b,omitempty"`
	State    string `json:"s,omitempty"`
	// Next is the sign-out hook to run next.
	Next int `json:"n,omitempty"`
}

func (h *Handler) endSessionGet(c *fiber.Ctx) error  { return h.endSession(c, false) }
func (h *Handler) endSessionPost(c *fiber.Ctx) error { return h.endSession(c, true) }

func (h *Handler) endSession(c *fiber.Ctx, posted bool) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return authrest.TenantPage(c, err)
	}
	get := c.Query
	if posted {
		get = func(k string, _ ...string) string { return c.FormValue(k) }
	}
	clientID, back, state := get("client_id"), get("post_logout_redirect_uri"), get("state")
	authrest.Secure(c) // set again with the return address once it is known good
	// Back from signing out of other protocols' applications (SAML single
	// logout): the sign-out the person confirmed goes on.
	var resumed *auth.Transaction
	next := 0
	if id := c.Query("tx"); id != "" && !posted {
		x, err := h.Auth.Transaction(ctx, t, id)
		var cont signOutRequest
		if err != nil || x.Purpose != purposeSignOut || json.Unmarshal([]byte(x.Request), &cont) != nil {
			return authrest.Error(c, 400, "this sign-out can no longer go on; sign out again")
		}
		resumed, clientID, back, state, next = x, cont.ClientID, cont.Back, cont.State, cont.Next
	}
	var hint *oauth.Hint
	if raw := get("id_token_hint"); raw != "" {
		if hint, err = h.Server.IDTokenHint(ctx, raw); err != nil {
			return authrest.Error(c, 400, "the id_token_hint is not an ID token of this issuer")
		}
		if clientID != "" && clientID != hint.ClientID {
			return authrest.Error(c, 400, "the id_token_hint was issued to another client")
		}
		clientID = hint.ClientID
	}
	if back != "" && (clientID == "" || !h.Server.PostLogoutRedirect(ctx, clientID, back)) {
		// Never a redirect to a URI the client did not register.
		return authrest.Error(c, 400, "the post_logout_redirect_uri is not registered for this client")
	}
	authrest.Secure(c, back)
	sso := authrest.SSOCookie(t, h.Server.Issuer(t.Slug))
	bs, err := h.Auth.BrowserSessionOf(ctx, t, c.Cookies(sso.Name))
	if err != nil {
		return authrest.Error(c, 503, "signing out is unavailable; try again")
	}
	confirmed := (hint != nil && (bs == nil || hint.Names(bs.UserID))) || (resumed != nil && bs != nil && bs.ID == resumed.SessionID)
	if resumed != nil {
		_ = h.Auth.EndTransaction(ctx, t, resumed)
	}
	if !confirmed && bs != nil {
		if !posted || c.FormValue("confirm") != "yes" {
			return h.confirmLogout(ctx, c, t, clientID, back, state)
		}
		if !authrest.FormTokenOK(c, logoutCSRFCookie) {
			return h.confirmLogout(ctx, c, t, clientID, back, state)
		}
	}
	for i := next; bs != nil && (resumed == nil || confirmed) && i < len(h.SignOut); i++ {
		// Other protocols' applications and upstream providers first (their
		// sign-out goes through the browser), each coming back here with
		// the transaction to go on with the next.
		raw, _ := json.Marshal(signOutRequest{ClientID: clientID, Back: back, State: state, Next: i + 1})
		x, err := h.Auth.StartTransaction(ctx, t, purposeSignOut, string(raw), bs.ID)
		if err != nil {
			return authrest.Error(c, 503, "signing out is unavailable; try again")
		}
		taken, err := h.SignOut[i](c, t, bs, "/t/"+t.Slug+"/logout?"+url.Values{"tx": {x.ID}}.Encode())
		if err != nil {
			return authrest.Error(c, 503, "signing out is unavailable; try again")
		}
		if taken {
			if posted {
				return leaveForm(c, t)
			}
			return nil
		}
		_ = h.Auth.EndTransaction(ctx, t, x)
	}
	var frames []string
	if bs != nil {
		if frames, err = h.Server.FrontchannelLogouts(ctx, t.Slug, bs.ID); err != nil {
			return authrest.Error(c, 503, "signing out is unavailable; try again")
		}
		if err := h.Auth.EndBrowserSession(ctx, t, bs); err != nil {
			return authrest.Error(c, 503, "signing out failed; try again")
		}
	}
	// The cookie goes either way: a session ended elsewhere leaves one.
	sso.Value, sso.Expires = "", time.Unix(1, 0)
	c.Cookie(sso)
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if len(frames) > 0 {
		return signedOutFrames(c, t, frames, back, v)
	}
	if back == "" {
		lang := authrest.Lang(c, t)
		return authrest.Page(c, 200, signedOutPage, map[string]any{"Lang": lang, "W": logoutCatalog[lang], "Tenant": t.Name})
	}
	return redirect(c, back, v)
}

// leavingPage goes on to another site from a page of its own: the
// confirmation form's CSP (form-action) covers the redirects of its
// submission, so a sign-out that continues at an application or an
// upstream provider leaves the form's navigation first.
var leavingPage = template.Must(template.New("leaving").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.To}}"><title>{{.W.SignOut}} — {{.Tenant}}</title></head>
<body><p><a id="continue" href="{{.To}}">{{.W.Continue}}</a></p></body></html>`))

// leaveForm turns a hook's redirect, answering the confirmation form,
// into a page that goes on by itself.
func leaveForm(c *fiber.Ctx, t *tenant.Tenant) error {
	to := c.GetRespHeader(fiber.HeaderLocation)
	if st := c.Response().StatusCode(); st < 300 || st > 399 || to == "" {
		return nil // the hook answered with a page of its own
	}
	c.Response().Header.Del(fiber.HeaderLocation)
	lang := authrest.Lang(c, t)
	authrest.Secure(c)
	return authrest.Page(c, 200, leavingPage, map[string]any{"Lang": lang, "W": logoutCatalog[lang], "Tenant": t.Name, "To": to})
}

// signedOutFrames answers the front-channel logout page: the relying
// parties' logout URIs are the only frames it may load, its one script
// carries a nonce, and it goes on to back (with v) when there is one.
func signedOutFrames(c *fiber.Ctx, t *tenant.Tenant, frames []string, back string, v url.Values) error {
	next := ""
	if back != "" {
		dropEmpty(v)
		next = back
		if len(v) > 0 {
			sep := "?"
			if strings.Contains(back, "?") {
				sep = "&"
			}
			next += sep + v.Encode()
		}
	}
	srcs := []string{}
	for _, f := range frames {
		if o := authrest.Origin(f); o != "" && !slices.Contains(srcs, o) {
			srcs = append(srcs, o)
		}
	}
	nonce := authrest.Nonce()
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"+nonce+"'; frame-src "+strings.Join(srcs, " ")+
		"; form-action 'none'")
	lang := authrest.Lang(c, t)
	return authrest.Page(c, 200, frontchannelPage, map[string]any{"Lang": lang, "W": logoutCatalog[lang], "Tenant": t.Name, "Frames": frames,
		"Next": next, "Nonce": nonce})
}

// confirmLogout asks the person to confirm signing out.
func (h *Handler) confirmLogout(ctx context.Context, c *fiber.Ctx, t *tenant.Tenant, clientID, back, state string) error {
	token := authrest.FormToken(c, logoutCSRFCookie, "/t/"+t.Slug+"/end_session", h.Server.Issuer(t.Slug))
	name := ""
	if clientID != "" {
		if n, err := h.Server.ClientName(ctx, clientID); err == nil {
			name = n
		}
	}
	hidden := map[string]string{"client_id": clientID, "post_logout_redirect_uri": back, "state": state}
	lang := authrest.Lang(c, t)
	return authrest.Page(c, 200, logoutPage, map[string]any{"Lang": lang, "W": logoutCatalog[lang], "Tenant": t.Name, "Client": name, "Hidden": hidden,
		"CSRF":   token,
		"Action": "/t/" + t.Slug + "/end_session"})
}
