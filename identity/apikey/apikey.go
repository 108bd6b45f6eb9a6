// Package apikey keeps API keys for the admin plane (DESIGN §12):
// xvk_<public id>_<secret>, the secret kept as SHA-256, found by the
// public id. A key's rights are its scopes (admin role names, scim)
// within its owner's current roles; it may be limited to addresses and
// expire; revoking it counts on the next request on every replica (a
// change event drops it from every cache). Keys are never accepted on
// the agent plane (MCP and A2A take audience-bound tokens only).
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Prefix starts every key.
const Prefix = "xvk_"

// EventKind is the change event of keys.
const EventKind = "api_key"

// ScopeSCIM lets a key call the SCIM service provider.
const ScopeSCIM = "scim"

// Scopes a key may hold: admin role names, and scim.
var Scopes = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer, ScopeSCIM}

// ErrInvalidKey is the one answer to a key that does not work: unknown,
// wrong secret, revoked, expired, or from an address it does not allow.
var ErrInvalidKey = apperr.New(apperr.KindUnauthenticated, "the API key is invalid, revoked or expired")

// Key is an API key as its owner and admins see it (never its secret).
type Key struct {
	ID         uuid.UUID  `json:"id"`
	Prefix     string     `json:"prefix" doc:"xvk_<public id>: names the key in logs and lists"`
	Name       string     `json:"name"`
	OwnerKind  string     `json:"owner_kind" doc:"user or nhi"`
	OwnerID    uuid.UUID  `json:"owner_id"`
	Scopes     []string   `json:"scopes"`
	AllowedIPs []string   `json:"allowed_ips,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	UseCount   int64      `json:"use_count"`

	tenant uuid.UUID
	hash   string
	nets   []netip.Prefix
}

// CreateInput makes a key.
type CreateInput struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes" doc:"admin role names (tenant_admin, governance_admin, auditor, viewer) and scim; the key's rights are these within its owner's current roles"`
	// ExpiresAt, when set, ends the key.
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	AllowedIPs []string   `json:"allowed_ips,omitempty" doc:"addresses or CIDR ranges the key may be used from (default: any)"`
	// NHIID makes a key of a non-human identity (tenant admins only).
	NHIID *uuid.UUID `json:"nhi_id,omitempty" doc:"a key of this NHI instead of your own (tenant admins)"`
}

// Created is a new key: its secret is shown here only.
type Created struct {
	Key
	Secret string `json:"key" doc:"the key itself, shown once: present it as Authorization: Bearer xvk_…"`
}

// Service keeps keys.
type Service struct {
	DB    *store.DB
	Audit audit.Recorder
	Now   func() time.Time
	// NHI checks that an NHI of the tenant of ctx exists (an error of kind
	// NotFound otherwise) before a key is made for it.
	NHI func(ctx context.Context, id uuid.UUID) error

	mu    sync.RWMutex
	cache map[string]*entry // public id → key
	gen   uint64
}

type entry struct {
	key     *Key
	pending atomic.Int64 // uses not yet counted in the store
	flushed atomic.Int64 // unix seconds of the last count written
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a key for the caller (or, for a tenant admin, for an NHI
// of the tenant) and returns it with its secret, once. Keys cannot make
// keys.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Created, error) {
	p := principal.From(ctx)
	if p == nil || p.AuthMethod == principal.MethodAPIKey {
		return nil, apperr.New(apperr.KindPermissionDenied, "API keys are made with a sign-in, not with another key")
	}
	k := &Key{ID: uuid.Must(uuid.NewV7()), Name: strings.TrimSpace(in.Name), OwnerKind: string(principal.KindUser), Scopes: in.Scopes,
		AllowedIPs: in.AllowedIPs, ExpiresAt: in.ExpiresAt, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	switch {
	case in.NHIID != nil:
		if !p.HasRole(principal.RoleTenantAdmin) {
			return nil, apperr.New(apperr.KindPermissionDenied, "only tenant admins make keys for NHIs")
		}
		if s.NHI == nil {
			return nil, apperr.New(apperr.KindPermissionDenied, "keys for NHIs are not served here")
		}
		if err := s.NHI(ctx, *in.NHIID); err != nil {
			return nil, err
		}
		k.OwnerKind, k.OwnerID = string(principal.KindNHI), *in.NHIID
	case p.Kind == principal.KindUser:
		id, err := uuid.Parse(p.SubjectID)
		if err != nil {
			return nil, apperr.New(apperr.KindPermissionDenied, "only people make keys for themselves")
		}
		k.OwnerID = id
	default:
		return nil, apperr.New(apperr.KindPermissionDenied, "only people make keys for themselves")
	}
	if err := k.check(s.now()); err != nil {
		return nil, err
	}
	return s.create(ctx, k, nil)
}

func (k *Key) check(now time.Time) error {
	if k.Name == "" || len(k.Name) > 100 {
		return apperr.Invalid("name", "1 to 100 characters")
	}
	if len(k.Scopes) == 0 {
		return apperr.Invalid("scopes", "name at least one scope")
	}
	for _, sc := range k.Scopes {
		if !slices.Contains(Scopes, sc) {
			return apperr.Invalid("scopes", "each one of "+strings.Join(Scopes, ", "))
		}
	}
	slices.Sort(k.Scopes)
	k.Scopes = slices.Compact(k.Scopes)
	if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
		return apperr.Invalid("expires_at", "must be in the future")
	}
	if len(k.AllowedIPs) > 50 {
		return apperr.Invalid("allowed_ips", "at most 50")
	}
	k.nets = nil
	for _, a := range k.AllowedIPs {
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return apperr.Invalid("allowed_ips", "each an address or a CIDR range")
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		k.nets = append(k.nets, pfx.Masked())
	}
	return nil
}

// create stores a key (and, rotating, ends the old one at its new
// expiry) and returns it with its secret.
func (s *Service) create(ctx context.Context, k *Key, rotated *Key) (*Created, error) {
	pub := make([]byte, 10)
	sec := make([]byte, 32)
	if _, err := rand.Read(pub); err != nil {
		return nil, err
	}
	if _, err := rand.Read(sec); err != nil {
		return nil, err
	}
	publicID := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(pub))
	secret := base64.RawURLEncoding.EncodeToString(sec)
	k.Prefix, k.hash = Prefix+publicID, hash(secret)
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		k.tenant = tx.TenantID()
		if err := insertKeyTx(ctx, tx, k, publicID); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventKind, ID: publicID, Version: 1}, nil); err != nil {
			return err
		}
		if rotated != nil {
			if err := expireKeyTx(ctx, tx, rotated.ID, *rotated.ExpiresAt); err != nil {
				return err
			}
			if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventKind, ID: strings.TrimPrefix(rotated.Prefix, Prefix),
				Version: 2}, nil); err != nil {
				return err
			}
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "api_key.create", "api_key", k.ID.String(),
			map[string]any{"prefix": k.Prefix, "name": k.Name, "scopes": k.Scopes, "owner": k.OwnerID})
	})
	if err != nil {
		return nil, err
	}
	return &Created{Key: *k, Secret: k.Prefix + "_" + secret}, nil
}

// List returns the caller's keys, or (all, a tenant admin) the tenant's.
func (s *Service) List(ctx context.Context, all bool) ([]Key, error) {
	p := principal.From(ctx)
	var owner *uuid.UUID
	if !all || !p.HasRole(principal.RoleTenantAdmin) {
		id, err := uuid.Parse(p.SubjectID)
		if err != nil {
			return []Key{}, nil
		}
		owner = &id
	}
	var out []Key
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listKeysTx(ctx, tx, owner)
		return err
	})
	if out == nil {
		out = []Key{}
	}
	return out, err
}

// mine reads a key the caller may manage: their own, or any as a tenant
// admin.
func (s *Service) mine(ctx context.Context, tx *store.Tx, id uuid.UUID) (*Key, error) {
	k, err := keyTx(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	p := principal.From(ctx)
	if k == nil || (k.OwnerID.String() != p.SubjectID && !p.HasRole(principal.RoleTenantAdmin)) {
		return nil, apperr.NotFound("API key")
	}
	return k, nil
}

// Revoke ends a key at once, on every replica.
func (s *Service) Revoke(ctx context.Context, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		k, err := s.mine(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := revokeKeyTx(ctx, tx, id, s.now()); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventKind, ID: strings.TrimPrefix(k.Prefix, Prefix), Version: 3,
			Op: events.OpDelete}, nil); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "api_key.revoke", "api_key", id.String(), map[string]string{"prefix": k.Prefix})
	})
}

// Rotate makes a new key like an old one (name, scopes, addresses,
// expiry, owner) and ends the old one after overlap, so that clients can
// move to the new one.
func (s *Service) Rotate(ctx context.Context, id uuid.UUID, overlap time.Duration) (*Created, error) {
	if overlap < 0 || overlap > 7*24*time.Hour {
		return nil, apperr.Invalid("overlap_seconds", "from 0 to 7 days")
	}
	if p := principal.From(ctx); p == nil || p.AuthMethod == principal.MethodAPIKey {
		return nil, apperr.New(apperr.KindPermissionDenied, "API keys are rotated with a sign-in, not with a key")
	}
	var old *Key
	if err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		old, err = s.mine(ctx, tx, id)
		return err
	}); err != nil {
		return nil, err
	}
	if old.RevokedAt != nil || (old.ExpiresAt != nil && !old.ExpiresAt.After(s.now())) {
		return nil, apperr.New(apperr.KindConflict, "the key is revoked or expired")
	}
	k := &Key{ID: uuid.Must(uuid.NewV7()), Name: old.Name, OwnerKind: old.OwnerKind, OwnerID: old.OwnerID, Scopes: old.Scopes, AllowedIPs: old.AllowedIPs,
		ExpiresAt: old.ExpiresAt, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := k.check(s.now()); err != nil {
		return nil, err
	}
	ends := s.now().Add(overlap).UTC().Truncate(time.Microsecond)
	if old.ExpiresAt == nil || ends.Before(*old.ExpiresAt) {
		old.ExpiresAt = &ends
	}
	return s.create(ctx, k, old)
}

// Check returns the live key raw is, used from ip: the admin plane's
// authenticator calls it for every request with a key. A cache answers
// repeated uses; change events drop revoked and rotated keys from it.
func (s *Service) Check(ctx context.Context, raw, ip string) (*Key, uuid.UUID, error) {
	e, err := s.find(ctx, raw)
	if err != nil {
		return nil, uuid.Nil, err
	}
	if !e.key.allows(ip) {
		return nil, uuid.Nil, ErrInvalidKey
	}
	s.used(e, s.now())
	return e.key, e.key.tenant, nil
}

// find returns the live key raw is (its addresses aside).
func (s *Service) find(ctx context.Context, raw string) (*entry, error) {
	rest, ok := strings.CutPrefix(raw, Prefix)
	publicID, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(publicID) != 16 || len(secret) != 43 {
		return nil, ErrInvalidKey
	}
	e, err := s.entry(ctx, publicID)
	if err != nil {
		return nil, err
	}
	k := e.key
	if k == nil || subtle.ConstantTimeCompare([]byte(k.hash), []byte(hash(secret))) != 1 || k.RevokedAt != nil ||
		(k.ExpiresAt != nil && !s.now().Before(*k.ExpiresAt)) {
		return nil, ErrInvalidKey
	}
	return e, nil
}

func (k *Key) allows(ip string) bool {
	if len(k.nets) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, n := range k.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

func (s *Service) entry(ctx context.Context, publicID string) (*entry, error) {
	s.mu.RLock()
	e, ok := s.cache[publicID]
	gen := s.gen
	s.mu.RUnlock()
	if ok {
		return e, nil
	}
	var k *Key
	err := s.DB.SystemRead(ctx, func(tx *store.Tx) error {
		var err error
		k, err = keyByPublicIDTx(ctx, tx, publicID)
		return err
	})
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "cannot check the API key now")
	}
	if k != nil {
		_ = k.check(time.Time{}) // the stored addresses, parsed
	}
	e = &entry{key: k} // its first use is written at once
	s.mu.Lock()
	if s.gen == gen {
		if s.cache == nil || len(s.cache) > 100_000 {
			s.cache = map[string]*entry{}
		}
		s.cache[publicID] = e
	}
	s.mu.Unlock()
	return e, nil
}

// used counts a use; at most every 30 s per key the count and time are
// written, off the request.
func (s *Service) used(e *entry, now time.Time) {
	e.pending.Add(1)
	last := e.flushed.Load()
	if now.Unix()-last < 30 || !e.flushed.CompareAndSwap(last, now.Unix()) {
		return
	}
	n := e.pending.Swap(0)
	k := e.key
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.DB.InTenantTx(store.WithTenant(ctx, k.tenant), func(tx *store.Tx) error { return touchKeyTx(ctx, tx, k.ID, now, n) })
	}()
}

// Watch drops keys from the cache when they change on any replica (and
// everything on a resync).
func (s *Service) Watch(bus *events.Bus) (stop func()) {
	return bus.Subscribe(func(m events.Message) {
		if !m.Resync && m.Change.Kind != EventKind {
			return
		}
		s.mu.Lock()
		s.gen++
		if m.Resync {
			clear(s.cache)
		} else {
			delete(s.cache, m.Change.ID)
		}
		s.mu.Unlock()
	})
}

// Introspection describes a key to its tenant.
type Introspection struct {
	Active bool `json:"active"`
	Key    *Key `json:"key,omitempty" doc:"the key, when it is active"`
}

// Introspect describes a key of the tenant of ctx (another tenant's, or
// one that does not work, is not active).
func (s *Service) Introspect(ctx context.Context, raw string) *Introspection {
	tid, _ := store.TenantFrom(ctx)
	e, err := s.find(ctx, raw)
	if err != nil || e.key.tenant != tid {
		return &Introspection{Active: false}
	}
	return &Introspection{Active: true, Key: e.key}
}
