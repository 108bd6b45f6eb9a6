package apikey

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The store of API keys (migration 0024).

const keyCols = `tenant_id, id, public_id, secret_hash, owner_kind, owner_id, name, scopes, allowed_ips, expires_at, created_at, revoked_at,
	last_used_at, use_count`

func scanKey(r store.Scanner) (*Key, error) {
	var k Key
	var publicID, scopes, ips string
	if err := r.Scan(&k.tenant, &k.ID, &publicID, &k.hash, &k.OwnerKind, &k.OwnerID, &k.Name, &scopes, &ips, &k.ExpiresAt, &k.CreatedAt,
		&k.RevokedAt, &k.LastUsedAt, &k.UseCount); err != nil {
		return nil, err
	}
	k.Prefix = Prefix + publicID
	_ = json.Unmarshal([]byte(scopes), &k.Scopes)
	_ = json.Unmarshal([]byte(ips), &k.AllowedIPs)
	return &k, nil
}

func insertKeyTx(ctx context.Context, tx *store.Tx, k *Key, publicID string) error {
	scopes, _ := json.Marshal(k.Scopes)
	ips, _ := json.Marshal(k.AllowedIPs)
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (tenant_id, id, public_id, secret_hash, owner_kind, owner_id, name, scopes, allowed_ips, expires_at,
		created_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)`, tx.TenantID(), k.ID, publicID, k.hash, k.OwnerKind, k.OwnerID, k.Name,
		string(scopes), string(ips), k.ExpiresAt, k.CreatedAt)
	return err
}

// keyByPublicIDTx finds a key by its public id, in any tenant (nil: none).
func keyByPublicIDTx(ctx context.Context, tx *store.Tx, publicID string) (*Key, error) {
	k, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE public_id = $1`, publicID))
	if store.NoRows(err) {
		return nil, nil
	}
	return k, err
}

// keyTx reads a key of the tenant (nil: none).
func keyTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (*Key, error) {
	k, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id))
	if store.NoRows(err) {
		return nil, nil
	}
	return k, err
}

// listKeysTx lists the tenant's keys (of one owner when set), newest
// first.
func listKeysTx(ctx context.Context, tx *store.Tx, owner *uuid.UUID) ([]Key, error) {
	q := `SELECT ` + keyCols + ` FROM api_keys WHERE tenant_id = $1`
	args := []any{tx.TenantID()}
	if owner != nil {
		q += ` AND owner_id = $2`
		args = append(args, *owner)
	}
	return store.Collect(ctx, tx, func(r store.Scanner) (Key, error) {
		k, err := scanKey(r)
		if err != nil {
			return Key{}, err
		}
		return *k, nil
	}, q+` ORDER BY created_at DESC`, args...)
}

func revokeKeyTx(ctx context.Context, tx *store.Tx, id uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $1, version = version + 1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL`,
		now, tx.TenantID(), id)
	return err
}

func expireKeyTx(ctx context.Context, tx *store.Tx, id uuid.UUID, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE api_keys SET expires_at = $1, version = version + 1 WHERE tenant_id = $2 AND id = $3`, at, tx.TenantID(), id)
	return err
}

// touchKeyTx records uses of a key.
func touchKeyTx(ctx context.Context, tx *store.Tx, id uuid.UUID, at time.Time, uses int64) error {
	_, err := tx.Exec(ctx, `UPDATE api_keys SET last_used_at = $1, use_count = use_count + $2 WHERE tenant_id = $3 AND id = $4`, at, uses, tx.TenantID(), id)
	return err
}
