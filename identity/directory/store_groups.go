package directory

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The groups store: the groups and group_members tables.

func getGroup(ctx context.Context, tx *store.Tx, id uuid.UUID, lock bool) (*Group, error) {
	return rowByID(ctx, tx, "group", `SELECT `+groupCols+` FROM groups`, id, lock, scanGroup)
}

// parentOf is a group's parent (store.NoRows when there is no such group).
func parentOf(ctx context.Context, tx *store.Tx, id uuid.UUID) (*uuid.UUID, error) {
	var p *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT parent_id FROM groups WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&p)
	return p, err
}

func groupNameTaken(err error, name string) error {
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a group named %q already exists", name)
	}
	return err
}

func insertGroup(ctx context.Context, tx *store.Tx, g *Group) error {
	_, err := tx.Exec(ctx, `INSERT INTO groups (tenant_id, id, name, description, parent_id, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $6, 1)`, tx.TenantID(), g.ID, g.Name, g.Description, g.ParentID, g.CreatedAt)
	return groupNameTaken(err, g.Name)
}

func updateGroup(ctx context.Context, tx *store.Tx, g *Group) error {
	_, err := tx.Exec(ctx, `UPDATE groups SET name = $1, description = $2, parent_id = $3, updated_at = $4, version = $5
		WHERE tenant_id = $6 AND id = $7`, g.Name, g.Description, g.ParentID, g.UpdatedAt, g.Version, tx.TenantID(), g.ID)
	return groupNameTaken(err, g.Name)
}

func deleteGroup(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM groups WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

// childGroups counts a group's direct children.
func childGroups(ctx context.Context, tx *store.Tx, id uuid.UUID) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND parent_id = $2`, tx.TenantID(), id).Scan(&n)
	return n, err
}

// listGroups reads groups by name after (afterName, afterID), whose
// lowered name starts with prefix; parentFilter 1 keeps parent's
// children, 2 the top-level groups, 0 all.
func listGroups(ctx context.Context, tx *store.Tx, prefix string, parentFilter int, parent uuid.UUID, afterName string, afterID uuid.UUID, limit int) ([]*Group, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*Group, error) { return scanGroup(r) }, `SELECT `+groupCols+` FROM groups WHERE tenant_id = $1
		AND ($2 = '' OR substr(lower(name), 1, length($2)) = $2)
		AND ($3 = 0 OR ($3 = 1 AND parent_id = $4) OR ($3 = 2 AND parent_id IS NULL))
		AND (name > $5 OR (name = $5 AND id > $6))
		ORDER BY name, id LIMIT $7`, tx.TenantID(), prefix, parentFilter, parent, afterName, afterID, limit)
}

// groupsOf lists the groups a user is directly in, by name.
func groupsOf(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]*Group, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*Group, error) { return scanGroup(r) }, `SELECT g.id, g.name, g.description, g.parent_id, g.created_at, g.updated_at, g.version
		FROM groups g JOIN group_members m ON m.tenant_id = g.tenant_id AND m.group_id = g.id
		WHERE g.tenant_id = $1 AND m.user_id = $2 ORDER BY g.name`, tx.TenantID(), user)
}

// addMembership adds m; when the user already is a member it reports
// false and sets m.CreatedAt to when they joined.
func addMembership(ctx context.Context, tx *store.Tx, m *Membership) (bool, error) {
	r, err := tx.Exec(ctx, `INSERT INTO group_members (tenant_id, group_id, user_id, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, group_id, user_id) DO NOTHING`, tx.TenantID(), m.GroupID, m.UserID, m.CreatedAt)
	if err != nil {
		return false, err
	}
	if n, _ := r.RowsAffected(); n > 0 {
		return true, nil
	}
	return false, tx.QueryRow(ctx, `SELECT created_at FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3`,
		tx.TenantID(), m.GroupID, m.UserID).Scan(&m.CreatedAt)
}

// removeMembership takes a user out of a group; false when not a member.
func removeMembership(ctx context.Context, tx *store.Tx, group, user uuid.UUID) (bool, error) {
	r, err := tx.Exec(ctx, `DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3`, tx.TenantID(), group, user)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}
