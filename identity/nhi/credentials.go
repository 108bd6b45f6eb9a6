package nhi

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Policies gives a tenant's policies.
type Policies interface {
	Policies(ctx context.Context, id uuid.UUID) (tenant.Policies, int64, error)
}

type credPolicy struct {
	maxAge, grace time.Duration
	certLifetime  time.Duration
}

func (s *Service) credentialPolicy(ctx context.Context) (credPolicy, error) {
	p := tenant.DefaultPolicies.Credentials
	if s.Policies != nil {
		tid, ok := store.TenantFrom(ctx)
		if !ok {
			return credPolicy{}, store.ErrNoTenant
		}
		all, _, err := s.Policies.Policies(ctx, tid)
		if err != nil {
			return credPolicy{}, err
		}
		p = all.Credentials
	}
	return credPolicy{maxAge: time.Duration(p.SecretMaxAgeDays) * 24 * time.Hour, grace: time.Duration(p.SecretGraceHours) * time.Hour,
		certLifetime: time.Duration(p.CertificateHours) * time.Hour}, nil
}

// CertificateLifetime is the tenant's default NHI certificate lifetime.
func (s *Service) CertificateLifetime(ctx context.Context) (time.Duration, error) {
	p, err := s.credentialPolicy(ctx)
	return p.certLifetime, err
}

// SecretInfo describes a client secret (never the secret).
type SecretInfo struct {
	ID        uuid.UUID  `json:"id"`
	Hint      string     `json:"hint" doc:"the secret's last four characters"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Active    bool       `json:"active"`
}

// Rotated is the result of a rotation: the new secret, shown once.
type Rotated struct {
	ClientID     string    `json:"client_id"`
	ClientSecret string    `json:"client_secret" doc:"shown once"`
	ExpiresAt    time.Time `json:"expires_at"`
	// PreviousValidUntil is when the secrets it replaces stop working.
	PreviousValidUntil time.Time `json:"previous_valid_until"`
}

// SecretEvent is the change-event kind of secret rotations (owners are
// notified through it).
const SecretEvent = "nhi.secret"

// RotateSecret issues a new client secret; the current ones keep working
// for the tenant's grace period (manage permission).
func (s *Service) RotateSecret(ctx context.Context, id uuid.UUID) (*Rotated, error) {
	pol, err := s.credentialPolicy(ctx)
	if err != nil {
		return nil, err
	}
	secret := NewSecret()
	now := s.now()
	out := &Rotated{ClientSecret: secret, ExpiresAt: now.Add(pol.maxAge), PreviousValidUntil: now.Add(pol.grace)}
	var n *NHI
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = get(ctx, tx, id, true); err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermManage); err != nil {
			return err
		}
		if n.Status == StatusArchived {
			return apperr.New(apperr.KindConflict, "an archived NHI has no credentials")
		}
		client, err := clientOf(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := expireSecrets(ctx, tx, client, out.PreviousValidUntil); err != nil {
			return err
		}
		if err := insertSecret(ctx, tx, client, secret, out.ExpiresAt); err != nil {
			return err
		}
		out.ClientID = n.ClientID
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: SecretEvent, ID: id.String(), Version: n.Version},
			map[string]any{"nhi_id": id, "owner_id": n.OwnerID, "previous_valid_until": out.PreviousValidUntil}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.secret.rotate", n, map[string]any{"previous_valid_until": out.PreviousValidUntil})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Secrets lists an NHI's client secrets.
func (s *Service) Secrets(ctx context.Context, id uuid.UUID) ([]SecretInfo, error) {
	now := s.now()
	var out []SecretInfo
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		n, err := get(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermManage); err != nil {
			return err
		}
		if out, err = secretsOf(ctx, tx, id); err != nil {
			return err
		}
		for i := range out {
			x := &out[i]
			x.Active = x.RevokedAt == nil && (x.ExpiresAt == nil || now.Before(*x.ExpiresAt))
		}
		return nil
	})
	return out, err
}

// VerifySecret authenticates an NHI's OAuth client: it returns the NHI
// when secret is one of the client's live secrets and the NHI is active.
func (s *Service) VerifySecret(ctx context.Context, clientID, secret string) (*NHI, error) {
	n, _, err := s.AuthenticateClient(ctx, clientID, secret)
	return n, err
}

// AuthenticateClient is VerifySecret that also returns the client's
// registered scope, in one read transaction (the token endpoint's path).
func (s *Service) AuthenticateClient(ctx context.Context, clientID, secret string) (*NHI, string, error) {
	bad := apperr.New(apperr.KindUnauthenticated, "invalid client credentials")
	if clientID == "" || len(secret) < 16 || len(secret) > 256 {
		return nil, "", bad
	}
	now := s.now()
	var n *NHI
	var scope string
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var nid uuid.UUID
		var err error
		nid, scope, err = liveSecretClient(ctx, tx, clientID, HashSecret(secret), now)
		if store.NoRows(err) {
			return bad
		}
		if err != nil {
			return err
		}
		n, err = get(ctx, tx, nid, false)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if n.Status != StatusActive {
		return nil, "", bad
	}
	return n, scope, nil
}

// ClientKeysInput replaces the public keys an NHI signs private_key_jwt
// client assertions with.
type ClientKeysInput struct {
	// Keys is a JWK set of public keys (ES256, RS256 ≥ 2048 bits or EdDSA), each with a unique kid.
	Keys json.RawMessage `json:"keys"`
}

// ClientKeys is an NHI client's registered public keys.
type ClientKeys struct {
	ClientID string          `json:"client_id"`
	Keys     json.RawMessage `json:"keys"`
}

// SetClientKeys validates and stores the public keys for private_key_jwt
// (manage permission). Private key material is refused.
func (s *Service) SetClientKeys(ctx context.Context, id uuid.UUID, in ClientKeysInput) (*ClientKeys, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(`{"keys":`+string(in.Keys)+`}`), &set); err != nil || len(in.Keys) == 0 {
		return nil, apperr.Invalid("keys", "must be an array of JWKs")
	}
	if len(set.Keys) > 10 {
		return nil, apperr.Invalid("keys", "at most 10 keys")
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		field := fmt.Sprintf("keys[%d]", i)
		if !k.IsPublic() {
			return nil, apperr.Invalid(field, "must be a public key (private material is never accepted)")
		}
		if k.KeyID == "" || seen[k.KeyID] {
			return nil, apperr.Invalid(field, "needs a unique kid")
		}
		seen[k.KeyID] = true
		switch pk := k.Key.(type) {
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P256() {
				return nil, apperr.Invalid(field, "EC keys must be P-256 (ES256)")
			}
		case *rsa.PublicKey:
			if pk.N.BitLen() < 2048 {
				return nil, apperr.Invalid(field, "RSA keys must be at least 2048 bits")
			}
		case ed25519.PublicKey:
		default:
			return nil, apperr.Invalid(field, "must be an EC P-256, RSA or Ed25519 key")
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, apperr.Invalid(field, `use must be "sig"`)
		}
	}
	raw, _ := json.Marshal(set)
	var out *ClientKeys
	var n *NHI
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = get(ctx, tx, id, true); err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermManage); err != nil {
			return err
		}
		if err := setClientKeys(ctx, tx, id, raw, s.now()); err != nil {
			return err
		}
		keys, _ := json.Marshal(set.Keys)
		out = &ClientKeys{ClientID: n.ClientID, Keys: keys}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: SecretEvent, ID: id.String(), Version: n.Version}, map[string]any{"client_keys": len(set.Keys)}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.client_keys.set", n, map[string]any{"kids": keysOf(set)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func keysOf(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// ExpiringEvent is the change-event kind that tells an NHI's owners a
// client secret expires soon (sent once per secret).
const ExpiringEvent = "nhi.secret_expiring"

// NotifyExpiring publishes an ExpiringEvent for every live secret that
// expires within the window and was not announced yet; it returns how many
// it announced. Every tenant is scanned (the system path).
func (s *Service) NotifyExpiring(ctx context.Context, window time.Duration) (int, error) {
	now := s.now()
	n := 0
	err := s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		n = 0
		all, err := claimExpiring(ctx, tx, now, now.Add(window))
		if err != nil {
			return err
		}
		for _, d := range all {
			nhiID, owner, backup, err := ownersOfClient(ctx, tx, d.tenant, d.client)
			if err != nil {
				return err
			}
			if err := events.Publish(ctx, tx, events.Change{TenantID: d.tenant, Kind: ExpiringEvent, ID: d.id.String(), Version: 1},
				map[string]any{"nhi_id": nhiID, "owner_id": owner, "backup_owner_id": backup, "expires_at": d.expires}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// RunExpiryNotices announces secrets expiring within a week, every interval, until ctx ends.
func (s *Service) RunExpiryNotices(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.NotifyExpiring(ctx, 7*24*time.Hour); err != nil && ctx.Err() == nil {
			slog.Default().Error("secret expiry notices failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ClientByID returns an active NHI's client: the NHI, its registered
// scope and its public keys (for private_key_jwt).
func (s *Service) ClientByID(ctx context.Context, clientID string) (*NHI, string, *jose.JSONWebKeySet, error) {
	bad := apperr.New(apperr.KindUnauthenticated, "invalid client credentials")
	var n *NHI
	var scope string
	var raw []byte
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var nid *uuid.UUID
		var err error
		nid, scope, raw, err = clientRow(ctx, tx, clientID)
		if store.NoRows(err) || (err == nil && nid == nil) {
			return bad
		}
		if err != nil {
			return err
		}
		n, err = get(ctx, tx, *nid, false)
		return err
	})
	if err != nil {
		return nil, "", nil, err
	}
	if n.Status != StatusActive {
		return nil, "", nil, bad
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, "", nil, err
	}
	return n, scope, &set, nil
}
