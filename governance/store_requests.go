package governance

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The access-request stores: the catalog's query, holdings, approval
// delegations.

// holdsNow counts a subject's assignments of a target valid now or later.
func holdsNow(ctx context.Context, tx *store.Tx, subjectType string, subject uuid.UUID, targetType string, target uuid.UUID, now time.Time) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM assignments WHERE tenant_id = $1 AND subject_type = $2 AND subject_id = $3 AND target_type = $4
		AND target_id = $5 AND (valid_until IS NULL OR valid_until > $6)`, tx.TenantID(), subjectType, subject, targetType, target, now).Scan(&n)
	return n, err
}

// catalogPage reads a page of the request catalog (o.Limit+1 rows): the
// requestable approved entitlements of active applications and the
// requestable roles, by name.
func catalogPage(ctx context.Context, tx *store.Tx, o CatalogOptions) ([]*CatalogItem, error) {
	return store.Collect(ctx, tx, scanCatalogItem, `SELECT type, id, key, name, description, kind, risk_level, application_id, application_key, application_name, workflow_id
		FROM (SELECT 'entitlement' AS type, e.id, e.key, e.name, e.description, e.kind, e.risk_level, a.id AS application_id, a.key AS application_key,
		        a.name AS application_name, e.workflow_id
		      FROM entitlements e JOIN applications a ON a.tenant_id = e.tenant_id AND a.id = e.application_id
		      WHERE e.tenant_id = $1 AND e.requestable AND e.approval_state = 'approved' AND a.status = 'active'
		        AND ($2 = '' OR e.kind = $2) AND (a.id = $3 OR $3 = $4)
		      UNION ALL
		      SELECT 'role', r.id, r.key, r.name, r.description, '', '', NULL, '', '', r.workflow_id
		      FROM roles r WHERE r.tenant_id = $1 AND r.requestable AND $2 = '' AND $3 = $4) c
		WHERE ($5 = '' OR type = $5) AND ($6 = '%%' OR lower(name) LIKE $6 ESCAPE '\' OR lower(key) LIKE $6 ESCAPE '\'
		  OR lower(description) LIKE $6 ESCAPE '\' OR lower(application_name) LIKE $6 ESCAPE '\')
		  AND (name > $7 OR (name = $7 AND id > $8))
		ORDER BY name, id LIMIT $9`, tx.TenantID(), o.Kind, o.ApplicationID, uuid.Nil, o.Type, likePattern(o.Query), o.AfterName, o.AfterID, o.Limit+1)
}

func insertDelegation(ctx context.Context, tx *store.Tx, d *Delegation, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO approval_delegations (tenant_id, id, delegator_id, delegate_id, starts_at, ends_at, reason, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tx.TenantID(), d.ID, d.DelegatorID, d.DelegateID, d.StartsAt, d.EndsAt, d.Reason, now)
	return err
}

// liveDelegations lists up to 1000 delegations not ended by now, given or
// received by of (uuid.Nil: everyone's).
func liveDelegations(ctx context.Context, tx *store.Tx, now time.Time, of uuid.UUID) ([]*Delegation, error) {
	return store.Collect(ctx, tx, scanDelegation, `SELECT `+delegationCols+` FROM approval_delegations WHERE tenant_id = $1 AND ends_at > $2
		AND ($3 = $4 OR delegator_id = $3 OR delegate_id = $3) ORDER BY id LIMIT 1000`, tx.TenantID(), now, of, uuid.Nil)
}

func delegationByID(ctx context.Context, tx *store.Tx, id uuid.UUID) (*Delegation, error) {
	return scanDelegation(tx.QueryRow(ctx, `SELECT `+delegationCols+` FROM approval_delegations WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id))
}

func deleteDelegation(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM approval_delegations WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}
