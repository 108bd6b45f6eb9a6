package governance_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type fx struct {
	gov    *governance.Service
	eng    *governance.Engine
	dir    *directory.Service
	nhis   *nhi.Service
	ctx    context.Context
	tenant uuid.UUID
	clock  *time.Time
}

func setup(t *testing.T, db *store.DB) *fx {
	t.Helper()
	tenants := &tenant.Service{DB: db, Audit: audit.Discard}
	tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: "g-" + uuid.NewString()[:8], Name: "G"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := principal.With(store.WithTenant(context.Background(), tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
		SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // a Tuesday
	f := &fx{ctx: ctx, tenant: tn.ID, clock: &now}
	f.dir = &directory.Service{DB: db, Audit: audit.Discard, Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1), Policies: tenants}
	f.nhis = &nhi.Service{DB: db, Policies: tenants, Audit: audit.Discard, Users: f.dir}
	f.gov = &governance.Service{DB: db, Audit: audit.Discard, People: f.dir, Agents: f.nhis, Tenants: tenants, Now: func() time.Time { return *f.clock }}
	f.eng = &governance.Engine{DB: db, People: f.dir, Agents: f.nhis, Now: func() time.Time { return *f.clock }}
	// This replica's changes reach the engine at their commit, as in a server.
	t.Cleanup(f.eng.Watch(events.NewBus(db, nil)))
	return f
}

func ptr[T any](v T) *T { return &v }

func (f *fx) decide(t *testing.T, req governance.Request) governance.Decision {
	t.Helper()
	s, err := f.eng.Refresh(f.ctx, f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	return s.Decide(&req, *f.clock)
}

// TestScenario: role hierarchy + inducement + group membership give the
// expected entitlements with explanations; expiry, time windows, argument
// allow-lists, approvals and delegation behave.
func TestScenario(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		app, err := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "github", Name: ptr("GitHub"), Type: "mcp_server"})
		if err != nil {
			t.Fatal(err)
		}
		ent := map[string]*governance.Entitlement{}
		for _, k := range []string{"read_repo", "create_issue", "merge_pr", "delete_repo"} {
			e, err := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Kind: governance.KindMCPTool, Key: k, ApprovalState: ptr(governance.Approved)})
			if err != nil {
				t.Fatal(err)
			}
			ent[k] = e
		}
		// engineer ⊂ senior-engineer (child inherits parent); senior induces reviewer.
		engineer, _ := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "engineer", Name: ptr("Engineer"), EntitlementIDs: &[]uuid.UUID{ent["read_repo"].ID}})
		reviewer, _ := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "reviewer", Name: ptr("Reviewer"), EntitlementIDs: &[]uuid.UUID{ent["merge_pr"].ID}})
		senior, err := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "senior", Name: ptr("Senior"), ParentID: &engineer.ID,
			EntitlementIDs: &[]uuid.UUID{ent["create_issue"].ID}, InducedRoleIDs: &[]uuid.UUID{reviewer.ID}})
		if err != nil {
			t.Fatal(err)
		}
		// Cycles are refused.
		if _, err := f.gov.UpdateRole(f.ctx, engineer.ID, governance.RoleInput{ParentID: &senior.ID}, 0); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("parent cycle: %v", err)
		}
		if _, err := f.gov.UpdateRole(f.ctx, reviewer.ID, governance.RoleInput{InducedRoleIDs: &[]uuid.UUID{senior.ID}}, 0); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("inducement cycle: %v", err)
		}

		if err := f.gov.DeleteRole(f.ctx, engineer.ID); apperr.KindOf(err) != apperr.KindConflict {
			t.Fatalf("deleting a role with children: %v", err)
		}
		if err := f.gov.DeleteRole(f.ctx, uuid.New()); apperr.KindOf(err) != apperr.KindNotFound {
			t.Fatalf("deleting an unknown role: %v", err)
		}
		ada, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "ada@x.test"})
		parentGroup, _ := f.dir.CreateGroup(f.ctx, directory.GroupInput{Name: ptr("Engineering")})
		team, _ := f.dir.CreateGroup(f.ctx, directory.GroupInput{Name: ptr("Platform"), ParentID: &parentGroup.ID})
		if _, _, err := f.dir.AddMember(f.ctx, team.ID, ada.ID); err != nil {
			t.Fatal(err)
		}
		// The role goes to the parent group; Ada is in its child group.
		roleAssign, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "group", SubjectID: parentGroup.ID, TargetType: "role", TargetID: senior.ID})
		if err != nil {
			t.Fatal(err)
		}
		user := governance.Subject{Type: "user", ID: ada.ID}
		for k, want := range map[string]string{"read_repo": "allow", "create_issue": "allow", "merge_pr": "allow", "delete_repo": "deny"} {
			d := f.decide(t, governance.Request{Subject: user, Application: "github", Entitlement: k})
			if d.Decision != want {
				t.Fatalf("%s: %+v", k, d)
			}
		}
		// The explanation of merge_pr: group → parent group → assignment → senior → induced reviewer.
		d := f.decide(t, governance.Request{Subject: user, EntitlementID: ent["merge_pr"].ID})
		var types []string
		for _, s := range d.Path {
			types = append(types, s.Type+":"+s.Key)
		}
		want := "group:Platform,group:Engineering,assignment:,role:senior,induced_role:reviewer"
		if got := join(types); got != want || *d.AssignmentID != roleAssign.ID {
			t.Fatalf("path %s, want %s", got, want)
		}
		d = f.decide(t, governance.Request{Subject: user, EntitlementID: ent["read_repo"].ID})
		if join(stepTypes(d.Path)) != "group,group,assignment,role,parent_role" {
			t.Fatalf("inherited path: %v", d.Path)
		}

		// Removing the role from the group removes the access after the change.
		if err := f.gov.DeleteAssignment(f.ctx, roleAssign.ID); err != nil {
			t.Fatal(err)
		}
		if d := f.decide(t, governance.Request{Subject: user, EntitlementID: ent["read_repo"].ID}); d.Decision != "deny" {
			t.Fatalf("after removal: %+v", d)
		}

		// An expiring direct assignment stops counting at its end.
		end := f.clock.Add(time.Hour)
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: ada.ID, TargetType: "entitlement",
			TargetID: ent["delete_repo"].ID, ValidUntil: &end, Justification: ptr("cleanup")}); err != nil {
			t.Fatal(err)
		}
		if d := f.decide(t, governance.Request{Subject: user, EntitlementID: ent["delete_repo"].ID}); d.Decision != "allow" {
			t.Fatalf("before expiry: %+v", d)
		}
		*f.clock = end
		if d := f.decide(t, governance.Request{Subject: user, EntitlementID: ent["delete_repo"].ID}); d.Decision != "deny" || d.Reason == "" {
			t.Fatalf("at expiry: %+v", d)
		}

		// NHI with constraints: argument allow-list, weekday office hours, approval.
		owner := ada.ID
		bot, err := f.nhis.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: owner})
		if err != nil {
			t.Fatal(err)
		}
		c := governance.Constraints{ArgumentConstraints: map[string][]json.RawMessage{"repo": {json.RawMessage(`"acme/web"`), json.RawMessage(`"acme/api"`)}},
			TimeWindows: []governance.TimeWindow{{Days: []int{1, 2, 3, 4, 5}, Start: "09:00", End: "17:00", TZ: "Europe/Paris"}}}
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "nhi", SubjectID: bot.ID, TargetType: "entitlement",
			TargetID: ent["create_issue"].ID, Constraints: &c}); err != nil {
			t.Fatal(err)
		}
		agent := governance.Subject{Type: "nhi", ID: bot.ID}
		*f.clock = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // 13:00 in Paris, Tuesday
		args := func(repo string) map[string]json.RawMessage {
			return map[string]json.RawMessage{"repo": json.RawMessage(repo)}
		}
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["create_issue"].ID, Arguments: args(`"acme/web"`)}); d.Decision != "allow" {
			t.Fatalf("allowed call: %+v", d)
		}
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["create_issue"].ID, Arguments: args(` "acme/api" `)}); d.Decision != "allow" {
			t.Fatalf("spacing must not matter: %+v", d)
		}
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["create_issue"].ID, Arguments: args(`"evil/repo"`)}); d.Decision != "deny" {
			t.Fatalf("argument outside the allow-list: %+v", d)
		}
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["create_issue"].ID}); d.Decision != "deny" {
			t.Fatalf("missing constrained argument: %+v", d)
		}
		*f.clock = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) // Saturday
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["create_issue"].ID, Arguments: args(`"acme/web"`)}); d.Decision != "deny" {
			t.Fatalf("outside the window: %+v", d)
		}
		*f.clock = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "nhi", SubjectID: bot.ID, TargetType: "entitlement",
			TargetID: ent["merge_pr"].ID, Constraints: &governance.Constraints{RequiresApproval: true}}); err != nil {
			t.Fatal(err)
		}
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["merge_pr"].ID}); d.Decision != "approval_required" {
			t.Fatalf("approval: %+v", d)
		}
		// Delegation: the agent acting for a user needs both to be allowed.
		bob, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "bob@x.test"})
		req := governance.Request{Subject: governance.Subject{Type: "user", ID: bob.ID}, Actor: &agent, EntitlementID: ent["create_issue"].ID, Arguments: args(`"acme/web"`)}
		if d := f.decide(t, req); d.Decision != "deny" {
			t.Fatalf("delegation for an unentitled user: %+v", d)
		}
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: bob.ID, TargetType: "entitlement", TargetID: ent["create_issue"].ID}); err != nil {
			t.Fatal(err)
		}
		if d := f.decide(t, req); d.Decision != "allow" {
			t.Fatalf("delegation: %+v", d)
		}
		// A suspended agent is refused whatever it holds.
		if _, err := f.nhis.Transition(f.ctx, bot.ID, nhi.TransitionInput{Status: nhi.StatusSuspended, Reason: "t"}, 0); err != nil {
			t.Fatal(err)
		}
		if d := f.decide(t, governance.Request{Subject: agent, EntitlementID: ent["create_issue"].ID, Arguments: args(`"acme/web"`)}); d.Decision != "deny" {
			t.Fatalf("suspended agent: %+v", d)
		}
		// A tool that is not approved grants nothing.
		if _, err := f.gov.UpdateEntitlement(f.ctx, ent["create_issue"].ID, governance.EntitlementInput{ApprovalState: ptr(governance.Quarantined)}, 0); err != nil {
			t.Fatal(err)
		}
		if d := f.decide(t, governance.Request{Subject: governance.Subject{Type: "user", ID: bob.ID}, EntitlementID: ent["create_issue"].ID}); d.Decision != "deny" {
			t.Fatalf("quarantined tool: %+v", d)
		}
	})
}

func TestCatalogSync(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		app, _ := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "fs", Name: ptr("Files"), Type: "mcp_server"})
		out, err := f.gov.UpsertTools(f.ctx, app.ID, []governance.Tool{{Name: "read_file", Hash: "h1"}, {Name: "write_file", Hash: "h2"}}, false)
		if err != nil || len(out) != 2 || out[0].Outcome != "created" || out[0].ApprovalState != governance.Pending {
			t.Fatalf("%+v %v", out, err)
		}
		if _, err := f.gov.UpdateEntitlement(f.ctx, out[0].EntitlementID, governance.EntitlementInput{ApprovalState: ptr(governance.Approved)}, 0); err != nil {
			t.Fatal(err)
		}
		out, _ = f.gov.UpsertTools(f.ctx, app.ID, []governance.Tool{{Name: "read_file", Hash: "h1"}, {Name: "write_file", Hash: "h2-changed"}}, false)
		if out[0].Outcome != "unchanged" || out[0].ApprovalState != governance.Approved || out[1].Outcome != "changed" || out[1].ApprovalState != governance.Quarantined {
			t.Fatalf("%+v", out)
		}
	})
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func stepTypes(p []governance.Step) []string {
	var out []string
	for _, s := range p {
		out = append(out, s.Type)
	}
	return out
}
