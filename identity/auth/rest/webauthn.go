package rest

// Passkeys and security keys on the sign-in pages: a form whose button
// runs the WebAuthn ceremony in the browser (the page's one script,
// allowed by its nonce) and posts the authenticator's answer; the
// passkey sign-in at /t/{slug}/login/passkey; the remembered-browser
// cookie.

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/mfa"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// webauthnScript runs the ceremony of each form.wa when its button is
// pressed, and posts the answer. Browsers without the JSON forms of
// WebAuthn (PublicKeyCredential.parse…OptionsFromJSON) keep the button
// hidden.
const webauthnScript = `(function(){
var P=window.PublicKeyCredential;if(!P||!P.parseRequestOptionsFromJSON||!P.parseCreationOptionsFromJSON)return;
document.querySelectorAll("form.wa").forEach(function(f){var b=f.querySelector("button");b.hidden=false;
b.addEventListener("click",function(){var o=JSON.parse(f.dataset.options);
var p=f.dataset.mode==="create"?navigator.credentials.create({publicKey:P.parseCreationOptionsFromJSON(o)}):navigator.credentials.get({publicKey:P.parseRequestOptionsFromJSON(o)});
p.then(function(c){f.elements.credential.value=JSON.stringify(c.toJSON());f.submit();}).catch(function(){var e=document.getElementById("wa-error");if(e)e.hidden=false;});});});
})();`

// waTemplate is the WebAuthn form of a page (its data's WA, a waForm).
const waTemplate = `{{define "wa"}}{{with .WA}}<form class="wa" method="post" action="{{.Action}}" data-mode="{{.Mode}}" data-options="{{.Options}}">
<input type="hidden" name="tx" value="{{.Tx}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="ceremony" value="{{.State}}"><input type="hidden" name="credential" value="">
{{if .Remember}}<label><input type="checkbox" name="remember" value="1"> {{.Remember}}</label>{{end}}
{{if .Prove}}<label for="wa-code">{{.Prove}}</label><input id="wa-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>{{end}}
<button type="button" id="{{.ID}}" hidden>{{.Label}}</button></form>
<p class="err" id="wa-error" role="alert" hidden>{{.Failed}}</p>
<script nonce="{{.Nonce}}">{{.Script}}</script>{{end}}{{end}}`

// waForm is a page's WebAuthn form.
type waForm struct {
	Action, Mode, Tx, CSRF, State, ID, Label, Failed, Remember, Nonce string
	// Prove asks for a code of a factor the person has (its label).
	Prove   string
	Options string
	Script  template.JS
}

// newWAForm is the form of a ceremony, posting to action.
func newWAForm(cer *mfa.Ceremony, mode, action, tx, csrf, id, label, failed string) *waForm {
	return &waForm{Action: action, Mode: mode, Tx: tx, CSRF: csrf, State: cer.State, ID: id, Label: label, Failed: failed,
		Options: string(cer.PublicKey), Nonce: Nonce(), Script: template.JS(webauthnScript)} //nolint:gosec // G203: our own constant script
}

// nonceOf is the script nonce of a page's data ("" without a form).
func nonceOf(data map[string]any) string {
	if f, ok := data["WA"].(*waForm); ok && f != nil {
		return f.Nonce
	}
	return ""
}

// withWA parses the WebAuthn form into a page template.
func withWA(t *template.Template) *template.Template {
	return template.Must(t.Parse(waTemplate))
}

// rememberCookie names the cookie of a browser that may skip a person's
// second step at a tenant.
func rememberCookie(t *tenant.Tenant) string { return "xv_rd_" + t.ID.String() }

// rememberLabel is the remember-this-browser choice ("" without one).
func rememberLabel(w loginWords, days int) string {
	if days <= 0 {
		return ""
	}
	return fmt.Sprintf(w.Remember, days)
}

// remember keeps this browser for a person, if they asked and the
// tenant allows it.
func (p *Pages) remember(c *fiber.Ctx, t *tenant.Tenant, user uuid.UUID, need mfa.Need) {
	if need.RememberDays <= 0 || c.FormValue("remember") != "1" {
		return
	}
	token, expires, err := p.MFA.Remember(store.WithTenant(c.UserContext(), t.ID), user, need.RememberDays)
	if err != nil {
		return // the sign-in goes on; the browser is just not remembered
	}
	c.Cookie(&fiber.Cookie{Name: rememberCookie(t), Value: token, Path: "/t/" + t.Slug + "/login", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: strings.HasPrefix(p.Issuer(t.Slug), "https://"), Expires: expires})
}

// passkeyForm is the login page's passkey sign-in (nil without passkeys).
func (p *Pages) passkeyForm(c *fiber.Ctx, t *tenant.Tenant, w loginWords, tx, csrf string) *waForm {
	if p.MFA == nil {
		return nil
	}
	cer, err := p.MFA.BeginPasskey(store.WithTenant(c.UserContext(), t.ID), auth.RPName(t))
	if err != nil {
		return nil
	}
	return newWAForm(cer, "get", "/t/"+t.Slug+"/login/passkey", tx, csrf, "passkey", w.Passkey, w.PasskeyFailed)
}

// passkey signs a person in with a passkey, without a password, and goes
// on with the flow of the transaction, if any.
func (p *Pages) passkey(c *fiber.Ctx) error {
	t, err := p.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return TenantPage(c, err)
	}
	ctx := store.WithTenant(c.UserContext(), t.ID)
	lp, ok, err := p.loginPageOf(c, t)
	if !ok {
		return err
	}
	if !FormTokenOK(c, csrfCookie) {
		return lp.show(403, lp.w.Expired)
	}
	if p.MFA == nil {
		return lp.show(401, lp.w.PasskeyFailed)
	}
	user, methods, err := p.MFA.FinishAssertion(ctx, uuid.Nil, c.FormValue("ceremony"), []byte(c.FormValue("credential")))
	switch k := apperr.KindOf(err); {
	case err == nil:
	case k == apperr.KindUnauthenticated || k == apperr.KindInvalidArgument:
		return lp.show(401, lp.w.PasskeyFailed)
	default:
		return Error(c, 503, "the sign-in is unavailable; try again")
	}
	u, err := p.Auth.SignInUser(ctx, t, user)
	if err != nil {
		return lp.show(401, lp.w.PasskeyFailed)
	}
	if u.MustChangePassword {
		return lp.show(403, lp.w.MustChange)
	}
	return p.signedIn(c, t, lp, u.ID, append(methods, "mfa"))
}

// signedIn opens the session of a person who passed every step of a
// login page and goes on with its flow (or says they are signed in).
func (p *Pages) signedIn(c *fiber.Ctx, t *tenant.Tenant, lp *loginView, user uuid.UUID, amr []string) error {
	u, err := p.Auth.SignInUser(store.WithTenant(c.UserContext(), t.ID), t, user)
	if err != nil {
		return lp.show(403, lp.w.Wrong)
	}
	bs, err := p.OpenSession(c, t, u, amr)
	if err != nil {
		return Error(c, 500, "the sign-in could not be completed")
	}
	if lp.x == nil {
		return signedInAnswer(c, t)
	}
	if err := p.Auth.TransactionSignedIn(store.WithTenant(c.UserContext(), t.ID), t, lp.x, bs.ID); err != nil {
		return Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	p.opened(store.WithTenant(c.UserContext(), t.ID), lp.x, bs)
	Secure(c, lp.prompt.ReturnTo)
	return lp.flow.Resume(c, t, lp.x, bs)
}

// rememberedFor reports whether this browser may skip the second step of
// a person.
func (p *Pages) rememberedFor(c *fiber.Ctx, t *tenant.Tenant, user uuid.UUID, need mfa.Need) bool {
	if need.RememberDays <= 0 {
		return false
	}
	ok, err := p.MFA.Remembered(store.WithTenant(c.UserContext(), t.ID), user, c.Cookies(rememberCookie(t)))
	return err == nil && ok
}
