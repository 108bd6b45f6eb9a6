// Package account serves the flows of a person's own account that go
// through their mailbox: invitations (an admin invites, the person sets a
// password), password resets, email verification, and notices of security
// events (a password changed). Every email is an outbox event handled
// after the request's transaction commits, retried until the relay takes
// it; the request itself only records that a message is due, so an
// unknown address and a known one cost a request the same work.
//
// Tokens are never stored or queued: the one in an email is derived from
// its outbox event's id with a key from the KEK, so every retry mails the
// same token, and only its SHA-256 is kept (single use, short-lived).
package account

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/mail"
	"github.com/xavyo/xavyo/internal/store"
)

// Event kinds: each is one email.
const (
	EventPrefix          = "account."
	EventInvite          = "account.invite"           // subject: the user id
	EventReset           = "account.reset"            // subject: the address typed
	EventVerify          = "account.verify"           // subject: the user id
	EventPasswordChanged = "account.password_changed" // subject: the user id
	EventEmailChange     = "account.email_change"     // subject: the user id; payload: the new address
	EventEmailChanged    = "account.email_changed"    // subject: the user id; payload: both addresses
	EventSignup          = "account.signup"           // subject: the address typed
)

// EmailChange is the payload of the email-change events.
type EmailChange struct {
	Email string `json:"email"`
	Old   string `json:"old,omitempty"`
}

// Token kinds and lifetimes.
const (
	KindInvite = "invite"
	KindReset  = "reset"
	KindVerify = "verify"
	KindEmail  = "email"  // a new address to confirm
	KindSignup = "signup" // an account to create
)

var lifetimes = map[string]time.Duration{KindInvite: 7 * 24 * time.Hour, KindReset: 30 * time.Minute, KindVerify: 24 * time.Hour,
	KindEmail: 24 * time.Hour, KindSignup: 24 * time.Hour}

// Errors.
var (
	// ErrBadToken is the one answer to a link that cannot be used:
	// unknown, used, expired, superseded, or another tenant's.
	ErrBadToken = apperr.New(apperr.KindInvalidArgument, "this link is invalid or has expired; ask for a new one")
	// ErrNoMail says the deployment sends no email (no smtp.host).
	ErrNoMail = apperr.New(apperr.KindUnavailable, "email is not configured on this server")
	// ErrTooMany slows down requests for mail.
	ErrTooMany = apperr.New(apperr.KindRateLimited, "too many requests; wait a few minutes and try again")
)

// Config configures the service.
type Config struct {
	DB        *store.DB
	Directory *directory.Service
	Sessions  *auth.Sessions
	Tenants   *tenant.Service
	Audit     audit.Recorder
	// Mail sends email (nil: none is sent; the flows answer ErrNoMail).
	Mail *mail.Sender
	// TokenKey derives the tokens of emails (32 bytes from the KEK).
	TokenKey []byte
	// AdminURL is admin.public_url: the links in emails point there.
	AdminURL string
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service runs the flows.
type Service struct {
	cfg     Config
	mu      sync.Mutex
	recent  map[string][]time.Time // rate limits: key → recent requests
	limitAt time.Time
}

// New returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Directory == nil || cfg.Sessions == nil || cfg.Tenants == nil || len(cfg.TokenKey) < 32 {
		return nil, errors.New("account: the store, directory, sessions, tenants and a token key are required")
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.AdminURL = strings.TrimSuffix(cfg.AdminURL, "/")
	return &Service{cfg: cfg, recent: map[string][]time.Time{}}, nil
}

// MailEnabled reports whether the deployment sends email.
func (s *Service) MailEnabled() bool { return s.cfg.Mail != nil }

// Invite mails a user of the tenant of ctx a link to set their password
// (an admin's action). It answers once the email is due; it is sent after.
func (s *Service) Invite(ctx context.Context, user uuid.UUID) error {
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u, err := s.userTx(ctx, tx, user)
		if err != nil {
			return err
		}
		if s.cfg.Mail == nil {
			return ErrNoMail
		}
		if u.Status == directory.StatusDisabled {
			return apperr.New(apperr.KindConflict, "the user is disabled")
		}
		if err := s.due(ctx, tx, EventInvite, user.String()); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "user.invite", "user", user.String(), map[string]string{"email": u.Email})
	})
}

// RequestVerification mails a user a link to verify their address.
func (s *Service) RequestVerification(ctx context.Context, user uuid.UUID) error {
	if s.cfg.Mail == nil {
		return ErrNoMail
	}
	if !s.allow("verify|"+user.String(), 3, 15*time.Minute) {
		return ErrTooMany
	}
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if _, err := s.userTx(ctx, tx, user); err != nil {
			return err
		}
		return s.due(ctx, tx, EventVerify, user.String())
	})
}

// RequestEmailChange mails a link to a person's new address: the address
// changes when they follow it (proving they hold it), and the old address
// then hears of it.
func (s *Service) RequestEmailChange(ctx context.Context, user uuid.UUID, email string) error {
	if s.cfg.Mail == nil {
		return ErrNoMail
	}
	norm, err := directory.NormalizeEmail(email)
	if err != nil {
		return err
	}
	if !s.allow("email|"+user.String(), 3, 15*time.Minute) {
		return ErrTooMany
	}
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u, err := s.userTx(ctx, tx, user)
		if err != nil {
			return err
		}
		if strings.EqualFold(u.Email, norm) {
			return apperr.Invalid("email", "that is already your address")
		}
		return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventEmailChange, ID: user.String(), Version: s.cfg.Now().UnixNano()},
			EmailChange{Email: strings.TrimSpace(email)})
	})
}

// ConfirmEmail uses an email-change token: the person's address becomes
// the one the link was mailed to (verified), and the old one is told.
func (s *Service) ConfirmEmail(ctx context.Context, t *tenant.Tenant, raw string) error {
	ctx = store.WithTenant(ctx, t.ID)
	l, err := s.claim(ctx, KindEmail, raw)
	if err != nil {
		return err
	}
	old, err := s.cfg.Directory.GetUser(ctx, l.User)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Directory.UpdateUser(ctx, l.User, directory.UpdateUserInput{Email: &l.Email}, 0); err != nil {
		return err // the link is spent: an address taken since is no longer this person's to claim
	}
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.cfg.Directory.VerifyEmailTx(ctx, tx, l.User); err != nil {
			return err
		}
		return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventEmailChanged, ID: l.User.String(), Version: s.cfg.Now().UnixNano()},
			EmailChange{Email: l.Email, Old: old.Email})
	})
}

// ErrSignupClosed says the tenant does not take sign-ups (from this
// address's domain).
var ErrSignupClosed = apperr.New(apperr.KindPermissionDenied, "signing up is not open here for this address")

// RequestSignup is a person asking for an account where the tenant lets
// people sign up: the same answer and work whether or not the address
// already has one (the handler mails a link, or tells the owner they
// already have an account).
func (s *Service) RequestSignup(ctx context.Context, t *tenant.Tenant, email, ip string) error {
	if s.cfg.Mail == nil {
		return ErrNoMail
	}
	norm, err := directory.NormalizeEmail(email)
	if err != nil {
		return err
	}
	if !tenant.PoliciesOf(t).Signup.Allows(norm) {
		return ErrSignupClosed
	}
	if !s.allow("signup-ip|"+t.ID.String()+"|"+ip, 10, 15*time.Minute) || !s.allow("signup|"+t.ID.String()+"|"+norm, 3, 15*time.Minute) {
		return ErrTooMany
	}
	return s.cfg.DB.InTenantTx(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		return s.due(ctx, tx, EventSignup, norm)
	})
}

// CompleteSignup uses a sign-up token: the account is created, active
// (its address proven by the link), with the password the person chose
// (a refused password, or name, leaves the link usable).
func (s *Service) CompleteSignup(ctx context.Context, t *tenant.Tenant, raw, displayName, password string) error {
	ctx = store.WithTenant(ctx, t.ID)
	if !tenant.PoliciesOf(t).Signup.Enabled {
		return ErrSignupClosed
	}
	l, err := s.claim(ctx, KindSignup, raw)
	if err != nil {
		return err
	}
	pw := password
	if _, err := s.cfg.Directory.CreateUser(ctx, directory.CreateUserInput{Email: l.Email, DisplayName: strings.TrimSpace(displayName), Password: &pw}); err != nil {
		if apperr.KindOf(err) == apperr.KindInvalidArgument {
			if uerr := s.unclaim(ctx, raw); uerr != nil {
				return errors.Join(err, uerr)
			}
		}
		return err
	}
	return nil
}

// RequestReset is "I forgot my password": whether or not the address
// belongs to anyone, the answer is the same and so is the work (one email
// due; the handler finds nobody to send it to). Requests are limited per
// address and per client address.
func (s *Service) RequestReset(ctx context.Context, t *tenant.Tenant, email, ip string) error {
	if s.cfg.Mail == nil {
		return ErrNoMail
	}
	addr := strings.ToLower(strings.TrimSpace(email))
	if addr == "" || len(addr) > 254 || !strings.Contains(addr, "@") || strings.ContainsAny(addr, "\r\n") {
		return apperr.Invalid("email", "must be an email address")
	}
	if !s.allow("reset-ip|"+t.ID.String()+"|"+ip, 10, 15*time.Minute) || !s.allow("reset|"+t.ID.String()+"|"+addr, 3, 15*time.Minute) {
		return ErrTooMany
	}
	return s.cfg.DB.InTenantTx(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		return s.due(ctx, tx, EventReset, addr)
	})
}

// userTx reads a user of the tenant (apperr NotFound: none).
func (s *Service) userTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (*directory.User, error) {
	u, err := s.cfg.Directory.FindUserTx(ctx, tx, id)
	if err == nil && u == nil {
		err = apperr.NotFound("user")
	}
	return u, err
}

// due records that an email is to be sent.
func (s *Service) due(ctx context.Context, tx *store.Tx, kind, subject string) error {
	return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: kind, ID: subject, Version: s.cfg.Now().UnixNano()}, nil)
}

// allow counts a request under key: at most n per window.
func (s *Service) allow(key string, n int, window time.Duration) bool {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.limitAt) > time.Hour || len(s.recent) > 100_000 {
		s.recent, s.limitAt = map[string][]time.Time{}, now
	}
	kept := s.recent[key][:0]
	for _, at := range s.recent[key] {
		if now.Sub(at) < window {
			kept = append(kept, at)
		}
	}
	if len(kept) >= n {
		s.recent[key] = kept
		return false
	}
	s.recent[key] = append(kept, now)
	return true
}

// tokenFor is the token mailed for an outbox event: the same for every
// attempt to send it.
func (s *Service) tokenFor(event uuid.UUID) string {
	m := hmac.New(sha256.New, s.cfg.TokenKey)
	m.Write(event[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func hashToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// Link is a token's use, as its page shows it.
type Link struct {
	Kind  string
	User  uuid.UUID
	Email string
}

// Check returns what a token is for, without using it.
func (s *Service) Check(ctx context.Context, t *tenant.Tenant, kind, raw string) (*Link, error) {
	if len(raw) != 43 {
		return nil, ErrBadToken
	}
	var l *Link
	err := s.cfg.DB.InTenantRead(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		row, err := tokenTx(ctx, tx, hashToken(raw))
		if err != nil || row == nil {
			return err
		}
		if row.kind == kind && row.used == nil && s.cfg.Now().Before(row.expires) {
			l = &Link{Kind: row.kind, User: row.user, Email: row.email}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, ErrBadToken
	}
	return l, nil
}

// SetPassword uses an invitation or reset token: the person's new
// password is set (the tenant's policy applies; a refused password leaves
// the token usable), the token is spent, and then:
//   - an invitation also verifies the address (it came by email);
//   - a reset ends every session of the person and mails them a notice.
func (s *Service) SetPassword(ctx context.Context, t *tenant.Tenant, kind, raw, password string) error {
	if kind != KindInvite && kind != KindReset {
		return ErrBadToken
	}
	ctx = store.WithTenant(ctx, t.ID)
	l, err := s.claim(ctx, kind, raw)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Directory.SetPassword(ctx, l.User, password, false); err != nil {
		if apperr.KindOf(err) == apperr.KindInvalidArgument {
			// The password was refused: the link works again.
			if uerr := s.unclaim(ctx, raw); uerr != nil {
				return errors.Join(err, uerr)
			}
		}
		return err
	}
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if kind == KindInvite {
			if err := s.cfg.Directory.VerifyEmailTx(ctx, tx, l.User); err != nil {
				return err
			}
			return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "user.invitation.accept", "user", l.User.String(), nil)
		}
		if err := s.cfg.Sessions.EndUserTx(ctx, tx, l.User, "password reset"); err != nil {
			return err
		}
		if err := s.due(ctx, tx, EventPasswordChanged, l.User.String()); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "user.password.reset", "user", l.User.String(), nil)
	})
}

// VerifyEmail uses a verification token.
func (s *Service) VerifyEmail(ctx context.Context, t *tenant.Tenant, raw string) error {
	ctx = store.WithTenant(ctx, t.ID)
	l, err := s.claim(ctx, KindVerify, raw)
	if err != nil {
		return err
	}
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return s.cfg.Directory.VerifyEmailTx(ctx, tx, l.User)
	})
}

// claim spends a live token of kind: one request wins a race.
func (s *Service) claim(ctx context.Context, kind, raw string) (*Link, error) {
	if len(raw) != 43 {
		return nil, ErrBadToken
	}
	var l *Link
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		row, err := claimTokenTx(ctx, tx, hashToken(raw), kind, s.cfg.Now())
		if err != nil || row == nil {
			return err
		}
		l = &Link{Kind: kind, User: row.user, Email: row.email}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, ErrBadToken
	}
	return l, nil
}

func (s *Service) unclaim(ctx context.Context, raw string) error {
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error { return unclaimTokenTx(ctx, tx, hashToken(raw)) })
}
