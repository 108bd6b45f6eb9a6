package governance

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The snapshot's read: one transaction over governance's tables and, through
// their stores, the directory's and the NHIs'.

// build loads a tenant's governance state.
func build(ctx context.Context, db *store.DB, people People, agents Agents, tenant uuid.UUID, now time.Time) (*Snapshot, error) {
	if people == nil || agents == nil {
		return nil, errNoDirectory
	}
	s := &Snapshot{Tenant: tenant, BuiltAt: now, users: map[uuid.UUID]string{}, nhis: map[uuid.UUID]string{}, nhiRisk: map[uuid.UUID]int{}, groupParent: map[uuid.UUID]uuid.UUID{},
		userGroups: map[uuid.UUID][]uuid.UUID{}, groupName: map[uuid.UUID]string{}, apps: map[uuid.UUID]appInfo{}, ents: map[uuid.UUID]*entInfo{},
		entByKey: map[string]uuid.UUID{}, roleKey: map[uuid.UUID]string{}, roleParent: map[uuid.UUID]uuid.UUID{}, roleEnts: map[uuid.UUID][]uuid.UUID{},
		roleInduces: map[uuid.UUID][]uuid.UUID{}, bySubject: map[subjectKey][]*Assignment{}, constraints: map[uuid.UUID]*compiled{},
		sodByEnt: map[uuid.UUID][]*SoDRule{}}
	ctx = store.WithTenant(ctx, tenant)
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
				s.apps[id] = a
				return nil
			}},
			{`SELECT id, application_id, kind, key, approval_state, risk_level FROM entitlements WHERE tenant_id = $1`, func(r store.Scanner) error {
				e := &entInfo{}
				if err := r.Scan(&e.id, &e.app, &e.kind, &e.key, &e.approval, &e.risk); err != nil {
					return err
				}
				s.ents[e.id] = e
				return nil
			}},
			{`SELECT id, key, parent_id FROM roles WHERE tenant_id = $1`, func(r store.Scanner) error {
				if err := r.Scan(&id, &str, &parent); err != nil {
					return err
				}
				s.roleKey[id] = str
				if parent != nil {
					s.roleParent[id] = *parent
				}
				return nil
			}},
			{`SELECT role_id, entitlement_id FROM role_entitlements WHERE tenant_id = $1`, func(r store.Scanner) error {
				if err := r.Scan(&id, &other); err != nil {
					return err
				}
				s.roleEnts[id] = append(s.roleEnts[id], other)
				return nil
			}},
			{`SELECT role_id, induced_role_id FROM role_inducements WHERE tenant_id = $1`, func(r store.Scanner) error {
				if err := r.Scan(&id, &other); err != nil {
					return err
				}
				s.roleInduces[id] = append(s.roleInduces[id], other)
				return nil
			}},
			{`SELECT ` + sodCols + ` FROM sod_rules WHERE tenant_id = $1 AND enabled`, func(r store.Scanner) error {
				rule, err := scanSoDRule(r)
				if err != nil {
					return err
				}
				s.sodRules++
				for _, e := range rule.members() {
					s.sodByEnt[e] = append(s.sodByEnt[e], rule)
				}
				return nil
			}},
			{`SELECT ` + assignCols + ` FROM assignments WHERE tenant_id = $1`, func(r store.Scanner) error {
				a, err := scanAssignment(r)
				if err != nil {
					return err
				}
				k := subjectKey{a.SubjectType, a.SubjectID}
				s.bySubject[k] = append(s.bySubject[k], a)
				if a.Constraints.RateLimitPerMinute > 0 {
					s.rateLimits = true
				}
				if c := compile(&a.Constraints); c != nil {
					s.constraints[a.ID] = c
					if c.args != nil {
						s.argConstraints = true
					}
				}
				return nil
			}},
		}
		// The directory's users and groups and the NHIs, read through
		// their stores in this transaction; then governance's own tables.
		if err := people.EachUserTx(ctx, tx, func(id uuid.UUID, status string) { s.users[id] = status }); err != nil {
			return err
		}
		if err := agents.EachTx(ctx, tx, func(id uuid.UUID, status string, risk int) {
			s.nhis[id] = status
			if risk > 0 {
				s.nhiRisk[id] = risk
			}
		}); err != nil {
			return err
		}
		if err := people.EachGroupTx(ctx, tx, func(id uuid.UUID, name string, parent *uuid.UUID) {
			s.groupName[id] = name
			if parent != nil {
				s.groupParent[id] = *parent
			}
		}); err != nil {
			return err
		}
		if err := people.EachMembershipTx(ctx, tx, func(user, group uuid.UUID) { s.userGroups[user] = append(s.userGroups[user], group) }); err != nil {
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
	for _, e := range s.ents {
		if a, ok := s.apps[e.app]; ok {
			s.entByKey[a.key+"/"+e.key] = e.id
		}
	}
	return s, nil
}
