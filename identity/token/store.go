package token

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The token stores: signing_keys, refresh_tokens, token_revocations.

// replaceActiveKey makes the active key passive until retire, retires
// passive keys due by now and stores the new active key (sealed).
func replaceActiveKey(ctx context.Context, tx *store.Tx, now, retire time.Time, kid, alg string, sealed, pub []byte) error {
	if _, err := tx.Exec(ctx, `UPDATE signing_keys SET status = 'passive', rotated_at = $1, retire_at = $2
		WHERE tenant_id = $3 AND status = 'active'`, now, retire, tx.TenantID()); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE signing_keys SET status = 'retired' WHERE tenant_id = $1 AND status = 'passive' AND retire_at <= $2`,
		tx.TenantID(), now); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO signing_keys (tenant_id, id, alg, status, private_key, public_jwk, created_at)
		VALUES ($1, $2, $3, 'active', $4, $5, $6)`, tx.TenantID(), kid, alg, sealed, string(pub), now)
	return err
}

// listKeys lists the tenant's keys, newest first.
func listKeys(ctx context.Context, tx *store.Tx) ([]KeyInfo, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (KeyInfo, error) {
		var k KeyInfo
		var pub []byte
		err := r.Scan(&k.ID, &k.Alg, &k.Status, &k.CreatedAt, &k.RotatedAt, &k.RetireAt, &pub)
		k.PublicJWK = pub
		return k, err
	}, `SELECT id, alg, status, created_at, rotated_at, retire_at, public_jwk FROM signing_keys
		WHERE tenant_id = $1 ORDER BY created_at DESC`, tx.TenantID())
}

// activeKeyRow reads the tenant's active key into e and returns its
// sealed private key (store.NoRows: none).
func activeKeyRow(ctx context.Context, tx *store.Tx, e *keyEntry) ([]byte, error) {
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT id, alg, status, private_key, retire_at FROM signing_keys WHERE tenant_id = $1 AND status = 'active'`, tx.TenantID()).
		Scan(&e.kid, &e.alg, &e.status, &sealed, &e.retireAt)
	return sealed, err
}

// keyByID reads key k.kid of any tenant into k and returns its public
// JWK (store.NoRows: none).
func keyByID(ctx context.Context, tx *store.Tx, k *keyEntry) ([]byte, error) {
	var pub []byte
	err := tx.QueryRow(ctx, `SELECT tenant_id, alg, status, public_jwk, retire_at FROM signing_keys WHERE id = $1`, k.kid).
		Scan(&k.tenant, &k.alg, &k.status, &pub, &k.retireAt)
	return pub, err
}

type dueKey struct {
	tenant uuid.UUID
	alg    string
}

// keysDue lists the active keys created before cutoff, of every tenant.
func keysDue(ctx context.Context, tx *store.Tx, cutoff time.Time) ([]dueKey, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (dueKey, error) {
		var d dueKey
		err := r.Scan(&d.tenant, &d.alg)
		return d, err
	}, `SELECT tenant_id, alg FROM signing_keys WHERE status = 'active' AND created_at < $1`, cutoff)
}

// retireExpiredKeys retires every passive key due by now.
func retireExpiredKeys(ctx context.Context, tx *store.Tx, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE signing_keys SET status = 'retired' WHERE status = 'passive' AND retire_at <= $1`, now)
	return err
}

func insertRefresh(ctx context.Context, tx *store.Tx, g *RefreshGrant, hash string) error {
	aud, _ := json.Marshal(g.Audience)
	var sid any
	if g.SessionID != uuid.Nil {
		sid = g.SessionID
	}
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (tenant_id, id, token_hash, family_id, session_id, subject, client_id, scope, audience, created_at,
		expires_at, jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		g.TenantID, uuid.Must(uuid.NewV7()), hash, g.FamilyID, sid, g.Subject, g.ClientID, g.Scope, string(aud), store.Now(), g.ExpiresAt.UTC(), g.JKT)
	return err
}

// lockRefresh reads a refresh token for update into g and returns its id
// and when it was used and revoked (store.NoRows: no such token).
func lockRefresh(ctx context.Context, tx *store.Tx, tenant uuid.UUID, hash string, g *RefreshGrant) (uuid.UUID, *time.Time, *time.Time, error) {
	var id uuid.UUID
	var sid *uuid.UUID
	var aud []byte
	var usedAt, revokedAt *time.Time
	err := tx.QueryRow(ctx, `SELECT id, family_id, session_id, subject, client_id, scope, audience, expires_at, used_at, revoked_at, jkt
		FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE`, tenant, hash).
		Scan(&id, &g.FamilyID, &sid, &g.Subject, &g.ClientID, &g.Scope, &aud, &g.ExpiresAt, &usedAt, &revokedAt, &g.JKT)
	if err != nil {
		return id, nil, nil, err
	}
	if sid != nil {
		g.SessionID = *sid
	}
	_ = json.Unmarshal(aud, &g.Audience)
	return id, usedAt, revokedAt, nil
}

func markRefreshUsed(ctx context.Context, tx *store.Tx, tenant, id uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tenant, id)
	return err
}

// revokeRefreshes revokes the live refresh tokens whose column by
// (family_id, session_id or client_id) is value.
func revokeRefreshes(ctx context.Context, tx *store.Tx, tenant uuid.UUID, by string, value any) error {
	q := map[string]string{
		"family_id":  `UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND family_id = $3 AND revoked_at IS NULL`,
		"session_id": `UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND session_id = $3 AND revoked_at IS NULL`,
		"client_id":  `UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND client_id = $3 AND revoked_at IS NULL`,
	}[by]
	_, err := tx.Exec(ctx, q, store.Now(), tenant, value)
	return err
}

// refreshSession is the session of a refresh token (nil: none).
func refreshSession(ctx context.Context, tx *store.Tx, tenant uuid.UUID, hash string) (*uuid.UUID, error) {
	var sid *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT session_id FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2`, tenant, hash).Scan(&sid)
	return sid, err
}

// clientRefresh is the family and session of a refresh token issued to
// clientID (store.NoRows: none).
func clientRefresh(ctx context.Context, tx *store.Tx, tenant uuid.UUID, hash, clientID string) (uuid.UUID, *uuid.UUID, error) {
	var family uuid.UUID
	var sid *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT family_id, session_id FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2 AND client_id = $3`,
		tenant, hash, clientID).Scan(&family, &sid)
	return family, sid, err
}

func upsertRevocation(ctx context.Context, tx *store.Tx, tenant uuid.UUID, kind, value string, exp, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO token_revocations (tenant_id, kind, value, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, kind, value) DO UPDATE SET expires_at = excluded.expires_at`, tenant, kind, value, exp, now)
	return err
}

// loadRevocations prunes expired revocations and reads the others, of
// every tenant.
func loadRevocations(ctx context.Context, tx *store.Tx, now time.Time) (map[revocationKey]time.Time, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM token_revocations WHERE expires_at < $1`, now); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT tenant_id, kind, value, expires_at FROM token_revocations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[revocationKey]time.Time{}
	for rows.Next() {
		var k revocationKey
		var exp time.Time
		if err := rows.Scan(&k.tenant, &k.kind, &k.value, &exp); err != nil {
			return nil, err
		}
		out[k] = exp
	}
	return out, rows.Err()
}

// grantFamilies lists the live refresh families of a subject at a client.
func grantFamilies(ctx context.Context, tx *store.Tx, tenant uuid.UUID, subject, clientID string) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT DISTINCT family_id FROM refresh_tokens
		WHERE tenant_id = $1 AND subject = $2 AND client_id = $3 AND revoked_at IS NULL`, tenant, subject, clientID)
}

// useProofTx records an accepted DPoP proof; false: it was already.
func useProofTx(ctx context.Context, tx *store.Tx, hash string, until, now time.Time, prune bool) (bool, error) {
	if prune {
		if _, err := tx.Exec(ctx, `DELETE FROM dpop_proofs WHERE tenant_id = $1 AND expires_at < $2`, tx.TenantID(), now); err != nil {
			return false, err
		}
	}
	r, err := tx.Exec(ctx, `INSERT INTO dpop_proofs (tenant_id, proof_hash, expires_at) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, proof_hash) DO NOTHING`,
		tx.TenantID(), hash, until)
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	return n == 1, err
}
