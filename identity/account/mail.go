package account

import (
	"context"
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/mail"
	"github.com/xavyo/xavyo/internal/store"
)

// The emails: one layout (HTML and text), the tenant's branding, and the
// words in the person's language (English and French).

// Templates names the emails a tenant sends (for previews).
var Templates = []string{"invite", "reset", "verify", "email_change", "email_changed", "password_changed", "new_sign_in", "signup", "signup_exists",
	"mfa_reset"}

type words struct {
	Subject, Intro, Action, Expires, Ignore string
}

// catalog holds each email's words per language; {org} is the
// organization's name, {support} its support address.
var catalog = map[string]map[string]words{
	"en": {
		"invite": {Subject: "You are invited to {org}", Intro: "{org} invites you to sign in. Choose your password to start.",
			Action: "Set your password", Expires: "The link works once, for 7 days.", Ignore: "If you did not expect this invitation, ignore this email."},
		"reset": {Subject: "Reset your {org} password", Intro: "Someone, we hope you, asked to reset the password of your {org} account.",
			Action: "Choose a new password", Expires: "The link works once, for 30 minutes.", Ignore: "If it was not you, ignore this email: your password stays as it is."},
		"verify": {Subject: "Verify your email address for {org}", Intro: "Confirm that this address is yours to use it with {org}.",
			Action: "Verify my address", Expires: "The link works once, for 24 hours.", Ignore: "If you did not ask for this, ignore this email."},
		"password_changed": {Subject: "Your {org} password was changed", Intro: "The password of your {org} account was just changed, and every session of yours was signed out.",
			Ignore: "If it was not you, reset your password now and tell {support}."},
		"email_change": {Subject: "Confirm your new email address for {org}", Intro: "Confirm that you want to use this address for your {org} account.",
			Action: "Use this address", Expires: "The link works once, for 24 hours.", Ignore: "If you did not ask for this, ignore this email: nothing changes."},
		"email_changed": {Subject: "Your {org} email address was changed", Intro: "The email address of your {org} account is now:",
			Ignore: "If it was not you, tell {support} now."},
		"mfa_reset": {Subject: "The second factors of your {org} account were removed", Intro: "An administrator of {org} removed the authenticator apps and recovery codes of your account; you sign in with your password until you enrol a new one.",
			Ignore: "If you did not ask for this, tell {support} now."},
		"signup": {Subject: "Finish creating your {org} account", Intro: "Someone, we hope you, asked for an account at {org} with this address.",
			Action: "Create my account", Expires: "The link works once, for 24 hours.", Ignore: "If it was not you, ignore this email: no account is created."},
		"signup_exists": {Subject: "You already have a {org} account", Intro: "Someone asked for an account at {org} with this address, which already has one.",
			Ignore: "If you forgot your password, reset it from the sign-in page. If it was not you, ignore this email."},
		"new_sign_in": {Subject: "A new sign-in to your {org} account", Intro: "Someone signed in to your {org} account from a device it had not seen before:",
			Ignore: "If it was you, there is nothing to do. If not, reset your password now and tell {support}."},
	},
	"fr": {
		"invite": {Subject: "Vous êtes invité·e chez {org}", Intro: "{org} vous invite à vous connecter. Choisissez votre mot de passe pour commencer.",
			Action: "Choisir mon mot de passe", Expires: "Le lien fonctionne une fois, pendant 7 jours.", Ignore: "Si vous n'attendiez pas cette invitation, ignorez ce message."},
		"reset": {Subject: "Réinitialiser votre mot de passe {org}", Intro: "Quelqu'un, vous nous l'espérons, a demandé à réinitialiser le mot de passe de votre compte {org}.",
			Action: "Choisir un nouveau mot de passe", Expires: "Le lien fonctionne une fois, pendant 30 minutes.", Ignore: "Si ce n'était pas vous, ignorez ce message : votre mot de passe ne change pas."},
		"verify": {Subject: "Vérifiez votre adresse pour {org}", Intro: "Confirmez que cette adresse est la vôtre pour l'utiliser avec {org}.",
			Action: "Vérifier mon adresse", Expires: "Le lien fonctionne une fois, pendant 24 heures.", Ignore: "Si vous n'avez rien demandé, ignorez ce message."},
		"password_changed": {Subject: "Votre mot de passe {org} a été changé", Intro: "Le mot de passe de votre compte {org} vient d'être changé, et toutes vos sessions ont été fermées.",
			Ignore: "Si ce n'était pas vous, réinitialisez votre mot de passe maintenant et prévenez {support}."},
		"email_change": {Subject: "Confirmez votre nouvelle adresse pour {org}", Intro: "Confirmez que vous voulez utiliser cette adresse pour votre compte {org}.",
			Action: "Utiliser cette adresse", Expires: "Le lien fonctionne une fois, pendant 24 heures.", Ignore: "Si vous n'avez rien demandé, ignorez ce message : rien ne change."},
		"email_changed": {Subject: "L'adresse de votre compte {org} a changé", Intro: "L'adresse électronique de votre compte {org} est désormais :",
			Ignore: "Si ce n'était pas vous, prévenez {support} maintenant."},
		"mfa_reset": {Subject: "Les seconds facteurs de votre compte {org} ont été supprimés", Intro: "Un administrateur de {org} a supprimé les applications d'authentification et les codes de secours de votre compte ; vous vous connectez avec votre mot de passe jusqu'à en enregistrer une nouvelle.",
			Ignore: "Si vous n'avez rien demandé, prévenez {support} maintenant."},
		"signup": {Subject: "Terminez la création de votre compte {org}", Intro: "Quelqu'un, vous nous l'espérons, a demandé un compte chez {org} avec cette adresse.",
			Action: "Créer mon compte", Expires: "Le lien fonctionne une fois, pendant 24 heures.", Ignore: "Si ce n'était pas vous, ignorez ce message : aucun compte n'est créé."},
		"signup_exists": {Subject: "Vous avez déjà un compte {org}", Intro: "Quelqu'un a demandé un compte chez {org} avec cette adresse, qui en a déjà un.",
			Ignore: "Si vous avez oublié votre mot de passe, réinitialisez-le depuis la page de connexion. Si ce n'était pas vous, ignorez ce message."},
		"new_sign_in": {Subject: "Nouvelle connexion à votre compte {org}", Intro: "Quelqu'un s'est connecté à votre compte {org} depuis un appareil inconnu jusqu'ici :",
			Ignore: "Si c'était vous, il n'y a rien à faire. Sinon, réinitialisez votre mot de passe maintenant et prévenez {support}."},
	},
}

var greetings = map[string][2]string{"en": {"Hello {name},", "Hello,"}, "fr": {"Bonjour {name},", "Bonjour,"}}

var htmlLayout = htmltemplate.Must(htmltemplate.New("mail").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="margin:0;padding:24px;background:#f6f8fa;font-family:system-ui,-apple-system,sans-serif;color:#1f2328">
<div style="max-width:32rem;margin:0 auto;background:#fff;border-radius:8px;padding:24px;border-top:4px solid {{.Color}}">
{{if .Logo}}<img src="{{.Logo}}" alt="{{.Org}}" height="40" style="display:block;margin-bottom:16px">{{else}}<p style="font-weight:600;font-size:18px">{{.Org}}</p>{{end}}
<p>{{.Greeting}}</p>
<p>{{.Intro}}</p>
{{if .Detail}}<p style="font-family:ui-monospace,monospace;font-size:13px;background:#f6f8fa;padding:8px">{{.Detail}}</p>{{end}}
{{if .Link}}<p style="margin:24px 0"><a href="{{.Link}}" style="background:{{.Color}};color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none;display:inline-block">{{.Action}}</a></p>
<p style="font-size:13px;color:#57606a">{{.Expires}}<br><a href="{{.Link}}" style="color:#57606a;word-break:break-all">{{.Link}}</a></p>{{end}}
<p style="font-size:13px;color:#57606a">{{.Ignore}}</p>
</div></body></html>`))

var textLayout = texttemplate.Must(texttemplate.New("mail").Parse(`{{.Greeting}}

{{.Intro}}
{{if .Detail}}
    {{.Detail}}
{{end}}{{if .Link}}
{{.Action}}: {{.Link}}
{{.Expires}}
{{end}}
{{.Ignore}}

-- 
{{.Org}}
`))

type mailData struct {
	Lang, Subject, Org, Logo, Color, Greeting, Intro, Detail, Action, Expires, Ignore, Link string
}

// render composes an email to u (nil: a sample person) for template name
// with link (none for notices) and detail (what a notice is about).
func render(t *tenant.Tenant, name, locale string, u *directory.User, link, detail, id string) (mail.Message, error) {
	b := tenant.PoliciesOf(t).Branding
	lang := locale
	if _, ok := catalog[lang]; !ok && u != nil {
		// The person's own language: a "locale" attribute.
		var attrs struct {
			Locale string `json:"locale"`
		}
		_ = json.Unmarshal(u.Attributes, &attrs)
		lang = attrs.Locale
	}
	if _, ok := catalog[lang]; !ok {
		lang = b.Locale
	}
	if _, ok := catalog[lang]; !ok {
		lang = "en"
	}
	w, ok := catalog[lang][name]
	if !ok {
		return mail.Message{}, apperr.Invalid("template", "must be one of "+strings.Join(Templates, ", "))
	}
	if own, ok := b.Texts[name][lang]; ok {
		// The tenant's own words: plain text, escaped like the rest.
		if own.Subject != "" {
			w.Subject = own.Subject
		}
		if own.Intro != "" {
			w.Intro = own.Intro
		}
	}
	org := b.DisplayName
	if org == "" {
		org = t.Name
	}
	support := b.SupportEmail
	if support == "" {
		support = map[string]string{"en": "your administrator", "fr": "votre administrateur"}[lang]
	}
	fill := strings.NewReplacer("{org}", org, "{support}", support).Replace
	d := mailData{Lang: lang, Subject: fill(w.Subject), Org: org, Logo: b.LogoURL, Color: b.PrimaryColor, Intro: fill(w.Intro),
		Action: w.Action, Expires: w.Expires, Ignore: fill(w.Ignore), Link: link, Detail: detail, Greeting: greetings[lang][1]}
	if d.Color == "" {
		d.Color = "#1f6feb"
	}
	to := "ada@example.com"
	if u != nil {
		to = u.Email
		if name := strings.TrimSpace(strings.Join(strings.Fields(u.DisplayName), " ")); name != "" {
			d.Greeting = strings.ReplaceAll(greetings[lang][0], "{name}", name)
		}
	}
	var html, text strings.Builder
	if err := htmlLayout.Execute(&html, d); err != nil {
		return mail.Message{}, err
	}
	if err := textLayout.Execute(&text, d); err != nil {
		return mail.Message{}, err
	}
	return mail.Message{FromName: org, FromAddress: b.FromAddress, To: to, Subject: d.Subject, Text: text.String(), HTML: html.String(), ID: id}, nil
}

// Preview renders one of the tenant's emails for a sample person.
func (s *Service) Preview(ctx context.Context, name, locale string) (*mail.Message, error) {
	tid, _ := store.TenantFrom(ctx)
	t, err := s.cfg.Tenants.Get(ctx, tid)
	if err != nil {
		return nil, err
	}
	link, detail := "", ""
	switch name {
	case "password_changed", "signup_exists", "mfa_reset":
	case "email_changed":
		detail = "ada.lovelace@example.org"
	case "new_sign_in":
		detail = deviceLine(auth.NewDevice{IP: "192.0.2.10", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", At: s.cfg.Now()})
	default:
		link = s.link(t, name, "PREVIEW")
	}
	sample := &directory.User{Email: "ada@example.com", DisplayName: "Ada Lovelace"}
	m, err := render(t, name, locale, sample, link, detail, "preview")
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// link is the page a token opens.
func (s *Service) link(t *tenant.Tenant, name, token string) string {
	path := map[string]string{"invite": "/invitation", "reset": "/password/reset", "verify": "/email/verify", "email_change": "/email/confirm",
		"signup": "/signup/complete"}[name]
	return s.cfg.AdminURL + "/t/" + t.Slug + path + "?" + url.Values{"token": {token}}.Encode()
}

// OnEvent sends the email an account event is due: it finds the person
// (nobody, a disabled person or a link that would arrive expired: no
// email), records the token's hash, and hands the message to the relay.
// A failure is retried by the outbox with the same token and Message-ID.
func (s *Service) OnEvent(ctx context.Context, e events.Event) error {
	if !strings.HasPrefix(e.Kind, EventPrefix) || s.cfg.Mail == nil {
		return nil
	}
	name := strings.TrimPrefix(e.Kind, EventPrefix)
	ctx = store.WithTenant(ctx, e.TenantID)
	t, err := s.cfg.Tenants.Get(ctx, e.TenantID)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	var u *directory.User
	var change EmailChange
	_ = json.Unmarshal(e.Payload, &change)
	link, detail := "", ""
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u = nil
		found, err := s.recipientTx(ctx, tx, e)
		if err != nil {
			return err
		}
		if name == "signup" {
			if found != nil {
				// The address has an account: its owner hears of the
				// request, nobody gets a second account.
				name, u = "signup_exists", found
				return nil
			}
			found = &directory.User{Email: e.SubjectID}
		}
		if found == nil || found.Status == directory.StatusDisabled {
			return nil
		}
		switch name {
		case "email_change":
			// Mailed to the new address, which the token then carries.
			if change.Email == "" {
				return nil
			}
			to := *found
			to.Email = change.Email
			found = &to
		case "email_changed":
			// Told to the old address.
			if change.Old == "" {
				return nil
			}
			to := *found
			to.Email, detail = change.Old, change.Email
			found = &to
		}
		kind := map[string]string{"invite": KindInvite, "reset": KindReset, "verify": KindVerify, "email_change": KindEmail, "signup": KindSignup}[name]
		if kind != "" {
			expires := e.CreatedAt.Add(lifetimes[kind])
			if !s.cfg.Now().Before(expires) {
				return nil // too late: a dead link helps no one
			}
			raw := s.tokenFor(e.ID)
			if err := insertTokenTx(ctx, tx, hashToken(raw), kind, found.ID, found.Email, e.CreatedAt, expires); err != nil {
				return err
			}
			if found.ID != uuid.Nil { // a sign-up has no person yet
				if err := supersedeTx(ctx, tx, found.ID, kind, hashToken(raw), s.cfg.Now()); err != nil {
					return err
				}
			}
			link = s.link(t, name, raw)
		}
		u = found
		return nil
	})
	if err != nil || u == nil {
		return err
	}
	return s.send(ctx, t, name, u, link, detail, e)
}

// send renders and sends one email of event e.
func (s *Service) send(ctx context.Context, t *tenant.Tenant, name string, u *directory.User, link, detail string, e events.Event) error {
	m, err := render(t, name, "", u, link, detail, e.ID.String())
	if err != nil {
		return err
	}
	if err := s.cfg.Mail.Send(ctx, m); err != nil {
		if errors.Is(err, mail.ErrBadMessage) {
			s.cfg.Logger.Warn("an email cannot be sent", "kind", e.Kind, "tenant", e.TenantID, "error", err)
			return nil // never sendable: no retry
		}
		return err
	}
	return nil
}

// OnNewDevice mails a person the notice of a sign-in from a new device
// (identity/auth's NewDeviceEvent).
func (s *Service) OnNewDevice(ctx context.Context, e events.Event) error {
	if e.Kind != auth.NewDeviceEvent || s.cfg.Mail == nil {
		return nil
	}
	var d auth.NewDevice
	if json.Unmarshal(e.Payload, &d) != nil {
		return nil
	}
	ctx = store.WithTenant(ctx, e.TenantID)
	t, err := s.cfg.Tenants.Get(ctx, e.TenantID)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	var u *directory.User
	if err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		u, err = s.recipientTx(ctx, tx, e)
		return err
	}); err != nil || u == nil || u.Status == directory.StatusDisabled {
		return err
	}
	return s.send(ctx, t, "new_sign_in", u, "", deviceLine(d), e)
}

// deviceLine says where and when a sign-in came from.
func deviceLine(d auth.NewDevice) string {
	ua := strings.Join(strings.Fields(d.UserAgent), " ")
	if r := []rune(ua); len(r) > 200 {
		ua = string(r[:200]) + "…"
	}
	if ua == "" {
		ua = "?"
	}
	return ua + " — " + d.IP + " — " + d.At.UTC().Format("2006-01-02 15:04 UTC")
}

// recipientTx finds the person an event mails: by id, or (a reset) by the
// address typed, which must be their email.
func (s *Service) recipientTx(ctx context.Context, tx *store.Tx, e events.Event) (*directory.User, error) {
	if e.Kind == EventReset || e.Kind == EventSignup {
		u, err := s.cfg.Directory.FindLoginUser(ctx, tx, e.SubjectID)
		if err != nil || u == nil || !strings.EqualFold(u.Email, e.SubjectID) {
			return nil, err
		}
		return u, nil
	}
	id, err := uuid.Parse(e.SubjectID)
	if err != nil {
		return nil, nil
	}
	return s.cfg.Directory.FindUserTx(ctx, tx, id)
}
