package governance

import (
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Change-event kinds of the directory and the NHIs that bear on decisions
// (their owners publish them; governance only reads them).
const (
	eventUser       = "user"
	eventNHI        = "nhi"
	eventGroup      = "group"
	eventMembership = "group_membership"
)

// Delta is a batch of changes to the records a snapshot is made of, each
// given as the record's whole new state: nil (or "" for a user) means
// the record is gone. Applying it to a snapshot gives the snapshot a
// rebuild would give once the changes are in the database.
type Delta struct {
	// Users maps a user to its status ("": deleted).
	Users map[uuid.UUID]string
	NHIs  map[uuid.UUID]*NHIState
	// Groups: a group's name and parent. A deleted group's memberships go
	// with it.
	Groups map[uuid.UUID]*GroupState
	// Memberships maps a user to all its direct groups.
	Memberships map[uuid.UUID][]uuid.UUID
	// Applications: a deleted application takes its entitlements and
	// their assignments along.
	Applications map[uuid.UUID]*Application
	// Entitlements: a deleted entitlement takes its assignments and its
	// place in roles along.
	Entitlements map[uuid.UUID]*Entitlement
	// Roles, with their whole lists of entitlements and induced roles: a
	// deleted role takes its assignments and its inducements along.
	Roles       map[uuid.UUID]*Role
	Assignments map[uuid.UUID]*Assignment
	// SoD, when SoDSet, is the whole set of enabled separation-of-duties rules.
	SoD    []*SoDRule
	SoDSet bool
}

// NHIState is what decisions read of an NHI.
type NHIState struct {
	Status string
	Risk   int
}

// GroupState is what decisions read of a group.
type GroupState struct {
	Name     string
	ParentID *uuid.UUID
}

// Empty reports whether the delta changes nothing.
func (d *Delta) Empty() bool {
	return len(d.Users) == 0 && len(d.NHIs) == 0 && len(d.Groups) == 0 && len(d.Memberships) == 0 && len(d.Applications) == 0 &&
		len(d.Entitlements) == 0 && len(d.Roles) == 0 && len(d.Assignments) == 0 && !d.SoDSet
}

// Apply returns a copy of the snapshot with the delta applied, leaving s
// as it is: what-if questions (simulations) are answered from it with the
// code live decisions use. The copy has caches of its own.
func (s *Snapshot) Apply(d *Delta, now time.Time) *Snapshot {
	return s.apply(d, now, false)
}

// prune drops from the delta what s already holds: the directory's and
// the NHIs' records changed in ways decisions do not read.
func (d *Delta) prune(s *Snapshot) {
	for id, st := range d.Users {
		if old, ok := s.users.get(id); (ok && old == st) || (!ok && st == "") {
			delete(d.Users, id)
		}
	}
	for id, st := range d.NHIs {
		old, ok := s.nhis.get(id)
		if (ok && st != nil && old == nhiInfo{status: st.Status, risk: st.Risk}) || (!ok && st == nil) {
			delete(d.NHIs, id)
		}
	}
	for id, g := range d.Groups {
		old, ok := s.groups.get(id)
		if (!ok && g == nil) || (ok && g != nil && old.name == g.Name && old.parent == idOrNil(g.ParentID)) {
			delete(d.Groups, id)
		}
	}
	for user, groups := range d.Memberships {
		if slices.Equal(s.userGroups.at(user), groups) {
			delete(d.Memberships, user)
		}
	}
}

func idOrNil(p *uuid.UUID) uuid.UUID {
	if p == nil {
		return uuid.Nil
	}
	return *p
}

// invalidation is what a delta does to cached effective access.
type invalidation struct {
	all      bool // drop every subject's (role structure, group tree)
	roles    bool // drop role closures
	subjects map[subjectKey]struct{}
	groups   map[uuid.UUID]struct{} // every user under them
}

func (v *invalidation) subject(typ string, id uuid.UUID) {
	if typ == SubjectGroup {
		v.groups[id] = struct{}{}
		return
	}
	v.subjects[subjectKey{typ, id}] = struct{}{}
}

// apply makes the next version of s: the parts the delta leaves alone are
// shared with s and, when shared, so is the access cache, but for the
// subjects whose access the delta changes.
func (s *Snapshot) apply(d *Delta, now time.Time, shared bool) *Snapshot {
	ns := *s
	ns.ver = s.ver + 1
	ns.UpdatedAt = now
	if !shared {
		ns.cache, ns.reach, ns.touched = &sync.Map{}, &sync.Map{}, newPmap[subjectKey, uint64](subjectShard)
	}
	ns.thaw()
	inv := &invalidation{subjects: map[subjectKey]struct{}{}, groups: map[uuid.UUID]struct{}{}}
	gone := map[uuid.UUID]bool{} // entitlements and roles deleted: their assignments go

	for id, a := range d.Applications {
		old, had := ns.apps.get(id)
		if a != nil {
			ns.apps.set(id, appInfo{key: a.Key, status: a.Status})
			if !had || old.key != a.Key {
				ns.rekeyApp(id, old.key)
			}
			continue
		}
		ns.apps.del(id)
		ns.ents.each(func(eid uuid.UUID, e *entInfo) bool {
			if e.app == id {
				gone[eid] = true
			}
			return true
		})
	}
	for id, e := range d.Entitlements {
		if old := ns.ents.at(id); old != nil {
			ns.entByKey.del(ns.apps.at(old.app).key + "/" + old.key)
		}
		if e == nil {
			gone[id] = true
			continue
		}
		info := &entInfo{id: id, app: e.ApplicationID, kind: e.Kind, key: e.Key, approval: e.ApprovalState, risk: e.RiskLevel}
		ns.ents.set(id, info)
		ns.keyEntitlement(info)
	}
	for id := range gone {
		if old := ns.ents.at(id); old != nil {
			ns.entByKey.del(ns.apps.at(old.app).key + "/" + old.key)
			ns.ents.del(id)
		}
	}
	for id, r := range d.Roles {
		inv.all, inv.roles = true, true
		if r == nil {
			ns.roles.del(id)
			gone[id] = true
			continue
		}
		ri := &roleInfo{key: r.Key, parent: idOrNil(r.ParentID), ents: slices.Clone(r.Entitlement), induces: slices.Clone(r.Induces)}
		ns.roles.set(id, ri)
	}
	if len(gone) > 0 {
		inv.all, inv.roles = true, true
		ns.dropTargets(gone)
	}
	for id, g := range d.Groups {
		old, had := ns.groups.get(id)
		if g == nil {
			if had {
				inv.all = true
				for _, u := range ns.groupMembers.at(id) {
					ns.setMemberships(u, slices.DeleteFunc(slices.Clone(ns.userGroups.at(u)), func(x uuid.UUID) bool { return x == id }))
				}
				ns.groupMembers.del(id)
				ns.groups.del(id)
			}
			continue
		}
		info := groupInfo{name: g.Name, parent: idOrNil(g.ParentID)}
		if had && old != info {
			inv.all = true // names and ancestry are in grant paths
		}
		ns.groups.set(id, info)
	}
	for id, st := range d.Users {
		if st != "" {
			ns.users.set(id, st)
			continue
		}
		ns.users.del(id)
		ns.setMemberships(id, nil)
		inv.subject(SubjectUser, id)
	}
	for id, st := range d.NHIs {
		if st != nil {
			ns.nhis.set(id, nhiInfo{status: st.Status, risk: st.Risk})
			continue
		}
		ns.nhis.del(id)
		inv.subject(SubjectNHI, id)
	}
	for user, groups := range d.Memberships {
		ns.setMemberships(user, groups)
		inv.subject(SubjectUser, user)
	}
	for id, a := range d.Assignments {
		if old := ns.assignments.at(id); old != nil {
			ns.dropAssignment(old)
			inv.subject(old.SubjectType, old.SubjectID)
		}
		if a != nil {
			ns.putAssignment(a)
			inv.subject(a.SubjectType, a.SubjectID)
		}
	}
	if d.SoDSet {
		ns.setSoD(d.SoD)
	}
	ns.invalidate(inv)
	ns.freeze()
	return &ns
}

// invalidate drops the cached access the delta changed: every subject's
// (a new cache) or those it names, marked touched at this version.
func (s *Snapshot) invalidate(inv *invalidation) {
	if inv.roles {
		s.reach = &sync.Map{}
	}
	if inv.all {
		s.cache = &sync.Map{}
		s.touched = newPmap[subjectKey, uint64](subjectShard)
		return
	}
	for g := range inv.groups {
		for _, u := range s.usersUnder(g) {
			inv.subjects[subjectKey{SubjectUser, u}] = struct{}{}
		}
	}
	for k := range inv.subjects {
		s.touched.set(k, s.ver)
		s.cache.Delete(k)
	}
}

// usersUnder lists the members of a group and of the groups below it.
func (s *Snapshot) usersUnder(g uuid.UUID) []uuid.UUID {
	under := map[uuid.UUID]bool{g: true}
	s.groups.each(func(id uuid.UUID, _ groupInfo) bool {
		seen := map[uuid.UUID]bool{}
		for cur := id; cur != uuid.Nil && !seen[cur]; cur = s.groups.at(cur).parent {
			seen[cur] = true
			if cur == g {
				under[id] = true
				break
			}
		}
		return true
	})
	var out []uuid.UUID
	for id := range under {
		out = append(out, s.groupMembers.at(id)...)
	}
	return out
}

func (s *Snapshot) thaw() {
	for _, m := range s.pmaps() {
		m.thaw()
	}
}

func (s *Snapshot) freeze() {
	for _, m := range s.pmaps() {
		m.freeze()
	}
}

// putAssignment adds an assignment (the snapshot being edited).
func (s *Snapshot) putAssignment(a *Assignment) {
	k := subjectKey{a.SubjectType, a.SubjectID}
	list := s.bySubject.at(k)
	s.bySubject.set(k, append(list[:len(list):len(list)], a))
	s.assignments.set(a.ID, a)
	if a.Constraints.RateLimitPerMinute > 0 {
		s.rateLimits++
	}
	if c := compile(&a.Constraints); c != nil {
		s.constraints.set(a.ID, c)
		if c.args != nil {
			s.argConstraints++
		}
	}
}

// dropAssignment removes an assignment the snapshot holds.
func (s *Snapshot) dropAssignment(a *Assignment) {
	k := subjectKey{a.SubjectType, a.SubjectID}
	list := slices.DeleteFunc(slices.Clone(s.bySubject.at(k)), func(x *Assignment) bool { return x.ID == a.ID })
	if len(list) == 0 {
		s.bySubject.del(k)
	} else {
		s.bySubject.set(k, list)
	}
	s.assignments.del(a.ID)
	if a.Constraints.RateLimitPerMinute > 0 {
		s.rateLimits--
	}
	if c := s.constraints.at(a.ID); c != nil {
		s.constraints.del(a.ID)
		if c.args != nil {
			s.argConstraints--
		}
	}
}

// dropTargets removes what refers to deleted entitlements and roles:
// their assignments, their place in roles, inducements of them.
func (s *Snapshot) dropTargets(gone map[uuid.UUID]bool) {
	var drop []*Assignment
	s.assignments.each(func(_ uuid.UUID, a *Assignment) bool {
		if gone[a.TargetID] {
			drop = append(drop, a)
		}
		return true
	})
	for _, a := range drop {
		s.dropAssignment(a)
	}
	type fix struct {
		id uuid.UUID
		r  *roleInfo
	}
	var fixes []fix
	s.roles.each(func(id uuid.UUID, r *roleInfo) bool {
		in := func(x uuid.UUID) bool { return gone[x] }
		if slices.ContainsFunc(r.ents, in) || slices.ContainsFunc(r.induces, in) {
			c := *r
			c.ents = slices.DeleteFunc(slices.Clone(r.ents), in)
			c.induces = slices.DeleteFunc(slices.Clone(r.induces), in)
			fixes = append(fixes, fix{id, &c})
		}
		return true
	})
	for _, f := range fixes {
		s.roles.set(f.id, f.r)
	}
}

// setMemberships makes groups the user's direct groups (nil: none).
func (s *Snapshot) setMemberships(user uuid.UUID, groups []uuid.UUID) {
	old := s.userGroups.at(user)
	for _, g := range old {
		if !slices.Contains(groups, g) {
			s.groupMembers.set(g, slices.DeleteFunc(slices.Clone(s.groupMembers.at(g)), func(x uuid.UUID) bool { return x == user }))
		}
	}
	for _, g := range groups {
		if !slices.Contains(old, g) {
			m := s.groupMembers.at(g)
			s.groupMembers.set(g, append(m[:len(m):len(m)], user))
		}
	}
	if len(groups) == 0 {
		s.userGroups.del(user)
		return
	}
	s.userGroups.set(user, slices.Clone(groups))
}

// keyEntitlement indexes an entitlement by its application's key and its own.
func (s *Snapshot) keyEntitlement(e *entInfo) {
	if a, ok := s.apps.get(e.app); ok {
		s.entByKey.set(a.key+"/"+e.key, e.id)
	}
}

// rekeyApp re-indexes an application's entitlements under its new key.
func (s *Snapshot) rekeyApp(app uuid.UUID, oldKey string) {
	var mine []*entInfo
	s.ents.each(func(_ uuid.UUID, e *entInfo) bool {
		if e.app == app {
			mine = append(mine, e)
		}
		return true
	})
	for _, e := range mine {
		if oldKey != "" {
			s.entByKey.del(oldKey + "/" + e.key)
		}
		s.keyEntitlement(e)
	}
}

// setSoD replaces the enabled separation-of-duties rules.
func (s *Snapshot) setSoD(rules []*SoDRule) {
	s.sodByEnt = map[uuid.UUID][]*SoDRule{}
	s.sodRules = len(rules)
	for _, rule := range rules {
		for _, e := range rule.members() {
			s.sodByEnt[e] = append(s.sodByEnt[e], rule)
		}
	}
}
