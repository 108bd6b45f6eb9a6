package governance

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The catalog stores: applications and entitlements.

func insertApplication(ctx context.Context, tx *store.Tx, a *Application) error {
	_, err := tx.Exec(ctx, `INSERT INTO applications (tenant_id, id, key, name, type, status, owner_id, nhi_id, description, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1)`, tx.TenantID(), a.ID, a.Key, a.Name, a.Type, a.Status, a.OwnerID, a.NHIID, a.Description, a.CreatedAt)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "an application with key %q already exists", a.Key)
	}
	return err
}

func updateApplication(ctx context.Context, tx *store.Tx, a *Application) error {
	_, err := tx.Exec(ctx, `UPDATE applications SET name = $1, status = $2, owner_id = $3, description = $4, updated_at = $5, version = $6
		WHERE tenant_id = $7 AND id = $8`, a.Name, a.Status, a.OwnerID, a.Description, a.UpdatedAt, a.Version, tx.TenantID(), a.ID)
	return err
}

// deleteApplication deletes an application, its entitlements and every
// assignment of them.
func deleteApplication(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM assignments WHERE tenant_id = $1 AND target_type = 'entitlement'
		AND target_id IN (SELECT id FROM entitlements WHERE tenant_id = $1 AND application_id = $2)`, tx.TenantID(), id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM applications WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

// listApplications reads up to limit applications by key after afterKey
// (of one type, when typ is set).
func listApplications(ctx context.Context, tx *store.Tx, typ, afterKey string, limit int) ([]*Application, error) {
	return store.Collect(ctx, tx, scanApp, `SELECT `+appCols+` FROM applications WHERE tenant_id = $1 AND ($2 = '' OR type = $2) AND key > $3 ORDER BY key LIMIT $4`,
		tx.TenantID(), typ, afterKey, limit)
}

// applicationOf is the application standing for an NHI (store.NoRows: none).
func applicationOf(ctx context.Context, tx *store.Tx, nhiID uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `SELECT id FROM applications WHERE tenant_id = $1 AND nhi_id = $2`, tx.TenantID(), nhiID).Scan(&id)
	return id, err
}

func insertEntitlementRow(ctx context.Context, tx *store.Tx, e *Entitlement) error {
	_, err := tx.Exec(ctx, `INSERT INTO entitlements (tenant_id, id, application_id, kind, key, name, description, risk_level, classification,
		owner_id, requestable, approval_state, definition_hash, created_at, updated_at, version, workflow_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1, $15)`, tx.TenantID(), e.ID, e.ApplicationID, e.Kind, e.Key, e.Name,
		e.Description, e.RiskLevel, e.Classification, e.OwnerID, e.Requestable, e.ApprovalState, e.DefinitionHash, e.CreatedAt, e.WorkflowID)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "the application already has an entitlement %q", e.Key)
	}
	return err
}

func updateEntitlement(ctx context.Context, tx *store.Tx, e *Entitlement) error {
	_, err := tx.Exec(ctx, `UPDATE entitlements SET name = $1, description = $2, risk_level = $3, classification = $4, owner_id = $5,
		requestable = $6, approval_state = $7, updated_at = $8, version = $9, workflow_id = $12 WHERE tenant_id = $10 AND id = $11`,
		e.Name, e.Description, e.RiskLevel, e.Classification, e.OwnerID, e.Requestable, e.ApprovalState, e.UpdatedAt, e.Version, tx.TenantID(), e.ID,
		e.WorkflowID)
	return err
}

// listEntitlements reads up to limit entitlements by id after after, of
// one application (uuid.Nil: every), kind and approval state (when set).
func listEntitlements(ctx context.Context, tx *store.Tx, app uuid.UUID, kind, state string, after uuid.UUID, limit int) ([]*Entitlement, error) {
	return store.Collect(ctx, tx, scanEnt, `SELECT `+entCols+` FROM entitlements WHERE tenant_id = $1 AND (application_id = $2 OR $2 = $3)
		AND ($4 = '' OR kind = $4) AND ($5 = '' OR approval_state = $5) AND id > $6 ORDER BY id LIMIT $7`,
		tx.TenantID(), app, uuid.Nil, kind, state, after, limit)
}

// lockEntitlementByKey reads an application's entitlement by key for
// update (store.NoRows: none).
func lockEntitlementByKey(ctx context.Context, tx *store.Tx, app uuid.UUID, key string) (*Entitlement, error) {
	return scanEnt(tx.QueryRow(ctx, `SELECT `+entCols+` FROM entitlements WHERE tenant_id = $1 AND application_id = $2 AND key = $3 FOR UPDATE`,
		tx.TenantID(), app, key))
}

// setDefinition records a tool's new definition hash and approval state.
func setDefinition(ctx context.Context, tx *store.Tx, id uuid.UUID, hash, state string, now time.Time, version int64) error {
	_, err := tx.Exec(ctx, `UPDATE entitlements SET definition_hash = $1, approval_state = $2, updated_at = $3, version = $4
		WHERE tenant_id = $5 AND id = $6`, hash, state, now, version, tx.TenantID(), id)
	return err
}
