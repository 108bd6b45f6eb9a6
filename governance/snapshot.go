package governance

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
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

type nhiInfo struct {
	status string
	risk   int
}

type groupInfo struct {
	name   string
	parent uuid.UUID // uuid.Nil: none
}

type roleInfo struct {
	key     string
	parent  uuid.UUID // uuid.Nil: none
	ents    []uuid.UUID
	induces []uuid.UUID
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

// Snapshot is a tenant's effective-access state at one moment: immutable
// but for its per-subject caches, safe for concurrent readers. A change
// makes a new version (Apply) that shares every part the change leaves
// alone with this one.
type Snapshot struct {
	Tenant  uuid.UUID
	BuiltAt time.Time
	// UpdatedAt is when the last delta was applied (BuiltAt if none).
	UpdatedAt time.Time
	// ver counts the versions since the snapshot was built.
	ver uint64

	users        pmap[uuid.UUID, string] // status
	nhis         pmap[uuid.UUID, nhiInfo]
	groups       pmap[uuid.UUID, groupInfo]
	userGroups   pmap[uuid.UUID, []uuid.UUID] // direct memberships
	groupMembers pmap[uuid.UUID, []uuid.UUID]
	apps         pmap[uuid.UUID, appInfo]
	ents         pmap[uuid.UUID, *entInfo]
	entByKey     pmap[string, uuid.UUID]
	roles        pmap[uuid.UUID, *roleInfo]
	bySubject    pmap[subjectKey, []*Assignment]
	assignments  pmap[uuid.UUID, *Assignment]
	constraints  pmap[uuid.UUID, *compiled]
	// argConstraints and rateLimits count the assignments that constrain
	// arguments and that limit their rate.
	argConstraints, rateLimits int
	// sodByEnt: the enabled separation-of-duties rules naming each entitlement.
	sodByEnt map[uuid.UUID][]*SoDRule
	sodRules int

	// cache holds subjects' effective access, shared by the versions of
	// one engine's snapshot; touched gives, per subject, the version of
	// the last change to its access: an entry computed before it is stale.
	cache   *sync.Map // subjectKey → *access
	touched pmap[subjectKey, uint64]
	// reach holds role closures, shared by versions until a role changes.
	reach *sync.Map // role ID → *closure
}

func newSnapshot(tenant uuid.UUID, now time.Time) *Snapshot {
	return &Snapshot{Tenant: tenant, BuiltAt: now, UpdatedAt: now,
		users: newPmap[uuid.UUID, string](uuidShard), nhis: newPmap[uuid.UUID, nhiInfo](uuidShard),
		groups: newPmap[uuid.UUID, groupInfo](uuidShard), userGroups: newPmap[uuid.UUID, []uuid.UUID](uuidShard),
		groupMembers: newPmap[uuid.UUID, []uuid.UUID](uuidShard), apps: newPmap[uuid.UUID, appInfo](uuidShard),
		ents: newPmap[uuid.UUID, *entInfo](uuidShard), entByKey: newPmap[string, uuid.UUID](stringShard),
		roles: newPmap[uuid.UUID, *roleInfo](uuidShard), bySubject: newPmap[subjectKey, []*Assignment](subjectShard),
		assignments: newPmap[uuid.UUID, *Assignment](uuidShard), constraints: newPmap[uuid.UUID, *compiled](uuidShard),
		sodByEnt: map[uuid.UUID][]*SoDRule{}, cache: &sync.Map{}, touched: newPmap[subjectKey, uint64](subjectShard), reach: &sync.Map{}}
}

// pmaps lists the snapshot's persistent maps, to thaw and freeze them together.
func (s *Snapshot) pmaps() []interface {
	thaw()
	freeze()
} {
	return []interface {
		thaw()
		freeze()
	}{&s.users, &s.nhis, &s.groups, &s.userGroups, &s.groupMembers, &s.apps, &s.ents,
		&s.entByKey, &s.roles, &s.bySubject, &s.assignments, &s.constraints, &s.touched}
}

// roleReach is one role a held role brings, with the path from it.
type roleReach struct {
	role uuid.UUID
	path []Step
}

// Stats describes a snapshot's size.
type Stats struct {
	Users, Groups, NHIs, Entitlements, Roles, Assignments int
	BuiltAt, UpdatedAt                                    time.Time
	// Version counts the deltas applied since the snapshot was built.
	Version uint64
}

// Stats returns the snapshot's size.
func (s *Snapshot) Stats() Stats {
	return Stats{Users: s.users.len(), Groups: s.groups.len(), NHIs: s.nhis.len(), Entitlements: s.ents.len(), Roles: s.roles.len(),
		Assignments: s.assignments.len(), BuiltAt: s.BuiltAt, UpdatedAt: s.UpdatedAt, Version: s.ver}
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

func (s *Snapshot) roleKey(id uuid.UUID) string {
	if r := s.roles.at(id); r != nil {
		return r.key
	}
	return ""
}

// roleEnts lists the entitlements a role grants by itself.
func (s *Snapshot) roleEnts(id uuid.UUID) []uuid.UUID {
	if r := s.roles.at(id); r != nil {
		return r.ents
	}
	return nil
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
		info := s.roles.at(r)
		if info == nil {
			return
		}
		if p := info.parent; p != uuid.Nil {
			visit(p, append(path[:len(path):len(path)], Step{Type: "parent_role", ID: p, Key: s.roleKey(p)}))
		}
		for _, ind := range info.induces {
			visit(ind, append(path[:len(path):len(path)], Step{Type: "induced_role", ID: ind, Key: s.roleKey(ind)}))
		}
	}
	visit(role, base)
}

// holding is one assignment a subject holds, directly or through a group
// (base: the path of groups it comes through).
type holding struct {
	a    *Assignment
	path []Step // base + the assignment's step
}

// closure is what a held role brings: every role of its closure with the
// path to it, and for each entitlement the first such path.
type closure struct {
	reach []roleReach
	ents  map[uuid.UUID][]Step
}

// closureOf returns a role's closure, computed once per role structure.
func (s *Snapshot) closureOf(role uuid.UUID) *closure {
	if c, ok := s.reach.Load(role); ok {
		return c.(*closure)
	}
	c := &closure{ents: map[uuid.UUID][]Step{}}
	s.roleClosure(role, []Step{{Type: "role", ID: role, Key: s.roleKey(role)}}, func(r uuid.UUID, path []Step) {
		c.reach = append(c.reach, roleReach{role: r, path: path})
		for _, e := range s.roleEnts(r) {
			if _, ok := c.ents[e]; !ok {
				c.ents[e] = path
			}
		}
	})
	actual, _ := s.reach.LoadOrStore(role, c)
	return actual.(*closure)
}

// reachOf returns the roles a held role brings.
func (s *Snapshot) reachOf(role uuid.UUID) []roleReach { return s.closureOf(role).reach }

// access is what a subject holds, in decision order: its own assignments,
// then its groups' (each group, then its ancestors). Entitlements are
// found from it per decision, so a cold subject costs its holdings, not
// the expansion of every role it holds.
type access struct {
	ver  uint64
	held []holding
	// byEnt indexes the holdings of entitlements by entitlement; roles
	// lists the distinct roles held, each with its closure and holdings.
	// (A change to any role drops every cached access, so the closures
	// here are never stale.)
	byEnt map[uuid.UUID][]int32
	roles []heldRole
}

type heldRole struct {
	c    *closure
	held []int32
}

// access returns what a subject holds, cached per subject across
// versions until a change touches it.
func (s *Snapshot) access(typ string, id uuid.UUID) *access {
	k := subjectKey{typ, id}
	cached, ok := s.cache.Load(k)
	if ok && cached.(*access).ver >= s.touched.at(k) {
		return cached.(*access)
	}
	acc := &access{ver: s.ver}
	add := func(a *Assignment, base []Step) {
		path := append(base[:len(base):len(base)], Step{Type: "assignment", ID: a.ID})
		acc.held = append(acc.held, holding{a: a, path: path})
	}
	for _, a := range s.bySubject.at(k) {
		add(a, nil)
	}
	if typ == SubjectUser {
		seen := map[uuid.UUID]bool{}
		for _, g := range s.userGroups.at(id) {
			path := []Step{{Type: "group", ID: g, Key: s.groups.at(g).name}}
			for cur := g; cur != uuid.Nil && !seen[cur]; cur = s.groups.at(cur).parent {
				seen[cur] = true
				if cur != g {
					path = append(path[:len(path):len(path)], Step{Type: "group", ID: cur, Key: s.groups.at(cur).name})
				}
				for _, a := range s.bySubject.at(subjectKey{SubjectGroup, cur}) {
					add(a, path)
				}
			}
		}
	}
	roles := map[uuid.UUID]int{}
	for i, h := range acc.held {
		if h.a.TargetType == "entitlement" {
			if acc.byEnt == nil {
				acc.byEnt = map[uuid.UUID][]int32{}
			}
			acc.byEnt[h.a.TargetID] = append(acc.byEnt[h.a.TargetID], int32(i))
			continue
		}
		r, ok := roles[h.a.TargetID]
		if !ok {
			r = len(acc.roles)
			roles[h.a.TargetID] = r
			acc.roles = append(acc.roles, heldRole{c: s.closureOf(h.a.TargetID)})
		}
		acc.roles[r].held = append(acc.roles[r].held, int32(i))
	}
	// Keep the newest computation: a reader of an older version must not
	// replace a newer entry.
	for {
		if !ok {
			if cached, ok = s.cache.LoadOrStore(k, acc); !ok {
				return acc
			}
		}
		if cached.(*access).ver >= acc.ver || s.cache.CompareAndSwap(k, cached, acc) {
			return acc
		}
		cached, ok = s.cache.Load(k)
	}
}

// grantRef is one way a subject holds an entitlement, its path unbuilt.
type grantRef struct {
	i    int32 // the holding's index
	h    *holding
	role []Step // the path inside the held role (nil: the entitlement itself)
}

func (g grantRef) path() []Step {
	if g.role == nil {
		return g.h.path
	}
	p := make([]Step, 0, len(g.h.path)+len(g.role))
	return append(append(p, g.h.path...), g.role...)
}

// grantsOf appends to out the ways the subject holds ent, in decision order.
func (s *Snapshot) grantsOf(acc *access, ent uuid.UUID, out []grantRef) []grantRef {
	for _, i := range acc.byEnt[ent] {
		out = append(out, grantRef{i: i, h: &acc.held[i]})
	}
	sorted := true
	for _, r := range acc.roles {
		p, ok := r.c.ents[ent]
		if !ok {
			continue
		}
		for _, i := range r.held {
			if n := len(out); n > 0 && out[n-1].i > i {
				sorted = false
			}
			out = append(out, grantRef{i: i, h: &acc.held[i], role: p})
		}
	}
	if !sorted {
		slices.SortFunc(out, func(a, b grantRef) int { return cmp.Compare(a.i, b.i) })
	}
	return out
}

// Effective lists a subject's grants, entitlement by entitlement.
func (s *Snapshot) Effective(typ string, id uuid.UUID) []Grant {
	acc := s.access(typ, id)
	var out []Grant
	for i := range acc.held {
		h := &acc.held[i]
		if h.a.TargetType == "entitlement" {
			out = append(out, Grant{EntitlementID: h.a.TargetID, Assignment: h.a, Path: h.path})
			continue
		}
		for _, rr := range s.reachOf(h.a.TargetID) {
			rp := make([]Step, 0, len(h.path)+len(rr.path))
			rp = append(append(rp, h.path...), rr.path...)
			for _, e := range s.roleEnts(rr.role) {
				out = append(out, Grant{EntitlementID: e, Assignment: h.a, Path: rp})
			}
		}
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
		ent = s.entByKey.at(req.Application + "/" + req.Entitlement)
	}
	e, ok := s.ents.get(ent)
	if !ok {
		return Decision{Decision: Deny, Reason: reasonUnknown, Code: "unknown_entitlement"}
	}
	if e.approval != Approved {
		return Decision{Decision: Deny, Reason: reasonApproval, Code: "not_approved", EntitlementID: ent}
	}
	if s.apps.at(e.app).status != "active" {
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
	return s.entByKey.get(app + "/" + key)
}

// RiskScore returns an NHI's risk score (0 for users and unknown NHIs).
func (s *Snapshot) RiskScore(sub Subject) int {
	if sub.Type != SubjectNHI {
		return 0
	}
	return s.nhis.at(sub.ID).risk
}

// EntitlementRisk returns an entitlement's risk level ("" if unknown).
func (s *Snapshot) EntitlementRisk(ent uuid.UUID) string {
	if e, ok := s.ents.get(ent); ok {
		return e.risk
	}
	return ""
}

// HighRisk reports whether an assignment target (an entitlement, or a
// role with everything it brings) grants an entitlement of high or
// critical risk.
func (s *Snapshot) HighRisk(targetType string, id uuid.UUID) bool {
	high := func(ent uuid.UUID) bool { r := s.EntitlementRisk(ent); return r == "high" || r == "critical" }
	if targetType == "entitlement" {
		return high(id)
	}
	if targetType != "role" || s.roles.at(id) == nil {
		return false
	}
	for ent := range s.closureOf(id).ents {
		if high(ent) {
			return true
		}
	}
	return false
}

// HasRateLimits reports whether any assignment of the tenant limits its
// rate (callers may skip counting otherwise).
func (s *Snapshot) HasRateLimits() bool { return s.rateLimits > 0 }

// HasArgumentConstraints reports whether any assignment of the tenant
// constrains arguments (callers may skip preparing them otherwise).
func (s *Snapshot) HasArgumentConstraints() bool { return s.argConstraints > 0 }

// Permits reports whether the subject (and the actor, for delegated calls)
// may use the entitlement at t with some arguments: what a tool list
// shows. Argument constraints are left to the call; entitlements held
// only under approval count.
func (s *Snapshot) Permits(sub Subject, actor *Subject, ent uuid.UUID, t time.Time) bool {
	e, ok := s.ents.get(ent)
	if !ok || e.approval != Approved || s.apps.at(e.app).status != "active" {
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
		status = s.users.at(sub.ID)
	case SubjectNHI:
		status = s.nhis.at(sub.ID).status
	}
	if status != "active" {
		return Decision{Decision: Deny, Reason: reasonInactive, Code: "inactive", EntitlementID: ent}
	}
	var buf [8]grantRef
	grants := s.grantsOf(s.access(sub.Type, sub.ID), ent, buf[:0])
	reason, code := reasonNoGrant, "no_grant"
	var approval *grantRef
	for i := range grants {
		g := &grants[i]
		a := g.h.a
		if !a.ValidAt(t) {
			reason, code = reasonExpired, "expired"
			continue
		}
		if c := s.constraints.at(a.ID); c != nil {
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
		return Decision{Decision: Allow, Reason: "granted", Code: "granted", EntitlementID: ent, AssignmentID: &a.ID, Path: g.path(), Constraints: &a.Constraints}
	}
	if approval != nil {
		a := approval.h.a
		return Decision{Decision: ApprovalRequired, Reason: "the assignment requires approval of each call", Code: "approval_required", EntitlementID: ent,
			AssignmentID: &a.ID, Path: approval.path(), Constraints: &a.Constraints}
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

// Engine keeps one snapshot per tenant. It builds it on first use; after
// that, changes reach it as deltas applied beside the serving snapshot,
// which is swapped for the next version: decisions never wait for a
// change. A rebuild, when one is needed (resync, bulk changes, a kind it
// cannot read as a delta), also runs beside the serving snapshot.
type Engine struct {
	DB *store.DB
	// People and Agents are the directory and the NHIs, read in the
	// snapshot's transaction (required).
	People People
	Agents Agents
	Now    func() time.Time
	// Log reports deltas that could not be read (a rebuild follows).
	Log *slog.Logger

	slots      sync.Map // tenant → *slot
	background sync.Mutex
}

// bulkDelta is the size of a batch of changes above which rebuilding is
// cheaper than reading each changed record.
const bulkDelta = 2000

type slot struct {
	snap atomic.Pointer[Snapshot]
	// mu orders deltas and swaps.
	mu sync.Mutex
	// building is held by the one rebuild at a time; during it, deltas
	// are kept in replay (under mu) to apply to the rebuilt snapshot.
	building sync.Mutex
	rebuild  bool
	replay   []events.Change
	// again asks a running background rebuild for another round.
	again, running bool
	// graves holds recently deleted assignments (under mu), so that a
	// write of one heard after its deletion is not applied.
	graves    map[uuid.UUID]struct{}
	oldGraves map[uuid.UUID]struct{}
}

func (sl *slot) bury(id uuid.UUID) {
	if len(sl.graves) >= 10_000 { // two generations: the last 10k to 20k deletions
		sl.oldGraves, sl.graves = sl.graves, nil
	}
	if sl.graves == nil {
		sl.graves = map[uuid.UUID]struct{}{}
	}
	sl.graves[id] = struct{}{}
}

func (sl *slot) buried(id uuid.UUID) bool {
	_, a := sl.graves[id]
	_, b := sl.oldGraves[id]
	return a || b
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

func (e *Engine) slot(tenant uuid.UUID) *slot {
	if s, ok := e.slots.Load(tenant); ok {
		return s.(*slot)
	}
	s, _ := e.slots.LoadOrStore(tenant, &slot{})
	return s.(*slot)
}

// Snapshot returns the tenant's current snapshot, building it on first use.
func (e *Engine) Snapshot(ctx context.Context, tenant uuid.UUID) (*Snapshot, error) {
	sl := e.slot(tenant)
	if s := sl.snap.Load(); s != nil {
		return s, nil
	}
	sl.building.Lock()
	defer sl.building.Unlock()
	if s := sl.snap.Load(); s != nil {
		return s, nil
	}
	return e.rebuildLocked(ctx, tenant, sl)
}

// Refresh rebuilds the tenant's snapshot from the database now and
// returns it (tests and tools; the engine itself rebuilds in the
// background).
func (e *Engine) Refresh(ctx context.Context, tenant uuid.UUID) (*Snapshot, error) {
	sl := e.slot(tenant)
	sl.building.Lock()
	defer sl.building.Unlock()
	return e.rebuildLocked(ctx, tenant, sl)
}

// rebuildLocked builds a snapshot while the serving one goes on taking
// deltas, then applies to it the changes that came meanwhile and swaps
// it in. The caller holds sl.building.
func (e *Engine) rebuildLocked(ctx context.Context, tenant uuid.UUID, sl *slot) (*Snapshot, error) {
	sl.mu.Lock()
	sl.rebuild, sl.replay = true, nil
	sl.mu.Unlock()
	s, err := build(ctx, e.DB, e.People, e.Agents, tenant, e.now())
	sl.mu.Lock()
	defer sl.mu.Unlock()
	replay := sl.replay
	sl.rebuild, sl.replay = false, nil
	if old := sl.snap.Load(); old != nil && s != nil {
		s.ver = old.ver + 1 // versions only grow along a slot
	}
	if err == nil && len(replay) > 0 {
		var d *Delta
		ok := len(replay) <= bulkDelta
		if ok {
			d, ok, err = loadDelta(ctx, e.DB, e.People, e.Agents, tenant, asMessages(replay))
		}
		switch {
		case err != nil:
		case ok:
			s = s.apply(d, e.now(), true)
		default:
			e.rebuildLater(tenant, sl) // changes came faster than a build
		}
	}
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "access decisions unavailable")
	}
	sl.snap.Store(s)
	return s, nil
}

// rebuildLater rebuilds the tenant's snapshot in the background, once
// more if asked again while it runs.
func (e *Engine) rebuildLater(tenant uuid.UUID, sl *slot) {
	if sl.running {
		sl.again = true
		return
	}
	sl.running = true
	go func() {
		for {
			e.background.Lock() // one background build at a time: they are large
			sl.building.Lock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			_, err := e.rebuildLocked(ctx, tenant, sl)
			cancel()
			sl.building.Unlock()
			e.background.Unlock()
			if err != nil {
				e.log().Error("rebuilding the access snapshot failed; retrying", "tenant", tenant, "error", err)
				time.Sleep(time.Second)
			}
			sl.mu.Lock()
			if !sl.again && err == nil {
				sl.running = false
				sl.mu.Unlock()
				return
			}
			sl.again = false
			sl.mu.Unlock()
		}
	}()
}

// Invalidate has the tenant's snapshot rebuilt beside the serving one
// (uuid.Nil: every tenant's).
func (e *Engine) Invalidate(tenant uuid.UUID) {
	e.slots.Range(func(k, v any) bool {
		if id := k.(uuid.UUID); tenant == uuid.Nil || id == tenant {
			sl := v.(*slot)
			sl.mu.Lock()
			if sl.snap.Load() != nil {
				e.rebuildLater(id, sl)
			}
			sl.mu.Unlock()
		}
		return true
	})
}

// Changed brings the tenant's snapshot up to date with changes committed
// to the database: it reads the changed records and swaps in the next
// version, before it returns. Changes that cannot be read as a delta have
// the snapshot rebuilt in the background.
func (e *Engine) Changed(ctx context.Context, tenant uuid.UUID, changes []events.Change) {
	e.changed(ctx, tenant, asMessages(changes))
}

// asMessages wraps changes as messages without records (they are read).
func asMessages(changes []events.Change) []events.Message {
	ms := make([]events.Message, len(changes))
	for i, c := range changes {
		ms[i] = events.Message{Change: c}
	}
	return ms
}

// changed is Changed with the records this process committed, which
// spare reading them again.
func (e *Engine) changed(ctx context.Context, tenant uuid.UUID, ms []events.Message) {
	v, ok := e.slots.Load(tenant)
	if !ok {
		return // never built: its first use reads everything
	}
	sl := v.(*slot)
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.rebuild {
		for _, m := range ms {
			sl.replay = append(sl.replay, m.Change)
		}
	}
	cur := sl.snap.Load()
	if cur == nil {
		return
	}
	if len(ms) > bulkDelta {
		e.rebuildLater(tenant, sl)
		return
	}
	d, ok, err := loadDelta(ctx, e.DB, e.People, e.Agents, tenant, sl.known(cur, ms))
	if err != nil || !ok {
		if err != nil {
			e.log().Warn("reading a change to the access snapshot failed; rebuilding it", "tenant", tenant, "error", err)
		}
		e.rebuildLater(tenant, sl)
		return
	}
	if d.prune(cur); d.Empty() {
		return
	}
	sl.snap.Store(cur.apply(d, e.now(), true))
}

// known sorts ms before they are loaded: it drops the assignment writes
// of this process that are stale (not newer than the snapshot's, or of an
// assignment deleted since), keeps the record of a fresh one (applied as
// written, no read), and strips the record where it cannot be trusted, so
// that it is read. Deletions are remembered. The caller holds sl.mu.
func (sl *slot) known(cur *Snapshot, ms []events.Message) []events.Message {
	var rest []events.Message
	for _, m := range ms {
		c := m.Change
		id, err := uuid.Parse(c.ID)
		if c.Kind != EventPrefix+"assignment" || err != nil {
			rest = append(rest, m)
			continue
		}
		if c.Deleted() {
			sl.bury(id) // ids are never reused: a late write of it is stale
			rest = append(rest, m)
			continue
		}
		a, ok := m.Record.(*Assignment)
		old := cur.assignments.at(id)
		switch {
		case sl.buried(id):
			continue
		case !ok || a.ID != id:
			rest = append(rest, events.Message{Change: c}) // no record of it: read it
		case old != nil && old.Version >= a.Version:
			continue // an older write heard after a newer one
		case old == nil && a.Version != 1:
			rest = append(rest, events.Message{Change: c}) // a change of a record not yet seen: read it
		default:
			rest = append(rest, m)
		}
	}
	return rest
}

// affects reports whether a change event kind changes effective access.
func affects(kind string) bool {
	return strings.HasPrefix(kind, EventPrefix) || kind == eventGroup || kind == eventMembership || kind == eventUser || kind == eventNHI
}

// Watch keeps snapshots up to date with change events from this replica
// (applied at their commit, before the committing request answers) and
// from the others.
func (e *Engine) Watch(bus *events.Bus) (stop func()) {
	return bus.SubscribeBatch(func(ms []events.Message) {
		var byTenant map[uuid.UUID][]events.Message
		for _, m := range ms {
			switch {
			case m.Resync:
				e.Invalidate(uuid.Nil)
			case affects(m.Change.Kind):
				if byTenant == nil {
					byTenant = map[uuid.UUID][]events.Message{}
				}
				byTenant[m.Change.TenantID] = append(byTenant[m.Change.TenantID], m)
			}
		}
		for tenant, cs := range byTenant {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			e.changed(ctx, tenant, cs)
			cancel()
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
