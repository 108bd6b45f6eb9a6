package governance

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// Approver kinds of a workflow step.
const (
	// ApproverManager is the subject's manager (for an NHI: its owner's manager).
	ApproverManager = "manager"
	// ApproverAppOwner is the owner of the target's application (for a
	// tool: the tool server's owner; for a role: the role's owner).
	ApproverAppOwner = "application_owner"
	// ApproverEntOwner is the owner of the target entitlement (for a role:
	// the role's owner).
	ApproverEntOwner = "entitlement_owner"
	// ApproverNHIOwner is the owner and backup owner of the subject NHI.
	ApproverNHIOwner = "nhi_owner"
	// ApproverGroup is every member of a named group (resolved when the
	// step opens).
	ApproverGroup = "group"
	// ApproverUser is a named user.
	ApproverUser = "user"
)

// Step modes.
const (
	ModeAny = "any"
	ModeAll = "all"
)

// ApproverRef names who approves: a kind, and for group and user an ID.
type ApproverRef struct {
	Type string     `json:"type" doc:"manager, application_owner, entitlement_owner, nhi_owner, group or user"`
	ID   *uuid.UUID `json:"id,omitempty" doc:"the group or user, for those types"`
}

// WorkflowStep is one stage of an approval.
type WorkflowStep struct {
	Name      string        `json:"name,omitempty"`
	Approvers []ApproverRef `json:"approvers"`
	Mode      string        `json:"mode" doc:"any (one approval completes the step) or all (every approver resolved for it)"`
	// TimeoutSeconds: after it the step escalates to EscalateTo; a step
	// that times out without (or after) escalation expires the approval.
	TimeoutSeconds int           `json:"timeout_seconds,omitempty" doc:"0: the step waits until the approval expires"`
	EscalateTo     []ApproverRef `json:"escalate_to,omitempty" doc:"fallback approvers added when the step times out"`
}

// Workflow is an ordered list of approval steps.
type Workflow struct {
	ID          uuid.UUID      `json:"id"`
	Key         string         `json:"key"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Steps       []WorkflowStep `json:"steps"`
	// AutoApproveMaxRisk approves at once requests whose target's risk is
	// at most this level ("" never).
	AutoApproveMaxRisk string    `json:"auto_approve_max_risk,omitempty" doc:"low, medium, high or critical; empty: never"`
	IsDefault          bool      `json:"is_default" doc:"used for targets that name no workflow"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	Version            int64     `json:"version"`
}

// WorkflowInput creates or changes a workflow; absent fields stay.
type WorkflowInput struct {
	Key                string          `json:"key,omitempty"`
	Name               *string         `json:"name,omitempty"`
	Description        *string         `json:"description,omitempty"`
	Steps              *[]WorkflowStep `json:"steps,omitempty"`
	AutoApproveMaxRisk *string         `json:"auto_approve_max_risk,omitempty"`
	IsDefault          *bool           `json:"is_default,omitempty"`
}

// builtinWorkflow applies when neither the target nor the tenant names
// one: the entitlement's owner or its application's owner, any of them.
// A step that resolves to nobody goes to the tenant's administrators.
var builtinWorkflow = Workflow{Key: "builtin", Name: "Owner approval", Steps: []WorkflowStep{{Name: "owner",
	Approvers: []ApproverRef{{Type: ApproverEntOwner}, {Type: ApproverAppOwner}}, Mode: ModeAny}}}

var riskRank = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}

const workflowCols = `id, key, name, description, steps, auto_approve_max_risk, is_default, created_at, updated_at, version`

func scanWorkflow(row store.Scanner) (*Workflow, error) {
	var w Workflow
	var steps []byte
	if err := row.Scan(&w.ID, &w.Key, &w.Name, &w.Description, &steps, &w.AutoApproveMaxRisk, &w.IsDefault, &w.CreatedAt, &w.UpdatedAt, &w.Version); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(steps, &w.Steps)
	return &w, nil
}

func validRefs(field string, refs []ApproverRef) error {
	for _, r := range refs {
		if err := oneOf(field+".type", r.Type, ApproverManager, ApproverAppOwner, ApproverEntOwner, ApproverNHIOwner, ApproverGroup, ApproverUser); err != nil {
			return err
		}
		if (r.Type == ApproverGroup || r.Type == ApproverUser) != (r.ID != nil && *r.ID != uuid.Nil) {
			return apperr.Invalid(field+".id", "group and user approvers name an id; the others do not")
		}
	}
	return nil
}

func (in *WorkflowInput) apply(w *Workflow) error {
	if in.Name != nil {
		if err := validName(*in.Name); err != nil {
			return err
		}
		w.Name = *in.Name
	}
	if in.Description != nil {
		if len(*in.Description) > 2000 {
			return apperr.Invalid("description", "must be at most 2000 characters")
		}
		w.Description = *in.Description
	}
	if in.Steps != nil {
		w.Steps = *in.Steps
	}
	if in.AutoApproveMaxRisk != nil {
		if *in.AutoApproveMaxRisk != "" {
			if err := oneOf("auto_approve_max_risk", *in.AutoApproveMaxRisk, "low", "medium", "high", "critical"); err != nil {
				return err
			}
		}
		w.AutoApproveMaxRisk = *in.AutoApproveMaxRisk
	}
	if in.IsDefault != nil {
		w.IsDefault = *in.IsDefault
	}
	if len(w.Steps) == 0 || len(w.Steps) > 10 {
		return apperr.Invalid("steps", "a workflow has 1 to 10 steps")
	}
	for i := range w.Steps {
		st := &w.Steps[i]
		if st.Mode == "" {
			st.Mode = ModeAny
		}
		if err := oneOf("steps.mode", st.Mode, ModeAny, ModeAll); err != nil {
			return err
		}
		if len(st.Approvers) == 0 || len(st.Approvers) > 20 || len(st.EscalateTo) > 20 {
			return apperr.Invalid("steps.approvers", "each step names 1 to 20 approvers (and at most 20 to escalate to)")
		}
		if st.TimeoutSeconds < 0 || st.TimeoutSeconds > 90*86400 {
			return apperr.Invalid("steps.timeout_seconds", "must be from 0 to 90 days")
		}
		if len(st.EscalateTo) > 0 && st.TimeoutSeconds == 0 {
			return apperr.Invalid("steps.escalate_to", "escalation needs a timeout")
		}
		if err := validRefs("steps.approvers", st.Approvers); err != nil {
			return err
		}
		if err := validRefs("steps.escalate_to", st.EscalateTo); err != nil {
			return err
		}
	}
	return nil
}

// checkRefs makes sure the users and groups a workflow names exist.
func (s *Service) checkRefs(ctx context.Context, tx *store.Tx, steps []WorkflowStep) error {
	for _, st := range steps {
		for _, r := range append(append([]ApproverRef{}, st.Approvers...), st.EscalateTo...) {
			if r.ID == nil {
				continue
			}
			ok, err := s.subjectExists(ctx, tx, map[string]string{ApproverGroup: SubjectGroup, ApproverUser: SubjectUser}[r.Type], *r.ID)
			if err != nil {
				return err
			}
			if !ok {
				return apperr.Invalid("steps.approvers.id", "no such "+r.Type+" in this tenant: "+r.ID.String())
			}
		}
	}
	return nil
}

func (s *Service) writeWorkflow(ctx context.Context, tx *store.Tx, w *Workflow, insert bool) error {
	if err := s.checkRefs(ctx, tx, w.Steps); err != nil {
		return err
	}
	if err := saveWorkflow(ctx, tx, w, insert); err != nil {
		return err
	}
	return s.notify(ctx, tx, "approval_workflow", w.ID, w)
}

// CreateWorkflow adds an approval workflow.
func (s *Service) CreateWorkflow(ctx context.Context, in WorkflowInput) (*Workflow, error) {
	if err := validKey("key", in.Key); err != nil {
		return nil, err
	}
	if in.Name == nil {
		in.Name = &in.Key
	}
	now := s.now()
	w := &Workflow{ID: uuid.Must(uuid.NewV7()), Key: in.Key, CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := in.apply(w); err != nil {
		return nil, err
	}
	if err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.writeWorkflow(ctx, tx, w, true); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval_workflow.create", "approval_workflow", w.ID, w)
	}); err != nil {
		return nil, err
	}
	return w, nil
}

// GetWorkflow returns a workflow.
func (s *Service) GetWorkflow(ctx context.Context, id uuid.UUID) (*Workflow, error) {
	return workflowRecord.get(ctx, s.DB, id)
}

// ListWorkflows lists workflows by key.
func (s *Service) ListWorkflows(ctx context.Context, limit int, afterKey string) ([]*Workflow, bool, error) {
	return store.ReadPage(ctx, s.DB, limit, func(tx *store.Tx) ([]*Workflow, error) { return listWorkflows(ctx, tx, afterKey, limit+1) })
}

// UpdateWorkflow changes a workflow. Approvals already open keep the
// steps they opened with.
func (s *Service) UpdateWorkflow(ctx context.Context, id uuid.UUID, in WorkflowInput, ifVersion int64) (*Workflow, error) {
	if in.Key != "" {
		return nil, apperr.Invalid("key", "cannot change")
	}
	var w *Workflow
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if w, err = workflowRecord.lock(ctx, tx, id, ifVersion); err != nil {
			return err
		}
		if err := in.apply(w); err != nil {
			return err
		}
		w.UpdatedAt, w.Version = s.now(), w.Version+1
		if err := s.writeWorkflow(ctx, tx, w, false); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval_workflow.update", "approval_workflow", id, in)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// DeleteWorkflow removes a workflow no entitlement or role names.
func (s *Service) DeleteWorkflow(ctx context.Context, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		n, err := workflowUsers(ctx, tx, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return apperr.New(apperr.KindConflict, "%d entitlements or roles use this workflow; point them elsewhere first", n)
		}
		if err := workflowRecord.remove(ctx, tx, id); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, "approval_workflow", id, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval_workflow.delete", "approval_workflow", id, nil)
	})
	if err != nil {
		return err
	}
	return nil
}
