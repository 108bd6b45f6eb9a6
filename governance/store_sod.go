package governance

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The separation-of-duties stores: rules, exemptions, violations, and the
// holdings a check reads.

func insertSoDRule(ctx context.Context, tx *store.Tx, r *SoDRule, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO sod_rules (tenant_id, id, key, name, description, severity, kind, left_ids, right_ids, max_held, enabled,
		created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)`, tx.TenantID(), r.ID, r.Key, r.Name,
		r.Description, r.Severity, r.Kind, marshal(r.EntitlementIDs), marshal(r.ConflictingIDs), r.MaxHeld, r.Enabled, now)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a rule with key %q already exists", r.Key)
	}
	return err
}

func updateSoDRule(ctx context.Context, tx *store.Tx, r *SoDRule) error {
	_, err := tx.Exec(ctx, `UPDATE sod_rules SET name = $1, description = $2, severity = $3, left_ids = $4, right_ids = $5, max_held = $6,
		enabled = $7, updated_at = $8, version = $9 WHERE tenant_id = $10 AND id = $11`, r.Name, r.Description, r.Severity, marshal(r.EntitlementIDs),
		marshal(r.ConflictingIDs), r.MaxHeld, r.Enabled, r.UpdatedAt, r.Version, tx.TenantID(), r.ID)
	return err
}

func listSoDRules(ctx context.Context, tx *store.Tx, afterKey string, limit int) ([]*SoDRule, error) {
	return store.Collect(ctx, tx, scanSoDRule, `SELECT `+sodCols+` FROM sod_rules WHERE tenant_id = $1 AND key > $2 ORDER BY key LIMIT $3`,
		tx.TenantID(), afterKey, limit)
}

// heldTarget is an entitlement or role assigned.
type heldTarget struct {
	kind string
	id   uuid.UUID
}

// heldTargets lists what a subject (subjects[0], of type typ) holds now
// or later through its own assignments and those of its groups
// (subjects[1:]). Subject IDs are UUIDs, so a group assignment never
// matches the subject's own ID.
func heldTargets(ctx context.Context, tx *store.Tx, typ string, subjects []uuid.UUID, now time.Time) ([]heldTarget, error) {
	marks := make([]string, len(subjects))
	args := []any{tx.TenantID(), now, typ}
	for i, sub := range subjects {
		marks[i] = fmt.Sprintf("$%d", i+4)
		args = append(args, sub)
	}
	return store.Collect(ctx, tx, func(r store.Scanner) (heldTarget, error) {
		var t heldTarget
		return t, r.Scan(&t.kind, &t.id)
	}, `SELECT target_type, target_id FROM assignments WHERE tenant_id = $1 AND (valid_until IS NULL OR valid_until > $2)
		AND ((subject_type = $3 AND subject_id = $4) OR (subject_type = 'group' AND subject_id IN (`+strings.Join(marks, ", ")+`)))`, args...)
}

// exemptRuleIDs lists the rules a subject is exempt from at now.
func exemptRuleIDs(ctx context.Context, tx *store.Tx, typ string, id uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT rule_id FROM sod_exemptions WHERE tenant_id = $1 AND subject_type = $2 AND subject_id = $3
		AND revoked_at IS NULL AND expires_at > $4`, tx.TenantID(), typ, id, now)
}

func insertExemption(ctx context.Context, tx *store.Tx, x *SoDExemption, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO sod_exemptions (tenant_id, id, rule_id, subject_type, subject_id, justification, approved_by, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, tx.TenantID(), x.ID, x.RuleID, x.SubjectType, x.SubjectID, x.Justification, x.ApprovedBy,
		x.ExpiresAt, now)
	return err
}

// listExemptions reads a page of exemptions before before, newest first
// (of one rule unless uuid.Nil; only those active at now when activeOnly).
func listExemptions(ctx context.Context, tx *store.Tx, rule uuid.UUID, activeOnly bool, now time.Time, before uuid.UUID, limit int) ([]*SoDExemption, error) {
	return store.Collect(ctx, tx, scanExemption, `SELECT `+exemptionCols+` FROM sod_exemptions WHERE tenant_id = $1 AND (rule_id = $2 OR $2 = $3)
		AND id < $4 AND (NOT $5 OR (revoked_at IS NULL AND expires_at > $6)) ORDER BY id DESC LIMIT $7`,
		tx.TenantID(), rule, uuid.Nil, before, activeOnly, now, limit)
}

// revokeExemption ends an active exemption; false when none was active.
func revokeExemption(ctx context.Context, tx *store.Tx, id uuid.UUID, now time.Time) (bool, error) {
	r, err := tx.Exec(ctx, `UPDATE sod_exemptions SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL`, now, tx.TenantID(), id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// activeExemptions lists the exemptions active at now.
func activeExemptions(ctx context.Context, tx *store.Tx, now time.Time) ([]violationKey, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (violationKey, error) {
		var k violationKey
		return k, r.Scan(&k.rule, &k.typ, &k.id)
	}, `SELECT rule_id, subject_type, subject_id FROM sod_exemptions WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at > $2`, tx.TenantID(), now)
}

// openViolations maps the open violations to their ids.
func openViolations(ctx context.Context, tx *store.Tx) (map[violationKey]uuid.UUID, error) {
	rows, err := tx.Query(ctx, `SELECT id, rule_id, subject_type, subject_id FROM sod_violations WHERE tenant_id = $1 AND status = 'open'`, tx.TenantID())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	open := map[violationKey]uuid.UUID{}
	for rows.Next() {
		var id uuid.UUID
		var k violationKey
		if err := rows.Scan(&id, &k.rule, &k.typ, &k.id); err != nil {
			return nil, err
		}
		open[k] = id
	}
	return open, rows.Err()
}

// seeViolation records that an open violation is still there, with what.
func seeViolation(ctx context.Context, tx *store.Tx, id uuid.UUID, ents []uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE sod_violations SET last_seen_at = $1, entitlement_ids = $2 WHERE tenant_id = $3 AND id = $4`,
		now, marshal(ents), tx.TenantID(), id)
	return err
}

func resolveViolation(ctx context.Context, tx *store.Tx, id uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE sod_violations SET status = 'resolved', resolved_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tx.TenantID(), id)
	return err
}

func insertViolation(ctx context.Context, tx *store.Tx, v *SoDViolation) error {
	_, err := tx.Exec(ctx, `INSERT INTO sod_violations (tenant_id, id, rule_id, subject_type, subject_id, entitlement_ids, status, first_seen_at, last_seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7)`, tx.TenantID(), v.ID, v.RuleID, v.SubjectType, v.SubjectID, marshal(v.EntitlementIDs), v.FirstSeenAt)
	return err
}

// listViolations reads a page of violations before before, newest first
// (of one status and rule, when set).
func listViolations(ctx context.Context, tx *store.Tx, status string, rule, before uuid.UUID, limit int) ([]*SoDViolation, error) {
	return store.Collect(ctx, tx, scanViolation, `SELECT v.id, v.rule_id, r.key, r.severity, v.subject_type, v.subject_id, v.entitlement_ids,
		v.status, v.first_seen_at, v.last_seen_at, v.resolved_at FROM sod_violations v JOIN sod_rules r ON r.tenant_id = v.tenant_id AND r.id = v.rule_id
		WHERE v.tenant_id = $1 AND ($2 = '' OR v.status = $2) AND (v.rule_id = $3 OR $3 = $4) AND v.id < $5 ORDER BY v.id DESC LIMIT $6`,
		tx.TenantID(), status, rule, uuid.Nil, before, limit)
}

// tenantsWithRules lists, across tenants, those with an enabled rule.
func tenantsWithRules(ctx context.Context, tx *store.Tx) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT DISTINCT tenant_id FROM sod_rules WHERE enabled`)
}
