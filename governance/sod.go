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

// Separation-of-duties rule kinds.
const (
	// SoDConflict: holding any of EntitlementIDs together with any of
	// ConflictingIDs.
	SoDConflict = "conflict"
	// SoDCardinality: holding more than MaxHeld of EntitlementIDs.
	SoDCardinality = "cardinality"
)

// SoDRule is a separation-of-duties rule over entitlements (a role counts
// through the entitlements it brings).
type SoDRule struct {
	ID             uuid.UUID   `json:"id"`
	Key            string      `json:"key"`
	Name           string      `json:"name"`
	Description    string      `json:"description"`
	Severity       string      `json:"severity" doc:"low, medium, high or critical"`
	Kind           string      `json:"kind" doc:"conflict (any of entitlement_ids with any of conflicting_ids) or cardinality (more than max_held of entitlement_ids)"`
	EntitlementIDs []uuid.UUID `json:"entitlement_ids"`
	ConflictingIDs []uuid.UUID `json:"conflicting_ids"`
	MaxHeld        int         `json:"max_held,omitempty"`
	Enabled        bool        `json:"enabled"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
	Version        int64       `json:"version"`
}

// SoDRuleInput creates or changes a rule; absent fields stay.
type SoDRuleInput struct {
	Key            string       `json:"key,omitempty"`
	Name           *string      `json:"name,omitempty"`
	Description    *string      `json:"description,omitempty"`
	Severity       *string      `json:"severity,omitempty" doc:"default high"`
	Kind           string       `json:"kind,omitempty" doc:"conflict or cardinality; fixed at creation"`
	EntitlementIDs *[]uuid.UUID `json:"entitlement_ids,omitempty"`
	ConflictingIDs *[]uuid.UUID `json:"conflicting_ids,omitempty"`
	MaxHeld        *int         `json:"max_held,omitempty"`
	Enabled        *bool        `json:"enabled,omitempty" doc:"default true"`
}

const sodCols = `id, key, name, description, severity, kind, left_ids, right_ids, max_held, enabled, created_at, updated_at, version`

func scanSoDRule(row store.Scanner) (*SoDRule, error) {
	var r SoDRule
	var left, right []byte
	if err := row.Scan(&r.ID, &r.Key, &r.Name, &r.Description, &r.Severity, &r.Kind, &left, &right, &r.MaxHeld, &r.Enabled,
		&r.CreatedAt, &r.UpdatedAt, &r.Version); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(left, &r.EntitlementIDs)
	_ = json.Unmarshal(right, &r.ConflictingIDs)
	if r.ConflictingIDs == nil {
		r.ConflictingIDs = []uuid.UUID{}
	}
	return &r, nil
}

// members lists every entitlement the rule names.
func (r *SoDRule) members() []uuid.UUID {
	return append(slices.Clone(r.EntitlementIDs), r.ConflictingIDs...)
}

// broken returns the held entitlements that break the rule, or nil.
func (r *SoDRule) broken(held func(uuid.UUID) bool) []uuid.UUID {
	var a, b []uuid.UUID
	for _, e := range r.EntitlementIDs {
		if held(e) {
			a = append(a, e)
		}
	}
	if r.Kind == SoDCardinality {
		if len(a) > r.MaxHeld {
			return a
		}
		return nil
	}
	if len(a) == 0 {
		return nil
	}
	for _, e := range r.ConflictingIDs {
		if held(e) {
			b = append(b, e)
		}
	}
	if len(b) == 0 {
		return nil
	}
	return append(a, b...)
}

func (in *SoDRuleInput) apply(r *SoDRule) error {
	if in.Name != nil {
		if err := validName(*in.Name); err != nil {
			return err
		}
		r.Name = *in.Name
	}
	if in.Description != nil {
		if len(*in.Description) > 2000 {
			return apperr.Invalid("description", "must be at most 2000 characters")
		}
		r.Description = *in.Description
	}
	if in.Severity != nil {
		if err := oneOf("severity", *in.Severity, "low", "medium", "high", "critical"); err != nil {
			return err
		}
		r.Severity = *in.Severity
	}
	if in.EntitlementIDs != nil {
		r.EntitlementIDs = dedupe(*in.EntitlementIDs)
	}
	if in.ConflictingIDs != nil {
		r.ConflictingIDs = dedupe(*in.ConflictingIDs)
	}
	if in.MaxHeld != nil {
		r.MaxHeld = *in.MaxHeld
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if len(r.EntitlementIDs) > 1000 || len(r.ConflictingIDs) > 1000 {
		return apperr.Invalid("entitlement_ids", "at most 1000 entitlements per side")
	}
	switch r.Kind {
	case SoDConflict:
		if len(r.EntitlementIDs) == 0 || len(r.ConflictingIDs) == 0 {
			return apperr.Invalid("conflicting_ids", "a conflict rule names entitlements on both sides")
		}
		for _, e := range r.EntitlementIDs {
			if slices.Contains(r.ConflictingIDs, e) {
				return apperr.Invalid("conflicting_ids", "an entitlement cannot be on both sides")
			}
		}
		r.MaxHeld = 0
	case SoDCardinality:
		if len(r.ConflictingIDs) > 0 {
			return apperr.Invalid("conflicting_ids", "a cardinality rule has one set: entitlement_ids")
		}
		if len(r.EntitlementIDs) < 2 || r.MaxHeld < 1 || r.MaxHeld >= len(r.EntitlementIDs) {
			return apperr.Invalid("max_held", "a cardinality rule names at least 2 entitlements and allows 1 to one fewer than their number")
		}
	}
	return nil
}

func dedupe(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

func (s *Service) checkSoDMembers(ctx context.Context, tx *store.Tx, r *SoDRule) error {
	for _, e := range r.members() {
		ok, err := targetExists(ctx, tx, "entitlement", e)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.Invalid("entitlement_ids", "no such entitlement in this tenant: "+e.String())
		}
	}
	return nil
}

// CreateSoDRule adds a separation-of-duties rule. It is enforced from its
// commit on; existing holders are found by the next detective scan.
func (s *Service) CreateSoDRule(ctx context.Context, in SoDRuleInput) (*SoDRule, error) {
	if err := validKey("key", in.Key); err != nil {
		return nil, err
	}
	if in.Name == nil {
		in.Name = &in.Key
	}
	if err := oneOf("kind", in.Kind, SoDConflict, SoDCardinality); err != nil {
		return nil, err
	}
	now := s.now()
	r := &SoDRule{ID: uuid.Must(uuid.NewV7()), Key: in.Key, Kind: in.Kind, Severity: "high", Enabled: true, ConflictingIDs: []uuid.UUID{},
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := in.apply(r); err != nil {
		return nil, err
	}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.checkSoDMembers(ctx, tx, r); err != nil {
			return err
		}
		if err := insertSoDRule(ctx, tx, r, now); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "sod_rule", r.ID, 1, events.OpUpsert, r); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.sod_rule.create", "sod_rule", r.ID, r)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// GetSoDRule returns a rule.
func (s *Service) GetSoDRule(ctx context.Context, id uuid.UUID) (*SoDRule, error) {
	return sodRuleRecord.get(ctx, s.DB, id)
}

// ListSoDRules lists rules by key.
func (s *Service) ListSoDRules(ctx context.Context, limit int, afterKey string) ([]*SoDRule, bool, error) {
	return store.ReadPage(ctx, s.DB, limit, func(tx *store.Tx) ([]*SoDRule, error) { return listSoDRules(ctx, tx, afterKey, limit+1) })
}

// UpdateSoDRule changes a rule (its kind and key stay).
func (s *Service) UpdateSoDRule(ctx context.Context, id uuid.UUID, in SoDRuleInput, ifVersion int64) (*SoDRule, error) {
	if in.Key != "" || in.Kind != "" {
		return nil, apperr.Invalid("kind", "key and kind cannot change")
	}
	var r *SoDRule
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if r, err = sodRuleRecord.lock(ctx, tx, id, ifVersion); err != nil {
			return err
		}
		if err := in.apply(r); err != nil {
			return err
		}
		if err := s.checkSoDMembers(ctx, tx, r); err != nil {
			return err
		}
		r.UpdatedAt, r.Version = s.now(), r.Version+1
		if err := updateSoDRule(ctx, tx, r); err != nil {
			return err
		}
		if err := s.change(ctx, tx, "sod_rule", id, r.Version, events.OpUpsert, r); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.sod_rule.update", "sod_rule", id, in)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteSoDRule removes a rule with its exemptions and violations.
func (s *Service) DeleteSoDRule(ctx context.Context, id uuid.UUID) error {
	return deleteByID(ctx, s, sodRuleRecord, id)
}

// ---- preventive checks ----

// snapshot returns the decision snapshot of the tenant in ctx: the
// engine's when the service has one, else a fresh build. Taken before a
// write transaction opens (building reads).
func (s *Service) snapshot(ctx context.Context) (*Snapshot, error) {
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return nil, store.ErrNoTenant
	}
	if s.Engine != nil {
		return s.Engine.Snapshot(ctx, tid)
	}
	return build(ctx, s.DB, s.People, s.Agents, tid, s.now())
}

// targetEntitlements lists the entitlements an assignment target brings.
func (s *Snapshot) targetEntitlements(targetType string, id uuid.UUID, into map[uuid.UUID]bool) {
	if targetType == "entitlement" {
		into[id] = true
		return
	}
	for _, rr := range s.reachOf(id) {
		for _, e := range s.roleEnts(rr.role) {
			into[e] = true
		}
	}
}

// holdings reads what a user or NHI holds now or later (expired
// assignments aside) from the database inside tx: its own assignments and
// those of its groups and their ancestors. So an assignment or a
// membership committed a moment ago counts even before the snapshot sees
// it; roles are expanded with the snapshot. (Two queries: the groups, then
// the assignments by an explicit list of subjects — a join lets the
// planner scan every group assignment of the tenant.)
func (s *Service) holdings(ctx context.Context, tx *store.Tx, snap *Snapshot, typ string, id uuid.UUID, now time.Time) (map[uuid.UUID]bool, error) {
	if s.People == nil {
		return nil, errNoDirectory
	}
	subjects := []uuid.UUID{id}
	if typ == SubjectUser {
		groups, err := s.People.GroupsAboveTx(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		subjects = append(subjects, groups...)
	}
	targets, err := heldTargets(ctx, tx, typ, subjects, now)
	if err != nil {
		return nil, err
	}
	held := map[uuid.UUID]bool{}
	for _, t := range targets {
		snap.targetEntitlements(t.kind, t.id, held)
	}
	return held, nil
}

// exemptRules returns the rules a subject is exempt from at now.
func exemptRules(ctx context.Context, tx *store.Tx, typ string, id uuid.UUID, now time.Time) (map[uuid.UUID]bool, error) {
	rules, err := exemptRuleIDs(ctx, tx, typ, id, now)
	out := map[uuid.UUID]bool{}
	for _, r := range rules {
		out[r] = true
	}
	return out, err
}

// SoDRefusal is the error of a refused assignment: the rule it would break.
type SoDRefusal struct {
	Rule         *SoDRule
	SubjectType  string
	SubjectID    uuid.UUID
	Entitlements []string
}

func (r *SoDRefusal) Error() string {
	return fmt.Sprintf("separation of duties: rule %q (%s, severity %s) forbids %s %s holding %s", r.Rule.Key, r.Rule.Name, r.Rule.Severity,
		r.SubjectType, r.SubjectID, strings.Join(r.Entitlements, " with "))
}

// CheckSoD is the preventive check of one new assignment of target to a
// subject (user, NHI, or group: each member user, nested groups
// included), run inside the assigning transaction. Only rules the new
// target brings an entitlement of are evaluated, and only a violation the
// assignment introduces is refused: one the subject already had is the
// detective scan's. Active exemptions let the assignment through.
func (s *Service) CheckSoD(ctx context.Context, tx *store.Tx, snap *Snapshot, subjectType string, subjectID uuid.UUID, targetType string, targetID uuid.UUID) error {
	if snap.sodRules == 0 {
		return nil
	}
	adding := map[uuid.UUID]bool{}
	snap.targetEntitlements(targetType, targetID, adding)
	var rules []*SoDRule
	seen := map[uuid.UUID]bool{}
	for e := range adding {
		for _, r := range snap.sodByEnt[e] {
			if !seen[r.ID] {
				seen[r.ID] = true
				rules = append(rules, r)
			}
		}
	}
	if len(rules) == 0 {
		return nil
	}
	slices.SortFunc(rules, func(a, b *SoDRule) int { return strings.Compare(a.Key, b.Key) })
	subjects := []uuid.UUID{subjectID}
	typ := subjectType
	if subjectType == SubjectGroup {
		var err error
		if subjects, err = s.People.MembersBelowTx(ctx, tx, subjectID); err != nil {
			return err
		}
		typ = SubjectUser
	}
	now := s.now()
	for _, sub := range subjects {
		held, err := s.holdings(ctx, tx, snap, typ, sub, now)
		if err != nil {
			return err
		}
		exempt, err := exemptRules(ctx, tx, typ, sub, now)
		if err != nil {
			return err
		}
		after := func(e uuid.UUID) bool { return held[e] || adding[e] }
		for _, r := range rules {
			if exempt[r.ID] {
				continue
			}
			broken := r.broken(after)
			if broken == nil || !slices.ContainsFunc(broken, func(e uuid.UUID) bool { return !held[e] }) {
				continue
			}
			return &SoDRefusal{Rule: r, SubjectType: typ, SubjectID: sub, Entitlements: snap.entNames(broken)}
		}
	}
	return nil
}

// roleSoD refuses a role that would break a rule by itself: its own
// entitlements together with those its parent and induced roles bring.
// (Holders who would break a rule only with what else they hold are the
// detective scan's: a role change is not checked against every holder.)
func roleSoD(snap *Snapshot, r *Role) error {
	if snap.sodRules == 0 {
		return nil
	}
	held := map[uuid.UUID]bool{}
	for _, e := range r.Entitlement {
		held[e] = true
	}
	if r.ParentID != nil {
		snap.targetEntitlements("role", *r.ParentID, held)
	}
	for _, x := range r.Induces {
		snap.targetEntitlements("role", x, held)
	}
	var rules []*SoDRule
	seen := map[uuid.UUID]bool{}
	for e := range held {
		for _, rule := range snap.sodByEnt[e] {
			if !seen[rule.ID] {
				seen[rule.ID] = true
				rules = append(rules, rule)
			}
		}
	}
	slices.SortFunc(rules, func(a, b *SoDRule) int { return strings.Compare(a.Key, b.Key) })
	for _, rule := range rules {
		if broken := rule.broken(func(e uuid.UUID) bool { return held[e] }); broken != nil {
			return &SoDRefusal{Rule: rule, SubjectType: "role", SubjectID: r.ID, Entitlements: snap.entNames(broken)}
		}
	}
	return nil
}

// entNames names entitlements "application/key".
func (s *Snapshot) entNames(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, e := range ids {
		if info, ok := s.ents.get(e); ok {
			out[i] = s.apps.at(info.app).key + "/" + info.key
		} else {
			out[i] = e.String()
		}
	}
	return out
}

// refusal turns a SoD refusal into the API's conflict error.
func refusal(err error) error {
	var r *SoDRefusal
	if errors.As(err, &r) {
		return apperr.New(apperr.KindConflict, "%s", r.Error())
	}
	return err
}

// ---- exemptions ----

// SoDExemption lets a subject break a rule until it expires.
type SoDExemption struct {
	ID            uuid.UUID  `json:"id"`
	RuleID        uuid.UUID  `json:"rule_id"`
	SubjectType   string     `json:"subject_type" doc:"user or nhi"`
	SubjectID     uuid.UUID  `json:"subject_id"`
	Justification string     `json:"justification"`
	ApprovedBy    string     `json:"approved_by" doc:"who granted it (kind:id)"`
	ExpiresAt     time.Time  `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

// SoDExemptionInput grants an exemption.
type SoDExemptionInput struct {
	RuleID        uuid.UUID `json:"rule_id"`
	SubjectType   string    `json:"subject_type"`
	SubjectID     uuid.UUID `json:"subject_id"`
	Justification string    `json:"justification"`
	ExpiresAt     time.Time `json:"expires_at" doc:"at most a year ahead"`
}

const exemptionCols = `id, rule_id, subject_type, subject_id, justification, approved_by, expires_at, revoked_at, created_at`

func scanExemption(row store.Scanner) (*SoDExemption, error) {
	var x SoDExemption
	err := row.Scan(&x.ID, &x.RuleID, &x.SubjectType, &x.SubjectID, &x.Justification, &x.ApprovedBy, &x.ExpiresAt, &x.RevokedAt, &x.CreatedAt)
	return &x, err
}

// actorOf names the caller as kind:id.
func actorOf(ctx context.Context) string {
	if p := principal.From(ctx); p != nil {
		return string(p.Kind) + ":" + p.SubjectID
	}
	return "system"
}

// CreateSoDExemption records an exemption granted by the caller.
func (s *Service) CreateSoDExemption(ctx context.Context, in SoDExemptionInput) (*SoDExemption, error) {
	if err := oneOf("subject_type", in.SubjectType, SubjectUser, SubjectNHI); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Justification) == "" || len(in.Justification) > 2000 {
		return nil, apperr.Invalid("justification", "is required (at most 2000 characters)")
	}
	now := s.now()
	if !in.ExpiresAt.After(now) || in.ExpiresAt.After(now.AddDate(1, 0, 0)) {
		return nil, apperr.Invalid("expires_at", "must be in the future and at most a year ahead")
	}
	x := &SoDExemption{ID: uuid.Must(uuid.NewV7()), RuleID: in.RuleID, SubjectType: in.SubjectType, SubjectID: in.SubjectID,
		Justification: in.Justification, ApprovedBy: actorOf(ctx), ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Microsecond), CreatedAt: now}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if ok, err := sodRuleExists(ctx, tx, in.RuleID); err != nil || !ok {
			if err == nil {
				err = apperr.Invalid("rule_id", "no such rule in this tenant")
			}
			return err
		}
		if ok, err := s.subjectExists(ctx, tx, in.SubjectType, in.SubjectID); err != nil || !ok {
			if err == nil {
				err = apperr.Invalid("subject_id", "no such "+in.SubjectType+" in this tenant")
			}
			return err
		}
		if err := insertExemption(ctx, tx, x, now); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, "sod.exemption.granted", x.ID, x); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.sod_exemption.create", "sod_exemption", x.ID, x)
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// ListSoDExemptions lists exemptions, newest first; active only when asked.
func (s *Service) ListSoDExemptions(ctx context.Context, rule uuid.UUID, activeOnly bool, limit int, before uuid.UUID) ([]*SoDExemption, bool, error) {
	if before == uuid.Nil {
		before = uuid.Max
	}
	return store.ReadPage(ctx, s.DB, limit, func(tx *store.Tx) ([]*SoDExemption, error) {
		return listExemptions(ctx, tx, rule, activeOnly, s.now(), before, limit+1)
	})
}

// RevokeSoDExemption ends an exemption now.
func (s *Service) RevokeSoDExemption(ctx context.Context, id uuid.UUID) error {
	now := s.now()
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		revoked, err := revokeExemption(ctx, tx, id, now)
		if err != nil {
			return err
		}
		if !revoked {
			return apperr.NotFound("active exemption")
		}
		if err := s.notify(ctx, tx, "sod.exemption.revoked", id, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "governance.sod_exemption.revoke", "sod_exemption", id, nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// ---- detective scans ----

// SoDViolation is a rule a subject breaks, found by a scan.
type SoDViolation struct {
	ID             uuid.UUID   `json:"id"`
	RuleID         uuid.UUID   `json:"rule_id"`
	RuleKey        string      `json:"rule_key,omitempty"`
	Severity       string      `json:"severity,omitempty"`
	SubjectType    string      `json:"subject_type"`
	SubjectID      uuid.UUID   `json:"subject_id"`
	EntitlementIDs []uuid.UUID `json:"entitlement_ids"`
	Status         string      `json:"status" doc:"open or resolved"`
	FirstSeenAt    time.Time   `json:"first_seen_at"`
	LastSeenAt     time.Time   `json:"last_seen_at"`
	ResolvedAt     *time.Time  `json:"resolved_at,omitempty"`
}

// ScanResult sums up a detective scan.
type ScanResult struct {
	Subjects int `json:"subjects" doc:"users and NHIs examined"`
	Rules    int `json:"rules"`
	Open     int `json:"open" doc:"violations open after the scan"`
	New      int `json:"new"`
	Resolved int `json:"resolved"`
	Exempted int `json:"exempted" doc:"violations let through by an active exemption"`
}

type violationKey struct {
	rule uuid.UUID
	typ  string
	id   uuid.UUID
}

// ScanSoD evaluates every enabled rule against every user's and NHI's
// effective entitlements (assignments valid now), records new violations,
// refreshes the ones still there and resolves the ones gone. A subject
// with an active exemption from a rule is counted as exempted.
func (s *Service) ScanSoD(ctx context.Context) (*ScanResult, error) {
	snap, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	tid := snap.Tenant
	now := s.now()
	res := &ScanResult{Rules: snap.sodRules}
	found := map[violationKey][]uuid.UUID{}
	exempt := map[violationKey]bool{}
	err = s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		keys, err := activeExemptions(ctx, tx, now)
		for _, k := range keys {
			exempt[k] = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if snap.sodRules > 0 {
		scan := func(typ string, id uuid.UUID) {
			res.Subjects++
			grants := map[uuid.UUID][]Grant{}
			for _, g := range snap.Effective(typ, id) {
				grants[g.EntitlementID] = append(grants[g.EntitlementID], g)
			}
			held := func(e uuid.UUID) bool {
				for _, g := range grants[e] {
					if g.Assignment.ValidAt(now) {
						return true
					}
				}
				return false
			}
			done := map[uuid.UUID]bool{}
			for e := range grants {
				for _, r := range snap.sodByEnt[e] {
					if done[r.ID] {
						continue
					}
					done[r.ID] = true
					if broken := r.broken(held); broken != nil {
						k := violationKey{r.ID, typ, id}
						if exempt[k] {
							res.Exempted++
							continue
						}
						found[k] = dedupe(broken)
					}
				}
			}
		}
		snap.users.each(func(id uuid.UUID, _ string) bool { scan(SubjectUser, id); return true })
		snap.nhis.each(func(id uuid.UUID, _ nhiInfo) bool { scan(SubjectNHI, id); return true })
	} else {
		res.Subjects = snap.users.len() + snap.nhis.len()
	}
	var fresh []*SoDViolation
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		open, err := openViolations(ctx, tx)
		if err != nil {
			return err
		}
		for k, id := range open {
			if ents, ok := found[k]; ok {
				if err := seeViolation(ctx, tx, id, ents, now); err != nil {
					return err
				}
				continue
			}
			if err := resolveViolation(ctx, tx, id, now); err != nil {
				return err
			}
			res.Resolved++
		}
		for k, ents := range found {
			if _, ok := open[k]; ok {
				continue
			}
			v := &SoDViolation{ID: uuid.Must(uuid.NewV7()), RuleID: k.rule, SubjectType: k.typ, SubjectID: k.id, EntitlementIDs: ents, Status: "open",
				FirstSeenAt: now, LastSeenAt: now}
			if err := insertViolation(ctx, tx, v); err != nil {
				return err
			}
			if err := s.notify(ctx, tx, "sod.violation.detected", v.ID, v); err != nil {
				return err
			}
			fresh = append(fresh, v)
		}
		res.Open, res.New = len(found), len(fresh)
		for _, v := range fresh {
			if err := s.auditTx(ctx, tx, "governance.sod_violation.detect", "sod_violation", v.ID, v); err != nil {
				return err
			}
		}
		return s.auditTx(ctx, tx, "governance.sod.scan", "tenant", tid, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ListSoDViolations lists violations, newest first.
func (s *Service) ListSoDViolations(ctx context.Context, status string, rule uuid.UUID, limit int, before uuid.UUID) ([]*SoDViolation, bool, error) {
	if status != "" {
		if err := oneOf("status", status, "open", "resolved"); err != nil {
			return nil, false, err
		}
	}
	if before == uuid.Nil {
		before = uuid.Max
	}
	return store.ReadPage(ctx, s.DB, limit, func(tx *store.Tx) ([]*SoDViolation, error) {
		return listViolations(ctx, tx, status, rule, before, limit+1)
	})
}

func scanViolation(row store.Scanner) (*SoDViolation, error) {
	var v SoDViolation
	var ents []byte
	err := row.Scan(&v.ID, &v.RuleID, &v.RuleKey, &v.Severity, &v.SubjectType, &v.SubjectID, &ents, &v.Status, &v.FirstSeenAt, &v.LastSeenAt, &v.ResolvedAt)
	_ = json.Unmarshal(ents, &v.EntitlementIDs)
	return &v, err
}

// RunSoDScans runs the detective scan of every tenant with enabled rules
// every interval (the first after one interval) until ctx ends.
func (s *Service) RunSoDScans(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var tenants []uuid.UUID
		err := s.DB.SystemRead(ctx, func(tx *store.Tx) (err error) {
			tenants, err = tenantsWithRules(ctx, tx)
			return err
		})
		if err != nil {
			slog.Warn("scheduled separation-of-duties scans", "error", err)
			continue
		}
		for _, tid := range tenants {
			if s.Tenants != nil && s.Tenants.ActiveTenant(ctx, tid) != nil {
				continue // suspended or deleted: nothing is scanned
			}
			tctx := principal.With(store.WithTenant(ctx, tid), &principal.Principal{TenantID: tid, Kind: principal.KindBootstrap,
				SubjectID: "system", AdminRoles: []string{principal.RoleSuperAdmin}})
			if _, err := s.ScanSoD(tctx); err != nil && ctx.Err() == nil {
				slog.Warn("scheduled separation-of-duties scan", "tenant", tid, "error", err)
			}
		}
	}
}
