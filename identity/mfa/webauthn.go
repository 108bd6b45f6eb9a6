package mfa

// WebAuthn (passkeys and security keys, go-webauthn): registration and
// authentication ceremonies for one relying party (webauthn.rp_id, the
// host people reach the sign-in pages at) shared by every tenant. A
// credential belongs to one person of one tenant: it is found by its id
// within the tenant that is signing in, so a passkey made at one tenant
// is unknown at every other. The user handle is the person's id.
//
// A ceremony's state (go-webauthn's session data: the challenge, the
// allowed credentials, the user verification asked) travels with the
// browser sealed with the KEK, bound to the tenant and the ceremony's
// purpose; a challenge is spent when its answer is accepted, and a spent
// one is refused until it expires.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
)

// KindWebAuthn is a passkey or security key (WebAuthn).
const KindWebAuthn = "webauthn"

// ceremonyTTL is how long a begun ceremony may be answered.
const ceremonyTTL = 5 * time.Minute

// The purposes of ceremonies.
const (
	purposeRegister = "register"
	purposeSecond   = "second"
	purposePasskey  = "passkey"
)

// Errors.
var (
	// ErrBadAssertion is the one answer to an assertion that is not
	// accepted: unknown credential, wrong origin, relying party or
	// challenge, bad signature, counter gone backwards, spent challenge.
	ErrBadAssertion = apperr.New(apperr.KindUnauthenticated, "the passkey or security key could not be verified")
	// ErrCeremony answers a ceremony state that is not ours, not for this
	// step, or expired.
	ErrCeremony = apperr.New(apperr.KindInvalidArgument, "the ceremony is invalid or expired; start again")
)

// RelyingParty is the WebAuthn relying party: its id and the origins its
// pages are served at.
type RelyingParty struct {
	ID      string
	Origins []string
}

// Ceremony is a WebAuthn ceremony begun: the options for the browser
// (navigator.credentials.create or .get, after
// PublicKeyCredential.parse…OptionsFromJSON) and the state that comes
// back with the authenticator's answer.
type Ceremony struct {
	State     string          `json:"ceremony" doc:"sent back with the authenticator's answer (valid 5 minutes)"`
	PublicKey json.RawMessage `json:"publicKey" doc:"PublicKeyCredentialCreationOptionsJSON or PublicKeyCredentialRequestOptionsJSON"`
}

type ceremonyState struct {
	Purpose string               `json:"p"`
	User    uuid.UUID            `json:"u"`
	Session webauthn.SessionData `json:"s"`
}

// person is a person as go-webauthn sees them.
type person struct {
	id            uuid.UUID
	name, display string
	creds         []webauthn.Credential
}

func (p *person) WebAuthnID() []byte                         { return p.id[:] }
func (p *person) WebAuthnName() string                       { return p.name }
func (p *person) WebAuthnDisplayName() string                { return p.display }
func (p *person) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// relyingParty is go-webauthn for a tenant (its name shown by the
// authenticator) and its policy.
func (s *Service) relyingParty(name string, pol tenant.MFAPolicy) (*webauthn.WebAuthn, error) {
	if s.RP.ID == "" {
		return nil, apperr.New(apperr.KindUnavailable, "passkeys are not configured here")
	}
	if name == "" {
		name = "xavyo"
	}
	t := webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL}
	cfg := &webauthn.Config{RPID: s.RP.ID, RPDisplayName: name, RPOrigins: s.RP.Origins,
		AuthenticatorSelection: protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred},
		Timeouts: webauthn.TimeoutsConfig{Login: t, Registration: t}}
	if len(pol.AllowedAAGUIDs) > 0 {
		cfg.AttestationPreference = protocol.PreferDirectAttestation
		cfg.Filtering = &webauthn.FilteringConfig{PermittedAAGUIDs: pol.AllowedAAGUIDs}
	}
	return webauthn.New(cfg)
}

func ceremonyAAD(tenant uuid.UUID, purpose string) []byte {
	return []byte("webauthn|" + tenant.String() + "|" + purpose)
}

// seal makes a ceremony of options and state.
func (s *Service) seal(tenant uuid.UUID, st ceremonyState, options any) (*Ceremony, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, err
	}
	return &Ceremony{State: base64.RawURLEncoding.EncodeToString(s.Sealer.Seal(raw, ceremonyAAD(tenant, st.Purpose))), PublicKey: opts}, nil
}

// open reads a ceremony's state, for purpose at tenant.
func (s *Service) open(tenant uuid.UUID, purpose, state string) (*ceremonyState, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(state)
	if err != nil || len(state) > 8192 {
		return nil, ErrCeremony
	}
	raw, err := s.Sealer.Open(sealed, ceremonyAAD(tenant, purpose))
	if err != nil {
		return nil, ErrCeremony
	}
	var st ceremonyState
	if json.Unmarshal(raw, &st) != nil || st.Purpose != purpose || st.Session.Expires.Before(time.Now()) {
		return nil, ErrCeremony
	}
	return &st, nil
}

// credentials are a person's WebAuthn credentials.
func credentialsOf(rows []*factorRow) ([]webauthn.Credential, error) {
	out := make([]webauthn.Credential, 0, len(rows))
	for _, r := range rows {
		var c webauthn.Credential
		if err := json.Unmarshal([]byte(r.secret), &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// CheckAnswer checks that an authenticator's answer, as a request field,
// is a JSON object (PublicKeyCredential.toJSON()).
func CheckAnswer(field string, answer []byte) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(answer, &m) != nil || m == nil {
		return apperr.Invalid(field, "must be a JSON object: the authenticator's answer (PublicKeyCredential.toJSON())")
	}
	return nil
}

// BeginRegistration starts registering a passkey or security key for a
// person (in the tenant of ctx): account and display name the person to
// their authenticator, rpName the tenant. Their other credentials are
// excluded, so one authenticator is registered once.
func (s *Service) BeginRegistration(ctx context.Context, user uuid.UUID, account, display, rpName string, pol tenant.MFAPolicy) (*Ceremony, error) {
	w, err := s.relyingParty(rpName, pol)
	if err != nil {
		return nil, err
	}
	var rows []*factorRow
	if err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err = webauthnFactorsTx(ctx, tx, user)
		return err
	}); err != nil {
		return nil, err
	}
	creds, err := credentialsOf(rows)
	if err != nil {
		return nil, err
	}
	p := &person{id: user, name: account, display: display, creds: creds}
	exclude := make([]protocol.CredentialDescriptor, 0, len(creds))
	for _, c := range creds {
		exclude = append(exclude, c.Descriptor())
	}
	creation, session, err := w.BeginRegistration(p, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, err
	}
	tid, _ := store.TenantFrom(ctx)
	return s.seal(tid, ceremonyState{Purpose: purposeRegister, User: user, Session: *session}, creation.Response)
}

// FinishRegistration verifies an authenticator's answer to a
// registration (the JSON of PublicKeyCredential.toJSON()) and keeps the
// credential, named. Where the tenant lists the authenticator models it
// accepts, the answer must carry an attestation of one of them. The
// person's first factor comes with recovery codes, returned once.
func (s *Service) FinishRegistration(ctx context.Context, user uuid.UUID, state string, answer []byte, name string, pol tenant.MFAPolicy) (*Factor, []string, error) {
	if name = strings.TrimSpace(name); name == "" {
		name = "Passkey"
	}
	if len(name) > 100 {
		return nil, nil, apperr.Invalid("name", "at most 100 characters")
	}
	tid, _ := store.TenantFrom(ctx)
	st, err := s.open(tid, purposeRegister, state)
	if err != nil {
		return nil, nil, err
	}
	if st.User != user {
		return nil, nil, ErrCeremony
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(answer)
	if err != nil {
		return nil, nil, apperr.Wrap(err, apperr.KindInvalidArgument, "the authenticator's answer is not a registration")
	}
	w, err := s.relyingParty("", pol)
	if err != nil {
		return nil, nil, err
	}
	id := uuid.Must(uuid.NewV7())
	now := s.now()
	var codes []string
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if ok, err := spendTx(ctx, tx, st.Session.Challenge, st.Session.Expires, now); err != nil || !ok {
			if err == nil {
				err = ErrCeremony
			}
			return err
		}
		rows, err := webauthnFactorsTx(ctx, tx, user)
		if err != nil {
			return err
		}
		creds, err := credentialsOf(rows)
		if err != nil {
			return err
		}
		cred, err := w.CreateCredential(&person{id: user, creds: creds}, st.Session, parsed)
		if err != nil {
			return apperr.Wrap(err, apperr.KindInvalidArgument, "the passkey could not be verified: %s", publicReason(err))
		}
		if len(pol.AllowedAAGUIDs) > 0 {
			aaguid, _ := uuid.FromBytes(cred.Authenticator.AAGUID)
			if cred.AttestationFormat == "" || cred.AttestationFormat == string(protocol.AttestationFormatNone) || !slices.Contains(pol.AllowedAAGUIDs, aaguid) {
				return apperr.New(apperr.KindPermissionDenied, "this organization does not accept this model of authenticator")
			}
		}
		raw, err := json.Marshal(cred)
		if err != nil {
			return err
		}
		credID := base64.RawURLEncoding.EncodeToString(cred.ID)
		if other, err := credentialTx(ctx, tx, credID); err != nil || other != nil {
			if err == nil {
				err = apperr.New(apperr.KindAlreadyExists, "this authenticator is already registered")
			}
			return err
		}
		if err := insertCredentialTx(ctx, tx, id, user, name, string(raw), credID, now); err != nil {
			return err
		}
		if codes, err = s.firstCodesTx(ctx, tx, user); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "user.mfa.enroll", "user", user.String(),
			map[string]any{"kind": KindWebAuthn, "factor": id.String(), "aaguid": aaguidOf(cred), "backup_eligible": cred.Flags.BackupEligible})
	})
	if err != nil {
		return nil, nil, err
	}
	return &Factor{ID: id, Kind: KindWebAuthn, Name: name, ConfirmedAt: &now, CreatedAt: now}, codes, nil
}

func aaguidOf(c *webauthn.Credential) string {
	u, err := uuid.FromBytes(c.Authenticator.AAGUID)
	if err != nil {
		return ""
	}
	return u.String()
}

// publicReason is what a go-webauthn error says, short.
func publicReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return "invalid answer"
}

// BeginAssertion starts the second step of a person's sign-in with one of
// their passkeys or security keys (nil: they have none).
func (s *Service) BeginAssertion(ctx context.Context, user uuid.UUID, rpName string) (*Ceremony, error) {
	var rows []*factorRow
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		rows, err = webauthnFactorsTx(ctx, tx, user)
		return err
	})
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	creds, err := credentialsOf(rows)
	if err != nil {
		return nil, err
	}
	w, err := s.relyingParty(rpName, tenant.MFAPolicy{})
	if err != nil {
		return nil, err
	}
	assertion, session, err := w.BeginLogin(&person{id: user, creds: creds})
	if err != nil {
		return nil, err
	}
	tid, _ := store.TenantFrom(ctx)
	return s.seal(tid, ceremonyState{Purpose: purposeSecond, User: user, Session: *session}, assertion.Response)
}

// BeginPasskey starts a username-less sign-in with a passkey: the
// authenticator offers the person's discoverable credentials for this
// relying party, and must verify the person (PIN, biometrics).
func (s *Service) BeginPasskey(ctx context.Context, rpName string) (*Ceremony, error) {
	w, err := s.relyingParty(rpName, tenant.MFAPolicy{})
	if err != nil {
		return nil, err
	}
	assertion, session, err := w.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, err
	}
	tid, _ := store.TenantFrom(ctx)
	return s.seal(tid, ceremonyState{Purpose: purposePasskey, Session: *session}, assertion.Response)
}

// FinishAssertion verifies an authenticator's answer (the JSON of
// PublicKeyCredential.toJSON()) to a ceremony of BeginAssertion (user:
// the person signing in) or BeginPasskey (user uuid.Nil: the credential
// names them). It returns the person and the RFC 8176 methods: hwk, and
// user when the authenticator verified the person (always for a
// passkey sign-in).
func (s *Service) FinishAssertion(ctx context.Context, user uuid.UUID, state string, answer []byte) (uuid.UUID, []string, error) {
	tid, _ := store.TenantFrom(ctx)
	purpose := purposeSecond
	if user == uuid.Nil {
		purpose = purposePasskey
	}
	st, err := s.open(tid, purpose, state)
	if err != nil {
		return uuid.Nil, nil, err
	}
	if st.User != user {
		return uuid.Nil, nil, ErrCeremony
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(answer)
	if err != nil {
		return uuid.Nil, nil, apperr.Wrap(err, apperr.KindUnauthenticated, "%s", apperr.PublicMessage(ErrBadAssertion))
	}
	w, err := s.relyingParty("", tenant.MFAPolicy{})
	if err != nil {
		return uuid.Nil, nil, err
	}
	now := s.now()
	var owner uuid.UUID
	var failure error
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		row, err := credentialTx(ctx, tx, base64.RawURLEncoding.EncodeToString(parsed.RawID))
		if err != nil {
			return err
		}
		if row == nil || (user != uuid.Nil && row.user != user) {
			failure = errors.New("unknown credential")
			return nil
		}
		owner = row.user
		rows, err := webauthnFactorsTx(ctx, tx, owner)
		if err != nil {
			return err
		}
		creds, err := credentialsOf(rows)
		if err != nil {
			return err
		}
		p := &person{id: owner, creds: creds}
		var cred *webauthn.Credential
		if user == uuid.Nil {
			_, cred, err = w.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
				if !bytes.Equal(handle, owner[:]) {
					return nil, errors.New("the user handle does not name the credential's owner")
				}
				return p, nil
			}, st.Session, parsed)
		} else {
			cred, err = w.ValidateLogin(p, st.Session, parsed)
		}
		switch {
		case err != nil:
			failure = err
			return nil
		case cred.Authenticator.CloneWarning:
			failure = errors.New("the signature counter went backwards: the authenticator may be cloned")
			return nil
		}
		if ok, err := spendTx(ctx, tx, st.Session.Challenge, st.Session.Expires, now); err != nil || !ok {
			if err == nil {
				failure = errors.New("the challenge was spent")
			}
			return err
		}
		raw, err := json.Marshal(cred)
		if err != nil {
			return err
		}
		return updateCredentialTx(ctx, tx, row.id, string(raw), now)
	})
	if err != nil {
		return uuid.Nil, nil, err
	}
	if failure != nil {
		if owner != uuid.Nil {
			s.recordFailure(ctx, owner, failure)
		}
		return uuid.Nil, nil, apperr.Wrap(failure, apperr.KindUnauthenticated, "%s", apperr.PublicMessage(ErrBadAssertion))
	}
	amr := []string{"hwk"}
	if parsed.Response.AuthenticatorData.Flags.UserVerified() {
		amr = append(amr, "user")
	}
	return owner, amr, nil
}

// recordFailure audits an assertion refused for a known credential.
func (s *Service) recordFailure(ctx context.Context, user uuid.UUID, why error) {
	tid, _ := store.TenantFrom(ctx)
	if s.Audit == nil {
		return
	}
	reason := why.Error()
	var pe *protocol.Error
	if errors.As(why, &pe) {
		reason = strings.TrimSpace(pe.Details + " " + pe.DevInfo)
	}
	_ = s.Audit.AppendSync(ctx, audit.Entry{TenantID: tid, Action: "user.mfa.webauthn", Outcome: audit.OutcomeFailure, TargetKind: "user",
		TargetID: user.String(), ActorKind: "user", ActorID: user.String(), Details: map[string]string{"reason": reason}})
}
