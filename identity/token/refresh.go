package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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
}

// ErrRefreshInvalid is the one answer to an unusable refresh token.
var ErrRefreshInvalid = apperr.New(apperr.KindUnauthenticated, "refresh token is invalid, expired or revoked")

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
	}
	raw := newRefresh(g.TenantID)
	aud, _ := json.Marshal(g.Audience)
	var sid any
	if g.SessionID != uuid.Nil {
		sid = g.SessionID
	}
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (tenant_id, id, token_hash, family_id, session_id, subject, client_id, scope, audience, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		g.TenantID, uuid.Must(uuid.NewV7()), refreshHash(raw), g.FamilyID, sid, g.Subject, g.ClientID, g.Scope, string(aud), store.Now(), g.ExpiresAt.UTC())
	return raw, err
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
		var id uuid.UUID
		var sid *uuid.UUID
		var aud []byte
		var usedAt, revokedAt *time.Time
		err := tx.QueryRow(ctx, `SELECT id, family_id, session_id, subject, client_id, scope, audience, expires_at, used_at, revoked_at
			FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE`, tenant, refreshHash(raw)).
			Scan(&id, &g.FamilyID, &sid, &g.Subject, &g.ClientID, &g.Scope, &aud, &g.ExpiresAt, &usedAt, &revokedAt)
		if store.NoRows(err) {
			return ErrRefreshInvalid
		}
		if err != nil {
			return err
		}
		if sid != nil {
			g.SessionID = *sid
		}
		_ = json.Unmarshal(aud, &g.Audience)
		now := store.Now()
		if usedAt != nil && revokedAt == nil {
			reused = true
			return s.revokeFamily(ctx, tx, tenant, g.FamilyID, g.SessionID)
		}
		if revokedAt != nil || !now.Before(g.ExpiresAt) {
			return ErrRefreshInvalid
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tenant, id); err != nil {
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
	if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND family_id = $3 AND revoked_at IS NULL`,
		store.Now(), tenant, family); err != nil {
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
	if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND session_id = $3 AND revoked_at IS NULL`,
		store.Now(), tenant, session); err != nil {
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
		return tx.QueryRow(ctx, `SELECT session_id FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2`, tenant, refreshHash(raw)).Scan(&sid)
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
		var family uuid.UUID
		var sid *uuid.UUID
		err := tx.QueryRow(ctx, `SELECT family_id, session_id FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2 AND client_id = $3`,
			tenant, refreshHash(raw), clientID).Scan(&family, &sid)
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
	if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND client_id = $3 AND revoked_at IS NULL`,
		store.Now(), tenant, clientID); err != nil {
		return err
	}
	return s.RevokeInTx(ctx, tx, tenant, "client", clientID)
}
