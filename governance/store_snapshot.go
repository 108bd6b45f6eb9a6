package governance

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// The snapshot's read: one transaction over governance's tables and, through
// their stores, the directory's and the NHIs'.

// build loads a tenant's governance state.
func build(ctx context.Context, db *store.DB, people People, agents Agents, tenant uuid.UUID, now time.Time) (*Snapshot, error) {
	if people == nil || agents == nil {
		return nil, errNoDirectory
	}
	s := newSnapshot(tenant, now)
	ctx = store.WithTenant(ctx, tenant)
	roleEnts := map[uuid.UUID][]uuid.UUID{}
	roleInduces := map[uuid.UUID][]uuid.UUID{}
	memberships := map[uuid.UUID][]uuid.UUID{}
	var sod []*SoDRule
	err := db.InTenantRead(ctx, func(tx *store.Tx) error {
		var id, other uuid.UUID
		var str string
		var parent *uuid.UUID
		steps := []struct {
			q    string
			scan func(store.Scanner) error
		}{
			{`SELECT id, key, status FROM applications WHERE tenant_id = $1`, func(r store.Scanner) error {
				var a appInfo
				if err := r.Scan(&id, &a.key, &a.status); err != nil {
					return err
				}
				s.apps.set(id, a)
				return nil
			}},
			{`SELECT id, application_id, kind, key, approval_state, risk_level FROM entitlements WHERE tenant_id = $1`, func(r store.Scanner) error {
				e := &entInfo{}
				if err := r.Scan(&e.id, &e.app, &e.kind, &e.key, &e.approval, &e.risk); err != nil {
					return err
				}
				s.ents.set(e.id, e)
				return nil
			}},
			{`SELECT role_id, entitlement_id FROM role_entitlements WHERE tenant_id = $1 ORDER BY role_id, entitlement_id`, func(r store.Scanner) error {
				if err := r.Scan(&id, &other); err != nil {
					return err
				}
				roleEnts[id] = append(roleEnts[id], other)
				return nil
			}},
			{`SELECT role_id, induced_role_id FROM role_inducements WHERE tenant_id = $1 ORDER BY role_id, induced_role_id`, func(r store.Scanner) error {
				if err := r.Scan(&id, &other); err != nil {
					return err
				}
				roleInduces[id] = append(roleInduces[id], other)
				return nil
			}},
			{`SELECT id, key, parent_id FROM roles WHERE tenant_id = $1`, func(r store.Scanner) error {
				if err := r.Scan(&id, &str, &parent); err != nil {
					return err
				}
				ri := &roleInfo{key: str, ents: roleEnts[id], induces: roleInduces[id]}
				if parent != nil {
					ri.parent = *parent
				}
				s.roles.set(id, ri)
				return nil
			}},
			{`SELECT ` + sodCols + ` FROM sod_rules WHERE tenant_id = $1 AND enabled`, func(r store.Scanner) error {
				rule, err := scanSoDRule(r)
				if err == nil {
					sod = append(sod, rule)
				}
				return err
			}},
			{`SELECT ` + assignCols + ` FROM assignments WHERE tenant_id = $1`, func(r store.Scanner) error {
				a, err := scanAssignment(r)
				if err == nil {
					s.putAssignment(a)
				}
				return err
			}},
		}
		// The directory's users and groups and the NHIs, read through
		// their stores in this transaction; then governance's own tables.
		if err := people.EachUserTx(ctx, tx, func(id uuid.UUID, status string) { s.users.set(id, status) }); err != nil {
			return err
		}
		if err := agents.EachTx(ctx, tx, func(id uuid.UUID, status string, risk int) { s.nhis.set(id, nhiInfo{status: status, risk: risk}) }); err != nil {
			return err
		}
		if err := people.EachGroupTx(ctx, tx, func(id uuid.UUID, name string, parent *uuid.UUID) {
			g := groupInfo{name: name}
			if parent != nil {
				g.parent = *parent
			}
			s.groups.set(id, g)
		}); err != nil {
			return err
		}
		if err := people.EachMembershipTx(ctx, tx, func(user, group uuid.UUID) { memberships[user] = append(memberships[user], group) }); err != nil {
			return err
		}
		for _, st := range steps {
			if err := store.Each(ctx, tx, st.scan, st.q, tenant); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for user, groups := range memberships {
		s.setMemberships(user, groups)
	}
	s.ents.each(func(_ uuid.UUID, e *entInfo) bool {
		s.keyEntitlement(e)
		return true
	})
	s.setSoD(sod)
	s.freeze()
	return s, nil
}

// loadDelta reads the current state of the records the messages name
// (but for those they carry): the delta that brings a snapshot up to date
// with them. Kinds that do not
// bear on decisions are skipped; ok is false when a change cannot be
// read as a delta (a kind it does not know), and the snapshot must be
// rebuilt instead.
func loadDelta(ctx context.Context, db *store.DB, people People, agents Agents, tenant uuid.UUID, ms []events.Message) (d *Delta, ok bool, err error) {
	d = &Delta{}
	var reads []events.Change
	for _, m := range ms {
		if a, known := m.Record.(*Assignment); known && m.Change.Kind == EventPrefix+"assignment" { // as this process wrote it
			if d.Assignments == nil {
				d.Assignments = map[uuid.UUID]*Assignment{}
			}
			cp := *a // the writer keeps its own
			d.Assignments[a.ID] = &cp
			continue
		}
		reads = append(reads, m.Change)
	}
	if len(reads) == 0 {
		return d, true, nil
	}
	ctx = store.WithTenant(ctx, tenant)
	err = db.InTenantRead(ctx, func(tx *store.Tx) error {
		for _, c := range reads {
			var err error
			switch c.Kind {
			case EventPrefix + "assignment":
				err = loadRecord(ctx, tx, c, assignmentRecord, &d.Assignments)
			case EventPrefix + "entitlement":
				err = loadRecord(ctx, tx, c, entitlementRecord, &d.Entitlements)
			case EventPrefix + "application":
				err = loadRecord(ctx, tx, c, applicationRecord, &d.Applications)
			case EventPrefix + "role":
				err = loadOne(c, &d.Roles, nil, func(id uuid.UUID) (*Role, error) { return getRole(ctx, tx, id, false) })
			case EventPrefix + "sod_rule":
				if !d.SoDSet {
					d.SoD, err = store.Collect(ctx, tx, scanSoDRule, `SELECT `+sodCols+` FROM sod_rules WHERE tenant_id = $1 AND enabled`, tx.TenantID())
					d.SoDSet = true
				}
			case eventUser:
				err = loadOne(c, &d.Users, "", func(id uuid.UUID) (string, error) { return people.StatusTx(ctx, tx, id) })
			case eventNHI:
				err = loadOne(c, &d.NHIs, nil, func(id uuid.UUID) (*NHIState, error) {
					status, risk, err := agents.StateTx(ctx, tx, id)
					return &NHIState{Status: status, Risk: risk}, err
				})
			case eventGroup:
				err = loadOne(c, &d.Groups, nil, func(id uuid.UUID) (*GroupState, error) {
					name, parent, err := people.GroupTx(ctx, tx, id)
					return &GroupState{Name: name, ParentID: parent}, err
				})
			case eventMembership:
				err = loadMembership(ctx, tx, people, c, d)
			default:
				if affects(c.Kind) {
					ok = false
					return nil
				}
			}
			if err != nil {
				return err
			}
		}
		ok = true
		return nil
	})
	return d, ok, err
}

// loadOne reads the record a change names into m: its state now, or gone
// when it was deleted (or is no more).
func loadOne[V any](c events.Change, m *map[uuid.UUID]V, gone V, read func(uuid.UUID) (V, error)) error {
	id, err := uuid.Parse(c.ID)
	if err != nil {
		return nil // not a record decisions know
	}
	if *m == nil {
		*m = map[uuid.UUID]V{}
	}
	if c.Deleted() {
		(*m)[id] = gone
		return nil
	}
	v, err := read(id)
	if store.NoRows(err) || apperr.KindOf(err) == apperr.KindNotFound {
		v, err = gone, nil
	}
	if err != nil {
		return err
	}
	(*m)[id] = v
	return nil
}

// loadRecord reads one governance record into m (nil: it is gone).
func loadRecord[T any](ctx context.Context, tx *store.Tx, c events.Change, r record[*T], m *map[uuid.UUID]*T) error {
	return loadOne(c, m, nil, func(id uuid.UUID) (*T, error) {
		return r.scan(tx.QueryRow(ctx, `SELECT `+r.cols+` FROM `+r.table+` WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id))
	})
}

// loadMembership reads the direct groups of the user a membership change
// names ("<group>:<user>").
func loadMembership(ctx context.Context, tx *store.Tx, people People, c events.Change, d *Delta) error {
	_, u, found := strings.Cut(c.ID, ":")
	user, err := uuid.Parse(u)
	if !found || err != nil {
		return nil
	}
	if d.Memberships == nil {
		d.Memberships = map[uuid.UUID][]uuid.UUID{}
	}
	groups, err := people.GroupsOfTx(ctx, tx, user)
	d.Memberships[user] = groups
	return err
}
