package rest

// The tenant's sign-in page flow on the admin plane, /t/{slug}/login
// (DESIGN §12): the one place a person proves who they are, for every
// flow that needs a person. A flow (an OpenID Connect
// authorization request, a device code, and later SAML, federation, the
// console, step-up) starts an auth transaction and sends the browser
// here; once the person signed in, in a new SSO session, the flow
// resumes with that session and answers the browser itself (consent, a
// code for the client, the device page). Later steps (a second factor)
// slot in between the password and the resumption.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/federation"
	"github.com/xavyo/xavyo/identity/mfa"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// PageAuth is what the sign-in pages need of identity/auth.
type PageAuth interface {
	CheckPassword(ctx context.Context, slug, login, password string) (*tenant.Tenant, *directory.User, bool, error)
	OpenBrowserSession(ctx context.Context, t *tenant.Tenant, u *directory.User, amr []string, cl auth.Client) (*auth.BrowserSession, string, error)
	BrowserSessionOf(ctx context.Context, t *tenant.Tenant, cookie string) (*auth.BrowserSession, error)
	StartTransaction(ctx context.Context, t *tenant.Tenant, purpose, request string, session uuid.UUID) (*auth.Transaction, error)
	Transaction(ctx context.Context, t *tenant.Tenant, id string) (*auth.Transaction, error)
	TransactionSignedIn(ctx context.Context, t *tenant.Tenant, x *auth.Transaction, session uuid.UUID) error
	EndTransaction(ctx context.Context, t *tenant.Tenant, x *auth.Transaction) error
	TransactionPending(ctx context.Context, t *tenant.Tenant, x *auth.Transaction, user uuid.UUID, amr []string) (string, error)
	SignInUser(ctx context.Context, t *tenant.Tenant, id uuid.UUID) (*directory.User, error)
	VerifySecond(ctx context.Context, need mfa.Need, user uuid.UUID, code, ceremony string, answer []byte) ([]string, error)
}

// Prompt is what the sign-in page says of the flow it signs in for.
type Prompt struct {
	// Client asks ("" for none); Asks says what for.
	Client, Asks string
	// LoginHint prefills the login field.
	LoginHint string
	// ReturnTo is where the flow may send the browser right after the
	// sign-in (its origin is allowed as a form target).
	ReturnTo string
	// Device: the person signs in to connect a device.
	Device bool
	// Link names the identity provider whose sign-in the person links to
	// their account by signing in to it ("" : none).
	Link string
}

// Flow is a flow that needs a signed-in person.
type Flow interface {
	// Describe says who asks, for the sign-in page (ctx carries the
	// tenant). An error ends the sign-in (the flow's request is no longer
	// valid).
	Describe(ctx context.Context, t *tenant.Tenant, x *auth.Transaction) (Prompt, error)
	// Resume goes on once the person signed in, in session bs; it answers
	// the browser.
	Resume(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, bs *auth.BrowserSession) error
}

// Pages serves the sign-in pages.
type Pages struct {
	Auth    PageAuth
	Tenants *tenant.Service
	// Issuer is a tenant's issuer URL (its scheme decides the cookies').
	Issuer func(slug string) string
	// MFA asks a person who enrolled a second factor for it, and has
	// people enrol one where the tenant requires it (nil: none).
	MFA SecondFactors
	// Upstreams are the tenant's identity providers (nil: none).
	Upstreams Upstreams
	flows     map[string]Flow
}

// Upstreams is what the pages need of identity/federation: the
// providers to offer, and the one an address's domain sends its people
// to.
type Upstreams interface {
	Buttons(ctx context.Context) ([]federation.Button, bool, error)
	Route(ctx context.Context, email string) (string, error)
	// SessionOpened says a sign-in (transaction tx) opened session.
	SessionOpened(ctx context.Context, tx string, session uuid.UUID) error
}

// SecondFactors is what the pages need of identity/mfa.
type SecondFactors interface {
	auth.SecondFactor
	EnrollTOTP(ctx context.Context, user uuid.UUID, issuer, account, name string) (*mfa.Enrollment, error)
	ConfirmTOTP(ctx context.Context, user, id uuid.UUID, code string) ([]string, error)
	BeginRegistration(ctx context.Context, user uuid.UUID, account, display, rpName string, pol tenant.MFAPolicy) (*mfa.Ceremony, error)
	FinishRegistration(ctx context.Context, user uuid.UUID, state string, answer []byte, name string, pol tenant.MFAPolicy) (*mfa.Factor, []string, error)
	Remember(ctx context.Context, user uuid.UUID, days int) (string, time.Time, error)
	Remembered(ctx context.Context, user uuid.UUID, token string) (bool, error)
}

// Register makes a flow resumable by purpose.
func (p *Pages) Register(purpose string, f Flow) {
	if p.flows == nil {
		p.flows = map[string]Flow{}
	}
	p.flows[purpose] = f
}

// Mount registers the pages.
func (p *Pages) Mount(app *fiber.App) {
	app.Get("/t/:slug/login", p.login)
	app.Post("/t/:slug/login", p.login)
	app.Get("/t/:slug/login/mfa", p.secondFactor)
	app.Post("/t/:slug/login/mfa", p.secondFactor)
	app.Get("/t/:slug/login/enrol", p.enrol)
	app.Post("/t/:slug/login/enrol", p.enrol)
	app.Post("/t/:slug/login/continue", p.resume)
	app.Post("/t/:slug/login/passkey", p.passkey)
	p.Register(PurposeSignIn, signInFlow{})
}

// PurposeSignIn is a sign-in for itself (the page without a flow) that
// needs a transaction: one owing a second factor, one through an
// upstream identity provider.
const PurposeSignIn = "signin"

// signInFlow ends a sign-in for itself: the "signed in" page.
type signInFlow struct{}

func (signInFlow) Describe(context.Context, *tenant.Tenant, *auth.Transaction) (Prompt, error) {
	return Prompt{}, nil
}

func (signInFlow) Resume(c *fiber.Ctx, t *tenant.Tenant, _ *auth.Transaction, _ *auth.BrowserSession) error {
	return signedInAnswer(c, t)
}

// signedInAnswer is the "signed in" page of a sign-in for itself.
func signedInAnswer(c *fiber.Ctx, t *tenant.Tenant) error {
	Secure(c)
	lang := Lang(c, t)
	return Page(c, 200, signedInPage, map[string]any{"Lang": lang, "W": loginCatalog[lang], "Tenant": t.Name})
}

// mfaCookie binds the second step to the browser that passed the first.
const mfaCookie = "xv_mfa"

const mfaCSRFCookie = "xv_mfa_csrf"

var enrolPage = withWA(template.Must(template.New("enrol").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.EnrolTitle}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input[type=text]{width:100%;padding:.4rem;font-size:1.2rem;letter-spacing:.1em}
button{margin-top:1rem;padding:.5rem 1rem}.err{color:#b00020}code{word-break:break-all;background:#eee;padding:0 .2rem}
ol.codes{font-family:ui-monospace,monospace}</style></head>
<body><h1>{{.W.EnrolTitle}}</h1>
{{if .Codes}}<p>{{.W.CodesIntro}}</p><ol class="codes" id="codes">{{range .Codes}}<li>{{.}}</li>{{end}}</ol>
<form method="post" action="{{.Continue}}"><input type="hidden" name="tx" value="{{.Tx}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" id="continue">{{.W.Continue}}</button></form>
{{else}}{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{if .Secret}}<p>{{.W.EnrolIntro}}</p>
{{if .QR}}<img src="{{.QR}}" alt="" width="200" height="200">{{end}}
<p>{{.W.EnrolKey}} <code id="secret">{{.Secret}}</code></p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="tx" value="{{.Tx}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="factor" value="{{.Factor}}">
<label for="code">{{.W.MFACode}}</label><input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus>
<button type="submit">{{.W.MFAButton}}</button></form>
{{if .WA}}<p>{{.W.EnrolOr}}</p>{{end}}{{else}}<p>{{.W.EnrolKeyOnly}}</p>{{end}}
{{template "wa" .}}{{end}}</body></html>`)))

// enrol is where a person without a second factor enrols an
// authenticator app when the tenant requires one: the secret (and its QR
// code), a code to confirm it, then their recovery codes, once, before
// the sign-in goes on (in a session that counts both factors).
func (p *Pages) enrol(c *fiber.Ctx) error {
	st, ok, err := p.secondStepOf(c)
	if !ok {
		return err
	}
	t, ctx, x, flow, u, need, lang, w, iss, prompt := st.t, st.ctx, st.x, st.flow, st.u, st.need, st.lang, st.w, st.iss, st.prompt
	user, pol := u.ID, tenant.PoliciesOf(t).MFA
	if !need.MustEnrol() {
		// A person who has a factor that counts proves it: enrolling a
		// new one here would skip it.
		return p.SendTo(c, "/t/"+t.Slug+"/login/mfa", x)
	}
	action := "/t/" + t.Slug + "/login/enrol"
	show := func(status int, data map[string]any) error {
		data["Lang"], data["W"], data["Tenant"], data["Tx"] = lang, w, t.Name, x.ID
		data["CSRF"] = FormToken(c, mfaCSRFCookie, "/t/"+t.Slug+"/login", iss)
		data["Action"], data["Continue"] = action, "/t/"+t.Slug+"/login/continue"
		if f, ok := data["WA"].(*waForm); ok && f != nil {
			f.CSRF = data["CSRF"].(string)
		}
		SecureScript(c, nonceOf(data), prompt.ReturnTo)
		c.Set("Content-Security-Policy", c.GetRespHeader("Content-Security-Policy")+"; img-src data:")
		return Page(c, status, enrolPage, data)
	}
	fresh := func(status int, msg string) error {
		data := map[string]any{"Error": msg}
		if !need.PhishingResistant {
			e, err := p.MFA.EnrollTOTP(ctx, user, t.Name, u.Email, "")
			if err != nil {
				return Error(c, 503, "the sign-in is unavailable; try again")
			}
			data["Secret"], data["Factor"], data["QR"] = e.Secret, e.ID.String(), qrCode(e.URI)
		}
		display := u.DisplayName
		if display == "" {
			display = u.Email
		}
		if reg, err := p.MFA.BeginRegistration(ctx, user, u.Email, display, auth.RPName(t), pol); err == nil {
			f := newWAForm(reg, "create", action, x.ID, "", "register-key", w.EnrolPasskey, w.PasskeyFailed)
			if need.Outdated {
				f.Prove = w.EnrolProve
			}
			data["WA"] = f
		} else if need.PhishingResistant {
			return Error(c, 503, "passkeys are not available here")
		}
		return show(status, data)
	}
	if c.Method() != fiber.MethodPost {
		return fresh(200, "")
	}
	if !FormTokenOK(c, mfaCSRFCookie) {
		return fresh(403, w.Expired)
	}
	var codes []string
	amr := append(st.first(), "otp", "mfa")
	if answer := c.FormValue("credential"); answer != "" {
		if need.Outdated {
			// An upgrade: the person proves a factor they have first.
			switch _, err := p.MFA.Verify(ctx, user, c.FormValue("code")); {
			case apperr.KindOf(err) == apperr.KindRateLimited:
				return fresh(429, apperr.PublicMessage(err))
			case err != nil:
				return fresh(401, w.MFAWrong)
			}
		}
		_, codes, err = p.MFA.FinishRegistration(ctx, user, c.FormValue("ceremony"), []byte(answer), "", pol)
		switch k := apperr.KindOf(err); {
		case err == nil:
			amr = append(st.first(), "hwk", "mfa")
		case k == apperr.KindInvalidArgument || k == apperr.KindAlreadyExists || k == apperr.KindPermissionDenied:
			return fresh(400, apperr.PublicMessage(err))
		default:
			return Error(c, 503, "the sign-in is unavailable; try again")
		}
	} else {
		if need.PhishingResistant {
			return fresh(400, w.MFAWrong)
		}
		fid, err := uuid.Parse(c.FormValue("factor"))
		if err != nil {
			return fresh(400, w.MFAWrong)
		}
		codes, err = p.MFA.ConfirmTOTP(ctx, user, fid, c.FormValue("code"))
		switch {
		case apperr.KindOf(err) == apperr.KindRateLimited:
			return fresh(429, apperr.PublicMessage(err))
		case apperr.KindOf(err) == apperr.KindUnauthenticated || apperr.KindOf(err) == apperr.KindNotFound:
			return fresh(401, w.MFAWrong)
		case err != nil:
			return Error(c, 503, "the sign-in is unavailable; try again")
		}
	}
	if _, ok, err := p.finishSecondStep(c, st, amr); !ok {
		return err
	}
	if len(codes) == 0 {
		// Not the person's first factor: no new recovery codes to show.
		bs, err := p.SessionOf(c, t)
		if err != nil || bs == nil {
			return Error(c, 503, "the sign-in is unavailable; try again")
		}
		Secure(c, prompt.ReturnTo)
		return flow.Resume(c, t, x, bs)
	}
	return show(200, map[string]any{"Codes": codes})
}

// resume goes on with a flow after the enrolment page (its recovery
// codes shown), in the session that signed in for it.
func (p *Pages) resume(c *fiber.Ctx) error {
	t, err := p.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return TenantPage(c, err)
	}
	if !FormTokenOK(c, mfaCSRFCookie) {
		return Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	x, bs, ok, err := p.Resumable(c, t, "")
	if !ok {
		return err
	}
	return p.goOn(c, t, x, bs)
}

// goOn resumes the flow of transaction x in session bs.
func (p *Pages) goOn(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, bs *auth.BrowserSession) error {
	flow := p.flows[x.Purpose]
	prompt, _ := flow.Describe(store.WithTenant(c.UserContext(), t.ID), t, x)
	Secure(c, prompt.ReturnTo)
	return flow.Resume(c, t, x, bs)
}

// txID is the transaction a page request names: tx in the query, or in
// the posted form.
func txID(c *fiber.Ctx) string {
	if c.Method() == fiber.MethodPost {
		return c.FormValue("tx")
	}
	return c.Query("tx")
}

// TransactionOf reads the live transaction a page request names (its tx
// parameter), of a flow the pages know; ok false: the page was answered.
func (p *Pages) TransactionOf(c *fiber.Ctx, t *tenant.Tenant) (*auth.Transaction, bool, error) {
	return p.transactionOf(c, t, "")
}

// Continue goes on with the flow of transaction x (nil: a sign-in for
// itself) in session bs, which the person has just signed in with.
func (p *Pages) Continue(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, bs *auth.BrowserSession) error {
	if x == nil {
		return signedInAnswer(c, t)
	}
	if p.flows[x.Purpose] == nil {
		return Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	if err := p.Auth.TransactionSignedIn(store.WithTenant(c.UserContext(), t.ID), t, x, bs.ID); err != nil {
		return Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	return p.goOn(c, t, x, bs)
}

// transactionOf reads the live transaction a page request names, of a
// flow the pages know (purpose "" for any); ok false: the page was
// answered (an unknown or expired one, or a store that cannot say).
func (p *Pages) transactionOf(c *fiber.Ctx, t *tenant.Tenant, purpose string) (*auth.Transaction, bool, error) {
	x, err := p.Auth.Transaction(store.WithTenant(c.UserContext(), t.ID), t, txID(c))
	switch {
	case errors.Is(err, auth.ErrNoTransaction):
		return nil, false, Error(c, 400, apperr.PublicMessage(err))
	case err != nil:
		return nil, false, Error(c, 503, "the sign-in is unavailable; try again")
	case p.flows[x.Purpose] == nil || (purpose != "" && x.Purpose != purpose):
		return nil, false, Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	return x, true, nil
}

// secondStep is a second-step page's request: the transaction it is
// for, its flow, and the person who passed the first step in this
// browser, with what their sign-in owes.
type secondStep struct {
	t      *tenant.Tenant
	ctx    context.Context
	x      *auth.Transaction
	flow   Flow
	prompt Prompt
	u      *directory.User
	need   mfa.Need
	lang   string
	w      loginWords
	iss    string
}

// opened tells the upstreams a transaction's sign-in opened a session.
func (p *Pages) opened(ctx context.Context, x *auth.Transaction, bs *auth.BrowserSession) {
	if p.Upstreams != nil && x != nil {
		if err := p.Upstreams.SessionOpened(ctx, x.ID, bs.ID); err != nil {
			slog.Default().Warn("recording the upstream session of a sign-in failed", "error", err)
		}
	}
}

// first is how the person passed the first step.
func (st *secondStep) first() []string {
	if len(st.x.PendingAMR) == 0 {
		return []string{"pwd"}
	}
	return slices.Clone(st.x.PendingAMR)
}

// secondStepOf reads the request of a second-step page; ok false: the
// page was answered (another browser is sent to sign in).
func (p *Pages) secondStepOf(c *fiber.Ctx) (*secondStep, bool, error) {
	t, err := p.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return nil, false, TenantPage(c, err)
	}
	x, ok, err := p.transactionOf(c, t, "")
	if !ok {
		return nil, false, err
	}
	user := x.Pending(c.Cookies(mfaCookie))
	if user == uuid.Nil || p.MFA == nil {
		// Not this browser's first step (or none): start again.
		return nil, false, p.SendTo(c, "/t/"+t.Slug+"/login", x)
	}
	st := &secondStep{t: t, ctx: store.WithTenant(c.UserContext(), t.ID), x: x, flow: p.flows[x.Purpose], lang: Lang(c, t), iss: p.Issuer(t.Slug)}
	st.w = loginCatalog[st.lang]
	st.prompt, _ = st.flow.Describe(st.ctx, t, x)
	if st.u, err = p.Auth.SignInUser(st.ctx, t, user); err != nil {
		return nil, false, Error(c, 403, st.w.Wrong)
	}
	if st.need, err = p.MFA.NeedOf(st.ctx, tenant.PoliciesOf(t).MFA, user, st.u.AdminRoles); err != nil {
		return nil, false, Error(c, 503, "the sign-in is unavailable; try again")
	}
	return st, true, nil
}

// finishSecondStep opens the session of a person who passed both steps,
// records it on the transaction and clears the first step's cookie.
func (p *Pages) finishSecondStep(c *fiber.Ctx, st *secondStep, amr []string) (*auth.BrowserSession, bool, error) {
	bs, err := p.OpenSession(c, st.t, st.u, amr)
	if err != nil {
		return nil, false, Error(c, 500, "the sign-in could not be completed")
	}
	if err := p.Auth.TransactionSignedIn(st.ctx, st.t, st.x, bs.ID); err != nil {
		return nil, false, Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	p.opened(st.ctx, st.x, bs)
	c.Cookie(&fiber.Cookie{Name: mfaCookie, Value: "", Path: "/t/" + st.t.Slug + "/login", Expires: time.Unix(1, 0), HTTPOnly: true})
	return bs, true, nil
}

// qrCode is the otpauth URI as a PNG data URI ("" if it cannot be drawn):
// a URL the page may load as it is, since it is ours.
func qrCode(uri string) template.URL {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return ""
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return ""
	}
	var b bytes.Buffer
	if png.Encode(&b, img) != nil {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())) //nolint:gosec // G203: our own PNG
}

var mfaPage = withWA(template.Must(template.New("mfa").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.MFATitle}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input[type=text]{width:100%;padding:.4rem;font-size:1.2rem;letter-spacing:.1em}
button{margin-top:1rem;padding:.5rem 1rem}.err{color:#b00020}</style></head>
<body><h1>{{.W.MFATitle}}</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{if .Code}}<p>{{.W.MFAIntro}}</p><form method="post" action="{{.Action}}">
<input type="hidden" name="tx" value="{{.Tx}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="code">{{.W.MFACode}}</label><input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus>
{{if .Remember}}<label><input type="checkbox" name="remember" value="1" id="remember"> {{.Remember}}</label>{{end}}
<button type="submit">{{.W.MFAButton}}</button></form>{{else}}<p>{{.W.MFAKeyIntro}}</p>{{end}}
{{template "wa" .}}</body></html>`)))

// secondFactor is the second step of a sign-in: a code of the person's
// authenticator app or a recovery code, in the browser that passed the
// first step (its cookie), for the transaction that records it.
func (p *Pages) secondFactor(c *fiber.Ctx) error {
	st, ok, err := p.secondStepOf(c)
	if !ok {
		return err
	}
	t, ctx, x, flow, need, lang, w, iss, prompt := st.t, st.ctx, st.x, st.flow, st.need, st.lang, st.w, st.iss, st.prompt
	user := st.u.ID
	action := "/t/" + t.Slug + "/login/mfa"
	show := func(status int, msg string) error {
		token := FormToken(c, mfaCSRFCookie, "/t/"+t.Slug+"/login", iss)
		data := map[string]any{"Lang": lang, "W": w, "Tenant": t.Name, "Error": msg, "CSRF": token, "Tx": x.ID, "Action": action,
			"Code": need.Accepts(mfa.KindTOTP) || need.Accepts("recovery_code"), "Remember": rememberLabel(w, need.RememberDays)}
		if need.Accepts(mfa.KindWebAuthn) {
			if cer, err := p.MFA.BeginAssertion(ctx, user, auth.RPName(t)); err == nil && cer != nil {
				f := newWAForm(cer, "get", action, x.ID, token, "use-key", w.UseKey, w.PasskeyFailed)
				f.Remember = rememberLabel(w, need.RememberDays)
				data["WA"] = f
			}
		}
		SecureScript(c, nonceOf(data), prompt.ReturnTo)
		return Page(c, status, mfaPage, data)
	}
	if c.Method() != fiber.MethodPost {
		return show(200, "")
	}
	if !FormTokenOK(c, mfaCSRFCookie) {
		return show(403, w.Expired)
	}
	answer := c.FormValue("credential")
	wrong := w.MFAWrong
	if answer != "" {
		wrong = w.PasskeyFailed
	}
	methods, err := p.Auth.VerifySecond(ctx, need, user, c.FormValue("code"), c.FormValue("ceremony"), []byte(answer))
	switch k := apperr.KindOf(err); {
	case err == nil:
	case k == apperr.KindRateLimited:
		return show(429, apperr.PublicMessage(err))
	case k == apperr.KindUnauthenticated || k == apperr.KindPermissionDenied || k == apperr.KindInvalidArgument:
		return show(401, wrong)
	default:
		return Error(c, 503, "the sign-in is unavailable; try again")
	}
	p.remember(c, t, user, need)
	bs, ok, err := p.finishSecondStep(c, st, append(append(st.first(), methods...), "mfa"))
	if !ok {
		return err
	}
	Secure(c, prompt.ReturnTo)
	return flow.Resume(c, t, x, bs)
}

const csrfCookie = "xv_login_csrf"

var loginPage = withWA(template.Must(template.New("login").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.Title}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem}
button{margin-top:1rem;padding:.5rem 1rem}.err{color:#b00020}</style></head>
<body><h1>{{.W.Title}}</h1>
{{if .Link}}<p id="link">{{printf .W.Link .Link}}</p>{{else if .Client}}<p><strong>{{.Client}}</strong> {{.W.Asks}}{{if .Asks}} ({{.Asks}}){{end}}.</p>{{else if .Device}}<p>{{.W.Device}}</p>{{else}}<p>{{.W.SignInTo}} <strong>{{.Tenant}}</strong>.</p>{{end}}
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="tx" value="{{.Tx}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="login">{{.W.Login}}</label><input id="login" name="login" type="text" autocomplete="username" value="{{.LoginHint}}" required autofocus>
<label for="password">{{.W.Secret}}</label><input id="password" name="password" type="password" autocomplete="current-password"{{if not .Routed}} required{{end}}>
<button type="submit">{{.W.Button}}</button></form>
{{if not .Link}}{{range .Upstreams}}<p><a class="idp" id="idp-{{.Key}}" href="{{.Href}}">{{printf $.W.ContinueWith .Name}}</a></p>{{end}}{{end}}
{{template "wa" .}}
<p><a href="{{.Forgot}}">{{.W.Forgot}}</a></p></body></html>`)))

var signedInPage = template.Must(template.New("signed-in").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.W.SignedIn}} — {{.Tenant}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}</style></head>
<body><h1 id="signed-in">{{.W.SignedIn}}</h1><p>{{.W.SignedInTo}} {{.Tenant}}.</p></body></html>`))

// loginWords are the sign-in page's words per language.
type loginWords struct {
	Title, Asks, Device, SignInTo, Login, Secret, Button, Forgot, Wrong, Expired, MustChange, SignedIn, SignedInTo string
	MFATitle, MFAIntro, MFACode, MFAButton, MFAWrong                                                               string
	EnrolTitle, EnrolIntro, EnrolKey, CodesIntro, Continue                                                         string
	Passkey, PasskeyFailed, UseKey, MFAKeyIntro, Remember, EnrolPasskey, EnrolOr, EnrolKeyOnly, EnrolProve         string
	ContinueWith, Link                                                                                             string
}

var loginCatalog = map[string]loginWords{
	"en": { //nolint:gosec // G101: page words
		Title: "Sign in", Asks: "asks to act for you", Device: "Sign in to connect your device.", SignInTo: "Sign in to",
		Login: "Email or username", Secret: "Password", Button: "Sign in", Forgot: "Forgot your password?",
		Wrong: "Wrong email, username or password.", Expired: "The form expired; please sign in again.",
		MustChange: "You must change your password before signing in to applications.", SignedIn: "You are signed in", SignedInTo: "You are signed in to",
		MFATitle: "Two-step verification", MFAIntro: "Type the code your authenticator app shows, or one of your recovery codes.",
		MFACode: "Code", MFAButton: "Verify", MFAWrong: "That code is not valid.",
		EnrolTitle: "Set up two-step verification", EnrolIntro: "This organization requires a second factor. Scan this code with an authenticator app, or type its key, then give the code it shows.",
		EnrolKey: "Key:", CodesIntro: "Keep these recovery codes somewhere safe: each signs you in once if you lose your app. They are shown only now.",
		Continue: "Continue", Passkey: "Sign in with a passkey", PasskeyFailed: "The passkey or security key could not be used. Try again, or use another way.",
		UseKey: "Use your passkey or security key", MFAKeyIntro: "Confirm it is you with your passkey or security key.",
		Remember: "Remember this browser for %d days", EnrolPasskey: "Set up a passkey or security key", EnrolOr: "Or use a passkey or security key instead:",
		EnrolKeyOnly: "This organization requires a passkey or security key. Set one up on this device, or with a security key.",
		EnrolProve:   "First, a code of your authenticator app or a recovery code",
		ContinueWith: "Continue with %s", Link: "An account with this email address exists. Sign in to it once to link your %s sign-in to it."},
	"fr": { //nolint:gosec // G101: page words
		Title: "Connexion", Asks: "demande à agir pour vous", Device: "Connectez-vous pour relier votre appareil.", SignInTo: "Connectez-vous à",
		Login: "Adresse ou nom d'utilisateur", Secret: "Mot de passe", Button: "Se connecter", Forgot: "Mot de passe oublié ?",
		Wrong: "Adresse, nom d'utilisateur ou mot de passe incorrect.", Expired: "Le formulaire a expiré ; reconnectez-vous.",
		MustChange: "Vous devez changer votre mot de passe avant de vous connecter aux applications.", SignedIn: "Vous êtes connecté·e",
		SignedInTo: "Vous êtes connecté·e à", MFATitle: "Vérification en deux étapes",
		MFAIntro: "Saisissez le code affiché par votre application d'authentification, ou l'un de vos codes de secours.",
		MFACode:  "Code", MFAButton: "Vérifier", MFAWrong: "Ce code n'est pas valable.",
		EnrolTitle: "Activer la vérification en deux étapes", EnrolIntro: "Cette organisation exige un second facteur. Scannez ce code avec une application d'authentification, ou saisissez sa clé, puis donnez le code qu'elle affiche.",
		EnrolKey: "Clé :", CodesIntro: "Gardez ces codes de secours en lieu sûr : chacun vous connecte une fois si vous perdez votre application. Ils ne sont affichés que maintenant.",
		Continue: "Continuer", Passkey: "Se connecter avec une clé d'accès",
		PasskeyFailed: "La clé d'accès ou la clé de sécurité n'a pas pu être utilisée. Réessayez, ou choisissez un autre moyen.",
		UseKey:        "Utiliser votre clé d'accès ou clé de sécurité", MFAKeyIntro: "Confirmez votre identité avec votre clé d'accès ou clé de sécurité.",
		Remember: "Se souvenir de ce navigateur pendant %d jours", EnrolPasskey: "Créer une clé d'accès ou enregistrer une clé de sécurité",
		EnrolOr:      "Ou utilisez plutôt une clé d'accès ou une clé de sécurité :",
		EnrolKeyOnly: "Cette organisation exige une clé d'accès ou une clé de sécurité. Créez-en une sur cet appareil, ou utilisez une clé de sécurité.",
		EnrolProve:   "D'abord, un code de votre application d'authentification ou un code de secours",
		ContinueWith: "Continuer avec %s", Link: "Un compte existe avec cette adresse. Connectez-vous-y une fois pour y relier votre connexion %s."},
}

// Begin starts a sign-in for a flow and sends the browser to the sign-in
// page (the flow resumes with Flow.Resume).
func (p *Pages) Begin(c *fiber.Ctx, t *tenant.Tenant, purpose, request string) error {
	x, err := p.Auth.StartTransaction(c.UserContext(), t, purpose, request, uuid.Nil)
	if err != nil {
		return Error(c, 503, "the sign-in is unavailable; try again")
	}
	return p.SendTo(c, "/t/"+t.Slug+"/login", x)
}

// SendTo redirects the browser to a page of the flow with its
// transaction.
func (p *Pages) SendTo(c *fiber.Ctx, path string, x *auth.Transaction) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(path+"?"+url.Values{"tx": {x.ID}}.Encode(), fiber.StatusFound)
}

// SessionOf returns the browser's live SSO session at t (nil: none).
func (p *Pages) SessionOf(c *fiber.Ctx, t *tenant.Tenant) (*auth.BrowserSession, error) {
	return p.Auth.BrowserSessionOf(c.UserContext(), t, c.Cookies(SSOCookie(t, p.Issuer(t.Slug)).Name))
}

// Resumable returns the transaction of purpose ("" for any) a request names (its tx parameter)
// once the person signed in for it in this browser: the SSO session the
// browser holds must be the one they signed in with. ok false: the page
// was answered.
func (p *Pages) Resumable(c *fiber.Ctx, t *tenant.Tenant, purpose string) (*auth.Transaction, *auth.BrowserSession, bool, error) {
	x, ok, err := p.transactionOf(c, t, purpose)
	if !ok {
		return nil, nil, false, err
	}
	bs, err := p.SessionOf(c, t)
	if err != nil {
		return nil, nil, false, Error(c, 503, "the sign-in is unavailable; try again")
	}
	if bs == nil || bs.ID != x.SessionID {
		// Another browser, or the session ended: sign in again.
		return nil, nil, false, p.SendTo(c, "/t/"+t.Slug+"/login", x)
	}
	return x, bs, true, nil
}

// loginView is the login page of a request: its tenant, and the flow of
// its transaction (none: a sign-in for itself).
type loginView struct {
	p      *Pages
	c      *fiber.Ctx
	t      *tenant.Tenant
	id     string
	x      *auth.Transaction
	flow   Flow
	prompt Prompt
	lang   string
	w      loginWords
}

// loginPageOf reads the transaction a login page request names, if any;
// ok false: the page was answered.
func (p *Pages) loginPageOf(c *fiber.Ctx, t *tenant.Tenant) (*loginView, bool, error) {
	var x *auth.Transaction
	if txID(c) != "" {
		var ok bool
		var err error
		if x, ok, err = p.transactionOf(c, t, ""); !ok {
			return nil, false, err
		}
	}
	return p.viewOf(c, t, x)
}

// viewOf is the login page of transaction x (nil: a sign-in for
// itself); ok false: the page was answered (a flow that cannot go on).
func (p *Pages) viewOf(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction) (*loginView, bool, error) {
	lv := &loginView{p: p, c: c, t: t, x: x, lang: Lang(c, t)}
	lv.w = loginCatalog[lv.lang]
	if x == nil {
		return lv, true, nil
	}
	lv.id, lv.flow = x.ID, p.flows[x.Purpose]
	if lv.flow == nil {
		return nil, false, Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
	}
	var err error
	if lv.prompt, err = lv.flow.Describe(store.WithTenant(c.UserContext(), t.ID), t, x); err != nil {
		return nil, false, Error(c, 400, apperr.PublicMessage(err))
	}
	return lv, true, nil
}

// show renders the login page (with its passkey sign-in).
func (lv *loginView) show(status int, msg string) error {
	c, t := lv.c, lv.t
	token := FormToken(c, csrfCookie, "/t/"+t.Slug+"/login", lv.p.Issuer(t.Slug))
	data := map[string]any{"Lang": lv.lang, "W": lv.w, "Tenant": t.Name, "Client": lv.prompt.Client, "Asks": lv.prompt.Asks,
		"Device": lv.prompt.Device, "LoginHint": lv.prompt.LoginHint, "Error": msg, "CSRF": token, "Tx": lv.id, "Action": "/t/" + t.Slug + "/login",
		"Forgot": "/t/" + t.Slug + "/password/forgot", "WA": lv.p.passkeyForm(c, t, lv.w, lv.id, token), "Link": lv.prompt.Link}
	if lv.p.Upstreams != nil {
		bs, routed, err := lv.p.Upstreams.Buttons(store.WithTenant(c.UserContext(), t.ID))
		if err == nil {
			ups := make([]map[string]string, 0, len(bs))
			for _, b := range bs {
				ups = append(ups, map[string]string{"Key": b.Key, "Name": b.Name, "Href": lv.p.upstreamURL(t, b.Key, lv.id, "")})
			}
			data["Upstreams"], data["Routed"] = ups, routed
		}
	}
	SecureScript(c, nonceOf(data), lv.prompt.ReturnTo)
	return Page(c, status, loginPage, data)
}

func (p *Pages) login(c *fiber.Ctx) error {
	t, err := p.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return TenantPage(c, err)
	}
	ctx := store.WithTenant(c.UserContext(), t.ID)
	lv, ok, err := p.loginPageOf(c, t)
	if !ok {
		return err
	}
	if c.Method() != fiber.MethodPost {
		if lv.prompt.Link == "" {
			if to := p.routed(c, t, lv.id, lv.prompt.LoginHint); to != "" {
				return c.Redirect(to, fiber.StatusFound)
			}
		}
		return lv.show(200, "")
	}
	if !FormTokenOK(c, csrfCookie) {
		return lv.show(403, lv.w.Expired)
	}
	if lv.prompt.Link == "" {
		if to := p.routed(c, t, lv.id, c.FormValue("login")); to != "" {
			// Their organization signs them in: the password is not looked at.
			return c.Redirect(to, fiber.StatusFound)
		}
	}
	_, u, mustChange, err := p.Auth.CheckPassword(ctx, t.Slug, c.FormValue("login"), c.FormValue("password"))
	if err != nil {
		if errors.Is(err, auth.ErrFederatedOnly) {
			return lv.show(403, apperr.PublicMessage(err))
		}
		return lv.show(401, lv.w.Wrong)
	}
	if mustChange {
		return lv.show(403, lv.w.MustChange)
	}
	return p.firstStepPassed(c, lv, u, []string{"pwd"}, false)
}

// upstreamURL starts a sign-in at a tenant's identity provider.
func (p *Pages) upstreamURL(t *tenant.Tenant, key, tx, hint string) string {
	q := url.Values{}
	if tx != "" {
		q.Set("tx", tx)
	}
	if hint != "" {
		q.Set("login_hint", hint)
	}
	u := "/t/" + t.Slug + "/login/federation/" + url.PathEscape(key)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// routed is where the sign-in of an address goes when its domain is an
// identity provider's ("" : here).
func (p *Pages) routed(c *fiber.Ctx, t *tenant.Tenant, tx, login string) string {
	if p.Upstreams == nil || login == "" {
		return ""
	}
	key, err := p.Upstreams.Route(store.WithTenant(c.UserContext(), t.ID), login)
	if err != nil || key == "" {
		return ""
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return p.upstreamURL(t, key, tx, strings.TrimSpace(login))
}

// firstStepPassed goes on with a sign-in whose first step u passed (as
// amr says): to the second step when the tenant's policy asks for one
// (unless factorDone: the first step counted two factors), else into a
// new session and back to the flow.
func (p *Pages) firstStepPassed(c *fiber.Ctx, lv *loginView, u *directory.User, amr []string, factorDone bool) error {
	t := lv.t
	ctx := store.WithTenant(c.UserContext(), t.ID)
	if p.MFA != nil && !factorDone {
		need, err := p.MFA.NeedOf(ctx, tenant.PoliciesOf(t).MFA, u.ID, u.AdminRoles)
		if err != nil {
			return Error(c, 503, "the sign-in is unavailable; try again")
		}
		if need.MustEnrol() || (len(need.Methods) > 0 && !p.rememberedFor(c, t, u.ID, need)) {
			// The second step (or, where the tenant requires one, enrolling
			// a factor first): in this browser, for this transaction.
			x := lv.x
			if x == nil {
				if x, err = p.Auth.StartTransaction(ctx, t, PurposeSignIn, "", uuid.Nil); err != nil {
					return Error(c, 503, "the sign-in is unavailable; try again")
				}
			}
			secret, err := p.Auth.TransactionPending(ctx, t, x, u.ID, amr)
			if err != nil {
				return Error(c, 400, apperr.PublicMessage(auth.ErrNoTransaction))
			}
			c.Cookie(&fiber.Cookie{Name: mfaCookie, Value: secret, Path: "/t/" + t.Slug + "/login", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
				Secure: strings.HasPrefix(p.Issuer(t.Slug), "https://"), Expires: x.ExpiresAt})
			next := "/t/" + t.Slug + "/login/mfa"
			if need.MustEnrol() {
				next = "/t/" + t.Slug + "/login/enrol"
			}
			return p.SendTo(c, next, x)
		}
	}
	return p.signedIn(c, t, lv, u.ID, amr)
}

// Authenticated goes on with transaction x (nil: a sign-in for itself)
// once u proved who they are elsewhere than on the login page (an
// upstream identity provider), as amr says; factorDone: that counted as
// both factors.
func (p *Pages) Authenticated(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, u *directory.User, amr []string, factorDone bool) error {
	lv, ok, err := p.viewOf(c, t, x)
	if !ok {
		return err
	}
	return p.firstStepPassed(c, lv, u, amr, factorDone)
}

// OpenSession opens the SSO session of a person who has just
// authenticated, and sets its cookie: every sign-in a new session (a new
// cookie value), living as the tenant's policy says.
func (p *Pages) OpenSession(c *fiber.Ctx, t *tenant.Tenant, u *directory.User, amr []string) (*auth.BrowserSession, error) {
	bs, value, err := p.Auth.OpenBrowserSession(c.UserContext(), t, u, amr, auth.Client{IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent)})
	if err != nil {
		return nil, err
	}
	sso := SSOCookie(t, p.Issuer(t.Slug))
	sso.Value = value
	sso.Expires = time.Now().Add(time.Duration(tenant.PoliciesOf(t).Session.LifetimeHours) * time.Hour)
	c.Cookie(sso)
	return bs, nil
}
