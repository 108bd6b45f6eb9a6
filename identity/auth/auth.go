// Package auth signs people in: password login with lockout and backoff,
// sessions with a per-tenant concurrency limit, refresh with rotation and
// reuse detection, logout, forced and self-service password changes, and
// the admin plane's bearer-token authenticator.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/mfa"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// ScopePasswordChange is the only scope of a token issued to a user who
// must change their password first.
const ScopePasswordChange = principal.ScopePasswordChange

// DefaultScope is the scope of a login's access token.
const DefaultScope = "openid profile email"

// ErrInvalidCredentials is the one answer to every failed login: unknown
// tenant, unknown user, wrong password, locked or disabled account.
var ErrInvalidCredentials = apperr.New(apperr.KindUnauthenticated, "invalid credentials")

// ErrFederatedOnly answers the right password of a person whose
// identity provider turned local passwords off: they sign in through it.
var ErrFederatedOnly = apperr.New(apperr.KindPermissionDenied, "this account signs in through its organization's identity provider, not with a password")

// LocalPasswords says whether a person may sign in with a password: a
// person linked to an identity provider that turned local passwords off
// may not.
type LocalPasswords interface {
	// PasswordOff names the provider that turned a user's password off
	// ("": none did).
	PasswordOff(ctx context.Context, user uuid.UUID) (string, error)
}

// Auditor is what auth needs of the audit log.
type Auditor interface {
	AppendSync(ctx context.Context, e audit.Entry) error
}

// Service signs users in and manages their sessions.
type Service struct {
	// MFA keeps second factors (nil: none are asked).
	MFA SecondFactor
	// Passwords says who may not use one (nil: everyone may).
	Passwords LocalPasswords
	DB        *store.DB
	Tenants   *tenant.Service
	Directory *directory.Service
	Tokens    *token.Service
	Hasher    *password.Hasher
	// SessionStore is the session store, shared with the directory (required).
	SessionStore *Sessions
	Audit        Auditor
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return store.Now()
}

// LoginInput is a password login.
type LoginInput struct {
	// Tenant is the tenant's slug.
	Tenant   string `json:"tenant"`
	Login    string `json:"login" doc:"email or username"`
	Password string `json:"password"`
	Device   string `json:"device,omitempty" doc:"a name for this device, shown in the session list"`
}

// Client describes where a request came from.
type Client struct {
	IP        string
	UserAgent string
}

// Tokens is a login's or refresh's result.
type Tokens struct {
	AccessToken            string    `json:"access_token"`
	TokenType              string    `json:"token_type"`
	ExpiresIn              int       `json:"expires_in"`
	RefreshToken           string    `json:"refresh_token"`
	Scope                  string    `json:"scope"`
	SessionID              uuid.UUID `json:"session_id"`
	PasswordChangeRequired bool      `json:"password_change_required"`
	// MFARequired: the password was right and a second factor is owed;
	// no token is issued until it comes (POST /api/v1/auth/login/mfa with
	// MFAToken).
	MFARequired bool     `json:"mfa_required,omitempty"`
	MFAToken    string   `json:"mfa_token,omitempty" doc:"with mfa_required: presented with the code at /api/v1/auth/login/mfa (valid 15 minutes)"`
	MFAMethods  []string `json:"mfa_methods,omitempty" doc:"with mfa_required: the second steps the person may take: totp, webauthn, recovery_code"`
	// WebAuthn is the assertion ceremony of the person's passkeys and
	// security keys, when they have some.
	WebAuthn *mfa.Ceremony `json:"webauthn,omitempty" doc:"with mfa_required and webauthn among the methods: the options for navigator.credentials.get and the ceremony to send back"`
}

// SecondFactor is what sign-in needs of identity/mfa.
type SecondFactor interface {
	NeedOf(ctx context.Context, pol tenant.MFAPolicy, user uuid.UUID, roles []string) (mfa.Need, error)
	Verify(ctx context.Context, user uuid.UUID, code string) (string, error)
	BeginAssertion(ctx context.Context, user uuid.UUID, rpName string) (*mfa.Ceremony, error)
	BeginPasskey(ctx context.Context, rpName string) (*mfa.Ceremony, error)
	FinishAssertion(ctx context.Context, user uuid.UUID, state string, answer []byte) (uuid.UUID, []string, error)
}

// LoginMFAInput completes a sign-in that owes a second factor: with a
// code, or with an assertion of a passkey or security key.
type LoginMFAInput struct {
	Tenant   string          `json:"tenant"`
	MFAToken string          `json:"mfa_token"`
	Code     string          `json:"code,omitempty" doc:"a code of the person's authenticator app, or one of their recovery codes"`
	Ceremony string          `json:"ceremony,omitempty" doc:"with webauthn: the ceremony of the mfa_required answer"`
	WebAuthn json.RawMessage `json:"webauthn,omitempty" doc:"the authenticator's assertion (PublicKeyCredential.toJSON()) instead of a code"`
}

// PasskeyBeginInput starts a passkey sign-in.
type PasskeyBeginInput struct {
	Tenant string `json:"tenant"`
}

// PasskeyInput signs in with a passkey, without a password.
type PasskeyInput struct {
	Tenant     string          `json:"tenant"`
	Ceremony   string          `json:"ceremony" doc:"the ceremony of /api/v1/auth/passkey/begin"`
	Credential json.RawMessage `json:"credential" doc:"the authenticator's assertion (PublicKeyCredential.toJSON())"`
	Device     string          `json:"device,omitempty" doc:"a name for this device, shown in the session list"`
}

// ErrPhishingResistant answers a code where the tenant accepts only
// passkeys and security keys.
var ErrPhishingResistant = apperr.New(apperr.KindPermissionDenied, "this organization accepts only passkeys and security keys as second factor")

// RPName is the name a tenant is shown by under authenticators.
func RPName(t *tenant.Tenant) string {
	if d := tenant.PoliciesOf(t).Branding.DisplayName; d != "" {
		return d
	}
	return t.Name
}

// SecondStep answers a sign-in that passed its first step and owes the
// second one: its token, the methods the person may use, and the
// assertion ceremony of their passkeys.
func (s *Service) secondStep(ctx context.Context, t *tenant.Tenant, user uuid.UUID, need mfa.Need, device string) (*Tokens, error) {
	x, err := s.StartTransaction(ctx, t, purposeAPIMFA, device, uuid.Nil)
	if err != nil {
		return nil, err
	}
	secret, err := s.TransactionPending(ctx, t, x, user, []string{"pwd"})
	if err != nil {
		return nil, err
	}
	out := &Tokens{MFARequired: true, MFAToken: x.ID + "." + secret, MFAMethods: need.Methods}
	if need.Accepts(mfa.KindWebAuthn) {
		if out.WebAuthn, err = s.MFA.BeginAssertion(ctx, user, RPName(t)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// purposeAPIMFA is the auth transactions of JSON sign-ins owing a second
// factor.
const purposeAPIMFA = "api_mfa"

// ErrEnrolFirst answers a JSON sign-in of a person without a second
// factor where the tenant requires one: they enrol on the pages first.
var ErrEnrolFirst = apperr.New(apperr.KindPermissionDenied, "this organization requires a second factor: sign in on its sign-in page once to enrol one")

// ErrMFAToken answers an MFA token that is unknown, expired or spent.
var ErrMFAToken = apperr.New(apperr.KindUnauthenticated, "the mfa_token is invalid or expired; sign in again")

func (s *Service) audit(ctx context.Context, tenant uuid.UUID, action, outcome, target string, details any) {
	if s.Audit == nil || tenant == uuid.Nil {
		return
	}
	e := audit.Entry{TenantID: tenant, Action: action, Outcome: outcome, TargetKind: "user", TargetID: target,
		RequestID: reqid.From(ctx), Details: details}.ActorFrom(principal.From(ctx))
	if principal.From(ctx) == nil {
		e.ActorKind, e.ActorID = "user", target
	}
	_ = s.Audit.AppendSync(ctx, e)
}

// Login checks a password and opens a session. Every failure costs one
// argon2id verification and answers ErrInvalidCredentials.
func (s *Service) Login(ctx context.Context, in LoginInput, cl Client) (*Tokens, error) {
	if in.Tenant == "" || in.Login == "" || in.Password == "" {
		return nil, apperr.Invalid("body", "tenant, login and password are required")
	}
	if len(in.Device) > 200 {
		return nil, apperr.Invalid("device", "must be at most 200 characters")
	}
	t, u, mustChange, err := s.CheckPassword(ctx, in.Tenant, in.Login, in.Password)
	if err != nil {
		return nil, err
	}
	ctx = store.WithTenant(ctx, t.ID)
	if s.MFA != nil {
		need, err := s.MFA.NeedOf(ctx, tenant.PoliciesOf(t).MFA, u.ID, u.AdminRoles)
		if err != nil {
			return nil, err
		}
		if need.MustEnrol() {
			return nil, ErrEnrolFirst
		}
		if len(need.Methods) > 0 {
			// The second step comes with a token binding it to this
			// first one.
			return s.secondStep(ctx, t, u.ID, need, in.Device)
		}
	}
	pol := tenant.PoliciesOf(t)
	out, err := s.openSession(ctx, t, u, pol, in.Device, cl, mustChange, []string{"pwd"})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, t.ID, "auth.login", audit.OutcomeSuccess, u.ID.String(), map[string]any{"session_id": out.SessionID, "ip": cl.IP})
	return out, nil
}

// LoginMFA completes a JSON sign-in that owes a second factor.
func (s *Service) LoginMFA(ctx context.Context, in LoginMFAInput, cl Client) (*Tokens, error) {
	if s.MFA == nil {
		return nil, ErrMFAToken
	}
	if len(in.WebAuthn) > 0 {
		if err := mfa.CheckAnswer("webauthn", in.WebAuthn); err != nil {
			return nil, err
		}
	}
	t, err := s.Tenants.Resolve(ctx, in.Tenant)
	if err != nil {
		return nil, ErrMFAToken
	}
	ctx = store.WithTenant(ctx, t.ID)
	id, secret, _ := strings.Cut(in.MFAToken, ".")
	x, err := s.Transaction(ctx, t, id)
	if err != nil || x.Purpose != purposeAPIMFA {
		if apperr.KindOf(err) == apperr.KindUnavailable {
			return nil, err
		}
		return nil, ErrMFAToken
	}
	user := x.Pending(secret)
	if user == uuid.Nil {
		return nil, ErrMFAToken
	}
	u, err := s.signInUser(ctx, user)
	if err != nil {
		return nil, err
	}
	need, err := s.MFA.NeedOf(ctx, tenant.PoliciesOf(t).MFA, user, u.AdminRoles)
	if err != nil {
		return nil, err
	}
	methods, err := s.VerifySecond(ctx, need, user, in.Code, in.Ceremony, in.WebAuthn)
	if err != nil {
		s.audit(ctx, t.ID, "auth.login.mfa", audit.OutcomeFailure, user.String(), map[string]any{"ip": cl.IP})
		return nil, err
	}
	if err := s.EndTransaction(ctx, t, x); err != nil {
		return nil, err
	}
	amr := append(append([]string{"pwd"}, methods...), "mfa")
	out, err := s.openSession(ctx, t, u, tenant.PoliciesOf(t), x.Request, cl, u.MustChangePassword, amr)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, t.ID, "auth.login", audit.OutcomeSuccess, u.ID.String(), map[string]any{"session_id": out.SessionID, "ip": cl.IP, "amr": strings.Join(amr, " ")})
	return out, nil
}

// VerifySecond checks a person's second step, a code or a WebAuthn
// assertion (answer, to ceremony), against what their sign-in owes; it
// returns the RFC 8176 methods it proves.
func (s *Service) VerifySecond(ctx context.Context, need mfa.Need, user uuid.UUID, code, ceremony string, answer []byte) ([]string, error) {
	if len(answer) > 0 {
		if !need.Accepts(mfa.KindWebAuthn) {
			return nil, mfa.ErrBadAssertion
		}
		_, methods, err := s.MFA.FinishAssertion(ctx, user, ceremony, answer)
		return methods, err
	}
	if !need.Accepts(mfa.KindTOTP) && !need.Accepts("recovery_code") {
		return nil, ErrPhishingResistant
	}
	method, err := s.MFA.Verify(ctx, user, code)
	if err != nil {
		return nil, err
	}
	return []string{method}, nil
}

// BeginPasskey starts a passkey sign-in at a tenant.
func (s *Service) BeginPasskey(ctx context.Context, in PasskeyBeginInput) (*mfa.Ceremony, error) {
	if s.MFA == nil {
		return nil, apperr.New(apperr.KindUnavailable, "passkeys are not available here")
	}
	t, err := s.Tenants.Resolve(ctx, in.Tenant)
	if err != nil {
		if apperr.KindOf(err) == apperr.KindUnavailable {
			return nil, err
		}
		return nil, apperr.Invalid("tenant", "unknown tenant")
	}
	return s.MFA.BeginPasskey(store.WithTenant(ctx, t.ID), RPName(t))
}

// LoginPasskey signs a person in with a passkey alone (the authenticator
// verified them: two factors in one), without a password.
func (s *Service) LoginPasskey(ctx context.Context, in PasskeyInput, cl Client) (*Tokens, error) {
	if in.Tenant == "" || in.Ceremony == "" || len(in.Credential) == 0 {
		return nil, apperr.Invalid("body", "tenant, ceremony and credential are required")
	}
	if len(in.Device) > 200 {
		return nil, apperr.Invalid("device", "must be at most 200 characters")
	}
	if err := mfa.CheckAnswer("credential", in.Credential); err != nil {
		return nil, err
	}
	if s.MFA == nil {
		return nil, mfa.ErrBadAssertion
	}
	t, err := s.Tenants.Resolve(ctx, in.Tenant)
	if err != nil {
		if apperr.KindOf(err) == apperr.KindUnavailable {
			return nil, err
		}
		return nil, mfa.ErrBadAssertion
	}
	ctx = store.WithTenant(ctx, t.ID)
	user, methods, err := s.MFA.FinishAssertion(ctx, uuid.Nil, in.Ceremony, in.Credential)
	if err != nil {
		return nil, err
	}
	u, err := s.signInUser(ctx, user)
	if err != nil {
		return nil, err
	}
	amr := append(methods, "mfa")
	out, err := s.openSession(ctx, t, u, tenant.PoliciesOf(t), in.Device, cl, u.MustChangePassword, amr)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, t.ID, "auth.login", audit.OutcomeSuccess, u.ID.String(), map[string]any{"session_id": out.SessionID, "ip": cl.IP, "amr": strings.Join(amr, " ")})
	return out, nil
}

// SignInUser returns a person who passed the first step of a sign-in, if
// they may still sign in (the second step took a moment).
func (s *Service) SignInUser(ctx context.Context, t *tenant.Tenant, id uuid.UUID) (*directory.User, error) {
	return s.signInUser(store.WithTenant(ctx, t.ID), id)
}

func (s *Service) signInUser(ctx context.Context, id uuid.UUID) (*directory.User, error) {
	var u *directory.User
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		u, err = s.Directory.FindUserTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if u == nil || !mayUse(u, s.now()) {
		return nil, ErrInvalidCredentials
	}
	return u, nil
}

// recordFailure counts a failed login and locks the account with
// exponential backoff once the policy's threshold is reached.
func (s *Service) recordFailure(ctx context.Context, user uuid.UUID, pol tenant.LockoutPolicy) {
	tid, _ := store.TenantFrom(ctx)
	lockedFor, err := s.Directory.RecordFailedLogin(ctx, user, pol, s.now())
	details := map[string]any{"reason": "wrong password"}
	if err != nil {
		details["counting_failed"] = true
	}
	if lockedFor > 0 {
		details["locked_for_seconds"] = int(lockedFor.Seconds())
	}
	s.audit(ctx, tid, "auth.login", audit.OutcomeFailure, user.String(), details)
}

// openSession creates a session (ending the oldest beyond the tenant's
// limit), a refresh family and an access token.
func (s *Service) openSession(ctx context.Context, t *tenant.Tenant, u *directory.User, pol tenant.Policies, device string, cl Client, mustChange bool,
	amr []string) (*Tokens, error) {
	now := s.now()
	sid := uuid.Must(uuid.NewV7())
	expires := now.Add(time.Duration(pol.Session.LifetimeHours) * time.Hour)
	scope := DefaultScope
	if mustChange {
		scope = ScopePasswordChange
	}
	var refresh string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.endBeyondLimitTx(ctx, tx, u.ID, pol, now); err != nil {
			return err
		}
		if err := s.noteDeviceTx(ctx, tx, u.ID, cl, now); err != nil {
			return err
		}
		if err := s.SessionStore.insertTx(ctx, tx, &Session{ID: sid, UserID: u.ID, Device: device, IP: trunc(cl.IP, 64), UserAgent: trunc(cl.UserAgent, 500),
			AuthMethod: "password", CreatedAt: now, ExpiresAt: expires}, strings.Join(amr, " ")); err != nil {
			return err
		}
		if err := s.Directory.RecordLoginTx(ctx, tx, u.ID, now); err != nil {
			return err
		}
		var err error
		refresh, err = s.Tokens.NewRefreshInTx(ctx, tx, &token.RefreshGrant{TenantID: t.ID, SessionID: sid, Subject: u.ID.String(),
			Scope: scope, Audience: []string{s.Tokens.AdminAudience()}, ExpiresAt: expires})
		return err
	})
	if err != nil {
		return nil, err
	}
	access, ttl, err := s.mint(ctx, t.ID, u, sid, scope, pol, amr, now)
	if err != nil {
		return nil, err
	}
	return &Tokens{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(ttl.Seconds()), RefreshToken: refresh, Scope: scope,
		SessionID: sid, PasswordChangeRequired: mustChange}, nil
}

func (s *Service) mint(ctx context.Context, tid uuid.UUID, u *directory.User, sid uuid.UUID, scope string, pol tenant.Policies, amr []string,
	authTime time.Time) (string, time.Duration, error) {
	if len(amr) == 0 {
		amr = []string{"pwd"}
	}
	ttl := time.Duration(pol.Session.AccessTokenMinutes) * time.Minute
	roles := u.AdminRoles
	if scope == ScopePasswordChange {
		roles = nil
	}
	raw, err := s.Tokens.Mint(ctx, token.Claims{
		Claims:   jwt.Claims{Subject: u.ID.String(), Audience: jwt.Audience{s.Tokens.AdminAudience()}, Expiry: jwt.NewNumericDate(s.now().Add(ttl))},
		TenantID: tid, Scope: scope, SessionID: sid.String(), Roles: roles, AMR: amr, SubjectKind: string(principal.KindUser), AuthTime: authTime.Unix(),
	})
	return raw, ttl, err
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Refresh rotates a refresh token and mints a new access token. Reuse of
// a rotated-out token ends the session.
func (s *Service) Refresh(ctx context.Context, raw string) (*Tokens, error) {
	if raw == "" {
		return nil, apperr.Invalid("refresh_token", "is required")
	}
	// A suspended tenant's refresh tokens are refused before one is
	// rotated: refused now, the token still works once the tenant is
	// active again (rotated here, it would then read as a replay).
	if tid, err := token.RefreshTenant(raw); err == nil {
		if t, err := s.Tenants.Get(ctx, tid); err == nil && t.Status != tenant.StatusActive {
			return nil, tenant.ErrSuspended
		}
	}
	g, next, err := s.Tokens.Refresh(ctx, raw)
	if errors.Is(err, token.ErrRefreshReused) {
		if tid, sid, serr := s.Tokens.SessionOf(ctx, raw); serr == nil && sid != uuid.Nil {
			tctx := store.WithTenant(ctx, tid)
			_ = s.DB.InTenantTx(tctx, func(tx *store.Tx) error { return s.SessionStore.EndTx(tctx, tx, sid, "refresh token reuse") })
			s.audit(tctx, tid, "auth.refresh.reuse", audit.OutcomeDenied, "", map[string]string{"session_id": sid.String()})
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	ctx = store.WithTenant(ctx, g.TenantID)
	t, err := s.Tenants.Get(ctx, g.TenantID)
	if err != nil {
		return nil, token.ErrRefreshInvalid
	}
	if t.Status != tenant.StatusActive {
		return nil, tenant.ErrSuspended
	}
	pol := tenant.PoliciesOf(t)
	uid, err := uuid.Parse(g.Subject)
	if err != nil {
		return nil, token.ErrRefreshInvalid
	}
	now := s.now()
	var u *directory.User
	var amr string
	var authTime time.Time
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := s.SessionStore.touchTx(ctx, tx, g.SessionID, now, func(revoked *time.Time, lastSeen, expires time.Time) bool {
			return live(pol, revoked, lastSeen, expires, now)
		})
		if err != nil {
			return err
		}
		if !ok {
			return token.ErrRefreshInvalid
		}
		if amr, authTime, err = s.SessionStore.amrTx(ctx, tx, g.SessionID); err != nil {
			return err
		}
		u, err = s.Directory.FindUserTx(ctx, tx, uid)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !mayUse(u, now) {
		return nil, token.ErrRefreshInvalid
	}
	scope := g.Scope
	if !u.MustChangePassword && scope == ScopePasswordChange {
		scope = DefaultScope
	}
	access, ttl, err := s.mint(ctx, g.TenantID, u, g.SessionID, scope, pol, strings.Fields(amr), authTime)
	if err != nil {
		return nil, err
	}
	return &Tokens{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(ttl.Seconds()), RefreshToken: next, Scope: scope,
		SessionID: g.SessionID, PasswordChangeRequired: scope == ScopePasswordChange}, nil
}

// live reports whether a session may still be used at now under the
// tenant's session policy: not ended, not past its lifetime, not idle
// too long.
func live(pol tenant.Policies, revoked *time.Time, lastSeen, expires, now time.Time) bool {
	return revoked == nil && now.Before(expires) && now.Sub(lastSeen) <= time.Duration(pol.Session.IdleMinutes)*time.Minute
}

// mayUse reports whether a user's session may still be used: the user
// exists, is active and not locked.
func mayUse(u *directory.User, now time.Time) bool {
	return u != nil && u.Status == directory.StatusActive && (u.LockedUntil == nil || !now.Before(*u.LockedUntil))
}

// ChangePasswordInput is a self-service password change.
type ChangePasswordInput struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// ChangePassword changes the caller's password after checking the
// current one, ends every session of theirs and opens a new one.
func (s *Service) ChangePassword(ctx context.Context, in ChangePasswordInput, cl Client) (*Tokens, error) {
	p := principal.From(ctx)
	if p == nil || p.Kind != principal.KindUser {
		return nil, apperr.New(apperr.KindPermissionDenied, "only users change their password here")
	}
	if in.CurrentPassword == "" || in.NewPassword == "" {
		return nil, apperr.Invalid("body", "current_password and new_password are required")
	}
	uid, err := uuid.Parse(p.SubjectID)
	if err != nil {
		return nil, apperr.New(apperr.KindPermissionDenied, "not a user")
	}
	ctx = store.WithTenant(ctx, p.TenantID)
	u, err := s.Directory.GetUser(ctx, uid)
	if err != nil {
		return nil, err
	}
	ok, _, err := s.Hasher.Verify(ctx, in.CurrentPassword, u.PasswordHash())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apperr.New(apperr.KindPermissionDenied, "current password is wrong")
	}
	if in.CurrentPassword == in.NewPassword {
		return nil, apperr.Invalid("new_password", "must differ from the current password")
	}
	if u, err = s.Directory.SetPassword(ctx, uid, in.NewPassword, false); err != nil {
		return nil, err
	}
	if err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error { return s.SessionStore.EndUserTx(ctx, tx, uid, "password changed") }); err != nil {
		return nil, err
	}
	t, err := s.Tenants.Get(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	// The new session is a password sign-in (a second factor is not
	// carried over to a new sign-in time).
	return s.openSession(ctx, t, u, tenant.PoliciesOf(t), "", cl, false, []string{"pwd"})
}

// Logout ends the caller's session.
func (s *Service) Logout(ctx context.Context) error {
	p := principal.From(ctx)
	if p == nil || p.SessionID == "" {
		return apperr.New(apperr.KindPermissionDenied, "no session to end")
	}
	sid, err := uuid.Parse(p.SessionID)
	if err != nil {
		return apperr.New(apperr.KindPermissionDenied, "no session to end")
	}
	return s.endSession(ctx, p.TenantID, sid, p.SubjectID)
}

// endSession ends a session its person signs out of, and records it.
func (s *Service) endSession(ctx context.Context, tid, sid uuid.UUID, user string) error {
	ctx = store.WithTenant(ctx, tid)
	if err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error { return s.SessionStore.EndTx(ctx, tx, sid, "logout") }); err != nil {
		return err
	}
	s.audit(ctx, tid, "auth.logout", audit.OutcomeSuccess, user, map[string]string{"session_id": sid.String()})
	return nil
}

// CheckPassword verifies a user's password in the tenant with this slug:
// one argon2id verification whatever happens, lockout counting, and the
// same ErrInvalidCredentials for every failure. It tells whether the user
// must change the password before anything else. Login and the OAuth
// login page both sign in through it.
func (s *Service) CheckPassword(ctx context.Context, slug, login, password string) (*tenant.Tenant, *directory.User, bool, error) {
	t, err := s.Tenants.Resolve(ctx, slug)
	if apperr.KindOf(err) == apperr.KindUnavailable || errors.Is(err, tenant.ErrSuspended) {
		return nil, nil, false, err // not "wrong password": try again later, or never
	}
	if err != nil {
		_, _, _ = s.Hasher.Verify(ctx, password, "")
		return nil, nil, false, ErrInvalidCredentials
	}
	ctx = store.WithTenant(ctx, t.ID)
	pol := tenant.PoliciesOf(t)
	var u *directory.User
	if err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		u, err = s.Directory.FindLoginUser(ctx, tx, login)
		return err
	}); err != nil {
		return nil, nil, false, err
	}
	hash := ""
	if u != nil {
		hash = u.PasswordHash()
	}
	ok, rehash, err := s.Hasher.Verify(ctx, password, hash)
	if err != nil {
		return nil, nil, false, err
	}
	if u == nil {
		s.audit(ctx, t.ID, "auth.login", audit.OutcomeFailure, "", map[string]string{"reason": "unknown user"})
		return nil, nil, false, ErrInvalidCredentials
	}
	now := s.now()
	locked := u.Status == directory.StatusLocked || (u.LockedUntil != nil && now.Before(*u.LockedUntil))
	if !ok {
		s.recordFailure(ctx, u.ID, pol.Lockout)
		return nil, nil, false, ErrInvalidCredentials
	}
	if locked || u.Status != directory.StatusActive {
		reason := "account " + u.Status
		if locked {
			reason = "account locked"
		}
		s.audit(ctx, t.ID, "auth.login", audit.OutcomeDenied, u.ID.String(), map[string]string{"reason": reason})
		return nil, nil, false, ErrInvalidCredentials
	}
	if s.Passwords != nil {
		via, err := s.Passwords.PasswordOff(ctx, u.ID)
		if err != nil {
			return nil, nil, false, err
		}
		if via != "" {
			s.audit(ctx, t.ID, "auth.login", audit.OutcomeDenied, u.ID.String(), map[string]string{"reason": "local passwords off", "identity_provider": via})
			return nil, nil, false, ErrFederatedOnly
		}
	}
	if rehash {
		if h, err := s.Hasher.Hash(ctx, password); err == nil {
			_ = s.Directory.UpgradeHash(store.WithTenant(ctx, t.ID), u.ID, h)
		}
	}
	mustChange := u.MustChangePassword || (pol.Password.MaxAgeDays > 0 && u.PasswordChangedAt != nil &&
		now.Sub(*u.PasswordChangedAt) > time.Duration(pol.Password.MaxAgeDays)*24*time.Hour)
	return t, u, mustChange, nil
}

// NewDeviceEvent says a person signed in from a device (a user agent)
// none of their sessions used before (their first sign-in aside): the
// account module mails them a notice.
const NewDeviceEvent = "auth.new_device"

// NewDevice is the payload of a NewDeviceEvent.
type NewDevice struct {
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	At        time.Time `json:"at"`
}

// noteDeviceTx publishes a NewDeviceEvent when a sign-in about to open a
// session comes from a new device.
func (s *Service) noteDeviceTx(ctx context.Context, tx *store.Tx, user uuid.UUID, cl Client, now time.Time) error {
	ua := trunc(cl.UserAgent, 500)
	sessions, same, err := s.SessionStore.devicesTx(ctx, tx, user, ua)
	if err != nil || sessions == 0 || same > 0 {
		return err
	}
	return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: NewDeviceEvent, ID: user.String(), Version: now.UnixNano()},
		NewDevice{IP: trunc(cl.IP, 64), UserAgent: ua, At: now})
}
