package rest

import (
	"context"
	"html/template"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
)

// The device flow's pages at /t/{slug}/device (RFC 8628 §3.3): the person
// signs in (or is already, by the SSO session), types the code their
// device shows (or follows verification_uri_complete), and allows or
// denies what the device's client asks. Every form carries a CSRF token.

var devicePage = template.Must(template.New("device").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.Title}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem}
button{margin:1rem .5rem 0 0;padding:.5rem 1rem}.err{color:#b00020}code{font-size:1.2rem}</style></head>
<body><h1>{{.W.Title}}</h1>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{if eq .Step "done"}}<p id="done">{{.Done}} {{.W.Return}}</p>
{{else}}<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="step" value="{{.Step}}">
{{if eq .Step "lookup"}}<label for="user_code">{{.W.Code}}</label><input id="user_code" name="user_code" type="text" value="{{.UserCode}}" autocomplete="off" required>
<button type="submit">{{.W.Continue}}</button>
{{else}}<input type="hidden" name="user_code" value="{{.UserCode}}">
<p>{{if .Agent}}{{.W.TheAgent}} {{end}}<strong>{{.Client}}</strong> {{.W.OnDevice}} <code>{{.UserCode}}</code> {{.W.Asks}} <strong>{{.Tenant}}</strong>{{if .Agent}} {{.W.Both}}{{end}}{{.W.Colon}}</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<button type="submit" name="decision" value="allow">{{.W.Allow}}</button><button type="submit" name="decision" value="deny">{{.W.Deny}}</button>
{{end}}</form>{{end}}</body></html>`))

// deviceWords are the device page's words per language.
type deviceWords struct {
	Title, Return, Code, Continue, TheAgent, OnDevice, Asks, Both, Colon, Allow, Deny, Connected, Denied string
}

var deviceCatalog = map[string]deviceWords{
	"en": {Title: "Connect a device", Return: "You can return to your device.", Code: "Code shown on your device", Continue: "Continue",
		TheAgent: "The agent", OnDevice: "on the device showing", Asks: "asks to act for you at", Both: "(its calls will name both of you)", Colon: ":",
		Allow: "Allow", Deny: "Deny", Connected: "Your device is connected.", Denied: "The device was denied."},
	"fr": {Title: "Relier un appareil", Return: "Vous pouvez revenir à votre appareil.", Code: "Code affiché sur votre appareil", Continue: "Continuer",
		TheAgent: "L'agent", OnDevice: "sur l'appareil qui affiche", Asks: "demande à agir pour vous chez", Both: "(ses appels vous nommeront tous deux)",
		Colon: "\u00a0:", Allow: "Autoriser", Deny: "Refuser", Connected: "Votre appareil est relié.", Denied: "L'appareil a été refusé."},
}

const deviceCSRFCookie = "xv_device_csrf"

// purposeDevice is the auth transactions of the device page: the user
// code the person came with.
const purposeDevice = "device"

// deviceFlow brings a person who signed in for the device page back to it.
type deviceFlow struct{ h *Handler }

func (deviceFlow) Describe(context.Context, *tenant.Tenant, *auth.Transaction) (authrest.Prompt, error) {
	return authrest.Prompt{Device: true}, nil
}

func (f deviceFlow) Resume(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, _ *auth.BrowserSession) error {
	_ = f.h.Auth.EndTransaction(c.UserContext(), t, x)
	target := "/t/" + t.Slug + "/device"
	if x.Request != "" {
		target += "?" + url.Values{"user_code": {x.Request}}.Encode()
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(target, fiber.StatusFound)
}

// deviceAuthorization is RFC 8628's device authorization endpoint.
func (h *Handler) deviceAuthorization(c *fiber.Ctx) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationForm) {
		return h.write(c, nil, &oauth.Error{Code: "invalid_request", Description: "the request is application/x-www-form-urlencoded", Status: 400})
	}
	rp, err := h.deviceParty(c, ctx)
	if err != nil {
		return h.write(c, nil, err)
	}
	out, err := h.Server.StartDevice(ctx, t.Slug, rp, strings.Fields(c.FormValue("scope")), multi(c, "resource"))
	return h.write(c, out, err)
}

// deviceParty is the client of a device grant: an agent (an NHI's client,
// authenticated as at the token endpoint) that a person will let act for
// them, or a relying party.
func (h *Handler) deviceParty(c *fiber.Ctx, ctx context.Context) (oauth.RelyingParty, error) {
	if h.Server.IsAgentClient(ctx, presentedClientID(c)) {
		agent, err := h.client(c, ctx)
		if err != nil {
			return oauth.RelyingParty{}, err
		}
		return oauth.RelyingParty{ClientID: agent.ID, Authenticated: true, Agent: agent}, nil
	}
	clientID, authenticated, err := h.relyingParty(c, ctx)
	return oauth.RelyingParty{ClientID: clientID, Authenticated: authenticated}, err
}

// presentedClientID is the client_id a request names, in its form or in
// HTTP Basic ("" for none); nothing is authenticated yet.
func presentedClientID(c *fiber.Ctx) string {
	if id := c.FormValue("client_id"); id != "" {
		return id
	}
	id, _, _, err := credentials(c)
	if err != nil {
		return ""
	}
	return id
}

func (h *Handler) deviceGet(c *fiber.Ctx) error  { return h.device(c, false) }
func (h *Handler) devicePost(c *fiber.Ctx) error { return h.device(c, true) }

func (h *Handler) device(c *fiber.Ctx, posted bool) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return authrest.TenantPage(c, err)
	}
	authrest.Secure(c)
	userCode := c.Query("user_code")
	if posted {
		userCode = c.FormValue("user_code")
	}
	lang := authrest.Lang(c, t)
	w := deviceCatalog[lang]
	show := func(status int, step, msg string, extra map[string]any) error {
		token := authrest.FormToken(c, deviceCSRFCookie, "/t/"+t.Slug+"/device", h.Server.Issuer(t.Slug))
		data := map[string]any{"Lang": lang, "W": w, "Tenant": t.Name, "Step": step, "Error": msg, "CSRF": token, "UserCode": userCode,
			"Action": "/t/" + t.Slug + "/device"}
		for k, v := range extra {
			data[k] = v
		}
		return authrest.Page(c, status, devicePage, data)
	}
	bs, err := h.Pages.SessionOf(c, t)
	if err != nil {
		return authrest.Error(c, 503, "this page is unavailable; try again")
	}
	if bs == nil {
		// Signed in on the sign-in pages, the person comes back here with
		// the code they followed or typed.
		if len(userCode) > 32 {
			userCode = "" // not a code: the person types it again
		}
		return h.Pages.Begin(c, t, purposeDevice, userCode)
	}
	if posted && !authrest.FormTokenOK(c, deviceCSRFCookie) {
		return show(403, "lookup", "The form expired; please try again.", nil)
	}
	step := c.FormValue("step")
	if userCode == "" {
		return show(200, "lookup", "", nil)
	}
	req, err := h.Server.DeviceByUserCode(ctx, userCode, c.IP())
	if err != nil {
		status := 404
		if apperr.KindOf(err) == apperr.KindRateLimited {
			status = 429
		}
		return show(status, "lookup", apperr.PublicMessage(err), nil)
	}
	if posted && step == "decide" {
		allow := c.FormValue("decision") == "allow"
		if err := h.Server.DecideDevice(ctx, req.UserCode, bs.UserID, oauth.SignIn{SessionID: bs.ID, AuthTime: bs.AuthTime, AMR: bs.AMR}, allow); err != nil {
			return show(404, "lookup", apperr.PublicMessage(err), nil)
		}
		done := w.Denied
		if allow {
			done = w.Connected
		}
		return show(200, "done", "", map[string]any{"Done": done})
	}
	userCode = req.UserCode
	return show(200, "decide", "", map[string]any{"Client": req.ClientName, "Agent": req.Agent, "Scopes": describeScopes(consentCatalog[lang], req.Scope)})
}
