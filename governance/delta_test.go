package governance_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// world names what a test created, to compare snapshots over.
type world struct {
	users, nhis []uuid.UUID
	ents        []uuid.UUID
}

// sameAccess fails unless two snapshots answer alike: every subject's
// decision on every entitlement (with the assignment and path that
// decide it) and every subject's effective grants.
func sameAccess(t *testing.T, step string, got, want *governance.Snapshot, w *world, now time.Time) {
	t.Helper()
	subjects := []governance.Subject{}
	for _, u := range w.users {
		subjects = append(subjects, governance.Subject{Type: governance.SubjectUser, ID: u})
	}
	for _, n := range w.nhis {
		subjects = append(subjects, governance.Subject{Type: governance.SubjectNHI, ID: n})
	}
	gs, ws := got.Stats(), want.Stats()
	if gs.Users != ws.Users || gs.Groups != ws.Groups || gs.NHIs != ws.NHIs || gs.Entitlements != ws.Entitlements || gs.Roles != ws.Roles || gs.Assignments != ws.Assignments {
		t.Fatalf("%s: sizes differ: delta %+v, rebuilt %+v", step, gs, ws)
	}
	for _, sub := range subjects {
		for _, e := range w.ents {
			req := governance.Request{Subject: sub, EntitlementID: e}
			g, x := got.Decide(&req, now), want.Decide(&req, now)
			if g.Decision != x.Decision || g.Code != x.Code || fmt.Sprint(g.AssignmentID) != fmt.Sprint(x.AssignmentID) || fmt.Sprint(g.Path) != fmt.Sprint(x.Path) {
				t.Fatalf("%s: %s %s on %s: delta says %s/%s %v, rebuilt %s/%s %v", step, sub.Type, sub.ID, e, g.Decision, g.Code, g.Path, x.Decision, x.Code, x.Path)
			}
		}
		if g, x := grants(got, sub), grants(want, sub); !slices.Equal(g, x) {
			t.Fatalf("%s: effective access of %s differs:\ndelta   %v\nrebuilt %v", step, sub.ID, g, x)
		}
	}
}

func grants(s *governance.Snapshot, sub governance.Subject) []string {
	var out []string
	for _, g := range s.Effective(sub.Type, sub.ID) {
		out = append(out, fmt.Sprintf("%s<-%s%v", g.EntitlementID, g.Assignment.ID, g.Path))
	}
	slices.Sort(out)
	return out
}

// TestDeltasMatchRebuild changes every kind of record a snapshot holds
// through the services, with the engine following the changes as
// deltas, and checks after each step that the snapshot it serves answers
// like one rebuilt from the database — without ever being rebuilt.
func TestDeltasMatchRebuild(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		fresh := &governance.Engine{DB: db, People: f.dir, Agents: f.nhis}
		w := &world{}
		first, err := f.eng.Snapshot(f.ctx, f.tenant)
		if err != nil {
			t.Fatal(err)
		}
		check := func(step string) {
			t.Helper()
			got, err := f.eng.Snapshot(f.ctx, f.tenant)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Stats().BuiltAt.Equal(first.Stats().BuiltAt) || got.Stats().Version == 0 {
				t.Fatalf("%s: the snapshot was rebuilt (%+v), not updated by deltas", step, got.Stats())
			}
			want, err := fresh.Refresh(f.ctx, f.tenant)
			if err != nil {
				t.Fatal(err)
			}
			sameAccess(t, step, got, want, w, *f.clock)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		app, err := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "crm", Name: ptr("CRM"), Type: "mcp_server"})
		must(err)
		ent := map[string]uuid.UUID{}
		for _, k := range []string{"read", "write", "export", "admin", "purge"} {
			e, err := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Kind: governance.KindMCPTool, Key: k, ApprovalState: ptr(governance.Approved)})
			must(err)
			ent[k] = e.ID
			w.ents = append(w.ents, e.ID)
		}
		check("entitlements")
		base, err := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "base", Name: ptr("Base"), EntitlementIDs: &[]uuid.UUID{ent["read"]}})
		must(err)
		auditor, err := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "auditor", Name: ptr("Auditor"), EntitlementIDs: &[]uuid.UUID{ent["export"]}})
		must(err)
		editor, err := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "editor", Name: ptr("Editor"), ParentID: &base.ID,
			EntitlementIDs: &[]uuid.UUID{ent["write"]}, InducedRoleIDs: &[]uuid.UUID{auditor.ID}})
		must(err)
		check("roles")
		org, err := f.dir.CreateGroup(f.ctx, directory.GroupInput{Name: ptr("Org")})
		must(err)
		team, err := f.dir.CreateGroup(f.ctx, directory.GroupInput{Name: ptr("Team"), ParentID: &org.ID})
		must(err)
		var users []*directory.User
		for i := range 4 {
			u, err := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: fmt.Sprintf("u%d@x.test", i)})
			must(err)
			users = append(users, u)
			w.users = append(w.users, u.ID)
		}
		bot, err := f.nhis.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: users[0].ID})
		must(err)
		w.nhis = append(w.nhis, bot.ID)
		for _, u := range users[:3] {
			_, _, err := f.dir.AddMember(f.ctx, team.ID, u.ID)
			must(err)
		}
		check("directory")
		assign := func(typ string, sub uuid.UUID, targetType string, target uuid.UUID, c *governance.Constraints) *governance.Assignment {
			t.Helper()
			a, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: typ, SubjectID: sub, TargetType: targetType, TargetID: target, Constraints: c})
			must(err)
			return a
		}
		viaOrg := assign("group", org.ID, "role", editor.ID, nil)
		direct := assign("user", users[3].ID, "entitlement", ent["admin"], &governance.Constraints{RateLimitPerMinute: 5})
		assign("user", users[3].ID, "role", base.ID, nil)
		botAdmin := assign("nhi", bot.ID, "entitlement", ent["admin"], &governance.Constraints{ArgumentPrefixes: map[string][]string{"path": {"/tmp/"}}})
		assign("nhi", bot.ID, "entitlement", ent["purge"], nil)
		check("assignments")

		// Changes of every kind, each checked.
		steps := []struct {
			name string
			do   func() error
		}{
			{"assignment constraints changed", func() error {
				_, err := f.gov.UpdateAssignment(f.ctx, direct.ID, governance.AssignmentInput{Constraints: &governance.Constraints{RequiresApproval: true}}, 0)
				return err
			}},
			{"role entitlements changed", func() error {
				_, err := f.gov.UpdateRole(f.ctx, base.ID, governance.RoleInput{EntitlementIDs: &[]uuid.UUID{ent["read"], ent["purge"]}}, 0)
				return err
			}},
			{"inducement removed", func() error {
				_, err := f.gov.UpdateRole(f.ctx, editor.ID, governance.RoleInput{InducedRoleIDs: &[]uuid.UUID{}}, 0)
				return err
			}},
			{"member removed", func() error { return f.dir.RemoveMember(f.ctx, team.ID, users[1].ID) }},
			{"member added", func() error { _, _, err := f.dir.AddMember(f.ctx, org.ID, users[3].ID); return err }},
			{"user disabled", func() error {
				_, err := f.dir.UpdateUser(f.ctx, users[2].ID, directory.UpdateUserInput{Status: ptr(directory.StatusDisabled)}, 0)
				return err
			}},
			{"group renamed", func() error {
				_, err := f.dir.UpdateGroup(f.ctx, team.ID, directory.GroupInput{Name: ptr("Squad")}, 0)
				return err
			}},
			{"group moved to the root", func() error {
				_, err := f.dir.UpdateGroup(f.ctx, team.ID, directory.GroupInput{ParentID: &uuid.UUID{}}, 0)
				return err
			}},
			{"NHI suspended", func() error {
				_, err := f.nhis.Transition(f.ctx, bot.ID, nhi.TransitionInput{Status: nhi.StatusSuspended, Reason: "t"}, 0)
				return err
			}},
			{"NHI resumed", func() error {
				_, err := f.nhis.Transition(f.ctx, bot.ID, nhi.TransitionInput{Status: nhi.StatusActive, Reason: "t"}, 0)
				return err
			}},
			{"entitlement quarantined", func() error {
				_, err := f.gov.UpdateEntitlement(f.ctx, ent["read"], governance.EntitlementInput{ApprovalState: ptr(governance.Quarantined)}, 0)
				return err
			}},
			{"application deactivated", func() error {
				_, err := f.gov.UpdateApplication(f.ctx, app.ID, governance.ApplicationInput{Status: ptr("inactive")}, 0)
				return err
			}},
			{"application reactivated", func() error {
				_, err := f.gov.UpdateApplication(f.ctx, app.ID, governance.ApplicationInput{Status: ptr("active")}, 0)
				return err
			}},
			{"separation-of-duties rule", func() error {
				_, err := f.gov.CreateSoDRule(f.ctx, governance.SoDRuleInput{Key: "no-admin-and-export", Kind: governance.SoDCardinality,
					EntitlementIDs: &[]uuid.UUID{ent["admin"], ent["purge"], ent["export"]}, MaxHeld: ptr(2)})
				return err
			}},
			{"assignment deleted", func() error { return f.gov.DeleteAssignment(f.ctx, botAdmin.ID) }},
			{"entitlement deleted", func() error { return f.gov.DeleteEntitlement(f.ctx, ent["purge"]) }},
			{"group assignment deleted", func() error { return f.gov.DeleteAssignment(f.ctx, viaOrg.ID) }},
			{"role deleted", func() error { return f.gov.DeleteRole(f.ctx, auditor.ID) }},
			{"group deleted", func() error { return f.dir.DeleteGroup(f.ctx, team.ID, 0) }},
			{"user deleted", func() error { return f.dir.DeleteUser(f.ctx, users[1].ID, 0) }},
		}
		for _, st := range steps {
			must(st.do())
			check(st.name)
		}

		// Changes no decision reads make no new version.
		before, _ := f.eng.Snapshot(f.ctx, f.tenant)
		_, err = f.dir.UpdateUser(f.ctx, users[0].ID, directory.UpdateUserInput{DisplayName: ptr("Zed")}, 0)
		must(err)
		_, err = f.dir.SetPassword(f.ctx, users[0].ID, "a long enough passphrase 42", false)
		must(err)
		if after, _ := f.eng.Snapshot(f.ctx, f.tenant); after != before {
			t.Fatalf("profile and password changes made a new snapshot version (%d → %d)", before.Stats().Version, after.Stats().Version)
		}
		check("activity")
	})
}

// TestApplyToCopy: a delta applied to a copy answers what-if questions and
// leaves the serving snapshot as it was.
func TestApplyToCopy(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		app, err := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "wiki", Name: ptr("Wiki"), Type: "generic"})
		if err != nil {
			t.Fatal(err)
		}
		e, err := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Key: "edit", ApprovalState: ptr(governance.Approved)})
		if err != nil {
			t.Fatal(err)
		}
		u, err := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "sim@x.test"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := f.eng.Snapshot(f.ctx, f.tenant)
		if err != nil {
			t.Fatal(err)
		}
		req := governance.Request{Subject: governance.Subject{Type: governance.SubjectUser, ID: u.ID}, EntitlementID: e.ID}
		if d := s.Decide(&req, *f.clock); d.Decision != governance.Deny {
			t.Fatalf("before: %+v", d)
		}
		a := &governance.Assignment{ID: uuid.New(), SubjectType: governance.SubjectUser, SubjectID: u.ID, TargetType: "entitlement", TargetID: e.ID, Source: governance.SourceDirect}
		sim := s.Apply(&governance.Delta{Assignments: map[uuid.UUID]*governance.Assignment{a.ID: a}}, *f.clock)
		if d := sim.Decide(&req, *f.clock); d.Decision != governance.Allow || *d.AssignmentID != a.ID {
			t.Fatalf("what-if: %+v", d)
		}
		if d := s.Decide(&req, *f.clock); d.Decision != governance.Deny {
			t.Fatalf("the serving snapshot changed: %+v", d)
		}
		if cur, _ := f.eng.Snapshot(f.ctx, f.tenant); cur != s || strings.Contains(fmt.Sprint(grants(cur, req.Subject)), a.ID.String()) {
			t.Fatal("the engine's snapshot changed")
		}
		// And back: removing it again on the copy.
		back := sim.Apply(&governance.Delta{Assignments: map[uuid.UUID]*governance.Assignment{a.ID: nil}}, *f.clock)
		if d := back.Decide(&req, *f.clock); d.Decision != governance.Deny {
			t.Fatalf("after removal on the copy: %+v", d)
		}
	})
}

// TestLateWritesAreIgnored: this replica's writes of an assignment heard
// out of order (an older version after a newer one, a write after the
// deletion) leave the snapshot at the newest state.
func TestLateWritesAreIgnored(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		app, err := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "ops", Name: ptr("Ops"), Type: "generic"})
		if err != nil {
			t.Fatal(err)
		}
		e, err := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Key: "deploy", ApprovalState: ptr(governance.Approved)})
		if err != nil {
			t.Fatal(err)
		}
		u, err := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "late@x.test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.eng.Snapshot(f.ctx, f.tenant); err != nil {
			t.Fatal(err)
		}
		a1, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: u.ID, TargetType: "entitlement", TargetID: e.ID})
		if err != nil {
			t.Fatal(err)
		}
		v1 := *a1
		if _, err := f.gov.UpdateAssignment(f.ctx, a1.ID, governance.AssignmentInput{Constraints: &governance.Constraints{RequiresApproval: true}}, 0); err != nil {
			t.Fatal(err)
		}
		req := governance.Request{Subject: governance.Subject{Type: "user", ID: u.ID}, EntitlementID: e.ID}
		decide := func() string {
			s, err := f.eng.Snapshot(f.ctx, f.tenant)
			if err != nil {
				t.Fatal(err)
			}
			return s.Decide(&req, *f.clock).Decision
		}
		if got := decide(); got != governance.ApprovalRequired {
			t.Fatalf("after the update: %s", got)
		}
		late := events.Message{Change: events.Change{TenantID: f.tenant, Kind: governance.EventPrefix + "assignment", ID: v1.ID.String(), Version: 1, Op: events.OpUpsert}, Record: &v1}
		f.eng.ChangedWith(f.ctx, f.tenant, []events.Message{late})
		if got := decide(); got != governance.ApprovalRequired {
			t.Fatalf("an older write heard late took over: %s", got)
		}
		if err := f.gov.DeleteAssignment(f.ctx, a1.ID); err != nil {
			t.Fatal(err)
		}
		f.eng.ChangedWith(f.ctx, f.tenant, []events.Message{late})
		if got := decide(); got != governance.Deny {
			t.Fatalf("a write heard after the deletion brought the assignment back: %s", got)
		}
	})
}
