package governance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func (f *fx) ents(t *testing.T, keys ...string) map[string]uuid.UUID {
	t.Helper()
	app, err := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "fin", Name: ptr("Finance"), Type: "generic"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uuid.UUID{}
	for _, k := range keys {
		e, err := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Key: k, Requestable: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		out[k] = e.ID
	}
	return out
}

func (f *fx) assign(subType string, sub uuid.UUID, targetType string, target uuid.UUID) error {
	_, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: subType, SubjectID: sub, TargetType: targetType, TargetID: target})
	return err
}

func refusedBy(t *testing.T, err error, rule string) {
	t.Helper()
	if apperr.KindOf(err) != apperr.KindConflict || !strings.Contains(err.Error(), `rule "`+rule+`"`) {
		t.Fatalf("want a refusal naming %s, got %v", rule, err)
	}
}

// TestSoDPreventiveChecks: a cardinality rule, roles brought by
// inducement, nested groups, expired assignments, and a violation the
// subject already had.
func TestSoDPreventiveChecks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		// The engine applies the service's changes at their commit: a new
		// rule counts at once.
		f.gov.Engine = f.eng
		e := f.ents(t, "a", "b", "c", "d")
		if _, err := f.eng.Snapshot(f.ctx, f.tenant); err != nil {
			t.Fatal(err)
		}
		if _, err := f.gov.CreateSoDRule(f.ctx, governance.SoDRuleInput{Key: "one-of-abc", Kind: governance.SoDCardinality,
			EntitlementIDs: &[]uuid.UUID{e["a"], e["b"], e["c"]}, MaxHeld: ptr(1)}); err != nil {
			t.Fatal(err)
		}
		ada, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "ada@x.test"})
		if err := f.assign("user", ada.ID, "entitlement", e["a"]); err != nil {
			t.Fatal(err)
		}
		refusedBy(t, f.assign("user", ada.ID, "entitlement", e["b"]), "one-of-abc")
		if err := f.assign("user", ada.ID, "entitlement", e["d"]); err != nil {
			t.Fatalf("an entitlement outside every rule: %v", err)
		}
		// Held again through another path (a birthright assignment beside
		// the direct one): nothing new, allowed.
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: ada.ID, TargetType: "entitlement",
			TargetID: e["a"], Source: governance.SourceBirthright}); err != nil {
			t.Fatalf("a second path to a held entitlement: %v", err)
		}
		// The same path twice is a duplicate, refused as such.
		if err := f.assign("user", ada.ID, "entitlement", e["a"]); apperr.KindOf(err) != apperr.KindAlreadyExists {
			t.Fatalf("an identical assignment: %v", err)
		}

		// A role inducing a role that grants c.
		inner, _ := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "inner", Name: ptr("Inner"), EntitlementIDs: &[]uuid.UUID{e["c"]}})
		outer, _ := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "outer", Name: ptr("Outer"), InducedRoleIDs: &[]uuid.UUID{inner.ID}})
		refusedBy(t, f.assign("user", ada.ID, "role", outer.ID), "one-of-abc")
		// A role that breaks the rule by itself is refused, created or changed.
		_, err := f.gov.CreateRole(f.ctx, governance.RoleInput{Key: "both", Name: ptr("Both"), EntitlementIDs: &[]uuid.UUID{e["a"], e["b"]}})
		refusedBy(t, err, "one-of-abc")
		_, err = f.gov.UpdateRole(f.ctx, outer.ID, governance.RoleInput{EntitlementIDs: &[]uuid.UUID{e["a"]}}, 0)
		refusedBy(t, err, "one-of-abc")
		if r, _ := f.gov.GetRole(f.ctx, outer.ID); len(r.Entitlement) != 0 {
			t.Fatalf("a refused change was written: %+v", r)
		}

		// A group above Ada's group.
		parent, _ := f.dir.CreateGroup(f.ctx, directory.GroupInput{Name: ptr("Finance")})
		team, _ := f.dir.CreateGroup(f.ctx, directory.GroupInput{Name: ptr("Payables"), ParentID: &parent.ID})
		if _, _, err := f.dir.AddMember(f.ctx, team.ID, ada.ID); err != nil {
			t.Fatal(err)
		}
		refusedBy(t, f.assign("group", parent.ID, "entitlement", e["b"]), "one-of-abc")
		// An assignment counts until it expires, and no longer.
		grace, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "grace@x.test"})
		soon := f.clock.Add(time.Hour)
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "user", SubjectID: grace.ID, TargetType: "entitlement",
			TargetID: e["a"], ValidUntil: &soon}); err != nil {
			t.Fatal(err)
		}
		refusedBy(t, f.assign("user", grace.ID, "entitlement", e["c"]), "one-of-abc")
		*f.clock = f.clock.Add(2 * time.Hour)
		if err := f.assign("user", grace.ID, "entitlement", e["c"]); err != nil {
			t.Fatalf("an expired assignment still counted: %v", err)
		}

		// A disabled rule is not enforced.
		rules, _, _ := f.gov.ListSoDRules(f.ctx, 10, "")
		if _, err := f.gov.UpdateSoDRule(f.ctx, rules[0].ID, governance.SoDRuleInput{Enabled: ptr(false)}, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.assign("user", ada.ID, "entitlement", e["b"]); err != nil {
			t.Fatalf("a disabled rule refused: %v", err)
		}
		// Now Ada holds a and b; the detective scan reports her.
		if _, err := f.gov.UpdateSoDRule(f.ctx, rules[0].ID, governance.SoDRuleInput{Enabled: ptr(true)}, 0); err != nil {
			t.Fatal(err)
		}
		res, err := f.gov.ScanSoD(f.ctx)
		if err != nil || res.Open != 1 || res.New != 1 {
			t.Fatalf("scan: %+v %v", res, err)
		}
		if res, err = f.gov.ScanSoD(f.ctx); err != nil || res.Open != 1 || res.New != 0 {
			t.Fatalf("second scan: %+v %v", res, err)
		}
		v, _, _ := f.gov.ListSoDViolations(f.ctx, "open", uuid.Nil, 10, uuid.Nil)
		if len(v) != 1 || v[0].SubjectID != ada.ID || len(v[0].EntitlementIDs) != 2 {
			t.Fatalf("violations: %+v", v)
		}
		// Removing the cause resolves the violation at the next scan.
		as, _, _ := f.gov.ListAssignments(f.ctx, governance.ListAssignmentsOptions{SubjectType: "user", SubjectID: ada.ID, TargetID: e["b"], Limit: 10})
		if err := f.gov.DeleteAssignment(f.ctx, as[0].ID); err != nil {
			t.Fatal(err)
		}
		if res, err = f.gov.ScanSoD(f.ctx); err != nil || res.Open != 0 || res.Resolved != 1 {
			t.Fatalf("scan after the fix: %+v %v", res, err)
		}
	})
}

// TestSoDRuleInput: bad rules are refused with the field named and write
// nothing.
func TestSoDRuleInput(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		e := f.ents(t, "a", "b")
		other := uuid.Must(uuid.NewV7())
		for name, in := range map[string]governance.SoDRuleInput{
			"no kind":         {Key: "r1", EntitlementIDs: &[]uuid.UUID{e["a"]}, ConflictingIDs: &[]uuid.UUID{e["b"]}},
			"bad kind":        {Key: "r1", Kind: "maybe", EntitlementIDs: &[]uuid.UUID{e["a"]}, ConflictingIDs: &[]uuid.UUID{e["b"]}},
			"one side":        {Key: "r1", Kind: governance.SoDConflict, EntitlementIDs: &[]uuid.UUID{e["a"]}},
			"both sides":      {Key: "r1", Kind: governance.SoDConflict, EntitlementIDs: &[]uuid.UUID{e["a"]}, ConflictingIDs: &[]uuid.UUID{e["a"]}},
			"max too high":    {Key: "r1", Kind: governance.SoDCardinality, EntitlementIDs: &[]uuid.UUID{e["a"], e["b"]}, MaxHeld: ptr(2)},
			"max zero":        {Key: "r1", Kind: governance.SoDCardinality, EntitlementIDs: &[]uuid.UUID{e["a"], e["b"]}, MaxHeld: ptr(0)},
			"unknown ent":     {Key: "r1", Kind: governance.SoDConflict, EntitlementIDs: &[]uuid.UUID{e["a"]}, ConflictingIDs: &[]uuid.UUID{other}},
			"bad key":         {Key: "R 1", Kind: governance.SoDConflict, EntitlementIDs: &[]uuid.UUID{e["a"]}, ConflictingIDs: &[]uuid.UUID{e["b"]}},
			"bad severity":    {Key: "r1", Kind: governance.SoDConflict, Severity: ptr("dire"), EntitlementIDs: &[]uuid.UUID{e["a"]}, ConflictingIDs: &[]uuid.UUID{e["b"]}},
			"cardinality two": {Key: "r1", Kind: governance.SoDCardinality, EntitlementIDs: &[]uuid.UUID{e["a"], e["b"]}, ConflictingIDs: &[]uuid.UUID{e["a"]}, MaxHeld: ptr(1)},
		} {
			if _, err := f.gov.CreateSoDRule(f.ctx, in); apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Errorf("%s: %v", name, err)
			}
		}
		if rules, _, err := f.gov.ListSoDRules(f.ctx, 10, ""); err != nil || len(rules) != 0 {
			t.Fatalf("bad input wrote rules: %v %v", rules, err)
		}
		for name, in := range map[string]governance.WorkflowInput{
			"no steps":      {Key: "w", Steps: &[]governance.WorkflowStep{}},
			"bad approver":  {Key: "w", Steps: &[]governance.WorkflowStep{{Approvers: []governance.ApproverRef{{Type: "boss"}}}}},
			"group w/o id":  {Key: "w", Steps: &[]governance.WorkflowStep{{Approvers: []governance.ApproverRef{{Type: "group"}}}}},
			"unknown user":  {Key: "w", Steps: &[]governance.WorkflowStep{{Approvers: []governance.ApproverRef{{Type: "user", ID: &other}}}}},
			"bad mode":      {Key: "w", Steps: &[]governance.WorkflowStep{{Mode: "most", Approvers: []governance.ApproverRef{{Type: "manager"}}}}},
			"escalation":    {Key: "w", Steps: &[]governance.WorkflowStep{{Approvers: []governance.ApproverRef{{Type: "manager"}}, EscalateTo: []governance.ApproverRef{{Type: "manager"}}}}},
			"negative wait": {Key: "w", Steps: &[]governance.WorkflowStep{{TimeoutSeconds: -1, Approvers: []governance.ApproverRef{{Type: "manager"}}}}},
			"bad risk":      {Key: "w", AutoApproveMaxRisk: ptr("none"), Steps: &[]governance.WorkflowStep{{Approvers: []governance.ApproverRef{{Type: "manager"}}}}},
		} {
			if _, err := f.gov.CreateWorkflow(f.ctx, in); apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Errorf("%s: %v", name, err)
			}
		}
		if ws, _, err := f.gov.ListWorkflows(f.ctx, 10, ""); err != nil || len(ws) != 0 {
			t.Fatalf("bad input wrote workflows: %v %v", ws, err)
		}
	})
}

// TestToolCallApproval: the generic primitive as the gateway will use it —
// a tool_call approval with its own step, awaited until an approver
// decides; no assignment comes of it; a wait that runs out returns the
// approval still pending; timers expire it.
func TestToolCallApproval(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		app, _ := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "github", Name: ptr("GitHub"), Type: "mcp_server"})
		tool, _ := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Kind: governance.KindMCPTool, Key: "delete_repo", ApprovalState: ptr(governance.Approved)})
		owner, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "owner@x.test"})
		approver, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "sre@x.test"})
		bot, err := f.nhis.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: owner.ID})
		if err != nil {
			t.Fatal(err)
		}
		open := func() *governance.Approval {
			a, err := f.gov.OpenApproval(f.ctx, governance.OpenInput{Kind: governance.KindToolCall, RequesterType: "nhi", RequesterID: bot.ID,
				SubjectType: "nhi", SubjectID: bot.ID, TargetType: "entitlement", TargetID: tool.ID, TTL: time.Minute,
				Payload: map[string]any{"tool": "delete_repo", "arguments_sha256": "ab12"},
				Steps:   []governance.WorkflowStep{{Approvers: []governance.ApproverRef{{Type: governance.ApproverUser, ID: &approver.ID}}}}})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		a := open()
		if a.Status != governance.StatusPending || !strings.Contains(string(a.Payload), "delete_repo") {
			t.Fatalf("opened: %+v", a)
		}
		short, cancel := context.WithTimeout(f.ctx, 150*time.Millisecond)
		got, err := f.gov.AwaitApproval(short, nil, a.ID, 20*time.Millisecond)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || got == nil || got.Status != governance.StatusPending {
			t.Fatalf("a wait that ran out: %+v %v", got, err)
		}
		done := make(chan *governance.Approval, 1)
		go func() {
			got, err := f.gov.AwaitApproval(f.ctx, nil, a.ID, 20*time.Millisecond)
			if err != nil {
				t.Error(err)
			}
			done <- got
		}()
		as := principal.With(f.ctx, &principal.Principal{TenantID: f.tenant, Kind: principal.KindUser, SubjectID: approver.ID.String()})
		if _, err := f.gov.Decide(as, a.ID, governance.DecisionInput{Decision: governance.Approve, Comment: "once"}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-done:
			if got.Status != governance.StatusApproved || got.AssignmentID != nil {
				t.Fatalf("awaited: %+v", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the wait did not end with the decision")
		}
		// Timers: the next hold is never decided and expires.
		b := open()
		*f.clock = f.clock.Add(2 * time.Minute)
		if n, err := f.gov.Tick(context.Background()); err != nil || n < 1 {
			t.Fatalf("tick: %d %v", n, err)
		}
		if got, _ := f.gov.AwaitApproval(f.ctx, nil, b.ID, 0); got.Status != governance.StatusExpired {
			t.Fatalf("after expiry: %+v", got)
		}
	})
}

// TestAllOfStepsAndFallbacks: an all-of step needs every approver; an
// approver decides a step once; a fallback approver added by escalation
// completes the step alone.
func TestAllOfStepsAndFallbacks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		as := func(u *directory.User) context.Context {
			return principal.With(f.ctx, &principal.Principal{TenantID: f.tenant, Kind: principal.KindUser, SubjectID: u.ID.String()})
		}
		var users []*directory.User
		for _, e := range []string{"r@x.test", "u1@x.test", "u2@x.test", "fb@x.test"} {
			u, err := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: e})
			if err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		req, u1, u2, fb := users[0], users[1], users[2], users[3]
		w, err := f.gov.CreateWorkflow(f.ctx, governance.WorkflowInput{Key: "both", Steps: &[]governance.WorkflowStep{{Mode: governance.ModeAll,
			Approvers:      []governance.ApproverRef{{Type: governance.ApproverUser, ID: &u1.ID}, {Type: governance.ApproverUser, ID: &u2.ID}},
			TimeoutSeconds: 60, EscalateTo: []governance.ApproverRef{{Type: governance.ApproverUser, ID: &fb.ID}}}}})
		if err != nil {
			t.Fatal(err)
		}
		e := f.ents(t, "a", "b")
		for _, id := range e {
			if _, err := f.gov.UpdateEntitlement(f.ctx, id, governance.EntitlementInput{WorkflowID: &w.ID}, 0); err != nil {
				t.Fatal(err)
			}
		}
		open := func(target uuid.UUID) *governance.Approval {
			a, err := f.gov.RequestAccess(as(req), governance.AccessRequestInput{TargetType: "entitlement", TargetID: target, Justification: "work"})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		approve := func(u *directory.User, id uuid.UUID) (*governance.Approval, error) {
			return f.gov.Decide(as(u), id, governance.DecisionInput{Decision: governance.Approve})
		}
		a := open(e["a"])
		if got, err := approve(u1, a.ID); err != nil || got.Status != governance.StatusPending {
			t.Fatalf("one of two: %+v %v", got, err)
		}
		if _, err := approve(u1, a.ID); apperr.KindOf(err) != apperr.KindConflict {
			t.Fatalf("the same approver twice: %v", err)
		}
		if got, err := approve(u2, a.ID); err != nil || got.Status != governance.StatusApproved || got.AssignmentID == nil {
			t.Fatalf("both: %+v %v", got, err)
		}
		b := open(e["b"])
		if _, err := approve(u1, b.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := approve(fb, b.ID); apperr.KindOf(err) != apperr.KindNotFound {
			t.Fatalf("the fallback before escalation: %v", err)
		}
		*f.clock = f.clock.Add(61 * time.Second)
		if n, err := f.gov.Tick(context.Background()); err != nil || n < 1 {
			t.Fatalf("tick: %d %v", n, err)
		}
		if got, err := approve(fb, b.ID); err != nil || got.Status != governance.StatusApproved {
			t.Fatalf("the fallback completes the step: %+v %v", got, err)
		}
	})
}

// TestApprovalOutcome: how a decided approval ends a held call; an
// approval governance expired is the hold's own timeout.
func TestApprovalOutcome(t *testing.T) {
	for _, c := range []struct {
		a        governance.Approval
		approved bool
		reason   string
		code     string
	}{
		{governance.Approval{Status: governance.StatusApproved}, true, "", ""},
		{governance.Approval{Status: governance.StatusExpired, Reason: "not decided before it expired"}, false, "no approval decision within 1s", "approval_timeout"},
		{governance.Approval{Status: governance.StatusDenied, Reason: "not today"}, false, "the approval was denied: not today", "approval_denied"},
	} {
		ok, reason, code := c.a.Outcome(time.Second)
		if ok != c.approved || reason != c.reason || code != c.code {
			t.Errorf("%s: %v %q %q", c.a.Status, ok, reason, code)
		}
	}
}
