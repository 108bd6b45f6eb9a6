// Package rest serves the account flows: the admin API (invitations,
// mail previews), the person's own verification request, and the pages
// the emails link to (set a password from an invitation, forgot and reset
// a password, verify an address).
package rest

import (
	"errors"
	"html/template"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/account"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
)

// Handler serves the routes.
type Handler struct {
	Account *account.Service
	Tenants *tenant.Service
	// Issuer is a tenant's issuer URL (its scheme decides the cookies').
	Issuer func(slug string) string
}

// Queued answers a request whose email is due.
type Queued struct {
	Status string `json:"status" doc:"queued: the email is sent shortly"`
}

// EmailInput names a new email address.
type EmailInput struct {
	Email string `json:"email" doc:"the new address; it is yours once you follow the link mailed to it"`
}

// Preview is a rendered email.
type Preview struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
}

// queued answers a request whose email is now due (or its error).
func queued(c *fiber.Ctx, err error) error {
	if err != nil {
		return err
	}
	return c.Status(202).JSON(Queued{Status: "queued"})
}

// Mount registers the admin API routes.
func (h *Handler) Mount(api *httpx.API) {
	admin := []string{principal.RoleTenantAdmin}
	api.Handle(httpx.Route{Method: "POST", Path: "/users/:id/invitation", OperationID: "inviteUser",
		Summary: "Email a user an invitation to set their password (a single-use link, 7 days)", Tags: []string{"users"}, Roles: admin,
		Response: Queued{}, Status: 202, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			return queued(c, h.Account.Invite(c.UserContext(), id))
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/email/verification", OperationID: "verifyMyEmail",
		Summary: "Email yourself a link that verifies your address", Tags: []string{"me"}, Response: Queued{}, Status: 202,
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			return queued(c, h.Account.RequestVerification(c.UserContext(), id))
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/email", OperationID: "changeMyEmail",
		Summary: "Change your email address: a link goes to the new address, which becomes yours when you follow it", Tags: []string{"me"},
		Request: EmailInput{}, Response: Queued{}, Status: 202, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			var in EmailInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			return queued(c, h.Account.RequestEmailChange(c.UserContext(), id, in.Email))
		}})
	api.Handle(httpx.Route{Method: "GET", Path: "/mail/preview", OperationID: "previewMail",
		Summary: "Render one of the tenant's emails with its branding, for a sample person", Tags: []string{"policies"}, Roles: admin,
		Query:    []httpx.Param{{Name: "template", Description: "invite, reset, verify or password_changed"}, {Name: "locale", Description: "en or fr (default: the tenant's)"}},
		Response: Preview{}, Handler: func(c *fiber.Ctx) error {
			m, err := h.Account.Preview(c.UserContext(), c.Query("template"), c.Query("locale"))
			if err != nil {
				return err
			}
			return c.JSON(Preview{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML})
		}})
}

// MountPages registers the pages emails link to.
func (h *Handler) MountPages(app *fiber.App) {
	app.Get("/t/:slug/password/forgot", h.forgot)
	app.Post("/t/:slug/password/forgot", h.forgot)
	app.Get("/t/:slug/password/reset", h.setPassword(account.KindReset))
	app.Post("/t/:slug/password/reset", h.setPassword(account.KindReset))
	app.Get("/t/:slug/invitation", h.setPassword(account.KindInvite))
	app.Post("/t/:slug/invitation", h.setPassword(account.KindInvite))
	app.Get("/t/:slug/email/verify", h.verify(account.KindVerify))
	app.Post("/t/:slug/email/verify", h.verify(account.KindVerify))
	app.Get("/t/:slug/signup", h.signup)
	app.Post("/t/:slug/signup", h.signup)
	app.Get("/t/:slug/signup/complete", h.completeSignup)
	app.Post("/t/:slug/signup/complete", h.completeSignup)
	app.Get("/t/:slug/email/confirm", h.verify(account.KindEmail))
	app.Post("/t/:slug/email/confirm", h.verify(account.KindEmail))
}

const csrfCookie = "xv_account_csrf"

var accountPage = template.Must(template.New("account").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.Title}} — {{.Org}}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input[type=email],input[type=password],input[type=text]{width:100%;padding:.4rem}
button{margin-top:1rem;padding:.5rem 1rem;background:{{.Color}};color:#fff;border:0;border-radius:4px}.err{color:#b00020}</style></head>
<body><h1>{{.Title}}</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{if .Done}}<p id="done">{{.Done}}</p>{{if .Next}}<p><a id="next" href="{{.Next}}">{{.NextLabel}}</a></p>{{end}}
{{else}}<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">{{if .Token}}<input type="hidden" name="token" value="{{.Token}}">{{end}}
{{if .Intro}}<p>{{.Intro}}</p>{{end}}
{{if eq .Form "email"}}<label for="email">{{.T.Email}}</label><input id="email" name="email" type="email" autocomplete="email" required autofocus>
{{else if eq .Form "signup"}}<label for="name">{{.T.Name}}</label><input id="name" name="name" type="text" autocomplete="name" required autofocus>
<label for="password">{{.T.NewPassword}}</label><input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="confirm">{{.T.Confirm}}</label><input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
{{else if eq .Form "password"}}<label for="password">{{.T.NewPassword}}</label><input id="password" name="password" type="password" autocomplete="new-password" required autofocus>
<label for="confirm">{{.T.Confirm}}</label><input id="confirm" name="confirm" type="password" autocomplete="new-password" required>{{end}}
<button type="submit">{{.Button}}</button></form>{{end}}</body></html>`))

// pageWords are the pages' words per language.
type pageWords struct {
	Forgot, ForgotIntro, Send, Sent, SentNext                       string
	Reset, Invite, InviteIntro, Save, Saved, SignIn, Mismatch       string
	Verify, VerifyIntro, VerifyButton, Verified, Email, NewPassword string
	Confirm, Unavailable                                            string
	Signup, SignupIntro, SignupSent, SignupClosed, Name, Create     string
	Created                                                         string
}

// pageCatalog holds words, not credentials.
var pageCatalog = map[string]pageWords{
	"en": {Forgot: "Forgot your password?", ForgotIntro: "Type your email address: we will send you a link to choose a new password.",
		Send: "Send the link", Sent: "If an account uses this address, we sent it a link. It works once, for 30 minutes.", SentNext: "Back to sign in",
		Reset: "Choose a new password", Invite: "Welcome", InviteIntro: "Choose the password of your account.", Save: "Save the password",
		Saved: "Your password is set.", SignIn: "Sign in", Mismatch: "The two passwords differ.",
		Verify: "Verify your email address", VerifyIntro: "Confirm that this address is yours.", VerifyButton: "Verify my address",
		Verified: "Your address is verified.", Email: "Email address", NewPassword: "New password", Confirm: "The same password again",
		Unavailable: "Resetting a password by email is not available here; ask your administrator.",
		Signup:      "Create an account", SignupIntro: "Type your email address: we will send you a link to create your account.",
		SignupSent: "Check your mailbox: we sent this address a link. It works once, for 24 hours.", SignupClosed: "Signing up is not open here.",
		Name: "Your name", Create: "Create my account", Created: "Your account is ready."},
	"fr": { //nolint:gosec // G101: page words
		Forgot: "Mot de passe oublié ?", ForgotIntro: "Indiquez votre adresse : nous vous enverrons un lien pour choisir un nouveau mot de passe.",
		Send: "Envoyer le lien", Sent: "Si un compte utilise cette adresse, nous lui avons envoyé un lien. Il fonctionne une fois, pendant 30 minutes.",
		SentNext: "Retour à la connexion", Reset: "Choisir un nouveau mot de passe", Invite: "Bienvenue", InviteIntro: "Choisissez le mot de passe de votre compte.",
		Save: "Enregistrer le mot de passe", Saved: "Votre mot de passe est enregistré.", SignIn: "Se connecter", Mismatch: "Les deux mots de passe diffèrent.",
		Verify: "Vérifier votre adresse", VerifyIntro: "Confirmez que cette adresse est la vôtre.", VerifyButton: "Vérifier mon adresse",
		Verified: "Votre adresse est vérifiée.", Email: "Adresse électronique", NewPassword: "Nouveau mot de passe", Confirm: "Le même mot de passe",
		Unavailable: "La réinitialisation par email n'est pas disponible ici ; adressez-vous à votre administrateur.",
		Signup:      "Créer un compte", SignupIntro: "Indiquez votre adresse : nous vous enverrons un lien pour créer votre compte.",
		SignupSent:   "Consultez votre messagerie : nous avons envoyé un lien à cette adresse. Il fonctionne une fois, pendant 24 heures.",
		SignupClosed: "L'inscription n'est pas ouverte ici.", Name: "Votre nom", Create: "Créer mon compte", Created: "Votre compte est prêt."},
}

// language picks the page's language.
func language(c *fiber.Ctx, t *tenant.Tenant) string { return authrest.Lang(c, t) }

type pageData struct {
	Lang, Title, Org, Color, Error, Done, Next, NextLabel, Action, CSRF, Token, Intro, Form, Button string
	T                                                                                               pageWords
}

// page answers one of the account pages.
func (h *Handler) page(c *fiber.Ctx, t *tenant.Tenant, status int, d pageData) error {
	b := tenant.PoliciesOf(t).Branding
	d.Lang = language(c, t)
	d.T = pageCatalog[d.Lang]
	d.Org, d.Color = b.DisplayName, b.PrimaryColor
	if d.Org == "" {
		d.Org = t.Name
	}
	if d.Color == "" {
		d.Color = "#1f6feb"
	}
	if d.Done == "" {
		d.CSRF = authrest.FormToken(c, csrfCookie, d.Action, h.Issuer(t.Slug))
	}
	authrest.Secure(c)
	return authrest.Page(c, status, accountPage, d)
}

func (h *Handler) tenant(c *fiber.Ctx) (*tenant.Tenant, error) {
	t, err := h.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return nil, authrest.TenantPage(c, err)
	}
	return t, nil
}

// forgot is "I forgot my password": the same answer whether or not the
// address belongs to someone.
func (h *Handler) forgot(c *fiber.Ctx) error {
	t, err := h.tenant(c)
	if t == nil {
		return err
	}
	w := pageCatalog[language(c, t)]
	d := pageData{Title: w.Forgot, Action: "/t/" + t.Slug + "/password/forgot", Intro: w.ForgotIntro, Form: "email", Button: w.Send}
	if !h.Account.MailEnabled() {
		d.Done = w.Unavailable
		return h.page(c, t, 200, d)
	}
	if c.Method() != fiber.MethodPost {
		return h.page(c, t, 200, d)
	}
	if !authrest.FormTokenOK(c, csrfCookie) {
		d.Error = w.Forgot
		return h.page(c, t, 403, d)
	}
	err = h.Account.RequestReset(c.UserContext(), t, c.FormValue("email"), c.IP())
	switch {
	case err == nil:
		d.Done, d.Next, d.NextLabel = w.Sent, "/t/"+t.Slug+"/login", w.SentNext
		return h.page(c, t, 200, d)
	case apperr.KindOf(err) == apperr.KindInvalidArgument:
		d.Error = apperr.PublicMessage(err)
		return h.page(c, t, 400, d)
	case apperr.KindOf(err) == apperr.KindRateLimited:
		d.Error = apperr.PublicMessage(err)
		return h.page(c, t, 429, d)
	}
	return authrest.Error(c, 503, "the request could not be taken; try again")
}

// setPassword is the page of an invitation or a reset link: a form to
// choose the password (the link is spent only when it is set).
func (h *Handler) setPassword(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		t, err := h.tenant(c)
		if t == nil {
			return err
		}
		w := pageCatalog[language(c, t)]
		path := map[string]string{account.KindInvite: "/invitation", account.KindReset: "/password/reset"}[kind]
		d := pageData{Title: w.Reset, Action: "/t/" + t.Slug + path, Form: "password", Button: w.Save}
		if kind == account.KindInvite {
			d.Title, d.Intro = w.Invite, w.InviteIntro
		}
		if _, ok, err := h.linkPage(c, t, kind, &d); !ok {
			return err
		}
		if err := h.Account.SetPassword(c.UserContext(), t, kind, d.Token, c.FormValue("password")); err != nil {
			if errors.Is(err, account.ErrBadToken) {
				return h.linkError(c, t, d, err)
			}
			if apperr.KindOf(err) == apperr.KindInvalidArgument {
				d.Error = apperr.PublicMessage(err)
				return h.page(c, t, 400, d)
			}
			return authrest.Error(c, 503, "the password could not be set; try again")
		}
		d.Done, d.Next, d.NextLabel, d.Token = w.Saved, "/t/"+t.Slug+"/login", w.SignIn, ""
		return h.page(c, t, 200, d)
	}
}

// verify is the page of a verification link (kind verify) or of a new
// address to confirm (kind email): a button, so that a mail scanner
// fetching the link does not spend it.
func (h *Handler) verify(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		t, err := h.tenant(c)
		if t == nil {
			return err
		}
		w := pageCatalog[language(c, t)]
		path := map[string]string{account.KindVerify: "/email/verify", account.KindEmail: "/email/confirm"}[kind]
		d := pageData{Title: w.Verify, Action: "/t/" + t.Slug + path, Intro: w.VerifyIntro, Button: w.VerifyButton}
		if _, ok, err := h.linkPage(c, t, kind, &d); !ok {
			return err
		}
		use := h.Account.VerifyEmail
		if kind == account.KindEmail {
			use = h.Account.ConfirmEmail
		}
		if err := use(c.UserContext(), t, d.Token); err != nil {
			if apperr.KindOf(err) == apperr.KindAlreadyExists {
				d.Done, d.Token = apperr.PublicMessage(err), ""
				return h.page(c, t, 409, d)
			}
			return h.linkError(c, t, d, err)
		}
		d.Done, d.Token = w.Verified, ""
		return h.page(c, t, 200, d)
	}
}

// signup is the tenant's sign-up page (where its policy opens it): the
// same answer whether or not the address already has an account.
func (h *Handler) signup(c *fiber.Ctx) error {
	t, err := h.tenant(c)
	if t == nil {
		return err
	}
	w := pageCatalog[language(c, t)]
	d := pageData{Title: w.Signup, Action: "/t/" + t.Slug + "/signup", Intro: w.SignupIntro, Form: "email", Button: w.Send}
	if !tenant.PoliciesOf(t).Signup.Enabled || !h.Account.MailEnabled() {
		d.Done = w.SignupClosed
		return h.page(c, t, 404, d)
	}
	if c.Method() != fiber.MethodPost {
		return h.page(c, t, 200, d)
	}
	if !authrest.FormTokenOK(c, csrfCookie) {
		d.Error = "The form expired; please try again."
		return h.page(c, t, 403, d)
	}
	err = h.Account.RequestSignup(c.UserContext(), t, c.FormValue("email"), c.IP())
	switch {
	case err == nil:
		d.Done = w.SignupSent
		return h.page(c, t, 200, d)
	case errors.Is(err, account.ErrSignupClosed):
		d.Error = w.SignupClosed
		return h.page(c, t, 403, d)
	case apperr.KindOf(err) == apperr.KindInvalidArgument:
		d.Error = apperr.PublicMessage(err)
		return h.page(c, t, 400, d)
	case apperr.KindOf(err) == apperr.KindRateLimited:
		d.Error = apperr.PublicMessage(err)
		return h.page(c, t, 429, d)
	}
	return authrest.Error(c, 503, "the request could not be taken; try again")
}

// completeSignup is the page of a sign-up link: the person's name and
// password create the account.
func (h *Handler) completeSignup(c *fiber.Ctx) error {
	t, err := h.tenant(c)
	if t == nil {
		return err
	}
	w := pageCatalog[language(c, t)]
	d := pageData{Title: w.Signup, Action: "/t/" + t.Slug + "/signup/complete", Form: "signup", Button: w.Create}
	if _, ok, err := h.linkPage(c, t, account.KindSignup, &d); !ok {
		return err
	}
	if err := h.Account.CompleteSignup(c.UserContext(), t, d.Token, c.FormValue("name"), c.FormValue("password")); err != nil {
		switch {
		case errors.Is(err, account.ErrBadToken):
			return h.linkError(c, t, d, err)
		case apperr.KindOf(err) == apperr.KindInvalidArgument:
			d.Error = apperr.PublicMessage(err)
			return h.page(c, t, 400, d)
		case apperr.KindOf(err) == apperr.KindAlreadyExists, errors.Is(err, account.ErrSignupClosed):
			d.Done, d.Token = apperr.PublicMessage(err), ""
			return h.page(c, t, 409, d)
		}
		return authrest.Error(c, 503, "the account could not be created; try again")
	}
	d.Done, d.Next, d.NextLabel, d.Token = w.Created, "/t/"+t.Slug+"/login", w.SignIn, ""
	return h.page(c, t, 200, d)
}

// linkPage runs what every page of an emailed link does before using it:
// it reads the token (the query's, or the posted form's) and checks it,
// shows the form to a GET (with the address a new-address or sign-up link
// is for), checks the form's CSRF token and, with a password form, that
// both passwords match. ok false: the page was answered.
func (h *Handler) linkPage(c *fiber.Ctx, t *tenant.Tenant, kind string, d *pageData) (*account.Link, bool, error) {
	d.Token = c.Query("token")
	if c.Method() == fiber.MethodPost {
		d.Token = c.FormValue("token")
	}
	l, err := h.Account.Check(c.UserContext(), t, kind, d.Token)
	if err != nil {
		return nil, false, h.linkError(c, t, *d, err)
	}
	if kind == account.KindEmail || kind == account.KindSignup {
		d.Intro = strings.TrimSpace(d.Intro + " " + l.Email)
	}
	if c.Method() != fiber.MethodPost {
		return nil, false, h.page(c, t, 200, *d)
	}
	if !authrest.FormTokenOK(c, csrfCookie) {
		d.Error = "The form expired; please try again."
		return nil, false, h.page(c, t, 403, *d)
	}
	if (d.Form == "password" || d.Form == "signup") && c.FormValue("password") != c.FormValue("confirm") {
		d.Error = pageCatalog[language(c, t)].Mismatch
		return nil, false, h.page(c, t, 400, *d)
	}
	return l, true, nil
}

// linkError answers a link that cannot be used (one answer for every
// reason) or a store that cannot say.
func (h *Handler) linkError(c *fiber.Ctx, t *tenant.Tenant, d pageData, err error) error {
	if errors.Is(err, account.ErrBadToken) {
		d.Done, d.Token = apperr.PublicMessage(err), ""
		d.Next, d.NextLabel = "/t/"+t.Slug+"/password/forgot", pageCatalog[language(c, t)].Forgot
		return h.page(c, t, 400, d)
	}
	return authrest.Error(c, 503, "this page is unavailable; try again")
}
