package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Auditor is what governance needs of the audit log.
type Auditor interface {
	audit.Recorder
	Append(ctx context.Context, e audit.Entry) (*audit.Receipt, error)
}

// Service manages the governance records of the tenant in the context.
type Service struct {
	DB    *store.DB
	Audit Auditor
	// People and Agents are the directory and the NHIs, read inside
	// governance's transactions (required).
	People People
	Agents Agents
	// Tenants tells which tenants scheduled scans skip (nil: none).
	Tenants Tenants
	// Now is the clock (default store.Now).
	Now func() time.Time
	// Engine holds the decision snapshots the preventive separation-of-
	// duties checks expand roles with (nil: a fresh build per check).
	Engine *Engine
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return store.Now()
}

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,127}$`)

// ValidToolKey reports whether a tool name can key an mcp_tool
// entitlement (the key rule, letters in either case), as UpsertTools
// requires.
func ValidToolKey(name string) bool { return keyRE.MatchString(strings.ToLower(name)) }

func validKey(field, k string) error {
	if !keyRE.MatchString(k) {
		return apperr.Invalid(field, "must be 1 to 128 characters of a-z, 0-9 and . _ : -, starting with a letter or digit")
	}
	return nil
}

func validName(n string) error {
	if strings.TrimSpace(n) == "" || len(n) > 200 {
		return apperr.Invalid("name", "must be 1 to 200 characters")
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return apperr.Invalid(field, "must be one of "+strings.Join(allowed, ", "))
	}
	return nil
}

// change publishes a change event of a governance record (op: events.OpUpsert
// or events.OpDelete); decision engines apply it as a delta, this
// replica's at the commit (Engine.Watch).
func (s *Service) change(ctx context.Context, tx *store.Tx, kind string, id uuid.UUID, version int64, op string, payload any) error {
	return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventPrefix + kind, ID: id.String(), Version: version, Op: op}, payload)
}

// notify publishes a notification (pending approvals, decisions,
// violations): kinds outside EventPrefix, which leave decision snapshots
// alone.
func (s *Service) notify(ctx context.Context, tx *store.Tx, kind string, id uuid.UUID, payload any) error {
	return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: kind, ID: id.String()}, payload)
}

// auditTx records a change in the transaction that makes it.
func (s *Service) auditTx(ctx context.Context, tx *store.Tx, action, kind string, id uuid.UUID, details any) error {
	return audit.RecordChangeTx(ctx, tx, s.Audit, action, kind, id.String(), details)
}

func checkVersion(what string, have, want int64) error {
	if want != 0 && have != want {
		return apperr.New(apperr.KindPreconditionFailed, "%s changed since version %d (now %d)", what, want, have)
	}
	return nil
}

// deleteByID deletes one record in the tenant in ctx, publishing its
// change in the same transaction, and records governance.<kind>.delete.
func deleteByID[T any](ctx context.Context, s *Service, r record[T], id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := r.remove(ctx, tx, id); err != nil {
			return err
		}
		if err := s.change(ctx, tx, r.kind, id, 0, events.OpDelete, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance."+r.kind+".delete", r.kind, id, nil)
	})
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---- applications ----

// ApplicationInput creates or changes an application.
type ApplicationInput struct {
	Key         string     `json:"key,omitempty"`
	Name        *string    `json:"name,omitempty"`
	Type        string     `json:"type,omitempty"`
	Status      *string    `json:"status,omitempty"`
	OwnerID     *uuid.UUID `json:"owner_id,omitempty"`
	Description *string    `json:"description,omitempty"`
}

const appCols = `id, key, name, type, status, owner_id, nhi_id, description, created_at, updated_at, version`

func scanApp(row store.Scanner) (*Application, error) {
	var a Application
	err := row.Scan(&a.ID, &a.Key, &a.Name, &a.Type, &a.Status, &a.OwnerID, &a.NHIID, &a.Description, &a.CreatedAt, &a.UpdatedAt, &a.Version)
	return &a, err
}

// CreateApplication registers an application.
func (s *Service) CreateApplication(ctx context.Context, in ApplicationInput) (*Application, error) {
	return s.createApplication(ctx, in, nil)
}

func (s *Service) createApplication(ctx context.Context, in ApplicationInput, nhiID *uuid.UUID) (*Application, error) {
	if err := validKey("key", in.Key); err != nil {
		return nil, err
	}
	if in.Name == nil {
		return nil, apperr.Invalid("name", "is required")
	}
	if err := validName(*in.Name); err != nil {
		return nil, err
	}
	if in.Type == "" {
		in.Type = "generic"
	}
	if err := oneOf("type", in.Type, "generic", "mcp_server", "a2a_agent", "saas", "internal"); err != nil {
		return nil, err
	}
	status := "active"
	if in.Status != nil {
		if err := oneOf("status", *in.Status, "active", "inactive", "retired"); err != nil {
			return nil, err
		}
		status = *in.Status
	}
	now := s.now()
	a := &Application{ID: uuid.Must(uuid.NewV7()), Key: in.Key, Name: *in.Name, Type: in.Type, Status: status, OwnerID: in.OwnerID, NHIID: nhiID,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if in.Description != nil {
		a.Description = *in.Description
	}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.userExists(ctx, tx, "owner_id", a.OwnerID); err != nil {
			return err
		}
		if err := insertApplication(ctx, tx, a); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "application", a.ID, 1, events.OpUpsert, a); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.application.create", "application", a.ID, a)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// GetApplication returns an application.
func (s *Service) GetApplication(ctx context.Context, id uuid.UUID) (*Application, error) {
	return applicationRecord.get(ctx, s.DB, id)
}

// ListApplications lists applications by key.
func (s *Service) ListApplications(ctx context.Context, typ string, limit int, afterKey string) ([]*Application, bool, error) {
	var out []*Application
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listApplications(ctx, tx, typ, afterKey, limit+1)
		return err
	})
	if len(out) > limit {
		return out[:limit], true, err
	}
	return out, false, err
}

// UpdateApplication changes an application.
func (s *Service) UpdateApplication(ctx context.Context, id uuid.UUID, in ApplicationInput, ifVersion int64) (*Application, error) {
	if in.Key != "" || in.Type != "" {
		return nil, apperr.Invalid("key", "key and type cannot change")
	}
	var a *Application
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if a, err = applicationRecord.lock(ctx, tx, id, ifVersion); err != nil {
			return err
		}
		if in.Name != nil {
			if err := validName(*in.Name); err != nil {
				return err
			}
			a.Name = *in.Name
		}
		if in.Status != nil {
			if err := oneOf("status", *in.Status, "active", "inactive", "retired"); err != nil {
				return err
			}
			a.Status = *in.Status
		}
		if in.OwnerID != nil {
			if err := s.userExists(ctx, tx, "owner_id", in.OwnerID); err != nil {
				return err
			}
			a.OwnerID = in.OwnerID
		}
		if in.Description != nil {
			a.Description = *in.Description
		}
		a.UpdatedAt, a.Version = s.now(), a.Version+1
		if err := updateApplication(ctx, tx, a); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "application", id, a.Version, events.OpUpsert, a); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.application.update", "application", id, in)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DeleteApplication removes an application, its entitlements and every
// assignment of them.
func (s *Service) DeleteApplication(ctx context.Context, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if ok, err := applicationExists(ctx, tx, id); err != nil || !ok {
			if err == nil {
				err = apperr.NotFound("application")
			}
			return err
		}
		if err := deleteApplication(ctx, tx, id); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "application", id, 0, events.OpDelete, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.application.delete", "application", id, nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// ---- entitlements ----

// EntitlementInput creates or changes an entitlement.
type EntitlementInput struct {
	Kind           string     `json:"kind,omitempty"`
	Key            string     `json:"key,omitempty"`
	Name           *string    `json:"name,omitempty"`
	Description    *string    `json:"description,omitempty"`
	RiskLevel      *string    `json:"risk_level,omitempty"`
	Classification *string    `json:"classification,omitempty"`
	OwnerID        *uuid.UUID `json:"owner_id,omitempty"`
	Requestable    *bool      `json:"requestable,omitempty"`
	ApprovalState  *string    `json:"approval_state,omitempty"`
	WorkflowID     *uuid.UUID `json:"workflow_id,omitempty" doc:"the nil UUID returns to the tenant's default workflow"`
}

const entCols = `id, application_id, kind, key, name, description, risk_level, classification, owner_id, requestable, approval_state,
	definition_hash, created_at, updated_at, version, workflow_id`

func scanEnt(row store.Scanner) (*Entitlement, error) {
	var e Entitlement
	err := row.Scan(&e.ID, &e.ApplicationID, &e.Kind, &e.Key, &e.Name, &e.Description, &e.RiskLevel, &e.Classification, &e.OwnerID,
		&e.Requestable, &e.ApprovalState, &e.DefinitionHash, &e.CreatedAt, &e.UpdatedAt, &e.Version, &e.WorkflowID)
	return &e, err
}

func (in *EntitlementInput) apply(e *Entitlement) error {
	if in.Name != nil {
		if err := validName(*in.Name); err != nil {
			return err
		}
		e.Name = *in.Name
	}
	if in.Description != nil {
		if len(*in.Description) > 2000 {
			return apperr.Invalid("description", "must be at most 2000 characters")
		}
		e.Description = *in.Description
	}
	if in.RiskLevel != nil {
		if err := oneOf("risk_level", *in.RiskLevel, "low", "medium", "high", "critical"); err != nil {
			return err
		}
		e.RiskLevel = *in.RiskLevel
	}
	if in.Classification != nil {
		if err := oneOf("classification", *in.Classification, "public", "internal", "confidential", "restricted"); err != nil {
			return err
		}
		e.Classification = *in.Classification
	}
	if in.OwnerID != nil {
		e.OwnerID = in.OwnerID
	}
	if in.Requestable != nil {
		e.Requestable = *in.Requestable
	}
	if in.ApprovalState != nil {
		if err := oneOf("approval_state", *in.ApprovalState, Approved, Pending, Quarantined, Rejected); err != nil {
			return err
		}
		e.ApprovalState = *in.ApprovalState
	}
	if in.WorkflowID != nil {
		e.WorkflowID = nilIfZero(in.WorkflowID)
	}
	return nil
}

func nilIfZero(id *uuid.UUID) *uuid.UUID {
	if id == nil || *id == uuid.Nil {
		return nil
	}
	return id
}

// workflowExists refuses a workflow ID that names no workflow of the tenant.
func workflowExists(ctx context.Context, tx *store.Tx, id *uuid.UUID) error {
	if id == nil {
		return nil
	}
	ok, err := workflowRowExists(ctx, tx, *id)
	if err == nil && !ok {
		err = apperr.Invalid("workflow_id", "no such approval workflow in this tenant")
	}
	return err
}

// CreateEntitlement adds an entitlement to an application. Tool
// entitlements start pending unless approval_state says otherwise.
func (s *Service) CreateEntitlement(ctx context.Context, app uuid.UUID, in EntitlementInput) (*Entitlement, error) {
	if in.Kind == "" {
		in.Kind = KindGeneric
	}
	if err := oneOf("kind", in.Kind, KindGeneric, KindMCPTool, KindA2ACall); err != nil {
		return nil, err
	}
	if err := validKey("key", in.Key); err != nil {
		return nil, err
	}
	now := s.now()
	e := &Entitlement{ID: uuid.Must(uuid.NewV7()), ApplicationID: app, Kind: in.Kind, Key: in.Key, Name: in.Key, RiskLevel: "medium",
		Classification: "internal", ApprovalState: Approved, CreatedAt: now, UpdatedAt: now, Version: 1}
	if in.Kind == KindMCPTool {
		e.ApprovalState = Pending
	}
	if err := in.apply(e); err != nil {
		return nil, err
	}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if ok, err := applicationExists(ctx, tx, app); err != nil || !ok {
			if err == nil {
				err = apperr.NotFound("application")
			}
			return err
		}
		if err := s.userExists(ctx, tx, "owner_id", e.OwnerID); err != nil {
			return err
		}
		if err := workflowExists(ctx, tx, e.WorkflowID); err != nil {
			return err
		}
		if err := s.insertEntitlement(ctx, tx, e); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.entitlement.create", "entitlement", e.ID, e)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (s *Service) insertEntitlement(ctx context.Context, tx *store.Tx, e *Entitlement) error {
	if err := insertEntitlementRow(ctx, tx, e); err != nil {
		return err
	}
	return s.change(ctx, tx, "entitlement", e.ID, 1, events.OpUpsert, e)
}

// GetEntitlement returns an entitlement.
func (s *Service) GetEntitlement(ctx context.Context, id uuid.UUID) (*Entitlement, error) {
	return entitlementRecord.get(ctx, s.DB, id)
}

// ListEntitlements lists an application's (or every) entitlement by ID.
func (s *Service) ListEntitlements(ctx context.Context, app uuid.UUID, kind, state string, limit int, after uuid.UUID) ([]*Entitlement, bool, error) {
	var out []*Entitlement
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listEntitlements(ctx, tx, app, kind, state, after, limit+1)
		return err
	})
	if len(out) > limit {
		return out[:limit], true, err
	}
	return out, false, err
}

// UpdateEntitlement changes an entitlement (approving a tool included).
func (s *Service) UpdateEntitlement(ctx context.Context, id uuid.UUID, in EntitlementInput, ifVersion int64) (*Entitlement, error) {
	if in.Kind != "" || in.Key != "" {
		return nil, apperr.Invalid("key", "kind and key cannot change")
	}
	var e *Entitlement
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if e, err = entitlementRecord.lock(ctx, tx, id, ifVersion); err != nil {
			return err
		}
		if err := in.apply(e); err != nil {
			return err
		}
		if err := s.userExists(ctx, tx, "owner_id", in.OwnerID); err != nil {
			return err
		}
		if err := workflowExists(ctx, tx, e.WorkflowID); err != nil {
			return err
		}
		e.UpdatedAt, e.Version = s.now(), e.Version+1
		if err := updateEntitlement(ctx, tx, e); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "entitlement", id, e.Version, events.OpUpsert, e); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.entitlement.update", "entitlement", id, in)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// DeleteEntitlement removes an entitlement and its assignments.
func (s *Service) DeleteEntitlement(ctx context.Context, id uuid.UUID) error {
	return s.deleteTarget(ctx, "entitlement", id, nil)
}

// deleteTarget deletes an assignable record (an entitlement or a role)
// together with every assignment of it, after an optional check.
func (s *Service) deleteTarget(ctx context.Context, kind string, id uuid.UUID, check func(context.Context, *store.Tx) error) error {
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if ok, err := targetExists(ctx, tx, kind, id); err != nil || !ok {
			if err == nil {
				err = apperr.NotFound(kind)
			}
			return err
		}
		if check != nil {
			if err := check(ctx, tx); err != nil {
				return err
			}
		}
		if err := deleteTargetRows(ctx, tx, kind, id); err != nil {
			return err
		}
		if err := s.change(ctx, tx, kind, id, 0, events.OpDelete, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance."+kind+".delete", kind, id, nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// Tool is one tool of a catalog sync.
type Tool struct {
	Name string `json:"name"`
	// Hash pins the tool's definition as the upstream sent it.
	Hash string `json:"hash"`
	// Reapprove approves a changed definition at once (the tool server's
	// pin policy found nothing in the change that needs an admin).
	Reapprove bool `json:"-"`
}

// SyncResult tells what a catalog sync did to each tool.
type SyncResult struct {
	Name          string    `json:"name"`
	EntitlementID uuid.UUID `json:"entitlement_id"`
	Outcome       string    `json:"outcome" doc:"created, unchanged or changed"`
	ApprovalState string    `json:"approval_state"`
}

// UpsertTools is the catalog-sync hook: one mcp_tool entitlement per tool
// of an application. A new tool, or one whose definition hash changed, is
// not callable until approved — unless autoApprove.
func (s *Service) UpsertTools(ctx context.Context, app uuid.UUID, tools []Tool, autoApprove bool) ([]SyncResult, error) {
	var out []SyncResult
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		out = out[:0]
		if ok, err := applicationExists(ctx, tx, app); err != nil || !ok {
			if err == nil {
				err = apperr.NotFound("application")
			}
			return err
		}
		for _, t := range tools {
			if err := validKey("tools.name", strings.ToLower(t.Name)); err != nil || t.Hash == "" || len(t.Hash) > 128 {
				return apperr.Invalid("tools", fmt.Sprintf("tool %q needs a name and a definition hash", t.Name))
			}
			e, err := lockEntitlementByKey(ctx, tx, app, t.Name)
			now := s.now()
			state := Pending
			if autoApprove {
				state = Approved
			}
			switch {
			case store.NoRows(err):
				e = &Entitlement{ID: uuid.Must(uuid.NewV7()), ApplicationID: app, Kind: KindMCPTool, Key: t.Name, Name: t.Name, RiskLevel: "medium",
					Classification: "internal", ApprovalState: state, DefinitionHash: t.Hash, CreatedAt: now, UpdatedAt: now, Version: 1}
				if err := s.insertEntitlement(ctx, tx, e); err != nil {
					return err
				}
				out = append(out, SyncResult{Name: t.Name, EntitlementID: e.ID, Outcome: "created", ApprovalState: state})
			case err != nil:
				return err
			case e.DefinitionHash == t.Hash:
				out = append(out, SyncResult{Name: t.Name, EntitlementID: e.ID, Outcome: "unchanged", ApprovalState: e.ApprovalState})
			default:
				if !autoApprove && !(t.Reapprove && e.ApprovalState == Approved) {
					state = Quarantined
				} else {
					state = Approved
				}
				e.Version++
				if err := setDefinition(ctx, tx, e.ID, t.Hash, state, now, e.Version); err != nil {
					return err
				}
				if err := s.change(ctx, tx, "entitlement", e.ID, e.Version, events.OpUpsert, map[string]string{"approval_state": state}); err != nil {
					return err
				}
				out = append(out, SyncResult{Name: t.Name, EntitlementID: e.ID, Outcome: "changed", ApprovalState: state})
			}
		}
		return s.auditTx(ctx, tx, "governance.catalog.sync", "application", app, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
