package governance

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Step is one link of a grant path: why a subject holds an entitlement.
type Step struct {
	Type string    `json:"type" doc:"assignment, group, role, parent_role or induced_role"`
	ID   uuid.UUID `json:"id"`
	Key  string    `json:"key,omitempty"`
}

// Grant is one way a subject holds an entitlement.
type Grant struct {
	EntitlementID uuid.UUID   `json:"entitlement_id"`
	Assignment    *Assignment `json:"assignment"`
	Path          []Step      `json:"path"`
}

type subjectKey struct {
	typ string
	id  uuid.UUID
}

type entInfo struct {
	id       uuid.UUID
	app      uuid.UUID
	kind     string
	key      string
	approval string
	risk     string
}

type appInfo struct {
	key    string
	status string
}

type allowSet map[string]struct{}

// compiled holds an assignment's constraints in decision-ready form.
type compiled struct {
	args    *argCheck
	windows []window
}

type window struct {
	days       uint8 // bit per weekday; 0 = every day
	start, end int   // minutes of the day
	loc        *time.Location
}

// access is a subject's effective entitlements.
type access struct {
	grants map[uuid.UUID][]Grant
}

// Snapshot is a tenant's effective-access state at one moment: immutable
// but for its per-subject cache, safe for concurrent readers.
type Snapshot struct {
	Tenant  uuid.UUID
	BuiltAt time.Time

	users       map[uuid.UUID]string
	nhis        map[uuid.UUID]string
	nhiRisk     map[uuid.UUID]int
	groupParent map[uuid.UUID]uuid.UUID
	userGroups  map[uuid.UUID][]uuid.UUID
	groupName   map[uuid.UUID]string
	apps        map[uuid.UUID]appInfo
	ents        map[uuid.UUID]*entInfo
	entByKey    map[string]uuid.UUID
	roleKey     map[uuid.UUID]string
	roleParent  map[uuid.UUID]uuid.UUID
	roleEnts    map[uuid.UUID][]uuid.UUID
	roleInduces map[uuid.UUID][]uuid.UUID
	bySubject   map[subjectKey][]*Assignment
	constraints map[uuid.UUID]*compiled
	// argConstraints: some assignment constrains arguments.
	argConstraints bool
	// rateLimits: some assignment limits its rate.
	rateLimits bool
	// sodByEnt: the enabled separation-of-duties rules naming each entitlement.
	sodByEnt map[uuid.UUID][]*SoDRule
	sodRules int

	cache sync.Map // subjectKey → *access
	roles sync.Map // role ID → []roleReach: closures shared by every subject
}

// roleReach is one role a held role brings, with the path from it.
type roleReach struct {
	role uuid.UUID
	path []Step
}

// Stats describes a snapshot's size.
type Stats struct {
	Users, Groups, NHIs, Entitlements, Roles, Assignments int
	BuiltAt                                               time.Time
}

// Stats returns the snapshot's size.
func (s *Snapshot) Stats() Stats {
	n := 0
	for _, l := range s.bySubject {
		n += len(l)
	}
	return Stats{Users: len(s.users), Groups: len(s.groupName), NHIs: len(s.nhis), Entitlements: len(s.ents), Roles: len(s.roleKey),
		Assignments: n, BuiltAt: s.BuiltAt}
}

func compile(c *Constraints) *compiled {
	if !c.hasArguments() && len(c.TimeWindows) == 0 {
		return nil
	}
	out := &compiled{args: compileArgs(c)}
	for _, w := range c.TimeWindows {
		x := window{loc: time.UTC}
		x.start, _ = parseClock(w.Start)
		x.end, _ = parseClock(w.End)
		if w.TZ != "" {
			if loc, err := time.LoadLocation(w.TZ); err == nil {
				x.loc = loc
			}
		}
		for _, d := range w.Days {
			x.days |= 1 << d
		}
		out.windows = append(out.windows, x)
	}
	return out
}

// canonical is the comparison form of a JSON value.
func canonical(v json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return b.String()
}

func (w window) contains(t time.Time) bool {
	t = t.In(w.loc)
	if w.days != 0 && w.days&(1<<t.Weekday()) == 0 {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if w.start <= w.end {
		return m >= w.start && m < w.end
	}
	return m >= w.start || m < w.end // wraps midnight
}

// roleClosure lists every role a held role brings (itself, its ancestors,
// induced roles and theirs), each with the path from the held role.
func (s *Snapshot) roleClosure(role uuid.UUID, base []Step, emit func(role uuid.UUID, path []Step)) {
	seen := map[uuid.UUID]bool{}
	var visit func(r uuid.UUID, path []Step)
	visit = func(r uuid.UUID, path []Step) {
		if seen[r] {
			return
		}
		seen[r] = true
		emit(r, path)
		if p, ok := s.roleParent[r]; ok {
			visit(p, append(path[:len(path):len(path)], Step{Type: "parent_role", ID: p, Key: s.roleKey[p]}))
		}
		for _, ind := range s.roleInduces[r] {
			visit(ind, append(path[:len(path):len(path)], Step{Type: "induced_role", ID: ind, Key: s.roleKey[ind]}))
		}
	}
	visit(role, base)
}

// reach returns the roles a held role brings, computed once per snapshot.
func (s *Snapshot) reach(role uuid.UUID) []roleReach {
	if r, ok := s.roles.Load(role); ok {
		return r.([]roleReach)
	}
	var out []roleReach
	s.roleClosure(role, []Step{{Type: "role", ID: role, Key: s.roleKey[role]}}, func(r uuid.UUID, path []Step) {
		out = append(out, roleReach{role: r, path: path})
	})
	actual, _ := s.roles.LoadOrStore(role, out)
	return actual.([]roleReach)
}

// Access returns a subject's effective entitlements with their grant
// paths (cached per subject in the snapshot).
func (s *Snapshot) access(typ string, id uuid.UUID) *access {
	k := subjectKey{typ, id}
	if a, ok := s.cache.Load(k); ok {
		return a.(*access)
	}
	acc := &access{grants: map[uuid.UUID][]Grant{}}
	add := func(a *Assignment, base []Step) {
		path := append(base[:len(base):len(base)], Step{Type: "assignment", ID: a.ID})
		if a.TargetType == "entitlement" {
			acc.grants[a.TargetID] = append(acc.grants[a.TargetID], Grant{EntitlementID: a.TargetID, Assignment: a, Path: path})
			return
		}
		for _, rr := range s.reach(a.TargetID) {
			rp := make([]Step, 0, len(path)+len(rr.path))
			rp = append(append(rp, path...), rr.path...)
			for _, e := range s.roleEnts[rr.role] {
				acc.grants[e] = append(acc.grants[e], Grant{EntitlementID: e, Assignment: a, Path: rp})
			}
		}
	}
	for _, a := range s.bySubject[k] {
		add(a, nil)
	}
	if typ == SubjectUser {
		seen := map[uuid.UUID]bool{}
		for _, g := range s.userGroups[id] {
			path := []Step{{Type: "group", ID: g, Key: s.groupName[g]}}
			for cur, ok := g, true; ok && !seen[cur]; cur, ok = s.groupParent[cur] {
				seen[cur] = true
				if cur != g {
					path = append(path[:len(path):len(path)], Step{Type: "group", ID: cur, Key: s.groupName[cur]})
				}
				for _, a := range s.bySubject[subjectKey{SubjectGroup, cur}] {
					add(a, path)
				}
			}
		}
	}
	actual, _ := s.cache.LoadOrStore(k, acc)
	return actual.(*access)
}

// Effective lists a subject's grants, entitlement by entitlement.
func (s *Snapshot) Effective(typ string, id uuid.UUID) []Grant {
	acc := s.access(typ, id)
	var out []Grant
	for _, gs := range acc.grants {
		out = append(out, gs...)
	}
	return out
}

// Subject names who is asking.
type Subject struct {
	Type string    `json:"type" doc:"user or nhi"`
	ID   uuid.UUID `json:"id"`
}

// Request asks whether a subject may use an entitlement now.
type Request struct {
	Subject Subject `json:"subject"`
	// Actor, for delegated calls: both the actor and the subject must be allowed.
	Actor *Subject `json:"actor,omitempty"`
	// EntitlementID, or Application and Entitlement keys.
	EntitlementID uuid.UUID                  `json:"entitlement_id,omitempty"`
	Application   string                     `json:"application,omitempty" maxlen:"256"`
	Entitlement   string                     `json:"entitlement,omitempty" maxlen:"256"`
	Arguments     map[string]json.RawMessage `json:"arguments,omitempty"`
	// Decoded, when the caller has them, are the same arguments decoded as
	// JSON Schema instances (numbers as json.Number): patterns and schema
	// fragments then skip decoding them again.
	Decoded map[string]any `json:"-"`
	// Admit, when set, has the last word on a grant that would allow the
	// call (the gateway counts rate limits with it): false moves on to the
	// subject's next grant, with the reason and code given.
	Admit func(sub Subject, a *Assignment) (ok bool, reason, code string) `json:"-"`
}

// Decisions.
const (
	Allow            = "allow"
	Deny             = "deny"
	ApprovalRequired = "approval_required"
)

// Decision answers a Request.
type Decision struct {
	Decision      string       `json:"decision" doc:"allow, deny or approval_required"`
	Reason        string       `json:"reason"`
	Code          string       `json:"code,omitempty" doc:"the reason as a stable code: unknown_entitlement, not_approved, application_inactive, inactive, no_grant, expired, time_window, argument, rate_limit; granted; approval_required"`
	EntitlementID uuid.UUID    `json:"entitlement_id,omitempty"`
	AssignmentID  *uuid.UUID   `json:"assignment_id,omitempty"`
	Path          []Step       `json:"path,omitempty"`
	Constraints   *Constraints `json:"constraints,omitempty"`
	AuditID       *uuid.UUID   `json:"audit_id,omitempty"`
}

// Allowed reports an allow decision.
func (d *Decision) Allowed() bool { return d.Decision == Allow }

// Denial reasons, most specific last.
const (
	reasonNoGrant   = "no assignment grants this entitlement"
	reasonExpired   = "the assignments granting it are not valid now"
	reasonWindow    = "outside the allowed time windows"
	reasonInactive  = "the subject is not active"
	reasonUnknown   = "no such entitlement"
	reasonApproval  = "the entitlement is not approved"
	reasonAppStatus = "the application is not active"
)

// Decide answers req at t from the snapshot.
func (s *Snapshot) Decide(req *Request, t time.Time) Decision {
	ent := req.EntitlementID
	if ent == uuid.Nil {
		ent = s.entByKey[req.Application+"/"+req.Entitlement]
	}
	e, ok := s.ents[ent]
	if !ok {
		return Decision{Decision: Deny, Reason: reasonUnknown, Code: "unknown_entitlement"}
	}
	if e.approval != Approved {
		return Decision{Decision: Deny, Reason: reasonApproval, Code: "not_approved", EntitlementID: ent}
	}
	if s.apps[e.app].status != "active" {
		return Decision{Decision: Deny, Reason: reasonAppStatus, Code: "application_inactive", EntitlementID: ent}
	}
	args := callArgs{raw: req.Arguments, decoded: req.Decoded}
	d := s.decideArgs(req.Subject, ent, args, false, t, req.Admit)
	if d.Decision == Deny || req.Actor == nil {
		return d
	}
	ad := s.decideArgs(*req.Actor, ent, args, false, t, req.Admit)
	if ad.Decision == Deny {
		ad.Reason = "actor: " + ad.Reason
		return ad
	}
	if ad.Decision == ApprovalRequired {
		return ad
	}
	return d
}

// EntitlementID finds an entitlement by its application's key and its own.
func (s *Snapshot) EntitlementID(app, key string) (uuid.UUID, bool) {
	id, ok := s.entByKey[app+"/"+key]
	return id, ok
}

// RiskScore returns an NHI's risk score (0 for users and unknown NHIs).
func (s *Snapshot) RiskScore(sub Subject) int {
	if sub.Type != SubjectNHI {
		return 0
	}
	return s.nhiRisk[sub.ID]
}

// EntitlementRisk returns an entitlement's risk level ("" if unknown).
func (s *Snapshot) EntitlementRisk(ent uuid.UUID) string {
	if e, ok := s.ents[ent]; ok {
		return e.risk
	}
	return ""
}

// HasRateLimits reports whether any assignment of the tenant limits its
// rate (callers may skip counting otherwise).
func (s *Snapshot) HasRateLimits() bool { return s.rateLimits }

// HasArgumentConstraints reports whether any assignment of the tenant
// constrains arguments (callers may skip preparing them otherwise).
func (s *Snapshot) HasArgumentConstraints() bool { return s.argConstraints }

// Permits reports whether the subject (and the actor, for delegated calls)
// may use the entitlement at t with some arguments: what a tool list
// shows. Argument constraints are left to the call; entitlements held
// only under approval count.
func (s *Snapshot) Permits(sub Subject, actor *Subject, ent uuid.UUID, t time.Time) bool {
	e, ok := s.ents[ent]
	if !ok || e.approval != Approved || s.apps[e.app].status != "active" {
		return false
	}
	if s.decideArgs(sub, ent, callArgs{}, true, t, nil).Decision == Deny {
		return false
	}
	return actor == nil || s.decideArgs(*actor, ent, callArgs{}, true, t, nil).Decision != Deny
}

func (s *Snapshot) decideArgs(sub Subject, ent uuid.UUID, args callArgs, anyArgs bool, t time.Time,
	admit func(Subject, *Assignment) (bool, string, string)) Decision {
	var status string
	switch sub.Type {
	case SubjectUser:
		status = s.users[sub.ID]
	case SubjectNHI:
		status = s.nhis[sub.ID]
	}
	if status != "active" {
		return Decision{Decision: Deny, Reason: reasonInactive, Code: "inactive", EntitlementID: ent}
	}
	grants := s.access(sub.Type, sub.ID).grants[ent]
	reason, code := reasonNoGrant, "no_grant"
	var approval *Grant
	for i := range grants {
		g := &grants[i]
		a := g.Assignment
		if !a.ValidAt(t) {
			reason, code = reasonExpired, "expired"
			continue
		}
		if c := s.constraints[a.ID]; c != nil {
			if len(c.windows) > 0 && !inWindows(c.windows, t) {
				reason, code = reasonWindow, "time_window"
				continue
			}
			if !anyArgs && c.args != nil {
				if ok, why := c.args.allows(args); !ok {
					reason, code = why, "argument"
					continue
				}
			}
		}
		if a.Constraints.RequiresApproval {
			if approval == nil {
				approval = g
			}
			continue
		}
		if admit != nil {
			if ok, why, c := admit(sub, a); !ok {
				reason, code = why, c
				continue
			}
		}
		return Decision{Decision: Allow, Reason: "granted", Code: "granted", EntitlementID: ent, AssignmentID: &a.ID, Path: g.Path, Constraints: &a.Constraints}
	}
	if approval != nil {
		a := approval.Assignment
		return Decision{Decision: ApprovalRequired, Reason: "the assignment requires approval of each call", Code: "approval_required", EntitlementID: ent,
			AssignmentID: &a.ID, Path: approval.Path, Constraints: &a.Constraints}
	}
	return Decision{Decision: Deny, Reason: reason, Code: code, EntitlementID: ent}
}

func inWindows(ws []window, t time.Time) bool {
	for _, w := range ws {
		if w.contains(t) {
			return true
		}
	}
	return false
}

// Engine keeps one snapshot per tenant, rebuilt on first use after a
// change event invalidates it.
type Engine struct {
	DB *store.DB
	// People and Agents are the directory and the NHIs, read in the
	// snapshot's transaction (required).
	People People
	Agents Agents
	Now    func() time.Time

	mu    sync.Mutex
	slots map[uuid.UUID]*slot
	// local holds changes this process committed and already invalidated
	// for; their notifications, arriving later, are not counted again.
	local map[events.Change]struct{}
}

type slot struct {
	build sync.Mutex
	snap  atomic.Pointer[Snapshot]
	gen   atomic.Int64 // bumped by every invalidation
	built atomic.Int64 // the gen the snapshot was built at
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) slot(tenant uuid.UUID) *slot {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.slots == nil {
		e.slots = map[uuid.UUID]*slot{}
	}
	s := e.slots[tenant]
	if s == nil {
		s = &slot{}
		s.gen.Store(1)
		e.slots[tenant] = s
	}
	return s
}

// Snapshot returns the tenant's current snapshot, building it if needed.
func (e *Engine) Snapshot(ctx context.Context, tenant uuid.UUID) (*Snapshot, error) {
	sl := e.slot(tenant)
	if s := sl.snap.Load(); s != nil && sl.built.Load() == sl.gen.Load() {
		return s, nil
	}
	sl.build.Lock()
	defer sl.build.Unlock()
	gen := sl.gen.Load()
	if s := sl.snap.Load(); s != nil && sl.built.Load() == gen {
		return s, nil
	}
	s, err := build(ctx, e.DB, e.People, e.Agents, tenant, e.now())
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "access decisions unavailable")
	}
	sl.snap.Store(s)
	sl.built.Store(gen)
	return s, nil
}

// Invalidate marks a tenant's snapshot stale (uuid.Nil: every tenant).
func (e *Engine) Invalidate(tenant uuid.UUID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, s := range e.slots {
		if tenant == uuid.Nil || id == tenant {
			s.gen.Add(1)
		}
	}
}

// Committed invalidates the tenant's snapshot for a change this process
// has just committed, so its next decisions see it at once (other
// replicas see it when the notification reaches them, milliseconds on).
func (e *Engine) Committed(c events.Change) {
	e.mu.Lock()
	if e.local == nil || len(e.local) > 10_000 {
		e.local = map[events.Change]struct{}{}
	}
	e.local[c] = struct{}{}
	e.mu.Unlock()
	e.Invalidate(c.TenantID)
}

// echo reports (and forgets) a change Committed already invalidated for.
func (e *Engine) echo(c events.Change) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.local[c]
	delete(e.local, c)
	return ok
}

// affects reports whether a change event kind changes effective access.
func affects(kind string) bool {
	return strings.HasPrefix(kind, EventPrefix) || kind == "group" || kind == "group_membership" || kind == "user" || kind == "nhi"
}

// Watch invalidates snapshots on relevant change events from any replica.
func (e *Engine) Watch(bus *events.Bus) (stop func()) {
	return bus.Subscribe(func(m events.Message) {
		switch {
		case m.Resync:
			e.Invalidate(uuid.Nil)
		case affects(m.Change.Kind) && !e.echo(m.Change):
			e.Invalidate(m.Change.TenantID)
		}
	})
}

// SubjectsOf maps a request's principal to the subjects of a decision: the
// principal itself and, for a delegated call, its immediate actor (an NHI
// unless the token says otherwise). ok is false when either is not a
// governed subject (an id that is not a UUID).
func SubjectsOf(p *principal.Principal) (sub Subject, actor *Subject, ok bool) {
	id, err := uuid.Parse(p.SubjectID)
	if err != nil {
		return Subject{}, nil, false
	}
	sub = Subject{Type: string(p.Kind), ID: id}
	if len(p.Actors) == 0 {
		return sub, nil, true
	}
	aid, err := uuid.Parse(p.Actors[0].SubjectID)
	if err != nil {
		return sub, nil, false
	}
	kind := string(p.Actors[0].Kind)
	if kind == "" {
		kind = string(principal.KindNHI)
	}
	return sub, &Subject{Type: kind, ID: aid}, true
}
