package governance

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

func getRole(ctx context.Context, tx *store.Tx, id uuid.UUID, lock bool) (*Role, error) {
	q := `SELECT ` + roleCols + ` FROM roles WHERE tenant_id = $1 AND id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	var r Role
	err := tx.QueryRow(ctx, q, tx.TenantID(), id).Scan(&r.ID, &r.Key, &r.Name, &r.Type, &r.ParentID, &r.OwnerID, &r.Requestable, &r.Description,
		&r.CreatedAt, &r.UpdatedAt, &r.Version, &r.WorkflowID)
	if store.NoRows(err) {
		return nil, apperr.NotFound("role")
	}
	if err != nil {
		return nil, err
	}
	r.Entitlement, err = ids(ctx, tx, `SELECT entitlement_id FROM role_entitlements WHERE tenant_id = $1 AND role_id = $2 ORDER BY entitlement_id`, id)
	if err != nil {
		return nil, err
	}
	r.Induces, err = ids(ctx, tx, `SELECT induced_role_id FROM role_inducements WHERE tenant_id = $1 AND role_id = $2 ORDER BY induced_role_id`, id)
	return &r, err
}

// roleParent is a role's parent (store.NoRows: no such role).
func roleParent(ctx context.Context, tx *store.Tx, id uuid.UUID) (*uuid.UUID, error) {
	var p *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT parent_id FROM roles WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&p)
	return p, err
}

// inducedBy lists the roles a role induces.
func inducedBy(ctx context.Context, tx *store.Tx, id uuid.UUID) ([]uuid.UUID, error) {
	return ids(ctx, tx, `SELECT induced_role_id FROM role_inducements WHERE tenant_id = $1 AND role_id = $2`, id)
}

// clearRoleLinks removes a role's entitlements (role_entitlements) or
// inducements (role_inducements).
func clearRoleLinks(ctx context.Context, tx *store.Tx, table string, role uuid.UUID) error {
	q := map[string]string{
		"role_entitlements": `DELETE FROM role_entitlements WHERE tenant_id = $1 AND role_id = $2`,
		"role_inducements":  `DELETE FROM role_inducements WHERE tenant_id = $1 AND role_id = $2`,
	}[table]
	_, err := tx.Exec(ctx, q, tx.TenantID(), role)
	return err
}

// linkRole gives a role an entitlement (role_entitlements) or an induced
// role (role_inducements).
func linkRole(ctx context.Context, tx *store.Tx, table string, role, to uuid.UUID, at time.Time) error {
	q := map[string]string{
		"role_entitlements": `INSERT INTO role_entitlements (tenant_id, role_id, entitlement_id, created_at) VALUES ($1, $2, $3, $4)`,
		"role_inducements":  `INSERT INTO role_inducements (tenant_id, role_id, induced_role_id, created_at) VALUES ($1, $2, $3, $4)`,
	}[table]
	_, err := tx.Exec(ctx, q, tx.TenantID(), role, to, at)
	return err
}

func insertRole(ctx context.Context, tx *store.Tx, r *Role) error {
	_, err := tx.Exec(ctx, `INSERT INTO roles (tenant_id, id, key, name, type, parent_id, owner_id, requestable, description, created_at, updated_at, version,
		workflow_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1, $11)`, tx.TenantID(), r.ID, r.Key, r.Name, r.Type, r.ParentID, r.OwnerID, r.Requestable,
		r.Description, r.CreatedAt, r.WorkflowID)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a role with key %q already exists", r.Key)
	}
	return err
}

func updateRole(ctx context.Context, tx *store.Tx, r *Role) error {
	_, err := tx.Exec(ctx, `UPDATE roles SET name = $1, parent_id = $2, owner_id = $3, requestable = $4, description = $5, updated_at = $6, version = $7,
		workflow_id = $10 WHERE tenant_id = $8 AND id = $9`, r.Name, r.ParentID, r.OwnerID, r.Requestable, r.Description, r.UpdatedAt, r.Version, tx.TenantID(), r.ID,
		r.WorkflowID)
	return err
}

// roleIDsAfter lists up to limit role ids by key after afterKey.
func roleIDsAfter(ctx context.Context, tx *store.Tx, afterKey string, limit int) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT id FROM roles WHERE tenant_id = $1 AND key > $2 ORDER BY key LIMIT $3`, tx.TenantID(), afterKey, limit)
}

// childRoles counts a role's direct children.
func childRoles(ctx context.Context, tx *store.Tx, id uuid.UUID) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM roles WHERE tenant_id = $1 AND parent_id = $2`, tx.TenantID(), id).Scan(&n)
	return n, err
}

// assignmentByKey is the assignment with a dedup key (store.NoRows: none).
func assignmentByKey(ctx context.Context, tx *store.Tx, key string) (uuid.UUID, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `SELECT id FROM assignments WHERE tenant_id = $1 AND dedup_key = $2`, tx.TenantID(), key).Scan(&id)
	return id, err
}

func insertAssignmentRow(ctx context.Context, tx *store.Tx, a *Assignment, key string) error {
	_, err := tx.Exec(ctx, `INSERT INTO assignments (tenant_id, id, subject_type, subject_id, target_type, target_id, source, valid_from, valid_until,
		justification, constraints, created_by, created_at, updated_at, version, dedup_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 1, $14)`,
		tx.TenantID(), a.ID, a.SubjectType, a.SubjectID, a.TargetType, a.TargetID, a.Source, a.ValidFrom, a.ValidUntil, a.Justification,
		marshal(a.Constraints), a.CreatedBy, a.CreatedAt, key)
	return err
}

func updateAssignment(ctx context.Context, tx *store.Tx, a *Assignment) error {
	_, err := tx.Exec(ctx, `UPDATE assignments SET valid_from = $1, valid_until = $2, justification = $3, constraints = $4, updated_at = $5, version = $6
		WHERE tenant_id = $7 AND id = $8`, a.ValidFrom, a.ValidUntil, a.Justification, marshal(a.Constraints), a.UpdatedAt, a.Version, tx.TenantID(), a.ID)
	return err
}

// listAssignments reads a page of assignments by id (o.Limit+1 rows).
func listAssignments(ctx context.Context, tx *store.Tx, o ListAssignmentsOptions) ([]*Assignment, error) {
	return store.Collect(ctx, tx, scanAssignment, `SELECT `+assignCols+` FROM assignments WHERE tenant_id = $1 AND id > $2
		AND ($3 = '' OR subject_type = $3) AND (subject_id = $4 OR $4 = $5) AND ($6 = '' OR target_type = $6) AND (target_id = $7 OR $7 = $5)
		ORDER BY id LIMIT $8`, tx.TenantID(), o.After, o.SubjectType, o.SubjectID, uuid.Nil, o.TargetType, o.TargetID, o.Limit+1)
}
