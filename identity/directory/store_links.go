package directory

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The store of external identities: the user_links table (migration 0027).

const linkCols = `id, user_id, source, external_id, managed, created_at, last_used_at`

func scanLink(r store.Scanner) (*Link, error) {
	var l Link
	if err := r.Scan(&l.ID, &l.UserID, &l.Source, &l.ExternalID, &l.Managed, &l.CreatedAt, &l.LastUsedAt); err != nil {
		return nil, err
	}
	return &l, nil
}

func insertLinkTx(ctx context.Context, tx *store.Tx, l *Link) error {
	_, err := tx.Exec(ctx, `INSERT INTO user_links (tenant_id, `+linkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		tx.TenantID(), l.ID, l.UserID, l.Source, l.ExternalID, l.Managed, l.CreatedAt, l.LastUsedAt)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "this external identity is already linked to a user")
	}
	return err
}

// linkByExternalTx finds the link of (source, external id) (nil: none).
func linkByExternalTx(ctx context.Context, tx *store.Tx, source, external string) (*Link, error) {
	l, err := scanLink(tx.QueryRow(ctx, `SELECT `+linkCols+` FROM user_links WHERE tenant_id = $1 AND source = $2 AND external_id = $3`,
		tx.TenantID(), source, external))
	if store.NoRows(err) {
		return nil, nil
	}
	return l, err
}

func linksOfTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]*Link, error) {
	return store.Collect(ctx, tx, scanLink, `SELECT `+linkCols+` FROM user_links WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id`,
		tx.TenantID(), user)
}

func touchLinkTx(ctx context.Context, tx *store.Tx, id uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE user_links SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tx.TenantID(), id)
	return err
}

// deleteLinkTx removes a link of a user; false: the user has no such link.
func deleteLinkTx(ctx context.Context, tx *store.Tx, user, id uuid.UUID) (bool, error) {
	res, err := tx.Exec(ctx, `DELETE FROM user_links WHERE tenant_id = $1 AND user_id = $2 AND id = $3`, tx.TenantID(), user, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
