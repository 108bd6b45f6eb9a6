package account

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The store of account tokens (migration 0022).

type tokenRow struct {
	kind    string
	user    uuid.UUID
	email   string
	expires time.Time
	used    *time.Time
}

// insertTokenTx records a token's hash; recording it again (a retried
// email) changes nothing.
func insertTokenTx(ctx context.Context, tx *store.Tx, hash, kind string, user uuid.UUID, email string, created, expires time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO account_tokens (tenant_id, token_hash, kind, user_id, email, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, token_hash) DO NOTHING`, tx.TenantID(), hash, kind, user, email, created, expires)
	return err
}

// supersedeTx spends a person's other live tokens of a kind: only the
// newest link works.
func supersedeTx(ctx context.Context, tx *store.Tx, user uuid.UUID, kind, keep string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE account_tokens SET used_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND kind = $4 AND used_at IS NULL
		AND token_hash <> $5`, now, tx.TenantID(), user, kind, keep)
	return err
}

func scanToken(r store.Scanner) (*tokenRow, error) {
	var t tokenRow
	err := r.Scan(&t.kind, &t.user, &t.email, &t.expires, &t.used)
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// tokenTx reads a token (nil: none).
func tokenTx(ctx context.Context, tx *store.Tx, hash string) (*tokenRow, error) {
	return scanToken(tx.QueryRow(ctx, `SELECT kind, user_id, email, expires_at, used_at FROM account_tokens WHERE tenant_id = $1 AND token_hash = $2`,
		tx.TenantID(), hash))
}

// claimTokenTx spends a live token of kind and returns it (nil: none).
func claimTokenTx(ctx context.Context, tx *store.Tx, hash, kind string, now time.Time) (*tokenRow, error) {
	t, err := scanToken(tx.QueryRow(ctx, `SELECT kind, user_id, email, expires_at, used_at FROM account_tokens
		WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE`, tx.TenantID(), hash))
	if err != nil || t == nil || t.kind != kind || t.used != nil || !now.Before(t.expires) {
		return nil, err
	}
	_, err = tx.Exec(ctx, `UPDATE account_tokens SET used_at = $1 WHERE tenant_id = $2 AND token_hash = $3`, now, tx.TenantID(), hash)
	return t, err
}

// unclaimTokenTx makes a spent token usable again (its use failed).
func unclaimTokenTx(ctx context.Context, tx *store.Tx, hash string) error {
	_, err := tx.Exec(ctx, `UPDATE account_tokens SET used_at = NULL WHERE tenant_id = $1 AND token_hash = $2`, tx.TenantID(), hash)
	return err
}
