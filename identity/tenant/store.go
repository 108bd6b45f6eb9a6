package tenant

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The tenant domain's store: every statement on the tenants table is
// here (docs/design/0014-enforcement.md, rules for new code). Tenants are
// platform records: callers run these in system transactions.

const cols = `id, slug, name, status, settings, created_at, updated_at, deleted_at, version`

func scan(row interface{ Scan(...any) error }) (*Tenant, error) {
	var t Tenant
	var settings []byte
	if err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.Status, &settings, &t.CreatedAt, &t.UpdatedAt, &t.DeletedAt, &t.Version); err != nil {
		return nil, err
	}
	t.Settings = compact(settings)
	return &t, nil
}

func get(ctx context.Context, tx *store.Tx, where string, arg any) (*Tenant, error) {
	t, err := scan(tx.QueryRow(ctx, `SELECT `+cols+` FROM tenants WHERE `+where+` AND status <> 'deleted'`, arg))
	if store.NoRows(err) {
		return nil, apperr.NotFound("tenant")
	}
	return t, err
}

// lockCurrent reads a live tenant for update and checks the expected version.
func lockCurrent(ctx context.Context, tx *store.Tx, id uuid.UUID, ifVersion int64) (*Tenant, error) {
	t, err := scan(tx.QueryRow(ctx, `SELECT `+cols+` FROM tenants WHERE id = $1 AND status <> 'deleted' FOR UPDATE`, id))
	if store.NoRows(err) {
		return nil, apperr.NotFound("tenant")
	}
	if err != nil {
		return nil, err
	}
	if ifVersion != 0 && t.Version != ifVersion {
		return nil, apperr.New(apperr.KindPreconditionFailed, "tenant changed since version %d (now %d)", ifVersion, t.Version)
	}
	return t, nil
}

// insertTenant writes a new tenant.
func insertTenant(ctx context.Context, tx *store.Tx, t *Tenant) error {
	_, err := tx.Exec(ctx, `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`, t.ID, t.Slug, t.Name, t.Status, string(t.Settings), t.CreatedAt, t.Version)
	return err
}

// updateTenant writes t's name, status and settings over version before.
func updateTenant(ctx context.Context, tx *store.Tx, t *Tenant, before int64) error {
	_, err := tx.Exec(ctx, `UPDATE tenants SET name = $1, status = $2, settings = $3, updated_at = $4, version = $5
		WHERE id = $6 AND version = $7`, t.Name, t.Status, string(t.Settings), t.UpdatedAt, t.Version, t.ID, before)
	return err
}

// saveSettings writes t's settings (its policies among them).
func saveSettings(ctx context.Context, tx *store.Tx, t *Tenant) error {
	_, err := tx.Exec(ctx, `UPDATE tenants SET settings = $1, updated_at = $2, version = $3 WHERE id = $4`,
		string(t.Settings), t.UpdatedAt, t.Version, t.ID)
	return err
}

// markDeleted soft-deletes t (its status, deleted_at and version set).
func markDeleted(ctx context.Context, tx *store.Tx, t *Tenant) error {
	_, err := tx.Exec(ctx, `UPDATE tenants SET status = 'deleted', deleted_at = $1, updated_at = $1, version = $2 WHERE id = $3`,
		t.DeletedAt, t.Version, t.ID)
	return err
}

// listTenants reads a page of o (o.Limit+1 rows: the last says more follow).
func listTenants(ctx context.Context, db *store.DB, o ListOptions) ([]*Tenant, error) {
	q := `SELECT ` + cols + ` FROM tenants WHERE id > $1
		AND ($2 = '' OR status = $2)
		AND ($3 OR status <> 'deleted')
		AND ($4 = '' OR substr(slug, 1, length($4)) = $4)
		ORDER BY id LIMIT $5`
	var out []*Tenant
	err := db.SystemRead(ctx, func(tx *store.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, q, o.After, o.Status, o.IncludeDeleted, o.SlugPrefix, o.Limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// IDOf finds a tenant's id by slug or UUID, deleted tenants included
// (their audit chains are kept for the retention period); an unknown one
// is apperr.NotFound.
func IDOf(ctx context.Context, db *store.DB, ref string) (uuid.UUID, error) {
	var id uuid.UUID
	err := db.SystemRead(ctx, func(tx *store.Tx) error {
		q := `SELECT id FROM tenants WHERE slug = $1`
		if _, perr := uuid.Parse(ref); perr == nil {
			q = `SELECT id FROM tenants WHERE id = $1`
		}
		return tx.QueryRow(ctx, q, ref).Scan(&id)
	})
	if store.NoRows(err) {
		return uuid.Nil, apperr.NotFound("tenant")
	}
	return id, err
}

// Any tells whether the platform has any tenant at all, deleted ones
// included.
func (s *Service) Any(ctx context.Context) (bool, error) {
	var n int
	err := s.DB.SystemRead(ctx, func(tx *store.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&n)
	})
	return n > 0, err
}
