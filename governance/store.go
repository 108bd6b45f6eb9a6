package governance

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// Governance's stores: its own tables, each read and written here and in
// the other store_*.go files. Records that are read, locked and deleted
// alike share the helpers below.

// record describes one of governance's versioned tables.
type record[T any] struct {
	what    string // in errors: "no such <what>"
	kind    string // its change events and audit actions
	table   string
	cols    string
	scan    func(store.Scanner) (T, error)
	version func(T) int64
}

var (
	approvalRecord    = record[*Approval]{what: "approval", kind: "approval", table: "approvals", cols: approvalCols, scan: scanApproval}
	assignmentRecord  = record[*Assignment]{what: "assignment", kind: "assignment", table: "assignments", cols: assignCols, scan: scanAssignment, version: func(x *Assignment) int64 { return x.Version }}
	applicationRecord = record[*Application]{what: "application", kind: "application", table: "applications", cols: appCols, scan: scanApp, version: func(x *Application) int64 { return x.Version }}
	entitlementRecord = record[*Entitlement]{what: "entitlement", kind: "entitlement", table: "entitlements", cols: entCols, scan: scanEnt, version: func(x *Entitlement) int64 { return x.Version }}
	sodRuleRecord     = record[*SoDRule]{what: "rule", kind: "sod_rule", table: "sod_rules", cols: sodCols, scan: scanSoDRule, version: func(x *SoDRule) int64 { return x.Version }}
	workflowRecord    = record[*Workflow]{what: "workflow", kind: "workflow", table: "approval_workflows", cols: workflowCols, scan: scanWorkflow, version: func(x *Workflow) int64 { return x.Version }}
)

// get reads one record of the tenant in ctx (apperr not found).
func (r record[T]) get(ctx context.Context, db *store.DB, id uuid.UUID) (T, error) {
	var v T
	err := db.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		v, err = r.scan(tx.QueryRow(ctx, `SELECT `+r.cols+` FROM `+r.table+` WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id))
		return err
	})
	if store.NoRows(err) {
		var zero T
		return zero, apperr.NotFound(r.what)
	}
	return v, err
}

// lock reads one record for update (apperr not found) and checks it is
// still at ifVersion (0: any).
func (r record[T]) lock(ctx context.Context, tx *store.Tx, id uuid.UUID, ifVersion int64) (T, error) {
	v, err := r.scan(tx.QueryRow(ctx, `SELECT `+r.cols+` FROM `+r.table+` WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), id))
	if store.NoRows(err) {
		return v, apperr.NotFound(r.what)
	}
	if err != nil {
		return v, err
	}
	return v, checkVersion(r.what, r.version(v), ifVersion)
}

// remove deletes one record (apperr not found when there is none).
func (r record[T]) remove(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	res, err := tx.Exec(ctx, `DELETE FROM `+r.table+` WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.NotFound(strings.ReplaceAll(r.kind, "_", " "))
	}
	return nil
}

// exists tells whether the tenant has the record.
func (r record[T]) exists(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	return rowExists(ctx, tx, r.table, id)
}

func rowExists(ctx context.Context, tx *store.Tx, table string, id uuid.UUID) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&n)
	return n > 0, err
}

// targetExists tells whether the tenant has an entitlement or a role.
func targetExists(ctx context.Context, tx *store.Tx, kind string, id uuid.UUID) (bool, error) {
	switch kind {
	case "entitlement":
		return rowExists(ctx, tx, "entitlements", id)
	case "role":
		return rowExists(ctx, tx, "roles", id)
	}
	return false, nil
}

func applicationExists(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	return applicationRecord.exists(ctx, tx, id)
}

func workflowRowExists(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	return workflowRecord.exists(ctx, tx, id)
}

func sodRuleExists(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	return sodRuleRecord.exists(ctx, tx, id)
}

// deleteTargetRows deletes an entitlement or a role and the assignments
// of it.
func deleteTargetRows(ctx context.Context, tx *store.Tx, kind string, id uuid.UUID) error {
	table := map[string]string{"entitlement": "entitlements", "role": "roles"}[kind]
	if table == "" {
		return apperr.Invalid("target_type", "must be entitlement or role")
	}
	if _, err := tx.Exec(ctx, `DELETE FROM assignments WHERE tenant_id = $1 AND target_type = $2 AND target_id = $3`, tx.TenantID(), kind, id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

// ids lists the UUIDs a query on the tenant and one id selects.
func ids(ctx context.Context, tx *store.Tx, q string, id uuid.UUID) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, q, tx.TenantID(), id)
}
