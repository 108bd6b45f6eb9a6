package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// RefreshPrefix starts every refresh token.
const RefreshPrefix = "xvr_"

// RefreshGrant is what a refresh token stands for. Every token of a
// family carries the same grant; each use replaces the token.
type RefreshGrant struct {
	TenantID  uuid.UUID
	FamilyID  uuid.UUID
	SessionID uuid.UUID
	Subject   string
	ClientID  string
	Scope     string
	Audience  []string
	ExpiresAt time.Time
	// JKT is the DPoP key the family is bound to ("" : none): each use
	// needs a proof with it.
	JKT string
}

// ErrRefreshInvalid is the one answer to an unusable refresh token.
var ErrRefreshInvalid = apperr.New(apperr.KindUnauthenticated, "refresh token is invalid, expired or revoked")

// ErrRefreshKey answers a DPoP-bound refresh token presented without a
// proof of its key.
var ErrRefreshKey = apperr.New(apperr.KindUnauthenticated, "the refresh token is bound to a DPoP key: present a DPoP proof of that key")

// ErrRefreshReused says a rotated-out refresh token was presented again:
// the whole family (and its session) has been revoked.
var ErrRefreshReused = apperr.New(apperr.KindUnauthenticated, "refresh token reuse detected; the session has been revoked")

func refreshHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

func newRefresh(tenant uuid.UUID) string {
	b := make([]byte, 48)
	copy(b, tenant[:])
	if _, err := rand.Read(b[16:]); err != nil {
		panic("token: no randomness: " + err.Error())
	}
	return RefreshPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// RefreshTenant returns the tenant a refresh token belongs to.
func RefreshTenant(raw string) (uuid.UUID, error) {
	body, ok := strings.CutPrefix(raw, RefreshPrefix)
	if !ok || len(body) != 64 {
		return uuid.Nil, ErrRefreshInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(b) != 48 {
		return uuid.Nil, ErrRefreshInvalid
	}
	id, err := uuid.FromBytes(b[:16])
	if err != nil || id == uuid.Nil {
		return uuid.Nil, ErrRefreshInvalid
	}
	return id, nil
}

// NewRefreshInTx issues a refresh token in the caller's transaction,
// starting a new family when g.FamilyID is nil.
func (s *Service) NewRefreshInTx(ctx context.Context, tx *store.Tx, g *RefreshGrant) (string, error) {
	if g.FamilyID == uuid.Nil {
		g.FamilyID = uuid.Must(uuid.NewV7())
		g.JKT = DPoPKey(ctx) // a new family is bound to the request's key
	}
	raw := newRefresh(g.TenantID)
	return raw, insertRefresh(ctx, tx, g, refreshHash(raw))
}

// Refresh rotates a refresh token: it returns the grant and a new token,
// and marks the presented one used. A used token presented again revokes
// its family and the session's access tokens (ErrRefreshReused).
func (s *Service) Refresh(ctx context.Context, raw string) (*RefreshGrant, string, error) {
	tenant, err := RefreshTenant(raw)
	if err != nil {
		return nil, "", err
	}
	ctx = store.WithTenant(ctx, tenant)
	var (
		grant  *RefreshGrant
		next   string
		reused bool
	)
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		grant, next, reused = nil, "", false
		g := &RefreshGrant{TenantID: tenant}
		id, usedAt, revokedAt, err := lockRefresh(ctx, tx, tenant, refreshHash(raw), g)
		if store.NoRows(err) {
			return ErrRefreshInvalid
		}
		if err != nil {
			return err
		}
		if g.JKT != "" && g.JKT != DPoPKey(ctx) {
			// Bound to a DPoP key: useless without a proof of it, and
			// refused without spending it.
			return ErrRefreshKey
		}
		now := store.Now()
		if usedAt != nil && revokedAt == nil {
			reused = true
			return s.revokeFamily(ctx, tx, tenant, g.FamilyID, g.SessionID)
		}
		if revokedAt != nil || !now.Before(g.ExpiresAt) {
			return ErrRefreshInvalid
		}
		if err := markRefreshUsed(ctx, tx, tenant, id, now); err != nil {
			return err
		}
		if next, err = s.NewRefreshInTx(ctx, tx, g); err != nil {
			return err
		}
		grant = g
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if reused {
		return nil, "", ErrRefreshReused
	}
	return grant, next, nil
}

func (s *Service) revokeFamily(ctx context.Context, tx *store.Tx, tenant, family, session uuid.UUID) error {
	if err := revokeRefreshes(ctx, tx, tenant, "family_id", family); err != nil {
		return err
	}
	// The access tokens issued from the family die with it.
	if err := s.RevokeInTx(ctx, tx, tenant, "fam", family.String()); err != nil {
		return err
	}
	if session != uuid.Nil {
		return s.RevokeInTx(ctx, tx, tenant, "sid", session.String())
	}
	return nil
}

// RevokeSessionInTx revokes a session's refresh tokens and access tokens
// in the caller's transaction.
func (s *Service) RevokeSessionInTx(ctx context.Context, tx *store.Tx, tenant, session uuid.UUID) error {
	if err := revokeRefreshes(ctx, tx, tenant, "session_id", session); err != nil {
		return err
	}
	return s.RevokeInTx(ctx, tx, tenant, "sid", session.String())
}

// SessionOf returns the tenant and session a refresh token belongs to, for
// callers that act on reuse (uuid.Nil session when unknown).
func (s *Service) SessionOf(ctx context.Context, raw string) (uuid.UUID, uuid.UUID, error) {
	tenant, err := RefreshTenant(raw)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	ctx = store.WithTenant(ctx, tenant)
	var sid *uuid.UUID
	err = s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		sid, err = refreshSession(ctx, tx, tenant, refreshHash(raw))
		return err
	})
	if err != nil || sid == nil {
		return tenant, uuid.Nil, err
	}
	return tenant, *sid, nil
}

// RevokeRefresh revokes the family of a refresh token issued to clientID
// (RFC 7009); unknown tokens and other clients' tokens are ignored.
func (s *Service) RevokeRefresh(ctx context.Context, raw, clientID string) error {
	tenant, err := RefreshTenant(raw)
	if err != nil {
		return nil
	}
	ctx = store.WithTenant(ctx, tenant)
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		family, sid, err := clientRefresh(ctx, tx, tenant, refreshHash(raw), clientID)
		if store.NoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		session := uuid.Nil
		if sid != nil {
			session = *sid
		}
		return s.revokeFamily(ctx, tx, tenant, family, session)
	})
}

// RevokeFamilyInTx revokes a refresh family (a replayed authorization
// code revokes what it issued).
func (s *Service) RevokeFamilyInTx(ctx context.Context, tx *store.Tx, tenant, family uuid.UUID) error {
	return s.revokeFamily(ctx, tx, tenant, family, uuid.Nil)
}

// RevokeClientInTx revokes every refresh token and access token issued
// to a client, in the caller's transaction (the client is being deleted:
// RFC 7592 §2.3).
func (s *Service) RevokeClientInTx(ctx context.Context, tx *store.Tx, tenant uuid.UUID, clientID string) error {
	if err := revokeRefreshes(ctx, tx, tenant, "client_id", clientID); err != nil {
		return err
	}
	return s.RevokeInTx(ctx, tx, tenant, "client", clientID)
}

// RevokeGrantInTx revokes what a subject's grant to a client issued: every
// refresh family of theirs at that client and its access tokens (a person
// withdrawing their consent).
func (s *Service) RevokeGrantInTx(ctx context.Context, tx *store.Tx, tenant uuid.UUID, subject, clientID string) error {
	families, err := grantFamilies(ctx, tx, tenant, subject, clientID)
	if err != nil {
		return err
	}
	for _, f := range families {
		if err := s.revokeFamily(ctx, tx, tenant, f, uuid.Nil); err != nil {
			return err
		}
	}
	return nil
}
