// Package mfa keeps people's second factors: TOTP authenticators (RFC
// 6238: SHA-1, 6 digits, 30 s, one step either side; each code works once),
// passkeys and security keys (WebAuthn) and single-use recovery codes. Secrets are sealed with the KEK, bound
// to their tenant, person and factor; recovery codes are kept as SHA-256.
// Sign-in (identity/auth and its pages) asks Verify for the second step.
package mfa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
)

// KindTOTP is an authenticator app's factor (RFC 6238).
const KindTOTP = "totp"

const (
	period        = 30 * time.Second
	recoveryCount = 10
)

// Errors.
var (
	// ErrBadCode is the one answer to a wrong, reused or unknown code.
	ErrBadCode = apperr.New(apperr.KindUnauthenticated, "the code is not valid")
	// ErrTooMany slows down guessing.
	ErrTooMany = apperr.New(apperr.KindRateLimited, "too many wrong codes; wait a few minutes")
)

// Factor is one of a person's second factors, as they see it.
type Factor struct {
	ID          uuid.UUID  `json:"id"`
	Kind        string     `json:"kind" doc:"totp or webauthn"`
	Name        string     `json:"name"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty" doc:"unset: enrolment not confirmed yet (the factor does not count)"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	// AAGUID is a WebAuthn authenticator's model, when it says.
	AAGUID string `json:"aaguid,omitempty" doc:"webauthn: the authenticator's model (AAGUID), when it says"`
	// BackupEligible: a WebAuthn credential that may be synced (a
	// passkey); BackedUp: it is.
	BackupEligible bool `json:"backup_eligible,omitempty" doc:"webauthn: the credential may be synced between devices (a passkey)"`
	BackedUp       bool `json:"backed_up,omitempty" doc:"webauthn: the credential is synced"`
	SignCount      int  `json:"sign_count,omitempty" doc:"webauthn: the authenticator's signature counter last seen"`
}

// describe fills a WebAuthn factor's details from its credential record.
func (f *Factor) describe(record string) {
	var c webauthn.Credential
	if json.Unmarshal([]byte(record), &c) != nil {
		return
	}
	if a := aaguidOf(&c); a != uuid.Nil.String() {
		f.AAGUID = a
	}
	f.BackupEligible, f.BackedUp, f.SignCount = c.Flags.BackupEligible, c.Flags.BackupState, int(c.Authenticator.SignCount)
}

// Need is what a person's sign-in owes, by the tenant's policy and their
// factors.
type Need struct {
	// Required: the tenant requires a second factor of this person.
	Required bool
	// PhishingResistant: only passkeys and security keys count.
	PhishingResistant bool
	// Methods are the second steps the person can take: totp,
	// recovery_code, webauthn (none: no second step).
	Methods []string
	// RememberDays is how long a browser may skip the second step (0:
	// never).
	RememberDays int
	// Outdated: the person has factors that do not count here (an
	// authenticator app under a phishing-resistant policy); enrolling one
	// that counts asks for one of them first.
	Outdated bool
}

// MustEnrol reports whether the person must enrol a factor before going
// on.
func (n Need) MustEnrol() bool { return n.Required && len(n.Methods) == 0 }

// Accepts reports whether the second step may be taken with method.
func (n Need) Accepts(method string) bool { return slices.Contains(n.Methods, method) }

// NeedOf says what the sign-in of a person holding roles owes, in the
// tenant of ctx under its policy.
func (s *Service) NeedOf(ctx context.Context, pol tenant.MFAPolicy, user uuid.UUID, roles []string) (Need, error) {
	var n Need
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		n.Required = pol.RequiredOf(roles)
		if !n.Required && len(pol.RequiredForGroups) > 0 && s.Groups != nil {
			groups, err := s.Groups(ctx, tx, user)
			if err != nil {
				return err
			}
			n.Required = slices.ContainsFunc(groups, func(g uuid.UUID) bool { return slices.Contains(pol.RequiredForGroups, g) })
		}
		n.PhishingResistant = n.Required && pol.PhishingResistant
		kinds, err := confirmedKindsTx(ctx, tx, user)
		if err != nil {
			return err
		}
		left, err := recoveryLeftTx(ctx, tx, user)
		if err != nil {
			return err
		}
		for _, k := range []string{KindTOTP, KindWebAuthn} {
			if slices.Contains(kinds, k) && (!n.PhishingResistant || k == KindWebAuthn) {
				n.Methods = append(n.Methods, k)
			}
		}
		if len(kinds) > 0 && left > 0 && !n.PhishingResistant {
			n.Methods = append(n.Methods, "recovery_code")
		}
		n.Outdated = len(kinds) > 0 && len(n.Methods) == 0
		if !n.PhishingResistant {
			n.RememberDays = pol.RememberDeviceDays
		}
		return nil
	})
	return n, err
}

// Remember lets this browser skip a person's second step for days: the
// token its cookie holds (kept as SHA-256).
func (s *Service) Remember(ctx context.Context, user uuid.UUID, days int) (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	expires := now.Add(time.Duration(days) * 24 * time.Hour)
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return rememberTx(ctx, tx, user, hashCode(token), expires, now)
	})
	return token, expires, err
}

// Remembered reports whether a browser's token lets a person skip the
// second step.
func (s *Service) Remembered(ctx context.Context, user uuid.UUID, token string) (bool, error) {
	if token == "" || len(token) > 100 {
		return false, nil
	}
	var ok bool
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		ok, err = rememberedTx(ctx, tx, user, hashCode(token), s.now())
		return err
	})
	return ok, err
}

// Enrollment is a new TOTP authenticator to confirm.
type Enrollment struct {
	ID uuid.UUID `json:"id"`
	// Secret is the shared secret (base32), shown once.
	Secret string `json:"secret"`
	// URI is the otpauth:// URI an authenticator app reads (as a QR code).
	URI string `json:"otpauth_uri"`
}

// Service keeps factors.
type Service struct {
	DB     *store.DB
	Sealer *seal.Sealer
	Audit  audit.Recorder
	Now    func() time.Time
	// RP is the WebAuthn relying party (no ID: no passkeys).
	RP RelyingParty
	// Groups lists the groups a person is in, with the groups above them
	// (for mfa.required_for_groups).
	Groups func(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]uuid.UUID, error)

	mu       sync.Mutex
	failures map[uuid.UUID][]time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func aad(tenant, user, factor uuid.UUID) []byte {
	return []byte("mfa|" + tenant.String() + "|" + user.String() + "|" + factor.String())
}

// EnrollTOTP starts a TOTP enrolment for user (in the tenant of ctx),
// named for the authenticator app by issuer and account. An unconfirmed
// earlier enrolment is replaced.
func (s *Service) EnrollTOTP(ctx context.Context, user uuid.UUID, issuer, account, name string) (*Enrollment, error) {
	if name = strings.TrimSpace(name); name == "" {
		name = "Authenticator app"
	}
	if len(name) > 100 {
		return nil, apperr.Invalid("name", "at most 100 characters")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: uint(period / time.Second), Digits: otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1, SecretSize: 20})
	if err != nil {
		return nil, err
	}
	tid, _ := store.TenantFrom(ctx)
	id := uuid.Must(uuid.NewV7())
	sealed := base64.RawStdEncoding.EncodeToString(s.Sealer.Seal([]byte(key.Secret()), aad(tid, user, id)))
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := deleteUnconfirmedTx(ctx, tx, user); err != nil {
			return err
		}
		return insertFactorTx(ctx, tx, id, user, KindTOTP, name, sealed, s.now())
	})
	if err != nil {
		return nil, err
	}
	return &Enrollment{ID: id, Secret: key.Secret(), URI: key.URL()}, nil
}

// ConfirmTOTP confirms an enrolment with a code from the app; the factor
// counts from then on. The person's first factor comes with recovery
// codes, returned once.
func (s *Service) ConfirmTOTP(ctx context.Context, user, id uuid.UUID, code string) ([]string, error) {
	if !s.allow(user) {
		return nil, ErrTooMany
	}
	tid, _ := store.TenantFrom(ctx)
	var codes []string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		f, err := factorTx(ctx, tx, user, id)
		if err != nil || f == nil || f.confirmed != nil {
			if err == nil {
				err = apperr.NotFound("enrolment")
			}
			return err
		}
		step, ok := s.match(f, tid, user, code, 0)
		if !ok {
			s.fail(user)
			return ErrBadCode
		}
		if err := confirmFactorTx(ctx, tx, id, step, s.now()); err != nil {
			return err
		}
		if codes, err = s.firstCodesTx(ctx, tx, user); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "user.mfa.enroll", "user", user.String(), map[string]string{"kind": KindTOTP, "factor": id.String()})
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// Enrolled reports whether a person has a confirmed second factor.
func (s *Service) Enrolled(ctx context.Context, user uuid.UUID) (bool, error) {
	var n int
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		n, err = confirmedCountTx(ctx, tx, user)
		return err
	})
	return n > 0, err
}

// Factors lists a person's factors, and how many recovery codes they have
// left.
func (s *Service) Factors(ctx context.Context, user uuid.UUID) ([]Factor, int, error) {
	var out []Factor
	var left int
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		if out, err = factorsTx(ctx, tx, user); err != nil {
			return err
		}
		left, err = recoveryLeftTx(ctx, tx, user)
		return err
	})
	return out, left, err
}

// Remove deletes one of a person's factors; with the last one go the
// recovery codes.
func (s *Service) Remove(ctx context.Context, user, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := deleteFactorTx(ctx, tx, user, id)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("factor")
		}
		if n, err := confirmedCountTx(ctx, tx, user); err != nil || n > 0 {
			return err
		}
		if err := deleteRecoveryTx(ctx, tx, user); err != nil {
			return err
		}
		if err := forgetDevicesTx(ctx, tx, user); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "user.mfa.remove", "user", user.String(), map[string]string{"factor": id.String()})
	})
}

// ResetEvent is the outbox event of an admin's reset of a person's
// factors: the account module mails them a notice.
const ResetEvent = "account.mfa_reset"

// ResetAll removes every factor and recovery code of a person (an admin's
// recovery for someone who lost them): audited, and the person is told.
func (s *Service) ResetAll(ctx context.Context, user uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		n, err := deleteFactorsTx(ctx, tx, user)
		if err != nil {
			return err
		}
		if err := deleteRecoveryTx(ctx, tx, user); err != nil {
			return err
		}
		if err := forgetDevicesTx(ctx, tx, user); err != nil {
			return err
		}
		if n > 0 {
			if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: ResetEvent, ID: user.String(), Version: s.now().UnixNano()}, nil); err != nil {
				return err
			}
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "user.mfa.reset", "user", user.String(), map[string]int{"factors": n})
	})
}

// RegenerateRecovery replaces a person's recovery codes (the old set
// stops working) and returns the new ones, once.
func (s *Service) RegenerateRecovery(ctx context.Context, user uuid.UUID) ([]string, error) {
	var codes []string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		n, err := confirmedCountTx(ctx, tx, user)
		if err != nil {
			return err
		}
		if n == 0 {
			return apperr.New(apperr.KindConflict, "enrol a second factor first")
		}
		if err := deleteRecoveryTx(ctx, tx, user); err != nil {
			return err
		}
		if codes, err = s.newRecoveryTx(ctx, tx, user); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "user.mfa.recovery_codes", "user", user.String(), nil)
	})
	return codes, err
}

// Verify checks a second-factor code of a person: a TOTP code of one of
// their confirmed authenticators (a step not used before; the window is
// one step either side), or an unused recovery code (spent). It returns
// the RFC 8176 method: "otp". Wrong codes are counted per person.
func (s *Service) Verify(ctx context.Context, user uuid.UUID, code string) (string, error) {
	if !s.allow(user) {
		return "", ErrTooMany
	}
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	tid, _ := store.TenantFrom(ctx)
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		fs, err := confirmedTx(ctx, tx, user)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if step, ok := s.match(f, tid, user, code, f.lastStep); ok {
				used, err := useStepTx(ctx, tx, f.id, f.lastStep, step)
				if err != nil || used {
					return err
				}
			}
		}
		if len(code) == 11 && code[5] == '-' { // a recovery code: xxxxx-xxxxx
			used, err := useRecoveryTx(ctx, tx, user, hashCode(code), s.now())
			if err != nil || used {
				return err
			}
		}
		return ErrBadCode
	})
	if err != nil {
		if errors.Is(err, ErrBadCode) {
			s.fail(user)
		}
		return "", err
	}
	return "otp", nil
}

// match reports whether code is the TOTP code of a step later than after,
// within one step of now, and which.
func (s *Service) match(f *factorRow, tenant, user uuid.UUID, code string, after int64) (int64, bool) {
	raw, err := base64.RawStdEncoding.DecodeString(f.secret)
	if err != nil || len(code) != 6 {
		return 0, false
	}
	secret, err := s.Sealer.Open(raw, aad(tenant, user, f.id))
	if err != nil {
		return 0, false
	}
	now := s.now().Unix() / int64(period/time.Second)
	for step := now - 1; step <= now+1; step++ {
		if step <= after {
			continue
		}
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(step*int64(period/time.Second), 0),
			totp.ValidateOpts{Period: uint(period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// firstCodesTx makes a person's recovery codes if they have none left (a
// first factor comes with them); nil: they have some.
func (s *Service) firstCodesTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]string, error) {
	left, err := recoveryLeftTx(ctx, tx, user)
	if err != nil || left > 0 {
		return nil, err
	}
	return s.newRecoveryTx(ctx, tx, user)
}

// newRecoveryTx makes a person's recovery codes: 10 of 50 random bits,
// shown as xxxxx-xxxxx (base32, lower case).
func (s *Service) newRecoveryTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]string, error) {
	codes := make([]string, 0, recoveryCount)
	for range recoveryCount {
		b := make([]byte, 7)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		c := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:10]
		c = c[:5] + "-" + c[5:]
		if err := insertRecoveryTx(ctx, tx, user, hashCode(c), s.now()); err != nil {
			return nil, err
		}
		codes = append(codes, c)
	}
	return codes, nil
}

func hashCode(c string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(c)))
	return hex.EncodeToString(sum[:])
}

// allow reports whether a person may try another code: at most 5 wrong
// ones per 5 minutes.
func (s *Service) allow(user uuid.UUID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	kept := s.failures[user][:0]
	for _, at := range s.failures[user] {
		if now.Sub(at) < 5*time.Minute {
			kept = append(kept, at)
		}
	}
	if s.failures == nil {
		s.failures = map[uuid.UUID][]time.Time{}
	}
	s.failures[user] = kept
	return len(kept) < 5
}

func (s *Service) fail(user uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == nil || len(s.failures) > 100_000 {
		s.failures = map[uuid.UUID][]time.Time{}
	}
	s.failures[user] = append(s.failures[user], s.now())
}
