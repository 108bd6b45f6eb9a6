package governance

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

func loadTarget(ctx context.Context, tx *store.Tx, typ string, id uuid.UUID) (*targetInfo, error) {
	var t targetInfo
	if typ == "entitlement" {
		var approval, status, key, app string
		err := tx.QueryRow(ctx, `SELECT e.risk_level, e.owner_id, a.owner_id, e.workflow_id, e.requestable, e.approval_state, a.status, e.key, a.key
			FROM entitlements e JOIN applications a ON a.tenant_id = e.tenant_id AND a.id = e.application_id WHERE e.tenant_id = $1 AND e.id = $2`,
			tx.TenantID(), id).Scan(&t.risk, &t.owner, &t.appOwner, &t.workflow, &t.requestable, &approval, &status, &key, &app)
		if store.NoRows(err) {
			return nil, apperr.Invalid("target_id", "no such entitlement in this tenant")
		}
		t.usable, t.name = approval == Approved && status == "active", app+"/"+key
		return &t, err
	}
	err := tx.QueryRow(ctx, `SELECT owner_id, workflow_id, requestable, key FROM roles WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).
		Scan(&t.owner, &t.workflow, &t.requestable, &t.name)
	if store.NoRows(err) {
		return nil, apperr.Invalid("target_id", "no such role in this tenant")
	}
	if err != nil {
		return nil, err
	}
	t.appOwner, t.usable, t.risk = t.owner, true, "low"
	// A role is as risky as the riskiest entitlement it grants directly.
	rows, err := tx.Query(ctx, `SELECT e.risk_level FROM role_entitlements r JOIN entitlements e ON e.tenant_id = r.tenant_id AND e.id = r.entitlement_id
		WHERE r.tenant_id = $1 AND r.role_id = $2`, tx.TenantID(), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		if riskRank[r] > riskRank[t.risk] {
			t.risk = r
		}
	}
	return &t, rows.Err()
}

func (s *Service) insertApproval(ctx context.Context, tx *store.Tx, a *Approval) error {
	payload := a.Payload
	if payload == nil {
		payload = json.RawMessage("{}")
	}
	_, err := tx.Exec(ctx, `INSERT INTO approvals (tenant_id, id, kind, status, requester_type, requester_id, subject_type, subject_id, target_type,
		target_id, risk_level, workflow_id, steps, current_step, step_started_at, step_due_at, escalated, justification, duration_seconds, payload,
		reason, expires_at, created_at, updated_at, version, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, NULL,
		false, $15, $16, $17, $18, $19, $14, $14, 1, $20)`, tx.TenantID(), a.ID, a.Kind, a.Status, a.RequesterType, a.RequesterID, a.SubjectType,
		a.SubjectID, a.TargetType, a.TargetID, a.RiskLevel, a.WorkflowID, marshal(a.Steps), a.CreatedAt, a.Justification, a.DurationSeconds,
		string(payload), a.Reason, a.ExpiresAt, a.fingerprint)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a request for this access is already pending")
	}
	return err
}

// save writes an approval's mutable state, bumping its version.
func (s *Service) save(ctx context.Context, tx *store.Tx, a *Approval) error {
	a.UpdatedAt, a.Version = s.now(), a.Version+1
	_, err := tx.Exec(ctx, `UPDATE approvals SET status = $1, current_step = $2, step_started_at = $3, step_due_at = $4, escalated = $5,
		assignment_id = $6, reason = $7, decided_at = $8, updated_at = $9, version = $10 WHERE tenant_id = $11 AND id = $12`, a.Status, a.CurrentStep,
		a.StepStartedAt, a.StepDueAt, a.Escalated, a.AssignmentID, a.Reason, a.DecidedAt, a.UpdatedAt, a.Version, tx.TenantID(), a.ID)
	return err
}

// event appends a line to the approval's history.
func (s *Service) event(ctx context.Context, tx *store.Tx, a *Approval, typ, comment string, data any) error {
	_, err := tx.Exec(ctx, `INSERT INTO approval_events (tenant_id, id, approval_id, at, actor, type, step, comment, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, tx.TenantID(), uuid.Must(uuid.NewV7()), a.ID, s.now(), actorOf(ctx), typ, a.CurrentStep, comment,
		marshal(data))
	return err
}

func (s *Service) addApprovers(ctx context.Context, tx *store.Tx, a *Approval, who map[uuid.UUID]string) error {
	for id, via := range who {
		if _, err := tx.Exec(ctx, `INSERT INTO approval_approvers (tenant_id, approval_id, step, user_id, via) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, tx.TenantID(), a.ID, a.CurrentStep, id, via); err != nil {
			return err
		}
	}
	return s.notify(ctx, tx, EventApprovalPending, a.ID, map[string]any{"approval_id": a.ID, "kind": a.Kind, "step": a.CurrentStep,
		"approvers": sortedIDs(who), "subject_type": a.SubjectType, "subject_id": a.SubjectID, "target_type": a.TargetType, "target_id": a.TargetID})
}

// lockApproval loads an approval for update; one the caller may not see is
// not found.
func (s *Service) lockApproval(ctx context.Context, tx *store.Tx, id uuid.UUID) (*Approval, error) {
	a, err := scanApproval(tx.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), id))
	if store.NoRows(err) {
		return nil, apperr.NotFound("approval")
	}
	if err != nil {
		return nil, err
	}
	if ok, err := s.mayView(ctx, tx, a); err != nil || !ok {
		if err == nil {
			err = apperr.NotFound("approval")
		}
		return nil, err
	}
	return a, nil
}

// pendingLike counts the pending approvals of a's kind for a's subject
// and target.
func pendingLike(ctx context.Context, tx *store.Tx, a *Approval) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM approvals WHERE tenant_id = $1 AND kind = $2 AND status = 'pending' AND subject_type = $3
		AND subject_id = $4 AND target_type = $5 AND target_id = $6`, tx.TenantID(), a.Kind, a.SubjectType, a.SubjectID, a.TargetType, a.TargetID).Scan(&n)
	return n, err
}

// approverVia tells how a user became an approver of a's current step
// (store.NoRows: they are not one).
func approverVia(ctx context.Context, tx *store.Tx, a *Approval, user uuid.UUID) (string, error) {
	var via string
	err := tx.QueryRow(ctx, `SELECT via FROM approval_approvers WHERE tenant_id = $1 AND approval_id = $2 AND step = $3 AND user_id = $4`,
		tx.TenantID(), a.ID, a.CurrentStep, user).Scan(&via)
	return via, err
}

// delegatorOf finds an approver of a's current step whom delegate stands
// in for at now, and how they became an approver (store.NoRows: none).
func delegatorOf(ctx context.Context, tx *store.Tx, a *Approval, delegate uuid.UUID, now time.Time) (uuid.UUID, string, error) {
	var delegator uuid.UUID
	var via string
	err := tx.QueryRow(ctx, `SELECT d.delegator_id, p.via FROM approval_delegations d JOIN approval_approvers p ON p.tenant_id = d.tenant_id
		AND p.user_id = d.delegator_id WHERE d.tenant_id = $1 AND d.delegate_id = $2 AND d.starts_at <= $3 AND d.ends_at > $3 AND p.approval_id = $4
		AND p.step = $5 ORDER BY d.delegator_id LIMIT 1`, tx.TenantID(), delegate, now, a.ID, a.CurrentStep).Scan(&delegator, &via)
	return delegator, via, err
}

// insertDecision records a decision on a's current step (one per
// approver and step: a second is already-exists).
func insertDecision(ctx context.Context, tx *store.Tx, a *Approval, approver uuid.UUID, onBehalf *uuid.UUID, decision, comment string, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO approval_decisions (tenant_id, id, approval_id, step, approver_id, on_behalf_of, decision, comment, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, tx.TenantID(), uuid.Must(uuid.NewV7()), a.ID, a.CurrentStep, approver, onBehalf, decision,
		comment, at)
	return err
}

// undecidedApprovers counts the approvers of a's current step who have
// not approved it, themselves or through a delegate.
func undecidedApprovers(ctx context.Context, tx *store.Tx, a *Approval) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM approval_approvers p WHERE p.tenant_id = $1 AND p.approval_id = $2 AND p.step = $3
		AND NOT EXISTS (SELECT 1 FROM approval_decisions d WHERE d.tenant_id = p.tenant_id AND d.approval_id = p.approval_id AND d.step = p.step
		AND d.decision = 'approve' AND (d.approver_id = p.user_id OR d.on_behalf_of = p.user_id))`, tx.TenantID(), a.ID, a.CurrentStep).Scan(&n)
	return n, err
}

func insertComment(ctx context.Context, tx *store.Tx, a *Approval, ev *ApprovalEvent) error {
	_, err := tx.Exec(ctx, `INSERT INTO approval_events (tenant_id, id, approval_id, at, actor, type, step, comment, data)
		VALUES ($1, $2, $3, $4, $5, 'comment', $6, $7, '{}')`, tx.TenantID(), ev.ID, a.ID, ev.At, ev.Actor, ev.Step, ev.Comment)
	return err
}

// approvesOrStandsIn tells whether a user is an approver of a, at any
// step, or stands in for one at now.
func approvesOrStandsIn(ctx context.Context, tx *store.Tx, a *Approval, user uuid.UUID, now time.Time) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM approval_approvers p WHERE p.tenant_id = $1 AND p.approval_id = $2 AND (p.user_id = $3
		OR EXISTS (SELECT 1 FROM approval_delegations d WHERE d.tenant_id = p.tenant_id AND d.delegator_id = p.user_id AND d.delegate_id = $3
		AND d.starts_at <= $4 AND d.ends_at > $4))`, tx.TenantID(), a.ID, user, now).Scan(&n)
	return n > 0, err
}

// approvalByID reads an approval, locked when lock (store.NoRows: none).
func approvalByID(ctx context.Context, tx *store.Tx, id uuid.UUID, lock bool) (*Approval, error) {
	q := `SELECT ` + approvalCols + ` FROM approvals WHERE tenant_id = $1 AND id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	return scanApproval(tx.QueryRow(ctx, q, tx.TenantID(), id))
}

func approversOf(ctx context.Context, tx *store.Tx, id uuid.UUID) ([]StepApprover, error) {
	return store.Collect(ctx, tx, func(row store.Scanner) (StepApprover, error) {
		var sa StepApprover
		return sa, row.Scan(&sa.Step, &sa.UserID, &sa.Via)
	}, `SELECT step, user_id, via FROM approval_approvers WHERE tenant_id = $1 AND approval_id = $2 ORDER BY step, user_id`, tx.TenantID(), id)
}

func eventsOf(ctx context.Context, tx *store.Tx, id uuid.UUID) ([]ApprovalEvent, error) {
	return store.Collect(ctx, tx, func(row store.Scanner) (ApprovalEvent, error) {
		var e ApprovalEvent
		var data []byte
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Type, &e.Step, &e.Comment, &data)
		if string(data) != "null" && string(data) != "{}" {
			e.Data = json.RawMessage(data)
		}
		return e, err
	}, `SELECT id, at, actor, type, step, comment, data FROM approval_events WHERE tenant_id = $1 AND approval_id = $2 ORDER BY id`, tx.TenantID(), id)
}

// listApprovals reads a queue's page (o.Limit+1 rows, newest first):
// mine are those me requested or is the subject of; to decide, the
// pending ones whose current step me approves or stands in for at now.
func listApprovals(ctx context.Context, tx *store.Tx, o ListApprovalsOptions, me uuid.UUID, now time.Time) ([]*Approval, error) {
	var where string
	var extra []any
	switch o.Queue {
	case QueueMine:
		where, extra = ` AND (requester_id = $6 OR subject_id = $6)`, []any{me}
	case QueueToDecide:
		where = ` AND status = 'pending' AND EXISTS (SELECT 1 FROM approval_approvers p WHERE p.tenant_id = approvals.tenant_id
			AND p.approval_id = approvals.id AND p.step = approvals.current_step AND (p.user_id = $6 OR EXISTS (SELECT 1 FROM approval_delegations d
			WHERE d.tenant_id = p.tenant_id AND d.delegator_id = p.user_id AND d.delegate_id = $6 AND d.starts_at <= $7 AND d.ends_at > $7)))`
		extra = []any{me, now}
	}
	args := append([]any{tx.TenantID(), o.Kind, o.Status, o.Before, o.Limit + 1}, extra...)
	return store.Collect(ctx, tx, scanApproval, `SELECT `+approvalCols+` FROM approvals WHERE tenant_id = $1 AND ($2 = '' OR kind = $2)
		AND ($3 = '' OR status = $3) AND id < $4`+where+` ORDER BY id DESC LIMIT $5`, args...)
}

// dueApproval is a pending approval whose step or life is over.
type dueApproval struct{ tenant, id uuid.UUID }

// approvalsDue lists, across tenants, up to 500 pending approvals whose
// step timed out or that expired by now.
func approvalsDue(ctx context.Context, tx *store.Tx, now time.Time) ([]dueApproval, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (dueApproval, error) {
		var d dueApproval
		return d, r.Scan(&d.tenant, &d.id)
	}, `SELECT tenant_id, id FROM approvals WHERE status = 'pending' AND (step_due_at <= $1 OR expires_at <= $1) ORDER BY id LIMIT 500`, now)
}

// approvedWithFingerprint is the latest approval (not an access request)
// with fingerprint approved after since (store.NoRows: none).
func approvedWithFingerprint(ctx context.Context, tx *store.Tx, fingerprint string, since time.Time) (*Approval, error) {
	return scanApproval(tx.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals WHERE tenant_id = $1 AND kind <> 'access_request' AND fingerprint = $2
		AND status = 'approved' AND decided_at > $3 ORDER BY decided_at DESC LIMIT 1`, tx.TenantID(), fingerprint, since))
}
