package governance

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// AccessRequestInput asks for an entitlement or role from the catalog.
type AccessRequestInput struct {
	SubjectType     string     `json:"subject_type,omitempty" doc:"user or nhi; default: yourself"`
	SubjectID       *uuid.UUID `json:"subject_id,omitempty" doc:"a user who reports to you, or an NHI you own or manage; default: yourself"`
	TargetType      string     `json:"target_type" doc:"entitlement or role"`
	TargetID        uuid.UUID  `json:"target_id"`
	Justification   string     `json:"justification"`
	DurationSeconds int        `json:"duration_seconds,omitempty" doc:"how long the access lasts once granted (0: until removed)"`
}

// RequestAccess opens an access request for the caller or for someone the
// caller answers for: their own reports, NHIs they own or may manage (an
// NHI asks only for itself; governance administrators for anyone). The
// target must be requestable; the subject must not already hold it
// directly; the preventive separation-of-duties check runs at once.
func (s *Service) RequestAccess(ctx context.Context, in AccessRequestInput) (*Approval, error) {
	p := principal.From(ctx)
	if p == nil {
		return nil, apperr.New(apperr.KindUnauthenticated, "authentication required")
	}
	if strings.TrimSpace(in.Justification) == "" {
		return nil, apperr.Invalid("justification", "is required")
	}
	if in.DurationSeconds < 0 {
		return nil, apperr.Invalid("duration_seconds", "must not be negative")
	}
	me := callerID(ctx)
	reqType := string(p.Kind)
	if in.SubjectID == nil {
		if p.Kind != principal.KindUser && p.Kind != principal.KindNHI {
			return nil, apperr.Invalid("subject_id", "name the subject")
		}
		in.SubjectType, in.SubjectID = reqType, &me
	}
	if in.SubjectType == "" {
		in.SubjectType = SubjectUser
	}
	if err := oneOf("subject_type", in.SubjectType, SubjectUser, SubjectNHI); err != nil {
		return nil, err
	}
	if err := oneOf("target_type", in.TargetType, "entitlement", "role"); err != nil {
		return nil, err
	}
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		if err := s.mayRequestFor(ctx, tx, p, me, in.SubjectType, *in.SubjectID); err != nil {
			return err
		}
		t, err := loadTarget(ctx, tx, in.TargetType, in.TargetID)
		if err != nil {
			return err
		}
		if !t.requestable {
			return apperr.Invalid("target_id", "this "+in.TargetType+" is not requestable")
		}
		held, err := holdsNow(ctx, tx, in.SubjectType, *in.SubjectID, in.TargetType, in.TargetID, s.now())
		if err != nil {
			return err
		}
		if held > 0 {
			return apperr.New(apperr.KindAlreadyExists, "the subject already holds this %s", in.TargetType)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.OpenApproval(ctx, OpenInput{Kind: KindAccessRequest, RequesterType: reqType, RequesterID: me, SubjectType: in.SubjectType,
		SubjectID: *in.SubjectID, TargetType: in.TargetType, TargetID: in.TargetID, Justification: in.Justification,
		Duration: time.Duration(in.DurationSeconds) * time.Second})
}

// mayRequestFor: yourself; a user who reports to you; an NHI you own, back
// up or hold manage on; anyone for governance administrators.
func (s *Service) mayRequestFor(ctx context.Context, tx *store.Tx, p *principal.Principal, me uuid.UUID, typ string, id uuid.UUID) error {
	if isGovAdmin(ctx) {
		return nil
	}
	if s.People == nil || s.Agents == nil {
		return errNoDirectory
	}
	denied := apperr.New(apperr.KindPermissionDenied, "you may request access for yourself, your reports and the NHIs you own or manage")
	if string(p.Kind) == typ && me == id {
		return nil
	}
	if p.Kind != principal.KindUser {
		return denied
	}
	ok := false
	if typ == SubjectUser {
		m, err := s.People.ManagerOfTx(ctx, tx, id)
		if err != nil {
			return err
		}
		ok = m != nil && *m == me
	} else {
		var err error
		if ok, err = s.Agents.ManagesTx(ctx, tx, id, me); err != nil {
			return err
		}
	}
	if !ok {
		return denied
	}
	return nil
}

// ---- catalog ----

// CatalogItem is something that may be requested.
type CatalogItem struct {
	Type            string     `json:"type" doc:"entitlement or role"`
	ID              uuid.UUID  `json:"id"`
	Key             string     `json:"key"`
	Name            string     `json:"name"`
	Description     string     `json:"description"`
	Kind            string     `json:"kind,omitempty" doc:"for entitlements: generic, mcp_tool or a2a_call"`
	RiskLevel       string     `json:"risk_level,omitempty" doc:"for entitlements"`
	ApplicationID   *uuid.UUID `json:"application_id,omitempty"`
	ApplicationKey  string     `json:"application_key,omitempty"`
	ApplicationName string     `json:"application_name,omitempty"`
	WorkflowID      *uuid.UUID `json:"workflow_id,omitempty"`
}

// CatalogOptions filters the catalog.
type CatalogOptions struct {
	// Query matches names, keys and descriptions, case-insensitively.
	Query         string
	Type          string
	Kind          string
	ApplicationID uuid.UUID
	Limit         int
	// After is the (name, id) the previous page ended with.
	AfterName string
	AfterID   uuid.UUID
}

// likePattern escapes a search text for LIKE … ESCAPE '\'.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(q)) + "%"
}

// Catalog lists what may be requested: requestable, approved entitlements
// of active applications and requestable roles, by name.
func (s *Service) Catalog(ctx context.Context, o CatalogOptions) ([]*CatalogItem, bool, error) {
	if o.Type != "" {
		if err := oneOf("type", o.Type, "entitlement", "role"); err != nil {
			return nil, false, err
		}
	}
	if len(o.Query) > 200 {
		return nil, false, apperr.Invalid("q", "must be at most 200 characters")
	}
	return store.ReadPage(ctx, s.DB, o.Limit, func(tx *store.Tx) ([]*CatalogItem, error) { return catalogPage(ctx, tx, o) })
}

func scanCatalogItem(row store.Scanner) (*CatalogItem, error) {
	var c CatalogItem
	err := row.Scan(&c.Type, &c.ID, &c.Key, &c.Name, &c.Description, &c.Kind, &c.RiskLevel, &c.ApplicationID, &c.ApplicationKey, &c.ApplicationName,
		&c.WorkflowID)
	return &c, err
}

// ---- delegation ----

// Delegation lets a delegate decide a delegator's approvals for a while.
type Delegation struct {
	ID          uuid.UUID `json:"id"`
	DelegatorID uuid.UUID `json:"delegator_id"`
	DelegateID  uuid.UUID `json:"delegate_id"`
	StartsAt    time.Time `json:"starts_at"`
	EndsAt      time.Time `json:"ends_at"`
	Reason      string    `json:"reason"`
	CreatedAt   time.Time `json:"created_at"`
}

// DelegationInput creates a delegation.
type DelegationInput struct {
	DelegatorID *uuid.UUID `json:"delegator_id,omitempty" doc:"default: yourself; administrators may name another user"`
	DelegateID  uuid.UUID  `json:"delegate_id"`
	StartsAt    *time.Time `json:"starts_at,omitempty" doc:"default: now"`
	EndsAt      time.Time  `json:"ends_at" doc:"at most a year after the start"`
	Reason      string     `json:"reason,omitempty"`
}

const delegationCols = `id, delegator_id, delegate_id, starts_at, ends_at, reason, created_at`

func scanDelegation(row store.Scanner) (*Delegation, error) {
	var d Delegation
	err := row.Scan(&d.ID, &d.DelegatorID, &d.DelegateID, &d.StartsAt, &d.EndsAt, &d.Reason, &d.CreatedAt)
	return &d, err
}

// CreateDelegation hands the delegator's approvals to a delegate for a
// window (while the delegator is away). The delegator keeps deciding too.
func (s *Service) CreateDelegation(ctx context.Context, in DelegationInput) (*Delegation, error) {
	me, err := callerUser(ctx)
	if err != nil && !isGovAdmin(ctx) {
		return nil, err
	}
	now := s.now()
	d := &Delegation{ID: uuid.Must(uuid.NewV7()), DelegatorID: me, DelegateID: in.DelegateID, StartsAt: now, Reason: in.Reason, CreatedAt: now}
	if in.DelegatorID != nil && *in.DelegatorID != me {
		if !isGovAdmin(ctx) {
			return nil, apperr.New(apperr.KindPermissionDenied, "you may delegate only your own approvals")
		}
		d.DelegatorID = *in.DelegatorID
	}
	if d.DelegatorID == uuid.Nil {
		return nil, apperr.Invalid("delegator_id", "is required")
	}
	if in.StartsAt != nil {
		d.StartsAt = in.StartsAt.UTC().Truncate(time.Microsecond)
	}
	d.EndsAt = in.EndsAt.UTC().Truncate(time.Microsecond)
	if !d.EndsAt.After(d.StartsAt) || !d.EndsAt.After(now) || d.EndsAt.Sub(d.StartsAt) > 366*24*time.Hour {
		return nil, apperr.Invalid("ends_at", "must be after the start, in the future, and at most a year after the start")
	}
	if d.DelegateID == d.DelegatorID {
		return nil, apperr.Invalid("delegate_id", "must be someone else")
	}
	if len(d.Reason) > 500 {
		return nil, apperr.Invalid("reason", "must be at most 500 characters")
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		for field, id := range map[string]uuid.UUID{"delegator_id": d.DelegatorID, "delegate_id": d.DelegateID} {
			status, err := s.People.StatusTx(ctx, tx, id)
			if apperr.KindOf(err) == apperr.KindNotFound || (err == nil && field == "delegate_id" && status != "active") {
				return apperr.Invalid(field, "no such active user in this tenant")
			}
			if err != nil {
				return err
			}
		}
		if err := insertDelegation(ctx, tx, d, now); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, "approval.delegation", d.ID, d); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval_delegation.create", "approval_delegation", d.ID, d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ListDelegations lists the caller's delegations (given or received);
// administrators may ask for all.
func (s *Service) ListDelegations(ctx context.Context, all bool) ([]*Delegation, error) {
	if all && !isGovAdmin(ctx) && !principal.From(ctx).HasRole(principal.RoleAuditor) {
		return nil, apperr.New(apperr.KindPermissionDenied, "all delegations are for governance readers")
	}
	var out []*Delegation
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) (err error) {
		of := callerID(ctx)
		if all {
			of = uuid.Nil
		}
		out, err = liveDelegations(ctx, tx, s.now(), of)
		return err
	})
	return out, err
}

// DeleteDelegation ends a delegation: its delegator or an administrator.
func (s *Service) DeleteDelegation(ctx context.Context, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		d, err := delegationByID(ctx, tx, id)
		if store.NoRows(err) || (err == nil && d.DelegatorID != callerID(ctx) && d.DelegateID != callerID(ctx) && !isGovAdmin(ctx)) {
			return apperr.NotFound("delegation")
		}
		if err != nil {
			return err
		}
		if d.DelegatorID != callerID(ctx) && !isGovAdmin(ctx) {
			return apperr.New(apperr.KindPermissionDenied, "only the delegator or an administrator ends a delegation")
		}
		if err := deleteDelegation(ctx, tx, id); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, "approval.delegation", id, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.approval_delegation.delete", "approval_delegation", id, nil)
	})
	if err != nil {
		return err
	}
	return nil
}
