package governance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time windows name IANA zones

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// RoleInput creates or changes a role. Entitlements and induced roles,
// when given, replace the current lists.
type RoleInput struct {
	Key            string       `json:"key,omitempty"`
	Name           *string      `json:"name,omitempty"`
	Type           string       `json:"type,omitempty"`
	ParentID       *uuid.UUID   `json:"parent_id,omitempty" doc:"the nil UUID makes it a root"`
	OwnerID        *uuid.UUID   `json:"owner_id,omitempty"`
	Requestable    *bool        `json:"requestable,omitempty"`
	WorkflowID     *uuid.UUID   `json:"workflow_id,omitempty" doc:"the nil UUID returns to the tenant's default workflow"`
	Description    *string      `json:"description,omitempty"`
	EntitlementIDs *[]uuid.UUID `json:"entitlement_ids,omitempty"`
	InducedRoleIDs *[]uuid.UUID `json:"induced_role_ids,omitempty"`
}

const roleCols = `id, key, name, type, parent_id, owner_id, requestable, description, created_at, updated_at, version, workflow_id`

// roleGraphCheck refuses a parent chain or inducement graph that would
// contain a cycle through role.
func roleGraphCheck(ctx context.Context, tx *store.Tx, role uuid.UUID, parent *uuid.UUID, induced []uuid.UUID) error {
	if parent != nil {
		cur := *parent
		for depth := 0; ; depth++ {
			if cur == role {
				return apperr.Invalid("parent_id", "would make a cycle in the role hierarchy")
			}
			if depth > 64 {
				return apperr.Invalid("parent_id", "the hierarchy may be at most 64 levels deep")
			}
			next, err := roleParent(ctx, tx, cur)
			if store.NoRows(err) {
				if cur == *parent {
					return apperr.Invalid("parent_id", "no such role")
				}
				break
			}
			if err != nil {
				return err
			}
			if next == nil {
				break
			}
			cur = *next
		}
	}
	// Inducements: no induced role may reach role through inducements or parents.
	seen := map[uuid.UUID]bool{}
	stack := slices.Clone(induced)
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if cur == role {
			return apperr.Invalid("induced_role_ids", "would make a cycle of inducements")
		}
		if seen[cur] {
			continue
		}
		seen[cur] = true
		if len(seen) > 10000 {
			return apperr.Invalid("induced_role_ids", "the inducement graph is too large")
		}
		next, err := inducedBy(ctx, tx, cur)
		if err != nil {
			return err
		}
		p, err := roleParent(ctx, tx, cur)
		if err != nil {
			if store.NoRows(err) {
				return apperr.Invalid("induced_role_ids", fmt.Sprintf("no such role %s", cur))
			}
			return err
		}
		if p != nil {
			next = append(next, *p)
		}
		stack = append(stack, next...)
	}
	return nil
}

func (s *Service) writeRoleLinks(ctx context.Context, tx *store.Tx, r *Role, in RoleInput) error {
	now := s.now()
	if in.EntitlementIDs != nil {
		if err := clearRoleLinks(ctx, tx, "role_entitlements", r.ID); err != nil {
			return err
		}
		list := slices.Clone(*in.EntitlementIDs)
		slices.SortFunc(list, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
		list = slices.Compact(list)
		for _, e := range list {
			if ok, err := targetExists(ctx, tx, "entitlement", e); err != nil || !ok {
				if err == nil {
					err = apperr.Invalid("entitlement_ids", fmt.Sprintf("no such entitlement %s", e))
				}
				return err
			}
			if err := linkRole(ctx, tx, "role_entitlements", r.ID, e, now); err != nil {
				return err
			}
		}
		r.Entitlement = list
	}
	if in.InducedRoleIDs != nil {
		list := slices.Clone(*in.InducedRoleIDs)
		slices.SortFunc(list, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
		list = slices.Compact(list)
		if err := roleGraphCheck(ctx, tx, r.ID, nil, list); err != nil {
			return err
		}
		if err := clearRoleLinks(ctx, tx, "role_inducements", r.ID); err != nil {
			return err
		}
		for _, x := range list {
			if err := linkRole(ctx, tx, "role_inducements", r.ID, x, now); err != nil {
				return err
			}
		}
		r.Induces = list
	}
	return nil
}

// CreateRole makes a role.
func (s *Service) CreateRole(ctx context.Context, in RoleInput) (*Role, error) {
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
		in.Type = "business"
	}
	if err := oneOf("type", in.Type, "business", "it"); err != nil {
		return nil, err
	}
	now := s.now()
	r := &Role{ID: uuid.Must(uuid.NewV7()), Key: in.Key, Name: *in.Name, Type: in.Type, OwnerID: in.OwnerID, CreatedAt: now, UpdatedAt: now,
		Version: 1, Entitlement: []uuid.UUID{}, Induces: []uuid.UUID{}}
	if in.ParentID != nil && *in.ParentID != uuid.Nil {
		r.ParentID = in.ParentID
	}
	if in.Requestable != nil {
		r.Requestable = *in.Requestable
	}
	if in.Description != nil {
		r.Description = *in.Description
	}
	r.WorkflowID = nilIfZero(in.WorkflowID)
	snap, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.userExists(ctx, tx, "owner_id", r.OwnerID); err != nil {
			return err
		}
		if err := workflowExists(ctx, tx, r.WorkflowID); err != nil {
			return err
		}
		if err := roleGraphCheck(ctx, tx, r.ID, r.ParentID, nil); err != nil {
			return err
		}
		if err := insertRole(ctx, tx, r); err != nil {
			return err
		}
		if err := s.writeRoleLinks(ctx, tx, r, in); err != nil {
			return err
		}
		if err := roleSoD(snap, r); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "role", r.ID, 1, events.OpUpsert, r); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.role.create", "role", r.ID, r)
	})
	if err != nil {
		return nil, refusal(err)
	}
	return r, nil
}

// GetRole returns a role with its entitlements and inducements.
func (s *Service) GetRole(ctx context.Context, id uuid.UUID) (*Role, error) {
	var r *Role
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		r, err = getRole(ctx, tx, id, false)
		return err
	})
	return r, err
}

// ListRoles lists roles by key.
func (s *Service) ListRoles(ctx context.Context, limit int, afterKey string) ([]*Role, bool, error) {
	var out []*Role
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		list, err := roleIDsAfter(ctx, tx, afterKey, limit+1)
		if err != nil {
			return err
		}
		out = []*Role{}
		for _, id := range list {
			r, err := getRole(ctx, tx, id, false)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if len(out) > limit {
		return out[:limit], true, err
	}
	return out, false, err
}

// UpdateRole changes a role.
func (s *Service) UpdateRole(ctx context.Context, id uuid.UUID, in RoleInput, ifVersion int64) (*Role, error) {
	if in.Key != "" || in.Type != "" {
		return nil, apperr.Invalid("key", "key and type cannot change")
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var r *Role
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if r, err = getRole(ctx, tx, id, true); err != nil {
			return err
		}
		if err := checkVersion("role", r.Version, ifVersion); err != nil {
			return err
		}
		if in.Name != nil {
			if err := validName(*in.Name); err != nil {
				return err
			}
			r.Name = *in.Name
		}
		if in.ParentID != nil {
			if *in.ParentID == uuid.Nil {
				r.ParentID = nil
			} else {
				if err := roleGraphCheck(ctx, tx, id, in.ParentID, nil); err != nil {
					return err
				}
				r.ParentID = in.ParentID
			}
		}
		if in.OwnerID != nil {
			if err := s.userExists(ctx, tx, "owner_id", in.OwnerID); err != nil {
				return err
			}
			r.OwnerID = in.OwnerID
		}
		if in.Requestable != nil {
			r.Requestable = *in.Requestable
		}
		if in.Description != nil {
			r.Description = *in.Description
		}
		if in.WorkflowID != nil {
			r.WorkflowID = nilIfZero(in.WorkflowID)
			if err := workflowExists(ctx, tx, r.WorkflowID); err != nil {
				return err
			}
		}
		r.UpdatedAt, r.Version = s.now(), r.Version+1
		if err := updateRole(ctx, tx, r); err != nil {
			return err
		}
		if err := s.writeRoleLinks(ctx, tx, r, in); err != nil {
			return err
		}
		if err := roleSoD(snap, r); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "role", id, r.Version, events.OpUpsert, r); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.role.update", "role", id, in)
	})
	if err != nil {
		return nil, refusal(err)
	}
	return r, nil
}

// DeleteRole removes a role without child roles, its links and its assignments.
func (s *Service) DeleteRole(ctx context.Context, id uuid.UUID) error {
	return s.deleteTarget(ctx, "role", id, func(ctx context.Context, tx *store.Tx) error {
		children, err := childRoles(ctx, tx, id)
		if err != nil {
			return err
		}
		if children > 0 {
			return apperr.New(apperr.KindConflict, "the role has %d child roles; move or delete them first", children)
		}
		return nil
	})
}

// ---- assignments ----

// AssignmentInput creates or changes an assignment.
type AssignmentInput struct {
	SubjectType   string       `json:"subject_type,omitempty"`
	SubjectID     uuid.UUID    `json:"subject_id,omitempty"`
	TargetType    string       `json:"target_type,omitempty"`
	TargetID      uuid.UUID    `json:"target_id,omitempty"`
	Source        string       `json:"source,omitempty" doc:"direct (default), birthright or request"`
	ValidFrom     *time.Time   `json:"valid_from,omitempty"`
	ValidUntil    *time.Time   `json:"valid_until,omitempty"`
	Justification *string      `json:"justification,omitempty"`
	Constraints   *Constraints `json:"constraints,omitempty"`
}

const assignCols = `id, subject_type, subject_id, target_type, target_id, source, valid_from, valid_until, justification, constraints,
	created_by, created_at, updated_at, version`

func scanAssignment(row store.Scanner) (*Assignment, error) {
	var a Assignment
	var c []byte
	if err := row.Scan(&a.ID, &a.SubjectType, &a.SubjectID, &a.TargetType, &a.TargetID, &a.Source, &a.ValidFrom, &a.ValidUntil, &a.Justification,
		&c, &a.CreatedBy, &a.CreatedAt, &a.UpdatedAt, &a.Version); err != nil {
		return nil, err
	}
	if len(c) > 2 { // "{}": none
		_ = json.Unmarshal(c, &a.Constraints)
	}
	// One copy of each enumerated value, not one per row: a snapshot
	// holds every assignment of the tenant.
	a.SubjectType, a.TargetType, a.Source = intern(a.SubjectType), intern(a.TargetType), intern(a.Source)
	return &a, nil
}

// intern returns the constant equal to s when there is one.
func intern(s string) string {
	for _, c := range [...]string{SubjectUser, SubjectGroup, SubjectNHI, "entitlement", "role", SourceDirect, SourceRole, SourceBirthright, SourceRequest} {
		if s == c {
			return c
		}
	}
	return s
}

// Validate checks constraints.
func (c *Constraints) Validate() error {
	if c.RateLimitPerMinute < 0 || c.RateLimitPerMinute > 1_000_000 {
		return apperr.Invalid("constraints.rate_limit_per_minute", "must be from 0 to 1000000")
	}
	if len(c.ArgumentConstraints) > 100 {
		return apperr.Invalid("constraints.argument_constraints", "at most 100 arguments")
	}
	for name, vals := range c.ArgumentConstraints {
		if name == "" || len(vals) == 0 || len(vals) > 1000 {
			return apperr.Invalid("constraints.argument_constraints", "each argument lists 1 to 1000 allowed values")
		}
		for _, v := range vals {
			if !json.Valid(v) {
				return apperr.Invalid("constraints.argument_constraints", "values must be JSON")
			}
		}
	}
	if len(c.ArgumentPrefixes) > 100 || len(c.ArgumentPatterns) > 100 {
		return apperr.Invalid("constraints.argument_patterns", "at most 100 arguments")
	}
	for name, list := range c.ArgumentPrefixes {
		if name == "" || len(list) == 0 || len(list) > 1000 || slices.Contains(list, "") {
			return apperr.Invalid("constraints.argument_prefixes", "each argument lists 1 to 1000 non-empty prefixes")
		}
	}
	for name, list := range c.ArgumentPatterns {
		if name == "" || len(list) == 0 || len(list) > 100 {
			return apperr.Invalid("constraints.argument_patterns", "each argument lists 1 to 100 patterns")
		}
		for _, p := range list {
			if len(p) > 1000 {
				return apperr.Invalid("constraints.argument_patterns", "a pattern is at most 1000 characters")
			}
			if _, err := regexp.Compile(`^(?:` + p + `)$`); err != nil {
				return apperr.Invalid("constraints.argument_patterns", "not a valid RE2 pattern: "+p)
			}
		}
	}
	if len(c.ArgumentSchema) > 0 {
		if len(c.ArgumentSchema) > 64<<10 {
			return apperr.Invalid("constraints.argument_schema", "at most 64 KiB")
		}
		if _, err := compileArgSchema(c.ArgumentSchema); err != nil {
			return apperr.Invalid("constraints.argument_schema", "not a usable JSON Schema: "+err.Error())
		}
	}
	if c.ApprovalReuseMinutes < 0 || c.ApprovalReuseMinutes > 7*24*60 {
		return apperr.Invalid("constraints.approval_reuse_minutes", "must be from 0 to a week")
	}
	for i := range c.TimeWindows {
		w := &c.TimeWindows[i]
		if _, err := parseClock(w.Start); err != nil {
			return apperr.Invalid("constraints.time_windows.start", "must be HH:MM")
		}
		if _, err := parseClock(w.End); err != nil {
			return apperr.Invalid("constraints.time_windows.end", "must be HH:MM")
		}
		if w.TZ != "" {
			if _, err := time.LoadLocation(w.TZ); err != nil {
				return apperr.Invalid("constraints.time_windows.tz", "must be an IANA time zone")
			}
		}
		for _, d := range w.Days {
			if d < 0 || d > 6 {
				return apperr.Invalid("constraints.time_windows.days", "days are 0 (Sunday) to 6 (Saturday)")
			}
		}
	}
	return nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// CreateAssignment grants an entitlement or role to a user, group or NHI.
func (s *Service) CreateAssignment(ctx context.Context, in AssignmentInput) (*Assignment, error) {
	if err := oneOf("subject_type", in.SubjectType, SubjectUser, SubjectGroup, SubjectNHI); err != nil {
		return nil, err
	}
	if err := oneOf("target_type", in.TargetType, "entitlement", "role"); err != nil {
		return nil, err
	}
	if in.Source == "" {
		in.Source = SourceDirect
	}
	if err := oneOf("source", in.Source, SourceDirect, SourceBirthright, SourceRequest); err != nil {
		return nil, err
	}
	if in.ValidFrom != nil && in.ValidUntil != nil && !in.ValidUntil.After(*in.ValidFrom) {
		return nil, apperr.Invalid("valid_until", "must be after valid_from")
	}
	now := s.now()
	a := &Assignment{ID: uuid.Must(uuid.NewV7()), SubjectType: in.SubjectType, SubjectID: in.SubjectID, TargetType: in.TargetType, TargetID: in.TargetID,
		Source: in.Source, ValidFrom: utc(in.ValidFrom), ValidUntil: utc(in.ValidUntil), CreatedAt: now, UpdatedAt: now, Version: 1}
	if in.Justification != nil {
		if len(*in.Justification) > 2000 {
			return nil, apperr.Invalid("justification", "must be at most 2000 characters")
		}
		a.Justification = *in.Justification
	}
	if in.Constraints != nil {
		if err := in.Constraints.Validate(); err != nil {
			return nil, err
		}
		a.Constraints = *in.Constraints
	}
	if p := principal.From(ctx); p != nil {
		a.CreatedBy = string(p.Kind) + ":" + p.SubjectID
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.insertAssignment(ctx, tx, snap, a); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.assignment.create", "assignment", a.ID, a)
	})
	if err != nil {
		return nil, refusal(err)
	}
	return a, nil
}

// insertAssignment writes a new assignment in tx after checking its
// subject and target exist and that it breaks no separation-of-duties
// rule: every assignment path (direct, birthright, request) comes here.
// The subject's row is locked first, so two assignments to one subject
// are checked one after the other. snap expands roles and groups.
func (s *Service) insertAssignment(ctx context.Context, tx *store.Tx, snap *Snapshot, a *Assignment) error {
	if s.People == nil || s.Agents == nil {
		return errNoDirectory
	}
	lock := map[string]func(context.Context, *store.Tx, uuid.UUID) error{SubjectUser: s.People.LockUserTx, SubjectGroup: s.People.LockGroupTx,
		SubjectNHI: s.Agents.LockTx}[a.SubjectType]
	if lock == nil {
		return apperr.Invalid("subject_type", "must be user, group or nhi")
	}
	err := lock(ctx, tx, a.SubjectID)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return apperr.Invalid("subject_id", "no such "+a.SubjectType+" in this tenant")
	}
	if err != nil {
		return err
	}
	if ok, err := targetExists(ctx, tx, a.TargetType, a.TargetID); err != nil || !ok {
		if err == nil {
			err = apperr.Invalid("target_id", "no such "+a.TargetType+" in this tenant")
		}
		return err
	}
	if err := s.CheckSoD(ctx, tx, snap, a.SubjectType, a.SubjectID, a.TargetType, a.TargetID); err != nil {
		return err
	}
	// An identical assignment is refused (a client's retry, a double
	// click): the key is unique, and the subject's row lock above makes
	// this check and the insert one step.
	key := dedupKey(a)
	same, err := assignmentByKey(ctx, tx, key)
	if err == nil {
		return apperr.New(apperr.KindAlreadyExists, "an identical assignment exists: %s", same)
	}
	if !store.NoRows(err) {
		return err
	}
	if err := insertAssignmentRow(ctx, tx, a, key); err != nil {
		return err
	}
	return s.change(ctx, tx, "assignment", a.ID, 1, events.OpUpsert, a)
}

// dedupKey is what makes two assignments the same: subject, target,
// source and its reference (the approval an access request's assignment
// comes from), constraints and validity window. A birthright assignment
// may sit beside an identical direct one: their sources differ.
func dedupKey(a *Assignment) string {
	ref := ""
	if a.Source == SourceRequest {
		ref = a.CreatedBy
	}
	stamp := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	h := sha256.New()
	for _, part := range []string{a.SubjectType, a.SubjectID.String(), a.TargetType, a.TargetID.String(), a.Source, ref,
		marshal(a.Constraints), stamp(a.ValidFrom), stamp(a.ValidUntil)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// GetAssignment returns an assignment.
func (s *Service) GetAssignment(ctx context.Context, id uuid.UUID) (*Assignment, error) {
	return assignmentRecord.get(ctx, s.DB, id)
}

// ListAssignmentsOptions filters assignments.
type ListAssignmentsOptions struct {
	SubjectType string
	SubjectID   uuid.UUID
	TargetType  string
	TargetID    uuid.UUID
	Limit       int
	After       uuid.UUID
}

// ListAssignments lists assignments by ID.
func (s *Service) ListAssignments(ctx context.Context, o ListAssignmentsOptions) ([]*Assignment, bool, error) {
	var out []*Assignment
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listAssignments(ctx, tx, o)
		return err
	})
	if len(out) > o.Limit {
		return out[:o.Limit], true, err
	}
	return out, false, err
}

// UpdateAssignment changes an assignment's window, justification or constraints.
func (s *Service) UpdateAssignment(ctx context.Context, id uuid.UUID, in AssignmentInput, ifVersion int64) (*Assignment, error) {
	if in.SubjectType != "" || in.TargetType != "" || in.SubjectID != uuid.Nil || in.TargetID != uuid.Nil || in.Source != "" {
		return nil, apperr.Invalid("subject_id", "subject, target and source cannot change; create another assignment")
	}
	var a *Assignment
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if a, err = assignmentRecord.lock(ctx, tx, id, ifVersion); err != nil {
			return err
		}
		if in.ValidFrom != nil {
			a.ValidFrom = utc(in.ValidFrom)
		}
		if in.ValidUntil != nil {
			a.ValidUntil = utc(in.ValidUntil)
		}
		if a.ValidFrom != nil && a.ValidUntil != nil && !a.ValidUntil.After(*a.ValidFrom) {
			return apperr.Invalid("valid_until", "must be after valid_from")
		}
		if in.Justification != nil {
			a.Justification = *in.Justification
		}
		if in.Constraints != nil {
			if err := in.Constraints.Validate(); err != nil {
				return err
			}
			a.Constraints = *in.Constraints
		}
		a.UpdatedAt, a.Version = s.now(), a.Version+1
		if err := updateAssignment(ctx, tx, a); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "assignment", id, a.Version, events.OpUpsert, a); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.assignment.update", "assignment", id, in)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// HighRiskTarget reports whether assigning a target grants an
// entitlement of high or critical risk (step-up guards such grants).
func (s *Service) HighRiskTarget(ctx context.Context, targetType string, id uuid.UUID) (bool, error) {
	tid, _ := store.TenantFrom(ctx)
	snap, err := s.Engine.Snapshot(ctx, tid)
	if err != nil {
		return false, err
	}
	return snap.HighRisk(targetType, id), nil
}

// DeleteAssignment removes an assignment.
func (s *Service) DeleteAssignment(ctx context.Context, id uuid.UUID) error {
	return deleteByID(ctx, s, assignmentRecord, id)
}
