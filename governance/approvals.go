package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Approval kinds.
const (
	KindAccessRequest = "access_request"
	KindToolCall      = "tool_call"
	// An agent-to-agent call held by the A2A proxy is of kind KindA2ACall
	// ("a2a_call", as the entitlement it needs).
)

// Approval states.
const (
	StatusPending   = "pending"
	StatusApproved  = "approved"
	StatusDenied    = "denied"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
	// StatusFailed: approved, but the assignment could not be made (a
	// separation-of-duties rule added meanwhile, the target deleted).
	StatusFailed = "failed"
)

// Notification event kinds (outside EventPrefix).
const (
	EventApprovalPending   = "approval.pending"
	EventApprovalDecided   = "approval.decided"
	EventApprovalEscalated = "approval.escalated"
)

// Approval is one decision to be made: an access request, or a request
// another module opened (a held tool call).
type Approval struct {
	ID              uuid.UUID       `json:"id"`
	Kind            string          `json:"kind" doc:"access_request, tool_call or a2a_call"`
	Status          string          `json:"status" doc:"pending, approved, denied, cancelled, expired or failed"`
	RequesterType   string          `json:"requester_type" doc:"user or nhi"`
	RequesterID     uuid.UUID       `json:"requester_id"`
	SubjectType     string          `json:"subject_type" doc:"who gets the access: user or nhi"`
	SubjectID       uuid.UUID       `json:"subject_id"`
	TargetType      string          `json:"target_type" doc:"entitlement or role"`
	TargetID        uuid.UUID       `json:"target_id"`
	RiskLevel       string          `json:"risk_level"`
	WorkflowID      *uuid.UUID      `json:"workflow_id,omitempty"`
	Steps           []WorkflowStep  `json:"steps" doc:"copied from the workflow when the approval opened"`
	CurrentStep     int             `json:"current_step" doc:"0-based"`
	StepStartedAt   time.Time       `json:"step_started_at"`
	StepDueAt       *time.Time      `json:"step_due_at,omitempty"`
	Escalated       bool            `json:"escalated" doc:"the current step went to its fallback approvers"`
	Justification   string          `json:"justification"`
	DurationSeconds int             `json:"duration_seconds,omitempty" doc:"how long the granted assignment lasts (0: until removed)"`
	Payload         json.RawMessage `json:"payload,omitempty" doc:"what the opening module recorded (a tool call's tool, argument hash, actor chain)"`
	AssignmentID    *uuid.UUID      `json:"assignment_id,omitempty" doc:"the assignment an approved access request became"`
	Reason          string          `json:"reason,omitempty" doc:"why it ended as it did"`
	ExpiresAt       time.Time       `json:"expires_at"`
	DecidedAt       *time.Time      `json:"decided_at,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	Version         int64           `json:"version"`
	// Approvers of the current step (filled when one approval is read).
	Approvers []StepApprover `json:"approvers,omitempty"`

	fingerprint string
}

// StepApprover is a user who may decide a step, and why.
type StepApprover struct {
	Step   int       `json:"step"`
	UserID uuid.UUID `json:"user_id"`
	Via    string    `json:"via" doc:"the approver kind that resolved to this user (escalation, administrators …)"`
}

// ApprovalEvent is one line of an approval's history.
type ApprovalEvent struct {
	ID      uuid.UUID       `json:"id"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Type    string          `json:"type" doc:"opened, step_opened, decision, escalated, comment, approved, denied, cancelled, expired, failed, fulfilled"`
	Step    int             `json:"step"`
	Comment string          `json:"comment,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

const approvalCols = `id, kind, status, requester_type, requester_id, subject_type, subject_id, target_type, target_id, risk_level, workflow_id,
	steps, current_step, step_started_at, step_due_at, escalated, justification, duration_seconds, payload, assignment_id, reason, expires_at,
	decided_at, created_at, updated_at, version`

func scanApproval(row store.Scanner) (*Approval, error) {
	var a Approval
	var steps, payload []byte
	if err := row.Scan(&a.ID, &a.Kind, &a.Status, &a.RequesterType, &a.RequesterID, &a.SubjectType, &a.SubjectID, &a.TargetType, &a.TargetID,
		&a.RiskLevel, &a.WorkflowID, &steps, &a.CurrentStep, &a.StepStartedAt, &a.StepDueAt, &a.Escalated, &a.Justification, &a.DurationSeconds,
		&payload, &a.AssignmentID, &a.Reason, &a.ExpiresAt, &a.DecidedAt, &a.CreatedAt, &a.UpdatedAt, &a.Version); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(steps, &a.Steps)
	if len(payload) > 0 && string(payload) != "null" && string(payload) != "{}" {
		a.Payload = json.RawMessage(payload)
	}
	return &a, nil
}

// OpenInput opens an approval.
type OpenInput struct {
	Kind          string
	RequesterType string
	RequesterID   uuid.UUID
	SubjectType   string
	SubjectID     uuid.UUID
	TargetType    string
	TargetID      uuid.UUID
	Justification string
	// Duration of the assignment an approved access request becomes.
	Duration time.Duration
	// Payload is what the opening module records (any JSON value).
	Payload any
	// TTL bounds how long the approval may stay pending (default 14 days).
	TTL time.Duration
	// Steps, when set, replace the target's workflow (tool-call holds may
	// carry their own); auto-approval applies only to workflows.
	Steps []WorkflowStep
	// Fingerprint identifies what is approved (a held call: subject, tool
	// and arguments), for ReusableApproval.
	Fingerprint string
}

// targetInfo is what approvals need to know of an entitlement or role.
type targetInfo struct {
	risk        string
	owner       *uuid.UUID
	appOwner    *uuid.UUID
	workflow    *uuid.UUID
	requestable bool
	usable      bool // approved entitlement of an active application (roles: always)
	name        string
}

// OpenApproval opens an approval and its first step — the generic
// primitive: access requests come here, and so do other modules' holds
// (kind tool_call). For an access request the preventive
// separation-of-duties check runs first and refuses, naming the rule; a
// target whose workflow auto-approves its risk is granted at once.
func (s *Service) OpenApproval(ctx context.Context, in OpenInput) (*Approval, error) {
	if err := oneOf("kind", in.Kind, KindAccessRequest, KindToolCall, KindA2ACall); err != nil {
		return nil, err
	}
	if err := oneOf("subject_type", in.SubjectType, SubjectUser, SubjectNHI); err != nil {
		return nil, err
	}
	if err := oneOf("target_type", in.TargetType, "entitlement", "role"); err != nil {
		return nil, err
	}
	if len(in.Justification) > 2000 {
		return nil, apperr.Invalid("justification", "must be at most 2000 characters")
	}
	if in.Duration < 0 || in.Duration > 5*365*24*time.Hour {
		return nil, apperr.Invalid("duration_seconds", "must be from 0 (until removed) to 5 years")
	}
	if in.TTL <= 0 {
		in.TTL = 14 * 24 * time.Hour
	}
	if in.Steps != nil {
		w := Workflow{Key: "custom", Name: "custom", Steps: in.Steps}
		if err := (&WorkflowInput{}).apply(&w); err != nil {
			return nil, err
		}
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	a := &Approval{ID: uuid.Must(uuid.NewV7()), Kind: in.Kind, Status: StatusPending, RequesterType: in.RequesterType, RequesterID: in.RequesterID,
		SubjectType: in.SubjectType, SubjectID: in.SubjectID, TargetType: in.TargetType, TargetID: in.TargetID, Justification: in.Justification,
		DurationSeconds: int(in.Duration / time.Second), StepStartedAt: now, ExpiresAt: now.Add(in.TTL), CreatedAt: now, UpdatedAt: now, Version: 1,
		fingerprint: in.Fingerprint}
	if in.Payload != nil {
		a.Payload = json.RawMessage(marshal(in.Payload))
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if ok, err := s.subjectExists(ctx, tx, a.SubjectType, a.SubjectID); err != nil || !ok {
			if err == nil {
				err = apperr.Invalid("subject_id", "no such "+a.SubjectType+" in this tenant")
			}
			return err
		}
		t, err := loadTarget(ctx, tx, a.TargetType, a.TargetID)
		if err != nil {
			return err
		}
		a.RiskLevel = t.risk
		wf := &Workflow{Steps: in.Steps}
		if in.Steps == nil {
			if wf, err = workflowFor(ctx, tx, t.workflow); err != nil {
				return err
			}
			if wf.ID != uuid.Nil {
				a.WorkflowID = &wf.ID
			}
		}
		a.Steps = wf.Steps
		if a.Kind == KindAccessRequest {
			if !t.usable {
				return apperr.Invalid("target_id", "the entitlement is not approved or its application is not active")
			}
			dup, err := pendingLike(ctx, tx, a)
			if err != nil {
				return err
			}
			if dup > 0 {
				return apperr.New(apperr.KindAlreadyExists, "a request for this access is already pending")
			}
			if err := s.CheckSoD(ctx, tx, snap, a.SubjectType, a.SubjectID, a.TargetType, a.TargetID); err != nil {
				return err
			}
		}
		if err := s.insertApproval(ctx, tx, a); err != nil {
			return err
		}
		if err := s.event(ctx, tx, a, "opened", "", map[string]any{"workflow": wf.Key, "risk_level": a.RiskLevel}); err != nil {
			return err
		}
		action := "governance.approval.open"
		if wf.AutoApproveMaxRisk != "" && riskRank[a.RiskLevel] <= riskRank[wf.AutoApproveMaxRisk] {
			action = "governance.approval.auto_approve"
			if err := s.finish(ctx, tx, snap, a, StatusApproved, fmt.Sprintf("auto-approved: risk %s is at most %s", a.RiskLevel, wf.AutoApproveMaxRisk)); err != nil {
				return err
			}
		} else if err := s.openStep(ctx, tx, a, t); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, action, "approval", a.ID, map[string]any{"kind": a.Kind, "subject_type": a.SubjectType, "subject_id": a.SubjectID,
			"target_type": a.TargetType, "target_id": a.TargetID, "status": a.Status, "justification": a.Justification, "assignment_id": a.AssignmentID})
	})
	if err != nil {
		return nil, refusal(err)
	}
	return a, nil
}

// resolve turns approver references into users for an approval. Neither
// the requester nor the subject ever approves their own request.
func (s *Service) resolve(ctx context.Context, tx *store.Tx, a *Approval, t *targetInfo, refs []ApproverRef) (map[uuid.UUID]string, error) {
	if s.People == nil || s.Agents == nil {
		return nil, errNoDirectory
	}
	out := map[uuid.UUID]string{}
	add := func(id *uuid.UUID, via string) {
		if id != nil && *id != uuid.Nil && *id != a.RequesterID && *id != a.SubjectID {
			if _, ok := out[*id]; !ok {
				out[*id] = via
			}
		}
	}
	for _, r := range refs {
		switch r.Type {
		case ApproverUser:
			add(r.ID, "user")
		case ApproverEntOwner:
			add(t.owner, r.Type)
		case ApproverAppOwner:
			add(t.appOwner, r.Type)
		case ApproverManager:
			// A user's manager; for an NHI, its owner's.
			person := &a.SubjectID
			if a.SubjectType == SubjectNHI {
				owner, _, err := s.Agents.OwnersTx(ctx, tx, a.SubjectID)
				if err != nil {
					return nil, err
				}
				person = owner
			}
			if person != nil {
				m, err := s.People.ManagerOfTx(ctx, tx, *person)
				if err != nil {
					return nil, err
				}
				add(m, r.Type)
			}
		case ApproverNHIOwner:
			if a.SubjectType != SubjectNHI {
				continue
			}
			o, b, err := s.Agents.OwnersTx(ctx, tx, a.SubjectID)
			if err != nil {
				return nil, err
			}
			add(o, r.Type)
			add(b, r.Type)
		case ApproverGroup:
			members, err := s.People.ActiveMembersTx(ctx, tx, *r.ID)
			if err != nil {
				return nil, err
			}
			for _, m := range members {
				add(&m, "group:"+r.ID.String())
			}
		}
	}
	// Only active users decide.
	for id := range out {
		status, err := s.People.StatusTx(ctx, tx, id)
		if err != nil && apperr.KindOf(err) != apperr.KindNotFound {
			return nil, err
		}
		if status != "active" {
			delete(out, id)
		}
	}
	return out, nil
}

// administrators lists the tenant's active tenant and governance admins:
// the approvers of last resort.
func (s *Service) administrators(ctx context.Context, tx *store.Tx, a *Approval) (map[uuid.UUID]string, error) {
	if s.People == nil {
		return nil, errNoDirectory
	}
	admins, err := s.People.AdminsTx(ctx, tx)
	if err != nil {
		return nil, err
	}
	out := map[uuid.UUID]string{}
	for id, roles := range admins {
		if (slices.Contains(roles, principal.RoleTenantAdmin) || slices.Contains(roles, principal.RoleGovernanceAdmin)) && id != a.RequesterID && id != a.SubjectID {
			out[id] = "administrators"
		}
	}
	return out, nil
}

// openStep resolves the current step's approvers; a step that resolves
// to nobody goes to its escalation approvers, then to the administrators.
func (s *Service) openStep(ctx context.Context, tx *store.Tx, a *Approval, t *targetInfo) error {
	if t == nil {
		var err error
		if t, err = loadTarget(ctx, tx, a.TargetType, a.TargetID); err != nil {
			return err
		}
	}
	st := a.Steps[a.CurrentStep]
	who, err := s.resolve(ctx, tx, a, t, st.Approvers)
	if err != nil {
		return err
	}
	if len(who) == 0 && len(st.EscalateTo) > 0 {
		if who, err = s.resolve(ctx, tx, a, t, st.EscalateTo); err != nil {
			return err
		}
		for id := range who {
			who[id] = "escalation (no approver resolved)"
		}
		a.Escalated = true
	}
	if len(who) == 0 {
		if who, err = s.administrators(ctx, tx, a); err != nil {
			return err
		}
	}
	now := s.now()
	a.StepStartedAt, a.StepDueAt = now, nil
	if st.TimeoutSeconds > 0 {
		due := now.Add(time.Duration(st.TimeoutSeconds) * time.Second)
		a.StepDueAt = &due
	}
	if err := s.addApprovers(ctx, tx, a, who); err != nil {
		return err
	}
	if err := s.save(ctx, tx, a); err != nil {
		return err
	}
	return s.event(ctx, tx, a, "step_opened", "", map[string]any{"step": st.Name, "mode": st.Mode, "approvers": sortedIDs(who)})
}

func sortedIDs(m map[uuid.UUID]string) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// finish ends an approval. An approved access request becomes an
// assignment (source request, for the requested duration) in the same
// transaction; if that assignment is refused by a separation-of-duties
// rule the approval ends failed, naming the rule.
func (s *Service) finish(ctx context.Context, tx *store.Tx, snap *Snapshot, a *Approval, status, reason string) error {
	now := s.now()
	a.Status, a.Reason, a.DecidedAt, a.StepDueAt = status, reason, &now, nil
	if status == StatusApproved && a.Kind == KindAccessRequest {
		as := &Assignment{ID: uuid.Must(uuid.NewV7()), SubjectType: a.SubjectType, SubjectID: a.SubjectID, TargetType: a.TargetType, TargetID: a.TargetID,
			Source: SourceRequest, Justification: a.Justification, CreatedBy: "approval:" + a.ID.String(), CreatedAt: now, UpdatedAt: now, Version: 1}
		if a.DurationSeconds > 0 {
			until := now.Add(time.Duration(a.DurationSeconds) * time.Second)
			as.ValidUntil = &until
		}
		err := s.insertAssignment(ctx, tx, snap, as)
		var refused *SoDRefusal
		switch {
		case asRefusal(err, &refused):
			a.Status, a.Reason = StatusFailed, refused.Error()
		case apperr.KindOf(err) == apperr.KindInvalidArgument:
			a.Status, a.Reason = StatusFailed, apperr.PublicMessage(err)
		case err != nil:
			return err
		default:
			a.AssignmentID = &as.ID
		}
	}
	if err := s.save(ctx, tx, a); err != nil {
		return err
	}
	if err := s.event(ctx, tx, a, a.Status, a.Reason, map[string]any{"assignment_id": a.AssignmentID}); err != nil {
		return err
	}
	return s.notify(ctx, tx, EventApprovalDecided, a.ID, map[string]any{"approval_id": a.ID, "kind": a.Kind, "status": a.Status, "reason": a.Reason,
		"requester_id": a.RequesterID, "subject_type": a.SubjectType, "subject_id": a.SubjectID, "assignment_id": a.AssignmentID})
}

func asRefusal(err error, out **SoDRefusal) bool { return errors.As(err, out) }

// Approve is the approving decision (Deny, the other, is shared with
// access decisions).
const Approve = "approve"

// DecisionInput is an approver's decision on the current step.
type DecisionInput struct {
	Decision string `json:"decision" doc:"approve or deny"`
	Comment  string `json:"comment,omitempty"`
	// Step, when given, must be the current step: a decision meant for a
	// step that has moved on is refused rather than applied to the next.
	Step *int `json:"step,omitempty"`
}

func callerUser(ctx context.Context) (uuid.UUID, error) {
	p := principal.From(ctx)
	if p == nil || p.Kind != principal.KindUser {
		return uuid.Nil, apperr.New(apperr.KindPermissionDenied, "only users decide approvals")
	}
	id, err := uuid.Parse(p.SubjectID)
	if err != nil {
		return uuid.Nil, apperr.New(apperr.KindPermissionDenied, "only users decide approvals")
	}
	return id, nil
}

func isGovAdmin(ctx context.Context) bool {
	p := principal.From(ctx)
	return p.HasRole(principal.RoleTenantAdmin) || p.HasRole(principal.RoleGovernanceAdmin)
}

// eligible says on whose behalf the caller may decide the current step —
// as one of its approvers, as the delegate of one, or as an
// administrator — and whether their approval completes the step whatever
// its mode (a fallback approver: escalation or the administrators the
// step fell to).
func (s *Service) eligible(ctx context.Context, tx *store.Tx, a *Approval, me uuid.UUID) (onBehalf *uuid.UUID, as string, completes bool, err error) {
	via, err := approverVia(ctx, tx, a, me)
	if err == nil {
		return nil, "approver", fallback(via), nil
	}
	if !store.NoRows(err) {
		return nil, "", false, err
	}
	now := s.now()
	delegator, via, err := delegatorOf(ctx, tx, a, me, now)
	if err == nil {
		return &delegator, "delegate", fallback(via), nil
	}
	if !store.NoRows(err) {
		return nil, "", false, err
	}
	if isGovAdmin(ctx) {
		return nil, "administrator", true, nil
	}
	return nil, "", false, apperr.New(apperr.KindPermissionDenied, "you are not an approver of step %d of this approval", a.CurrentStep+1)
}

// fallback reports whether an approver was added as a fallback (their one
// approval stands for the step's unresponsive or missing approvers).
func fallback(via string) bool {
	return strings.HasPrefix(via, "escalation") || via == "administrators"
}

// Decide records the caller's decision on an approval's current step. A
// denial ends the approval; an approval completes an any-of step at once
// and an all-of step when every approver has approved; the last step
// completing approves it. Decisions are serialized on the approval's row:
// of two approvers deciding one any-of step at once, one decides and the
// other is told the step has moved on.
func (s *Service) Decide(ctx context.Context, id uuid.UUID, in DecisionInput) (*Approval, error) {
	if err := oneOf("decision", in.Decision, Approve, Deny); err != nil {
		return nil, err
	}
	if len(in.Comment) > 2000 {
		return nil, apperr.Invalid("comment", "must be at most 2000 characters")
	}
	me, err := callerUser(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var a *Approval
	var via string
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := func() error {
			if a, err = s.lockApproval(ctx, tx, id); err != nil {
				return err
			}
			if a.Status != StatusPending {
				return apperr.New(apperr.KindConflict, "the approval is already %s", a.Status)
			}
			if in.Step != nil && *in.Step != a.CurrentStep {
				return apperr.New(apperr.KindConflict, "step %d was already decided; the approval is at step %d", *in.Step, a.CurrentStep)
			}
			if me == a.RequesterID || me == a.SubjectID {
				return apperr.New(apperr.KindPermissionDenied, "nobody approves their own request")
			}
			var onBehalf *uuid.UUID
			var completes bool
			if onBehalf, via, completes, err = s.eligible(ctx, tx, a, me); err != nil {
				return err
			}
			err := insertDecision(ctx, tx, a, me, onBehalf, in.Decision, in.Comment, s.now())
			if apperr.KindOf(err) == apperr.KindAlreadyExists {
				return apperr.New(apperr.KindConflict, "you already decided this step")
			}
			if err != nil {
				return err
			}
			if err := s.event(ctx, tx, a, "decision", in.Comment, map[string]any{"decision": in.Decision, "as": via, "on_behalf_of": onBehalf}); err != nil {
				return err
			}
			if in.Decision == Deny {
				return s.finish(ctx, tx, snap, a, StatusDenied, fmt.Sprintf("denied at step %d by %s", a.CurrentStep+1, actorOf(ctx)))
			}
			if a.Steps[a.CurrentStep].Mode == ModeAll && !completes {
				missing, err := undecidedApprovers(ctx, tx, a)
				if err != nil {
					return err
				}
				if missing > 0 {
					return s.save(ctx, tx, a)
				}
			}
			if a.CurrentStep+1 < len(a.Steps) {
				a.CurrentStep++
				a.Escalated = false
				return s.openStep(ctx, tx, a, nil)
			}
			return s.finish(ctx, tx, snap, a, StatusApproved, fmt.Sprintf("approved at step %d by %s", a.CurrentStep+1, actorOf(ctx)))
		}(); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval.decide", "approval", a.ID, map[string]any{"decision": in.Decision, "as": via, "step": in.Step,
			"comment": in.Comment, "status": a.Status, "current_step": a.CurrentStep, "assignment_id": a.AssignmentID, "reason": a.Reason})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// CancelInput says why a request is withdrawn (optional; the body is {}
// at least).
type CancelInput struct {
	Comment string `json:"comment,omitempty"`
}

// CommentInput is a comment on an approval.
type CommentInput struct {
	Comment string `json:"comment"`
}

// Cancel withdraws a pending approval: its requester, the subject, or an
// administrator.
func (s *Service) Cancel(ctx context.Context, id uuid.UUID, in CancelInput) (*Approval, error) {
	comment := in.Comment
	if len(comment) > 2000 {
		return nil, apperr.Invalid("comment", "must be at most 2000 characters")
	}
	var a *Approval
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if a, err = s.lockApproval(ctx, tx, id); err != nil {
			return err
		}
		if a.Status != StatusPending {
			return apperr.New(apperr.KindConflict, "the approval is already %s", a.Status)
		}
		me := callerID(ctx)
		if me != a.RequesterID && me != a.SubjectID && !isGovAdmin(ctx) {
			return apperr.New(apperr.KindPermissionDenied, "only the requester, the subject or an administrator cancels a request")
		}
		if err := s.finish(ctx, tx, nil, a, StatusCancelled, "cancelled by "+actorOf(ctx)+trail(comment)); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval.cancel", "approval", a.ID, map[string]any{"comment": comment})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func trail(comment string) string {
	if comment == "" {
		return ""
	}
	return ": " + comment
}

// callerID is the caller's user or NHI ID (uuid.Nil for others).
func callerID(ctx context.Context) uuid.UUID {
	p := principal.From(ctx)
	if p == nil {
		return uuid.Nil
	}
	id, _ := uuid.Parse(p.SubjectID)
	return id
}

// Comment adds a comment to an approval's history.
func (s *Service) Comment(ctx context.Context, id uuid.UUID, in CommentInput) (*ApprovalEvent, error) {
	comment := in.Comment
	if strings.TrimSpace(comment) == "" || len(comment) > 2000 {
		return nil, apperr.Invalid("comment", "must be 1 to 2000 characters")
	}
	var ev *ApprovalEvent
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		a, err := s.lockApproval(ctx, tx, id)
		if err != nil {
			return err
		}
		// Readers (viewers, auditors) see approvals; only participants and
		// administrators take part in them.
		if ok, err := s.participates(ctx, tx, a, principal.RoleTenantAdmin, principal.RoleGovernanceAdmin); err != nil {
			return err
		} else if !ok {
			return apperr.New(apperr.KindPermissionDenied, "only the approval's participants and administrators comment on it")
		}
		ev = &ApprovalEvent{ID: uuid.Must(uuid.NewV7()), At: s.now(), Actor: actorOf(ctx), Type: "comment", Step: a.CurrentStep, Comment: comment}
		if err := insertComment(ctx, tx, a, ev); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval.comment", "approval", id, map[string]any{"comment": comment})
	})
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// mayView: the requester, the subject, anyone who is or was an approver
// (or a delegate of one), and governance readers.
func (s *Service) mayView(ctx context.Context, tx *store.Tx, a *Approval) (bool, error) {
	return s.participates(ctx, tx, a, principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer)
}

// participates: the requester, the subject, anyone who is or was an
// approver (or a delegate of one), and holders of any of roles.
func (s *Service) participates(ctx context.Context, tx *store.Tx, a *Approval, roles ...string) (bool, error) {
	p := principal.From(ctx)
	for _, r := range roles {
		if p.HasRole(r) {
			return true, nil
		}
	}
	me := callerID(ctx)
	if me == uuid.Nil {
		return false, nil
	}
	if me == a.RequesterID || me == a.SubjectID {
		return true, nil
	}
	return approvesOrStandsIn(ctx, tx, a, me, s.now())
}

// GetApproval returns an approval with the current step's approvers.
func (s *Service) GetApproval(ctx context.Context, id uuid.UUID) (*Approval, error) {
	var a *Approval
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		a, err = approvalByID(ctx, tx, id, false)
		if store.NoRows(err) {
			return apperr.NotFound("approval")
		}
		if err != nil {
			return err
		}
		if ok, err := s.mayView(ctx, tx, a); err != nil || !ok {
			if err == nil {
				err = apperr.NotFound("approval")
			}
			return err
		}
		a.Approvers, err = approversOf(ctx, tx, id)
		return err
	})
	return a, err
}

// History lists an approval's events in order.
func (s *Service) History(ctx context.Context, id uuid.UUID) ([]ApprovalEvent, error) {
	if _, err := s.GetApproval(ctx, id); err != nil {
		return nil, err
	}
	var out []ApprovalEvent
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) (err error) {
		out, err = eventsOf(ctx, tx, id)
		return err
	})
	return out, err
}

// Queues.
const (
	// QueueMine: approvals the caller requested or is the subject of.
	QueueMine = "mine"
	// QueueToDecide: pending approvals whose current step the caller may
	// decide, directly or as a delegate.
	QueueToDecide = "to_decide"
	// QueueAll: every approval (governance readers).
	QueueAll = "all"
)

// ListApprovalsOptions filters a queue.
type ListApprovalsOptions struct {
	Queue  string
	Kind   string
	Status string
	Limit  int
	Before uuid.UUID
}

// ListApprovals lists a queue, newest first.
func (s *Service) ListApprovals(ctx context.Context, o ListApprovalsOptions) ([]*Approval, bool, error) {
	if o.Queue == "" {
		o.Queue = QueueMine
	}
	if err := oneOf("queue", o.Queue, QueueMine, QueueToDecide, QueueAll); err != nil {
		return nil, false, err
	}
	if o.Kind != "" {
		if err := oneOf("kind", o.Kind, KindAccessRequest, KindToolCall, KindA2ACall); err != nil {
			return nil, false, err
		}
	}
	if o.Status != "" {
		if err := oneOf("status", o.Status, StatusPending, StatusApproved, StatusDenied, StatusCancelled, StatusExpired, StatusFailed); err != nil {
			return nil, false, err
		}
	}
	if o.Queue == QueueAll {
		p := principal.From(ctx)
		if !(p.HasRole(principal.RoleTenantAdmin) || p.HasRole(principal.RoleGovernanceAdmin) || p.HasRole(principal.RoleAuditor) || p.HasRole(principal.RoleViewer)) {
			return nil, false, apperr.New(apperr.KindPermissionDenied, "the all queue is for governance readers")
		}
	}
	if o.Before == uuid.Nil {
		o.Before = uuid.Max
	}
	return store.ReadPage(ctx, s.DB, o.Limit, func(tx *store.Tx) ([]*Approval, error) { return listApprovals(ctx, tx, o, callerID(ctx), s.now()) })
}

// RunTimers escalates and expires approvals on time, for every tenant,
// every interval until ctx ends.
func (s *Service) RunTimers(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("approval timers failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick handles every approval whose step or whole life has run out: a
// step with escalation approvers not yet used escalates to them (its
// timer restarts); otherwise the approval expires. It returns how many
// approvals it changed.
func (s *Service) Tick(ctx context.Context) (int, error) {
	now := s.now()
	var list []dueApproval
	err := s.DB.SystemRead(ctx, func(tx *store.Tx) (err error) {
		list, err = approvalsDue(ctx, tx, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range list {
		tctx := principal.With(store.WithTenant(ctx, d.tenant), &principal.Principal{TenantID: d.tenant, Kind: principal.KindBootstrap,
			SubjectID: "system", AdminRoles: []string{principal.RoleSuperAdmin}})
		var action string
		var a *Approval
		err := s.DB.InTenantTx(tctx, func(tx *store.Tx) error {
			if err := func() error {
				var err error
				a, err = approvalByID(tctx, tx, d.id, true)
				if err != nil || a.Status != StatusPending {
					return err
				}
				now := s.now()
				if !a.ExpiresAt.After(now) {
					action = "governance.approval.expire"
					return s.finish(tctx, tx, nil, a, StatusExpired, "not decided before it expired")
				}
				if a.StepDueAt == nil || a.StepDueAt.After(now) {
					return nil
				}
				st := a.Steps[a.CurrentStep]
				if a.Escalated || len(st.EscalateTo) == 0 {
					action = "governance.approval.expire"
					return s.finish(tctx, tx, nil, a, StatusExpired, fmt.Sprintf("step %d timed out", a.CurrentStep+1))
				}
				t, err := loadTarget(tctx, tx, a.TargetType, a.TargetID)
				if err != nil {
					return err
				}
				who, err := s.resolve(tctx, tx, a, t, st.EscalateTo)
				if err != nil {
					return err
				}
				if len(who) == 0 {
					if who, err = s.administrators(tctx, tx, a); err != nil {
						return err
					}
				}
				for id := range who {
					who[id] = "escalation"
				}
				action = "governance.approval.escalate"
				a.Escalated = true
				next := now.Add(time.Duration(st.TimeoutSeconds) * time.Second)
				a.StepDueAt = &next
				if err := s.addApprovers(tctx, tx, a, who); err != nil {
					return err
				}
				if err := s.save(tctx, tx, a); err != nil {
					return err
				}
				if err := s.event(tctx, tx, a, "escalated", "", map[string]any{"approvers": sortedIDs(who)}); err != nil {
					return err
				}
				return s.notify(tctx, tx, EventApprovalEscalated, a.ID, map[string]any{"approval_id": a.ID, "step": a.CurrentStep, "approvers": sortedIDs(who)})
			}(); err != nil {
				return err
			}
			if action == "" {
				return nil
			}
			return s.auditTx(tctx, tx, action, "approval", a.ID, map[string]any{"step": a.CurrentStep, "status": a.Status, "reason": a.Reason})
		})
		if err != nil {
			return n, err
		}
		if action != "" {
			n++
		}
	}
	return n, nil
}

// ReusableApproval finds an approval of a held call (tool_call, a2a_call)
// with this fingerprint approved less than within ago (nil if none).
func (s *Service) ReusableApproval(ctx context.Context, fingerprint string, within time.Duration) (*Approval, error) {
	if fingerprint == "" || within <= 0 {
		return nil, nil
	}
	var a *Approval
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		a, err = approvedWithFingerprint(ctx, tx, fingerprint, s.now().Add(-within))
		return err
	})
	if store.NoRows(err) {
		return nil, nil
	}
	return a, err
}

// readApproval reads an approval without the caller's view check (for
// the module that opened it).
func (s *Service) readApproval(ctx context.Context, id uuid.UUID) (*Approval, error) {
	return approvalRecord.get(ctx, s.DB, id)
}

// HoldTimeout is the refusal of a held call that nobody decided within
// timeout.
func HoldTimeout(timeout time.Duration) (reason, code string) {
	return "no approval decision within " + timeout.String(), "approval_timeout"
}

// Outcome says how a decided approval ends the call held for it (an
// approval opened with the hold's timeout as its TTL): approved, or refused
// with a reason and a code. An approval governance expired is that same
// timeout, whichever of the two clocks noticed first.
func (a *Approval) Outcome(timeout time.Duration) (approved bool, reason, code string) {
	switch a.Status {
	case StatusApproved:
		return true, "", ""
	case StatusExpired:
		reason, code = HoldTimeout(timeout)
		return false, reason, code
	}
	return false, "the approval was " + a.Status + ": " + a.Reason, "approval_" + a.Status
}

// AwaitApproval waits until an approval of the tenant in ctx is decided
// (or expires, or is cancelled) and returns it; if ctx ends first it
// returns the approval as it stands with ctx's error. A decision on any
// replica wakes it through the change bus (nil: polling only); it also
// re-reads every poll interval, since notifications can be missed.
func (s *Service) AwaitApproval(ctx context.Context, bus *events.Bus, id uuid.UUID, poll time.Duration) (*Approval, error) {
	if poll <= 0 {
		poll = 2 * time.Second
	}
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return nil, store.ErrNoTenant
	}
	wake := make(chan struct{}, 1)
	if bus != nil {
		defer bus.Subscribe(func(m events.Message) {
			if m.Resync || (m.Change.TenantID == tid && m.Change.ID == id.String() && strings.HasPrefix(m.Change.Kind, "approval.")) {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		})()
	}
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		a, err := s.readApproval(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				return nil, err
			}
			// ctx ended during the read: the approval as it stands is
			// read once more, briefly, outside ctx.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			a, rerr := s.readApproval(rctx, id)
			cancel()
			if rerr != nil {
				return nil, ctx.Err()
			}
			return a, ctx.Err()
		}
		if a.Status != StatusPending {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-wake:
		case <-t.C:
			t.Reset(poll)
		}
	}
}
