package tenant

import (
	"context"
	"encoding/json"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// LockoutPolicy locks an account after repeated failed logins.
type LockoutPolicy struct {
	// MaxAttempts failed logins in a row lock the account (0: never).
	MaxAttempts int `json:"max_attempts" doc:"failed logins in a row that lock the account (0: never; default 5)"`
	// BaseSeconds is the first lock's length; each further lock doubles it.
	BaseSeconds int `json:"base_seconds" doc:"length of the first lock; each further lock doubles it (default 60)"`
	// MaxSeconds caps the lock's length.
	MaxSeconds int `json:"max_seconds" doc:"cap on a lock's length (default 3600)"`
}

// LockFor returns how long the nth lock (1-based) lasts.
func (p LockoutPolicy) LockFor(n int) time.Duration {
	d := time.Duration(p.BaseSeconds) * time.Second
	for i := 1; i < n && d < time.Duration(p.MaxSeconds)*time.Second; i++ {
		d *= 2
	}
	return min(d, time.Duration(p.MaxSeconds)*time.Second)
}

// SessionPolicy bounds sessions and tokens.
type SessionPolicy struct {
	// MaxConcurrent sessions per user; a new login beyond it ends the
	// oldest (0: unlimited).
	MaxConcurrent int `json:"max_concurrent" doc:"sessions per user; a login beyond it ends the oldest (0: unlimited; default 10)"`
	// IdleMinutes ends a session unused this long.
	IdleMinutes int `json:"idle_minutes" doc:"a session unused this long ends (default 1440)"`
	// LifetimeHours ends a session this long after login.
	LifetimeHours int `json:"lifetime_hours" doc:"a session ends this long after login (default 720)"`
	// AccessTokenMinutes is the lifetime of access tokens.
	AccessTokenMinutes int `json:"access_token_minutes" doc:"access token lifetime (1-60, default 15)"`
}

// CredentialPolicy governs non-human credentials.
type CredentialPolicy struct {
	// SecretMaxAgeDays is how long a client secret lives (1-730, default 90).
	SecretMaxAgeDays int `json:"secret_max_age_days" doc:"client secret lifetime in days (1-730, default 90)"`
	// SecretGraceHours is how long the old secret keeps working after a rotation.
	SecretGraceHours int `json:"secret_grace_hours" doc:"how long a rotated-out secret keeps working (0-720, default 24)"`
	// CertificateHours is the default lifetime of NHI certificates.
	CertificateHours int `json:"certificate_hours" doc:"default NHI certificate lifetime (1-720, default 24)"`
}

// OAuthPolicy governs the tenant's authorization server.
type OAuthPolicy struct {
	// Registration is open (anyone registers public clients), token (a
	// tenant admin's bearer token is required) or off.
	Registration string `json:"registration" doc:"dynamic client registration: open, token or off (default open)"`
	// ConfidentialRegistration lets dynamic registration create clients
	// that authenticate at the token endpoint (secrets, keys,
	// certificates); off, it registers public clients only.
	ConfidentialRegistration bool `json:"confidential_registration,omitempty" doc:"dynamic registration may create confidential clients (client secrets, private_key_jwt, mTLS); default false: public clients only"`
}

// MCPPolicy governs the tenant's MCP gateway.
type MCPPolicy struct {
	// AuditArguments records tool-call arguments in the audit log (always
	// their hash); values under sensitive keys are redacted.
	AuditArguments bool `json:"audit_arguments" doc:"record tool-call arguments in the audit log, redacted (default false: only their SHA-256)"`
	// RedactKeys add to the keys always redacted (password, secret, token,
	// key, authorization, cookie, credential): an argument whose name
	// contains one, case-insensitively, is recorded as "[redacted]".
	RedactKeys []string `json:"redact_keys,omitempty" doc:"more argument names to redact (substring, case-insensitive)"`
	// RiskThreshold: a call by an NHI (caller or actor) whose risk score is
	// at least this, to a tool of high or critical risk, gets RiskAction.
	RiskThreshold int    `json:"risk_threshold,omitempty" doc:"NHI risk score (1-100) from which calls to high- and critical-risk tools are denied or held; 0: off"`
	RiskAction    string `json:"risk_action,omitempty" doc:"deny (default) or approval"`
	// ApprovalTimeoutSeconds bounds how long a held call waits for a decision.
	ApprovalTimeoutSeconds int `json:"approval_timeout_seconds,omitempty" doc:"how long a call held for approval waits before it is denied (default 300, at most 3600)"`
}

// Policies are a tenant's identity policies.
type Policies struct {
	Password    password.Policy  `json:"password"`
	Lockout     LockoutPolicy    `json:"lockout"`
	Session     SessionPolicy    `json:"session"`
	Credentials CredentialPolicy `json:"credentials"`
	OAuth       OAuthPolicy      `json:"oauth"`
	MCP         MCPPolicy        `json:"mcp"`
	Branding    Branding         `json:"branding"`
	Signup      SignupPolicy     `json:"signup"`
	MFA         MFAPolicy        `json:"mfa"`
	StepUp      StepUpPolicy     `json:"step_up"`
}

// StepUpPolicy asks for a recent sign-in with a second factor before
// risky operations (RFC 9470): deciding approvals, issuing certificates,
// rotating signing keys.
type StepUpPolicy struct {
	Enabled bool `json:"enabled" doc:"risky operations need a recent sign-in with a second factor (default false)"`
	// MaxAgeSeconds is how recent (default 900).
	MaxAgeSeconds int `json:"max_age_seconds,omitempty" doc:"how recent the sign-in must be, in seconds (default 900)"`
}

// MFAPolicy governs second factors.
type MFAPolicy struct {
	// Required: every sign-in needs a second factor; a person without one
	// enrols on the sign-in pages before going on.
	Required bool `json:"required" doc:"every sign-in needs a second factor; people without one enrol at their next sign-in on the pages (default false)"`
	// RequiredForRoles asks it of the holders of these admin roles only.
	RequiredForRoles []string `json:"required_for_roles,omitempty" doc:"a second factor is required of the holders of these admin roles (tenant_admin, governance_admin, auditor, viewer)"`
	// RequiredForGroups asks it of the members of these groups (or of
	// groups below them).
	RequiredForGroups []uuid.UUID `json:"required_for_groups,omitempty" doc:"a second factor is required of the members of these groups (ids; members of their subgroups too)"`
	// PhishingResistant: only WebAuthn (passkeys, security keys) counts
	// where a second factor is required; authenticator-app and recovery
	// codes do not.
	PhishingResistant bool `json:"phishing_resistant,omitempty" doc:"where a second factor is required, only passkeys and security keys count (no app or recovery codes; recovery is an admin's reset)"`
	// RememberDeviceDays lets a browser that passed the second step skip
	// it for that many days (0: never).
	RememberDeviceDays int `json:"remember_device_days,omitempty" doc:"a browser that passed the second step may skip it for this many days, 0 to 90 (default 0: never; never with phishing_resistant); its sign-ins then count as password only"`
	// AllowedAAGUIDs, when set, are the only authenticator models
	// (AAGUIDs, attested) that may be registered.
	AllowedAAGUIDs []uuid.UUID `json:"allowed_aaguids,omitempty" doc:"only these authenticator models (AAGUIDs) may be registered as passkeys or security keys; registration then asks for attestation and refuses none"`
}

// RequiredOf reports whether a person holding roles needs a second
// factor.
func (p MFAPolicy) RequiredOf(roles []string) bool {
	return p.Required || slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(p.RequiredForRoles, r) })
}

// SignupPolicy opens the tenant to people who register themselves.
type SignupPolicy struct {
	Enabled bool `json:"enabled" doc:"people may create their own account at /t/{slug}/signup (default false)"`
	// AllowedDomains, when set, are the only email domains that may.
	AllowedDomains []string `json:"allowed_domains,omitempty" doc:"only addresses of these domains may sign up (default: any)"`
}

// Allows reports whether an address may sign up.
func (p SignupPolicy) Allows(email string) bool {
	if !p.Enabled {
		return false
	}
	if len(p.AllowedDomains) == 0 {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	return at >= 0 && slices.ContainsFunc(p.AllowedDomains, func(d string) bool { return strings.EqualFold(d, email[at+1:]) })
}

// Branding is how the tenant's pages and email present it.
type Branding struct {
	// DisplayName replaces the tenant's name in pages and mail.
	DisplayName  string `json:"display_name,omitempty" doc:"the organization's name in pages and email (default: the tenant's name)"`
	LogoURL      string `json:"logo_url,omitempty" doc:"logo shown in email (https)"`
	PrimaryColor string `json:"primary_color,omitempty" doc:"accent colour of pages and email, #rrggbb (default #1f6feb)"`
	SupportEmail string `json:"support_email,omitempty" doc:"where people ask for help, named in email"`
	// Locale is the language of email when the person has none: en or fr.
	Locale string `json:"locale,omitempty" doc:"default language of pages and email: en (default) or fr"`
	// FromAddress is the tenant's own sender address in email.
	FromAddress string `json:"from_address,omitempty" doc:"the From address of the tenant's email (default: smtp.from); the relay must be allowed to send for its domain"`
	// Texts replace the built-in subject and first paragraph of an email,
	// per template and language ({org} and {support} are filled in).
	Texts map[string]map[string]MailText `json:"texts,omitempty" doc:"per template (invite, reset, …) and language (en, fr): a subject and first paragraph replacing the built-in ones"`
}

// MailText is a tenant's own words for one email.
type MailText struct {
	Subject string `json:"subject,omitempty"`
	Intro   string `json:"intro,omitempty"`
}

// DefaultPolicies apply where a tenant set none.
var DefaultPolicies = Policies{
	Password:    password.DefaultPolicy,
	Lockout:     LockoutPolicy{MaxAttempts: 5, BaseSeconds: 60, MaxSeconds: 3600},
	Session:     SessionPolicy{MaxConcurrent: 10, IdleMinutes: 1440, LifetimeHours: 720, AccessTokenMinutes: 15},
	Credentials: CredentialPolicy{SecretMaxAgeDays: 90, SecretGraceHours: 24, CertificateHours: 24},
	OAuth:       OAuthPolicy{Registration: "open"},
}

// Validate checks every field.
func (p Policies) Validate() error {
	if err := p.Password.Validate(); err != nil {
		return err
	}
	l := p.Lockout
	if l.MaxAttempts < 0 || l.MaxAttempts > 100 {
		return apperr.Invalid("lockout.max_attempts", "must be from 0 to 100")
	}
	if l.BaseSeconds < 1 || l.BaseSeconds > 86400 || l.MaxSeconds < l.BaseSeconds || l.MaxSeconds > 7*86400 {
		return apperr.Invalid("lockout", "base_seconds must be 1-86400 and max_seconds from base_seconds to 604800")
	}
	s := p.Session
	if s.MaxConcurrent < 0 || s.MaxConcurrent > 1000 {
		return apperr.Invalid("session.max_concurrent", "must be from 0 to 1000")
	}
	if s.IdleMinutes < 5 || s.IdleMinutes > 43200 {
		return apperr.Invalid("session.idle_minutes", "must be from 5 to 43200")
	}
	if s.LifetimeHours < 1 || s.LifetimeHours > 8760 {
		return apperr.Invalid("session.lifetime_hours", "must be from 1 to 8760")
	}
	if s.AccessTokenMinutes < 1 || s.AccessTokenMinutes > 60 {
		return apperr.Invalid("session.access_token_minutes", "must be from 1 to 60")
	}
	c := p.Credentials
	if c.SecretMaxAgeDays < 1 || c.SecretMaxAgeDays > 730 {
		return apperr.Invalid("credentials.secret_max_age_days", "must be from 1 to 730")
	}
	if c.SecretGraceHours < 0 || c.SecretGraceHours > 720 {
		return apperr.Invalid("credentials.secret_grace_hours", "must be from 0 to 720")
	}
	if c.CertificateHours < 1 || c.CertificateHours > 720 {
		return apperr.Invalid("credentials.certificate_hours", "must be from 1 to 720")
	}
	for _, r := range p.MFA.RequiredForRoles {
		if !slices.Contains([]string{"tenant_admin", "governance_admin", "auditor", "viewer"}, r) {
			return apperr.Invalid("mfa.required_for_roles", "each one of tenant_admin, governance_admin, auditor, viewer")
		}
	}
	if len(p.MFA.RequiredForGroups) > 100 || len(p.MFA.AllowedAAGUIDs) > 100 {
		return apperr.Invalid("mfa", "at most 100 groups and 100 AAGUIDs")
	}
	if p.MFA.RememberDeviceDays < 0 || p.MFA.RememberDeviceDays > 90 {
		return apperr.Invalid("mfa.remember_device_days", "from 0 to 90")
	}
	if p.StepUp.MaxAgeSeconds < 0 || p.StepUp.MaxAgeSeconds > 86400 {
		return apperr.Invalid("step_up.max_age_seconds", "from 0 (the default, 900) to 86400")
	}
	if err := p.Branding.validate(); err != nil {
		return err
	}
	if len(p.Signup.AllowedDomains) > 100 {
		return apperr.Invalid("signup.allowed_domains", "at most 100 domains")
	}
	for _, d := range p.Signup.AllowedDomains {
		if d == "" || len(d) > 253 || strings.ContainsAny(d, "@ \r\n") || !strings.Contains(d, ".") {
			return apperr.Invalid("signup.allowed_domains", "each must be a domain such as example.com")
		}
	}
	switch p.OAuth.Registration {
	case "open", "token", "off":
	default:
		return apperr.Invalid("oauth.registration", "must be open, token or off")
	}
	if len(p.MCP.RedactKeys) > 100 {
		return apperr.Invalid("mcp.redact_keys", "at most 100 keys")
	}
	if p.MCP.RiskThreshold < 0 || p.MCP.RiskThreshold > 100 {
		return apperr.Invalid("mcp.risk_threshold", "must be from 0 (off) to 100")
	}
	switch p.MCP.RiskAction {
	case "", "deny", "approval":
	default:
		return apperr.Invalid("mcp.risk_action", "must be deny or approval")
	}
	if p.MCP.ApprovalTimeoutSeconds < 0 || p.MCP.ApprovalTimeoutSeconds > 3600 {
		return apperr.Invalid("mcp.approval_timeout_seconds", "must be from 0 (the default, 300) to 3600")
	}
	for _, k := range p.MCP.RedactKeys {
		if k == "" || len(k) > 100 {
			return apperr.Invalid("mcp.redact_keys", "keys are 1 to 100 characters")
		}
	}
	return nil
}

// PoliciesOf reads a tenant's policies from its settings ("policies"),
// defaults where absent.
func PoliciesOf(t *Tenant) Policies {
	p := DefaultPolicies
	var s struct {
		Policies json.RawMessage `json:"policies"`
	}
	if json.Unmarshal(t.Settings, &s) == nil && len(s.Policies) > 0 {
		_ = json.Unmarshal(s.Policies, &p)
	}
	return p
}

// Policies returns the policies of tenant id.
func (s *Service) Policies(ctx context.Context, id uuid.UUID) (Policies, int64, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return Policies{}, 0, err
	}
	return PoliciesOf(t), t.Version, nil
}

// SetPolicies replaces the policies of tenant id.
func (s *Service) SetPolicies(ctx context.Context, id uuid.UUID, p Policies, ifVersion int64) (Policies, int64, error) {
	if err := p.Validate(); err != nil {
		return Policies{}, 0, err
	}
	var after *Tenant
	err := s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		t, err := lockCurrent(ctx, tx, id, ifVersion)
		if err != nil {
			return err
		}
		var settings map[string]json.RawMessage
		if err := json.Unmarshal(t.Settings, &settings); err != nil || settings == nil {
			settings = map[string]json.RawMessage{}
		}
		raw, _ := json.Marshal(p)
		settings["policies"] = raw
		t.Settings, _ = json.Marshal(settings)
		t.UpdatedAt = store.Now()
		t.Version++
		if err := saveSettings(ctx, tx, t); err != nil {
			return err
		}
		after = t
		tx.AfterCommit(func() { s.forget(id) })
		if err := events.Publish(ctx, tx, events.Change{TenantID: id, Kind: EventKind, ID: id.String(), Version: t.Version}, nil); err != nil {
			return err
		}
		if s.Audit == nil {
			return audit.ErrNoRecorder
		}
		return s.Audit.InTx(ctx, tx, audit.Entry{TenantID: id, Action: "tenant.policies.update", TargetKind: "tenant", TargetID: id.String(),
			RequestID: reqid.From(ctx), Details: p}.ActorFrom(principal.From(ctx)))
	})
	if err != nil {
		return Policies{}, 0, err
	}
	return p, after.Version, nil
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func (b Branding) validate() error {
	if len(b.DisplayName) > 100 || strings.ContainsAny(b.DisplayName, "\r\n<>") {
		return apperr.Invalid("branding.display_name", "at most 100 characters, without line breaks or angle brackets")
	}
	if b.LogoURL != "" {
		u, err := url.Parse(b.LogoURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(b.LogoURL) > 2000 {
			return apperr.Invalid("branding.logo_url", "must be an https URL")
		}
	}
	if b.PrimaryColor != "" && !colorRE.MatchString(b.PrimaryColor) {
		return apperr.Invalid("branding.primary_color", "must be #rrggbb")
	}
	if b.SupportEmail != "" {
		if a, err := mail.ParseAddress(b.SupportEmail); err != nil || a.Name != "" {
			return apperr.Invalid("branding.support_email", "must be an email address")
		}
	}
	switch b.Locale {
	case "", "en", "fr":
	default:
		return apperr.Invalid("branding.locale", "must be en or fr")
	}
	if b.FromAddress != "" {
		if a, err := mail.ParseAddress(b.FromAddress); err != nil || a.Name != "" || a.Address != b.FromAddress {
			return apperr.Invalid("branding.from_address", "must be a plain email address")
		}
	}
	if len(b.Texts) > 20 {
		return apperr.Invalid("branding.texts", "at most 20 templates")
	}
	for name, langs := range b.Texts {
		if len(name) > 40 || len(langs) > 2 {
			return apperr.Invalid("branding.texts", "templates by name, each in en and fr at most")
		}
		for lang, t := range langs {
			if lang != "en" && lang != "fr" {
				return apperr.Invalid("branding.texts", "languages are en and fr")
			}
			if len(t.Subject) > 200 || strings.ContainsAny(t.Subject, "\r\n") || len(t.Intro) > 2000 {
				return apperr.Invalid("branding.texts", "a subject of at most 200 characters on one line, an intro of at most 2000")
			}
		}
	}
	return nil
}

// StepUp implements httpx.StepUpPolicy: whether tenant id asks for
// step-up, and how recent a second factor must be.
func (s *Service) StepUp(ctx context.Context, id uuid.UUID) (bool, time.Duration, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return false, 0, err
	}
	p := PoliciesOf(t).StepUp
	age := time.Duration(p.MaxAgeSeconds) * time.Second
	if age == 0 {
		age = 15 * time.Minute
	}
	return p.Enabled, age, nil
}
