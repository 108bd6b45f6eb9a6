package governance

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The approval-workflow store (approval_workflows).

// saveWorkflow inserts or updates a workflow; a default one stops the
// others being the default.
func saveWorkflow(ctx context.Context, tx *store.Tx, w *Workflow, insert bool) error {
	if w.IsDefault {
		if _, err := tx.Exec(ctx, `UPDATE approval_workflows SET is_default = false WHERE tenant_id = $1 AND is_default AND id <> $2`, tx.TenantID(), w.ID); err != nil {
			return err
		}
	}
	var err error
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO approval_workflows (tenant_id, id, key, name, description, steps, auto_approve_max_risk, is_default, created_at,
			updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)`, tx.TenantID(), w.ID, w.Key, w.Name, w.Description, marshal(w.Steps),
			w.AutoApproveMaxRisk, w.IsDefault, w.CreatedAt)
	} else {
		_, err = tx.Exec(ctx, `UPDATE approval_workflows SET name = $1, description = $2, steps = $3, auto_approve_max_risk = $4, is_default = $5,
			updated_at = $6, version = $7 WHERE tenant_id = $8 AND id = $9`, w.Name, w.Description, marshal(w.Steps), w.AutoApproveMaxRisk, w.IsDefault,
			w.UpdatedAt, w.Version, tx.TenantID(), w.ID)
	}
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a workflow with key %q already exists", w.Key)
	}
	return err
}

func listWorkflows(ctx context.Context, tx *store.Tx, afterKey string, limit int) ([]*Workflow, error) {
	return store.Collect(ctx, tx, scanWorkflow, `SELECT `+workflowCols+` FROM approval_workflows WHERE tenant_id = $1 AND key > $2 ORDER BY key LIMIT $3`,
		tx.TenantID(), afterKey, limit)
}

// workflowUsers counts the entitlements and roles that name a workflow.
func workflowUsers(ctx context.Context, tx *store.Tx, id uuid.UUID) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM entitlements WHERE tenant_id = $1 AND workflow_id = $2) +
		(SELECT COUNT(*) FROM roles WHERE tenant_id = $1 AND workflow_id = $2)`, tx.TenantID(), id).Scan(&n)
	return n, err
}

// workflowFor picks the workflow of a target: its own, the tenant's
// default, or the built-in one.
func workflowFor(ctx context.Context, tx *store.Tx, own *uuid.UUID) (*Workflow, error) {
	q := `SELECT ` + workflowCols + ` FROM approval_workflows WHERE tenant_id = $1 AND is_default`
	args := []any{tx.TenantID()}
	if own != nil {
		q, args = `SELECT `+workflowCols+` FROM approval_workflows WHERE tenant_id = $1 AND id = $2`, append(args, *own)
	}
	w, err := scanWorkflow(tx.QueryRow(ctx, q, args...))
	if store.NoRows(err) {
		b := builtinWorkflow
		return &b, nil
	}
	return w, err
}
