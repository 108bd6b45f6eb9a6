package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Key algorithms.
const (
	ES256 = "ES256"
	RS256 = "RS256"
)

// Key statuses: the active key signs; passive keys only verify until
// their retire time; retired keys do neither.
const (
	KeyActive  = "active"
	KeyPassive = "passive"
	KeyRetired = "retired"
)

// KeyEventKind is the change-event kind of signing keys.
const KeyEventKind = "signing_key"

// KeyInfo describes a signing key (never its private part).
type KeyInfo struct {
	ID        string          `json:"kid"`
	Alg       string          `json:"alg"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
	RotatedAt *time.Time      `json:"rotated_at,omitempty"`
	RetireAt  *time.Time      `json:"retire_at,omitempty"`
	PublicJWK json.RawMessage `json:"public_jwk"`
}

type keyEntry struct {
	tenant   uuid.UUID
	kid      string
	alg      string
	status   string
	public   crypto.PublicKey
	signer   jose.Signer   // typ JWT: ID tokens, other signed claims
	atSigner jose.Signer   // typ at+jwt: access tokens
	priv     crypto.Signer // active keys only: detached signatures need their own header
	retireAt *time.Time
}

func (k *keyEntry) verifies(now time.Time) bool {
	return k.status == KeyActive || (k.status == KeyPassive && (k.retireAt == nil || now.Before(*k.retireAt)))
}

func aad(kid string) []byte { return []byte("signing_key:" + kid) }

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, apperr.Invalid("alg", "must be ES256 or RS256")
}

// newSigner signs JWTs of type typ ("JWT", or "at+jwt" for access
// tokens: RFC 9068 §2.1) with priv.
func newSigner(alg, kid string, priv crypto.Signer, typ jose.ContentType) (jose.Signer, error) {
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg}},
		(&jose.SignerOptions{}).WithType(typ))
}

// Rotate makes a new active key for tenant; the previous active key turns
// passive and keeps verifying for the overlap period.
func (s *Service) Rotate(ctx context.Context, tenant uuid.UUID, alg string) (*KeyInfo, error) {
	if alg == "" {
		alg = ES256
	}
	priv, err := generate(alg)
	if err != nil {
		return nil, err
	}
	kid := uuid.Must(uuid.NewV7()).String()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	now := store.Now()
	retire := now.Add(s.cfg.Overlap)
	ctx = store.WithTenant(ctx, tenant)
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := replaceActiveKey(ctx, tx, now, retire, kid, alg, s.cfg.Sealer.Seal(der, aad(kid)), pub); err != nil {
			return err
		}
		return events.Publish(ctx, tx, events.Change{TenantID: tenant, Kind: KeyEventKind, ID: kid, Version: 1}, map[string]string{"alg": alg})
	})
	if err != nil {
		return nil, err
	}
	s.dropTenantKeys(tenant)
	return &KeyInfo{ID: kid, Alg: alg, Status: KeyActive, CreatedAt: now, PublicJWK: pub}, nil
}

// Keys lists a tenant's keys, newest first.
func (s *Service) Keys(ctx context.Context, tenant uuid.UUID) ([]KeyInfo, error) {
	ctx = store.WithTenant(ctx, tenant)
	var out []KeyInfo
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listKeys(ctx, tx)
		return err
	})
	return out, err
}

// JWKS returns the keys that verify the tenant's tokens (active and
// passive ones). While the store cannot be read, the set last read is
// served.
func (s *Service) JWKS(ctx context.Context, tenant uuid.UUID) (*jose.JSONWebKeySet, error) {
	set, err := s.readJWKS(ctx, tenant)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.jwks[tenant] = set
		return set, nil
	}
	if last := s.jwks[tenant]; last != nil && apperr.KindOf(err) == apperr.KindUnavailable {
		return last, nil
	}
	return nil, err
}

func (s *Service) readJWKS(ctx context.Context, tenant uuid.UUID) (*jose.JSONWebKeySet, error) {
	if _, err := s.activeKey(ctx, tenant); err != nil {
		return nil, err
	}
	keys, err := s.Keys(ctx, tenant)
	if err != nil {
		return nil, err
	}
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	now := time.Now()
	for _, k := range keys {
		if k.Status == KeyRetired || (k.RetireAt != nil && !now.Before(*k.RetireAt) && k.Status != KeyActive) {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(k.PublicJWK); err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jwk)
	}
	return set, nil
}

// activeKey returns the tenant's signing key, creating the first one.
func (s *Service) activeKey(ctx context.Context, tenant uuid.UUID) (*keyEntry, error) {
	s.mu.RLock()
	k := s.active[tenant]
	s.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	k, err := s.loadActive(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if k == nil {
		if _, err := s.Rotate(ctx, tenant, ES256); err != nil && apperr.KindOf(err) != apperr.KindAlreadyExists {
			return nil, err
		}
		// A concurrent first rotation may have won: use what is stored.
		if k, err = s.loadActive(ctx, tenant); err != nil || k == nil {
			return nil, fmt.Errorf("token: no active key for tenant: %w", err)
		}
	}
	s.mu.Lock()
	s.active[tenant] = k
	s.keys[k.kid] = k
	s.mu.Unlock()
	return k, nil
}

func (s *Service) loadActive(ctx context.Context, tenant uuid.UUID) (*keyEntry, error) {
	ctx = store.WithTenant(ctx, tenant)
	var k *keyEntry
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		e := &keyEntry{tenant: tenant}
		sealed, err := activeKeyRow(ctx, tx, e)
		if store.NoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		der, err := s.cfg.Sealer.Open(sealed, aad(e.kid))
		if err != nil {
			return err
		}
		pk, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return err
		}
		signer, ok := pk.(crypto.Signer)
		if !ok {
			return fmt.Errorf("token: key %s is not a signer", e.kid)
		}
		e.public, e.priv = signer.Public(), signer
		if e.signer, err = newSigner(e.alg, e.kid, signer, "JWT"); err != nil {
			return err
		}
		if e.atSigner, err = newSigner(e.alg, e.kid, signer, "at+jwt"); err != nil {
			return err
		}
		k = e
		return nil
	})
	return k, err
}

// verifyingKey finds a key by kid (any tenant: kids are unique), with a
// negative cache so garbage kids cost one lookup per interval.
func (s *Service) verifyingKey(ctx context.Context, kid string) (*keyEntry, error) {
	s.mu.RLock()
	k, ok := s.keys[kid]
	miss, missed := s.misses[kid]
	s.mu.RUnlock()
	if ok {
		return k, nil
	}
	if missed && time.Now().Before(miss) {
		return nil, nil
	}
	if _, err := uuid.Parse(kid); err != nil {
		return nil, nil
	}
	var e *keyEntry
	err := s.cfg.DB.SystemRead(ctx, func(tx *store.Tx) error {
		k := &keyEntry{kid: kid}
		pub, err := keyByID(ctx, tx, k)
		if store.NoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(pub); err != nil {
			return err
		}
		k.public = jwk.Key
		e = k
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e == nil {
		if len(s.misses) > 10000 {
			clear(s.misses)
		}
		s.misses[kid] = time.Now().Add(5 * time.Second)
		return nil, nil
	}
	s.keys[kid] = e
	return e, nil
}

// dropTenantKeys forgets a tenant's cached keys (after a rotation here or
// on another replica).
func (s *Service) dropTenantKeys(tenant uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, tenant)
	for kid, k := range s.keys {
		if k.tenant == tenant {
			delete(s.keys, kid)
		}
	}
	clear(s.misses)
}

// RunRotation rotates every tenant's active key older than RotateEvery
// and retires passive keys past their retire time, until ctx ends.
func (s *Service) RunRotation(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RotationCheck)
	defer t.Stop()
	for {
		if err := s.rotateDue(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("key rotation failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Service) rotateDue(ctx context.Context) error {
	cutoff := store.Now().Add(-s.cfg.RotateEvery)
	var due []dueKey
	err := s.cfg.DB.SystemRead(ctx, func(tx *store.Tx) error {
		var err error
		due, err = keysDue(ctx, tx, cutoff)
		return err
	})
	if err != nil {
		return err
	}
	for _, d := range due {
		// A deleted tenant's keys stay as they are (its tokens are dead).
		if _, err := s.cfg.Tenants.SlugOf(ctx, d.tenant); apperr.KindOf(err) == apperr.KindNotFound {
			continue
		} else if err != nil {
			return err
		}
		if _, err := s.Rotate(ctx, d.tenant, d.alg); err != nil {
			return err
		}
		s.cfg.Logger.Info("rotated signing key", "tenant_id", d.tenant.String(), "alg", d.alg)
	}
	return s.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error { return retireExpiredKeys(ctx, tx, store.Now()) })
}

// SignDetached signs payload with the tenant's active key as a JWS with a
// detached payload (RFC 7515 appendix F): it returns the protected header
// and the signature, both base64url. The header names the key (kid) and,
// when jku is given, where to fetch it.
func (s *Service) SignDetached(ctx context.Context, tenant uuid.UUID, payload []byte, jku string) (protected, signature string, err error) {
	k, err := s.activeKey(ctx, tenant)
	if err != nil {
		return "", "", err
	}
	opts := (&jose.SignerOptions{}).WithType("JOSE")
	if jku != "" {
		opts = opts.WithHeader("jku", jku)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: k.alg}}, opts)
	if err != nil {
		return "", "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", "", err
	}
	compact, err := jws.DetachedCompactSerialize()
	if err != nil {
		return "", "", err
	}
	protected, rest, _ := strings.Cut(compact, ".")
	_, signature, _ = strings.Cut(rest, ".")
	return protected, signature, nil
}

// SignClaims signs claims (any JSON object) with the tenant's active key
// as a compact JWS of type JWT: for tokens that are not access tokens
// (push-notification tokens).
func (s *Service) SignClaims(ctx context.Context, tenant uuid.UUID, claims any) (string, error) {
	k, err := s.activeKey(ctx, tenant)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
