package rest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

type pageJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func holds(list []apptest.Approval, id string) bool {
	for _, a := range list {
		if a.ID == id {
			return true
		}
	}
	return false
}

// TestAccessRequestsOverREST walks the access-request scenarios over REST
// on both backends: a two-step approval becoming an assignment with the
// requested expiry; queues, history, comments, cancel; delegation;
// auto-approval; escalation after a timeout and expiry after a second;
// two approvers deciding one step at once; separation of duties refusing
// a request, a direct, a role and a group assignment by rule name, an
// exemption letting one through until it expires and the detective scan
// reporting it then; an agent's owner requesting a tool for the agent and
// the tool server's owner approving; and tenant isolation throughout.
func TestAccessRequestsOverREST(t *testing.T) {
	t.Parallel() // waits more than it works: it overlaps the other waiting suites
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := apptest.Start(t, apptest.EnvOwn(t, flavor, t.TempDir()), apptest.Options{})
			var notes sync.Map // event kind + approval ID → seen
			unsubscribe := h.App.Bus().Subscribe(func(m events.Message) {
				if strings.HasPrefix(m.Change.Kind, "approval.") {
					notes.Store(m.Change.Kind+" "+m.Change.ID, true)
				}
			})
			defer unsubscribe()
			g := apptest.NewGovTenant(t, h, "ar")
			mgrID, mgrTok := g.User("mallory", "")
			aliceID, aliceTok := g.User("alice", mgrID)
			ownerID, ownerTok := g.User("olivia", "")
			_, strangerTok := g.User("sam", "")

			// Two steps: the requester's manager, then the entitlement's owner.
			twoStep := g.Workflow("two-step", map[string]any{"name": "Manager then owner", "steps": []any{
				map[string]any{"name": "manager", "approvers": []any{map[string]string{"type": "manager"}}},
				map[string]any{"name": "owner", "approvers": []any{map[string]string{"type": "entitlement_owner"}}}}})
			pay := g.Ent("pay", map[string]any{"owner_id": ownerID, "risk_level": "high", "workflow_id": twoStep})
			req := g.Request(aliceTok, map[string]any{"target_id": pay, "duration_seconds": 3600}, 201)
			if req.Status != "pending" || req.CurrentStep != 0 {
				t.Fatalf("new request: %+v", req)
			}
			if got := g.Approval(aliceTok, req.ID); len(got.Approvers) != 1 || got.Approvers[0].UserID != mgrID || got.Approvers[0].Via != "manager" {
				t.Fatalf("step 1 approvers: %+v", got.Approvers)
			}
			if !holds(g.Queue(aliceTok, "mine"), req.ID) || holds(g.Queue(aliceTok, "to_decide"), req.ID) || !holds(g.Queue(mgrTok, "to_decide"), req.ID) ||
				holds(g.Queue(ownerTok, "to_decide"), req.ID) {
				t.Fatal("queues do not show the request to exactly the requester and the step's approver")
			}
			g.Decide(aliceTok, req.ID, "approve", 0, 403)    // nobody approves their own request
			g.Decide(ownerTok, req.ID, "approve", 0, 404)    // step 2's approver: not involved (nor able to see it) before step 2 opens
			g.Decide(strangerTok, req.ID, "approve", 0, 404) // cannot even see it
			after1 := g.Decide(mgrTok, req.ID, "approve", 0, 200)
			if after1.Status != "pending" || after1.CurrentStep != 1 {
				t.Fatalf("after step 1: %+v", after1)
			}
			g.Decide(mgrTok, req.ID, "approve", 0, 409) // a decision meant for a step that moved on
			if !holds(g.Queue(ownerTok, "to_decide"), req.ID) || holds(g.Queue(mgrTok, "to_decide"), req.ID) {
				t.Fatal("step 2 is not in the owner's queue alone")
			}
			resp, body := h.DoAs(ownerTok, "POST", "/api/v1/approvals/"+req.ID+"/comments", map[string]any{"comment": "is this for the close?"})
			apptest.Expect(t, resp, body, 201, "comment")
			done := g.Decide(ownerTok, req.ID, "approve", 1, 200)
			if done.Status != "approved" || done.AssignmentID == nil {
				t.Fatalf("after step 2: %+v", done)
			}
			resp, body = h.DoAs(g.Tok, "GET", "/api/v1/assignments/"+*done.AssignmentID, nil)
			apptest.Expect(t, resp, body, 200, "assignment")
			as := apptest.Decode[struct {
				Source     string    `json:"source"`
				SubjectID  string    `json:"subject_id"`
				ValidUntil time.Time `json:"valid_until"`
			}](t, body)
			if as.Source != "request" || as.SubjectID != aliceID || time.Until(as.ValidUntil) < 55*time.Minute || time.Until(as.ValidUntil) > 61*time.Minute {
				t.Fatalf("assignment from the request: %s", body)
			}
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/authorize", map[string]any{"subject": map[string]any{"type": "user", "id": aliceID},
				"application": "erp", "entitlement": "pay"})
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"decision":"allow"`) {
				t.Fatalf("granted access is not allowed: %d %s", resp.StatusCode, body)
			}
			resp, body = h.DoAs(aliceTok, "GET", "/api/v1/approvals/"+req.ID+"/history", nil)
			apptest.Expect(t, resp, body, 200, "history")
			for _, want := range []string{`"type":"opened"`, `"type":"step_opened"`, `"type":"decision"`, `"type":"comment"`, `"type":"approved"`, "is this for the close?"} {
				if !strings.Contains(string(body), want) {
					t.Fatalf("history lacks %s: %s", want, body)
				}
			}
			g.Decide(ownerTok, req.ID, "approve", 1, 409) // already approved
			for _, kind := range []string{"approval.pending", "approval.decided"} {
				apptest.WaitFor(t, kind+" notification", func() bool { _, ok := notes.Load(kind + " " + req.ID); return ok })
			}

			// Cancel, and a catalog search.
			read := g.Ent("read-ledger", map[string]any{"name": "Read the ledger", "owner_id": ownerID})
			cancelled := g.Request(aliceTok, map[string]any{"target_id": read}, 201)
			g.Request(aliceTok, map[string]any{"target_id": read}, 409) // one pending request per access
			resp, body = h.DoAs(ownerTok, "POST", "/api/v1/approvals/"+cancelled.ID+"/cancel", map[string]any{})
			apptest.Expect(t, resp, body, 403, "cancel by its approver")
			resp, body = h.DoAs(mgrTok, "POST", "/api/v1/approvals/"+cancelled.ID+"/cancel", map[string]any{})
			apptest.Expect(t, resp, body, 404, "cancel by someone not involved")
			resp, body = h.DoAs(aliceTok, "POST", "/api/v1/approvals/"+cancelled.ID+"/cancel", map[string]any{"comment": "not needed"})
			apptest.Expect(t, resp, body, 200, "cancel")
			if apptest.Decode[apptest.Approval](t, body).Status != "cancelled" {
				t.Fatalf("cancel: %s", body)
			}
			resp, body = h.DoAs(aliceTok, "GET", "/api/v1/request-catalog?q=LEDGER", nil)
			apptest.Expect(t, resp, body, 200, "catalog")
			if items := apptest.Decode[pageJSON[struct{ ID, Type string }]](t, body).Items; len(items) != 1 || items[0].ID != read {
				t.Fatalf("catalog search: %s", body)
			}
			hidden := g.Ent("hidden", map[string]any{"requestable": false})
			g.Request(aliceTok, map[string]any{"target_id": hidden}, 400)

			// Delegation: the manager is away; the delegate decides for them.
			delegateID, delegateTok := g.User("dora", "")
			resp, body = h.DoAs(mgrTok, "POST", "/api/v1/approval-delegations", map[string]any{"delegate_id": delegateID,
				"ends_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "reason": "holiday"})
			apptest.Expect(t, resp, body, 201, "delegation")
			delegation := apptest.Decode[idJSON](t, body).ID
			viaDelegate := g.Request(aliceTok, map[string]any{"target_id": g.Ent("expenses", map[string]any{"workflow_id": g.Workflow("manager-only",
				map[string]any{"steps": []any{map[string]any{"approvers": []any{map[string]string{"type": "manager"}}}}})})}, 201)
			if !holds(g.Queue(delegateTok, "to_decide"), viaDelegate.ID) {
				t.Fatal("the delegate's queue lacks the delegator's approval")
			}
			if got := g.Decide(delegateTok, viaDelegate.ID, "approve", 0, 200); got.Status != "approved" {
				t.Fatalf("delegate decision: %+v", got)
			}
			_, body = h.DoAs(aliceTok, "GET", "/api/v1/approvals/"+viaDelegate.ID+"/history", nil)
			if !strings.Contains(string(body), `"on_behalf_of":"`+mgrID+`"`) {
				t.Fatalf("the delegate's decision does not say for whom: %s", body)
			}

			// Auto-approval for low risk.
			auto := g.Workflow("auto-low", map[string]any{"auto_approve_max_risk": "low", "steps": []any{map[string]any{"approvers": []any{map[string]string{"type": "manager"}}}}})
			got := g.Request(aliceTok, map[string]any{"target_id": g.Ent("wiki", map[string]any{"risk_level": "low", "workflow_id": auto})}, 201)
			if got.Status != "approved" || got.AssignmentID == nil || !strings.Contains(got.Reason, "auto-approved") {
				t.Fatalf("low-risk request: %+v", got)
			}

			// Escalation after the step's timeout, then expiry after a second one.
			fallbackID, fallbackTok := g.User("fred", "")
			escalating := g.Workflow("escalating", map[string]any{"steps": []any{map[string]any{"approvers": []any{map[string]any{"type": "user", "id": ownerID}},
				"timeout_seconds": 1, "escalate_to": []any{map[string]any{"type": "user", "id": fallbackID}}}}})
			esc := g.Request(aliceTok, map[string]any{"target_id": g.Ent("reports", map[string]any{"workflow_id": escalating})}, 201)
			apptest.WaitFor(t, "escalation", func() bool { return g.Approval(aliceTok, esc.ID).Escalated })
			if a := g.Approval(aliceTok, esc.ID); a.Status != "pending" || !approverVia(a, fallbackID, "escalation") {
				t.Fatalf("escalated approval: %+v", a)
			}
			if got := g.Decide(fallbackTok, esc.ID, "approve", 0, 200); got.Status != "approved" {
				t.Fatalf("fallback decision: %+v", got)
			}
			lapsed := g.Request(aliceTok, map[string]any{"target_id": g.Ent("archive", map[string]any{"workflow_id": escalating})}, 201)
			apptest.WaitFor(t, "expiry after escalation", func() bool { return g.Approval(aliceTok, lapsed.ID).Status == "expired" })

			// Two approvers deciding one any-of step at once: one decision.
			p1ID, p1Tok := g.User("pat", "")
			p2ID, p2Tok := g.User("quinn", "")
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/groups", map[string]any{"name": "Approvers"})
			apptest.Expect(t, resp, body, 201, "group")
			approvers := apptest.Decode[idJSON](t, body).ID
			for _, u := range []string{p1ID, p2ID} {
				resp, body = h.DoAs(g.Tok, "PUT", "/api/v1/groups/"+approvers+"/members/"+u, nil)
				if resp.StatusCode >= 300 {
					t.Fatalf("member: %d %s", resp.StatusCode, body)
				}
			}
			byGroup := g.Workflow("by-group", map[string]any{"steps": []any{map[string]any{"approvers": []any{map[string]any{"type": "group", "id": approvers}}}}})
			for round := range 3 {
				race := g.Request(aliceTok, map[string]any{"target_id": g.Ent(fmt.Sprintf("race-%d", round), map[string]any{"workflow_id": byGroup})}, 201)
				codes := make([]int, 2)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i, tok := range []string{p1Tok, p2Tok} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						decision := "approve"
						if i == 1 && round == 2 {
							decision = "deny" // an approval and a denial at once: one of them wins
						}
						resp, _ := h.DoAs(tok, "POST", "/api/v1/approvals/"+race.ID+"/decision", map[string]any{"decision": decision, "step": 0})
						codes[i] = resp.StatusCode
					}()
				}
				close(start)
				wg.Wait()
				if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
					t.Fatalf("round %d: two approvers at once got %v", round, codes)
				}
				_, body = h.DoAs(aliceTok, "GET", "/api/v1/approvals/"+race.ID+"/history", nil)
				if n := strings.Count(string(body), `"type":"decision"`); n != 1 {
					t.Fatalf("round %d: %d decisions recorded: %s", round, n, body)
				}
			}

			// Separation of duties.
			approvePay := g.Ent("approve-pay", map[string]any{"owner_id": ownerID})
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/sod-rules", map[string]any{"key": "pay-vs-approve", "name": "Pay or approve, not both",
				"kind": "conflict", "severity": "critical", "entitlement_ids": []string{pay}, "conflicting_ids": []string{approvePay}})
			apptest.Expect(t, resp, body, 201, "sod rule")
			rule := apptest.Decode[idJSON](t, body).ID
			resp, body = h.DoAs(aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": approvePay, "justification": "x"})
			if resp.StatusCode != 409 || !strings.Contains(string(body), "pay-vs-approve") {
				t.Fatalf("an SoD-violating request: %d %s", resp.StatusCode, body)
			}
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/roles", map[string]any{"key": "approver", "name": "Approver", "entitlement_ids": []string{approvePay}})
			apptest.Expect(t, resp, body, 201, "role")
			role := apptest.Decode[idJSON](t, body).ID
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/groups", map[string]any{"name": "Alice's team"})
			apptest.Expect(t, resp, body, 201, "group")
			team := apptest.Decode[idJSON](t, body).ID
			h.DoAs(g.Tok, "PUT", "/api/v1/groups/"+team+"/members/"+aliceID, nil)
			for _, path := range []map[string]any{
				{"subject_type": "user", "subject_id": aliceID, "target_type": "entitlement", "target_id": approvePay},
				{"subject_type": "user", "subject_id": aliceID, "target_type": "role", "target_id": role},
				{"subject_type": "group", "subject_id": team, "target_type": "entitlement", "target_id": approvePay},
			} {
				resp, body = h.DoAs(g.Tok, "POST", "/api/v1/assignments", path)
				if resp.StatusCode != 409 || !strings.Contains(string(body), `rule \"pay-vs-approve\"`) || !strings.Contains(string(body), "erp/approve-pay") {
					t.Fatalf("assignment %v: %d %s", path, resp.StatusCode, body)
				}
			}
			// Bob holds neither: the same role goes through.
			bobID, _ := g.User("bob", "")
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": bobID, "target_type": "role", "target_id": role})
			apptest.Expect(t, resp, body, 201, "role without conflict")
			// An exemption lets Alice through until it expires.
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/sod-exemptions", map[string]any{"rule_id": rule, "subject_type": "user", "subject_id": aliceID,
				"justification": "covering for Bob this week", "expires_at": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)})
			apptest.Expect(t, resp, body, 201, "exemption")
			exemption := apptest.Decode[idJSON](t, body).ID
			if !strings.Contains(string(body), `"approved_by":"user:`) {
				t.Fatalf("exemption without its approver: %s", body)
			}
			exemptedAt := time.Now()
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": aliceID, "target_type": "entitlement", "target_id": approvePay})
			apptest.Expect(t, resp, body, 201, "exempted assignment")
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/sod-scans", nil)
			apptest.Expect(t, resp, body, 200, "scan")
			scan := apptest.Decode[struct{ Open, New, Exempted int }](t, body)
			if scan.Open != 0 || scan.Exempted != 1 {
				t.Fatalf("scan during the exemption: %s", body)
			}
			time.Sleep(time.Until(exemptedAt.Add(2500 * time.Millisecond)))
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/sod-scans", nil)
			apptest.Expect(t, resp, body, 200, "scan")
			if scan = apptest.Decode[struct{ Open, New, Exempted int }](t, body); scan.Open != 1 || scan.New != 1 {
				t.Fatalf("scan after the exemption expired: %s", body)
			}
			resp, body = h.DoAs(g.Tok, "GET", "/api/v1/sod-violations?status=open", nil)
			apptest.Expect(t, resp, body, 200, "violations")
			if !strings.Contains(string(body), `"rule_key":"pay-vs-approve"`) || !strings.Contains(string(body), aliceID) {
				t.Fatalf("violations: %s", body)
			}
			resp, body = h.DoAs(g.Tok, "GET", "/api/v1/audit?action=governance.sod_violation.*", nil)
			if resp.StatusCode != 200 || !strings.Contains(string(body), "governance.sod_violation.detect") {
				t.Fatalf("violation not audited: %d %.300s", resp.StatusCode, body)
			}

			// An agent's owner requests a tool for the agent; the tool server's owner approves.
			agentOwnerID, agentOwnerTok := g.User("ayla", "")
			toolOwnerID, toolOwnerTok := g.User("tomas", "")
			resp, body = h.DoAs(agentOwnerTok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "triage-bot", "name": "Triage bot", "owner_id": agentOwnerID})
			apptest.Expect(t, resp, body, 201, "agent")
			agent := apptest.Decode[idJSON](t, body).ID
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "tracker", "name": "Tracker MCP", "owner_id": toolOwnerID,
				"profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": "https://mcp.example.test/mcp"}}})
			apptest.Expect(t, resp, body, 201, "tool server")
			var trackerApp string
			apptest.WaitFor(t, "tool server application", func() bool {
				_, body := h.DoAs(g.Tok, "GET", "/api/v1/applications?type=mcp_server", nil)
				for _, a := range apptest.Decode[pageJSON[struct{ ID, Key string }]](t, body).Items {
					if a.Key == "tracker" {
						trackerApp = a.ID
					}
				}
				return trackerApp != ""
			})
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/applications/"+trackerApp+"/tools/sync", map[string]any{"auto_approve": true,
				"tools": []any{map[string]string{"name": "close_ticket", "hash": "h1"}}})
			apptest.Expect(t, resp, body, 200, "sync")
			tool := apptest.Decode[[]struct {
				EntitlementID string `json:"entitlement_id"`
			}](t, body)[0].EntitlementID
			resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/entitlements/"+tool, map[string]any{"requestable": true})
			apptest.Expect(t, resp, body, 200, "make the tool requestable")
			_, body = h.DoAs(agentOwnerTok, "GET", "/api/v1/request-catalog?kind=mcp_tool", nil)
			if !strings.Contains(string(body), tool) {
				t.Fatalf("the tool is not in the catalog: %s", body)
			}
			g.Request(strangerTok, map[string]any{"subject_type": "nhi", "subject_id": agent, "target_id": tool}, 403)
			forAgent := g.Request(agentOwnerTok, map[string]any{"subject_type": "nhi", "subject_id": agent, "target_id": tool, "justification": "triage needs to close tickets"}, 201)
			if a := g.Approval(agentOwnerTok, forAgent.ID); len(a.Approvers) != 1 || a.Approvers[0].UserID != toolOwnerID || a.Approvers[0].Via != "application_owner" {
				t.Fatalf("tool request approvers: %+v", a.Approvers)
			}
			granted := g.Decide(toolOwnerTok, forAgent.ID, "approve", 0, 200)
			if granted.Status != "approved" || granted.AssignmentID == nil {
				t.Fatalf("tool request: %+v", granted)
			}
			_, body = h.DoAs(g.Tok, "POST", "/api/v1/authorize", map[string]any{"subject": map[string]any{"type": "nhi", "id": agent},
				"application": "tracker", "entitlement": "close_ticket"})
			if !strings.Contains(string(body), `"decision":"allow"`) {
				t.Fatalf("the agent may not call the granted tool: %s", body)
			}
			resp, body = h.DoAs(g.Tok, "GET", "/api/v1/audit?action=governance.approval.*", nil)
			if n := strings.Count(string(body), `"governance.approval.decide"`); resp.StatusCode != 200 || n < 5 {
				t.Fatalf("decisions audited: %d in %d %.300s", n, resp.StatusCode, body)
			}

			// Tenant B sees and decides none of it; A's approvers cannot decide B's requests.
			b := apptest.NewGovTenant(t, h, "br")
			bEnt := b.Ent("b-only", map[string]any{})
			bReq := b.Request(b.Tok, map[string]any{"subject_type": "user", "subject_id": decodeMe(t, h, b.Tok), "target_id": bEnt}, 201)
			for _, tok := range []string{g.Tok, mgrTok} {
				resp, body = h.DoAs(tok, "POST", "/api/v1/approvals/"+bReq.ID+"/decision", map[string]any{"decision": "approve"})
				if resp.StatusCode != 404 {
					t.Fatalf("tenant A decided B's request: %d %s", resp.StatusCode, body)
				}
			}
			for _, path := range []string{"/api/v1/approvals/" + req.ID, "/api/v1/approvals/" + req.ID + "/history", "/api/v1/sod-rules/" + rule,
				"/api/v1/approval-workflows/" + twoStep} {
				if resp, body := h.DoAs(b.Tok, "GET", path, nil); resp.StatusCode != 404 {
					t.Errorf("B read %s: %d %s", path, resp.StatusCode, body)
				}
			}
			for _, path := range []string{"/api/v1/approvals?queue=all", "/api/v1/sod-violations", "/api/v1/sod-exemptions", "/api/v1/approval-delegations?all=true",
				"/api/v1/request-catalog"} {
				if _, body := h.DoAs(b.Tok, "GET", path, nil); strings.Contains(string(body), aliceID) || strings.Contains(string(body), req.ID) || strings.Contains(string(body), pay) {
					t.Errorf("B listed A's records at %s: %.300s", path, body)
				}
			}
			for _, w := range []struct{ method, path string }{{"DELETE", "/api/v1/approval-delegations/" + delegation},
				{"DELETE", "/api/v1/sod-exemptions/" + exemption}, {"DELETE", "/api/v1/sod-rules/" + rule}, {"DELETE", "/api/v1/approval-workflows/" + twoStep},
				{"POST", "/api/v1/approvals/" + cancelled.ID + "/comments"}, {"POST", "/api/v1/approvals/" + esc.ID + "/cancel"}} {
				if resp, body := h.DoAs(b.Tok, w.method, w.path, map[string]any{"comment": "hello"}); resp.StatusCode != 404 {
					t.Errorf("B %s %s: %d %s", w.method, w.path, resp.StatusCode, body)
				}
			}
			resp, body = h.DoAs(b.Tok, "PATCH", "/api/v1/sod-rules/"+rule, map[string]any{"enabled": false})
			apptest.Expect(t, resp, body, 404, "B changes A's rule")
			b.Request(b.Tok, map[string]any{"subject_type": "user", "subject_id": decodeMe(t, h, b.Tok), "target_id": pay}, 400)
			resp, body = h.DoAs(b.Tok, "POST", "/api/v1/sod-exemptions", map[string]any{"rule_id": rule, "subject_type": "user", "subject_id": aliceID,
				"justification": "x", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
			apptest.Expect(t, resp, body, 400, "exemption across tenants")
		})
	}
}

func approverVia(a apptest.Approval, user, via string) bool {
	for _, p := range a.Approvers {
		if p.UserID == user && p.Via == via {
			return true
		}
	}
	return false
}

func decodeMe(t *testing.T, h *apptest.Harness, tok string) string {
	t.Helper()
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	return apptest.Decode[userJSON](t, body).ID
}

// TestAccessRequestBadInput: malformed or invalid requests get a clear
// 4xx naming the problem and change nothing.
func TestAccessRequestBadInput(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "bi")
	ownerID, _ := g.User("olivia", "")
	_, aliceTok := g.User("alice", "")
	ent := g.Ent("pay", map[string]any{"owner_id": ownerID})
	req := g.Request(aliceTok, map[string]any{"target_id": ent}, 201)
	for _, c := range []struct {
		tok, method, path string
		body              any
		want              int
		mention           string
	}{
		{aliceTok, "POST", "/api/v1/access-requests", `{"target_type":"entitlement",`, 400, ""},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": ent, "justification": "x", "colour": "red"}, 400, "colour"},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": ent}, 400, "justification"},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "group", "target_id": ent, "justification": "x"}, 400, "target_type"},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": "not-a-uuid", "justification": "x"}, 400, "target_id"},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": ent, "justification": "x", "duration_seconds": -5}, 400, "duration_seconds"},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": ent, "justification": "x", "subject_type": "group", "subject_id": ownerID}, 400, "subject_type"},
		{aliceTok, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": ent, "justification": "x", "subject_type": "user", "subject_id": ownerID}, 403, "yourself"},
		{aliceTok, "GET", "/api/v1/approvals?queue=everything", nil, 400, "queue"},
		{aliceTok, "GET", "/api/v1/approvals?queue=all", nil, 403, "governance readers"},
		{aliceTok, "GET", "/api/v1/approvals?status=maybe", nil, 400, "status"},
		{aliceTok, "GET", "/api/v1/approvals/not-a-uuid", nil, 400, "id"},
		{aliceTok, "POST", "/api/v1/approvals/" + req.ID + "/decision", map[string]any{"decision": "perhaps"}, 400, "decision"},
		{aliceTok, "POST", "/api/v1/approvals/" + req.ID + "/comments", map[string]any{"comment": ""}, 400, "comment"},
		{aliceTok, "POST", "/api/v1/sod-rules", map[string]any{"key": "r", "kind": "conflict"}, 403, "role required"},
		{g.Tok, "POST", "/api/v1/sod-rules", map[string]any{"key": "r", "kind": "conflict", "entitlement_ids": []string{ent}}, 400, "conflicting_ids"},
		{g.Tok, "POST", "/api/v1/sod-exemptions", map[string]any{"rule_id": ent, "subject_type": "user", "subject_id": ownerID, "justification": "x",
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, 400, "rule_id"},
		{g.Tok, "POST", "/api/v1/approval-workflows", map[string]any{"key": "w", "steps": []any{map[string]any{"approvers": []any{map[string]string{"type": "boss"}}}}}, 400, "type"},
		{aliceTok, "POST", "/api/v1/approval-delegations", map[string]any{"delegate_id": ownerID, "ends_at": "2020-01-01T00:00:00Z"}, 400, "ends_at"},
		{aliceTok, "GET", "/api/v1/request-catalog?type=thing", nil, 400, "type"},
	} {
		resp, body := h.DoAs(c.tok, c.method, c.path, c.body)
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.mention) {
			t.Errorf("%s %s %v: %d %s", c.method, c.path, c.body, resp.StatusCode, body)
		}
	}
	// Nothing changed: one request, pending, no decision, no rule, no workflow.
	if a := g.Approval(aliceTok, req.ID); a.Status != "pending" || a.CurrentStep != 0 {
		t.Fatalf("the request changed: %+v", a)
	}
	resp, body := h.DoAs(aliceTok, "GET", "/api/v1/approvals/"+req.ID+"/history", nil)
	if resp.StatusCode != 200 || strings.Count(string(body), `"type":`) != 2 {
		t.Fatalf("history after bad input: %s", body)
	}
	for _, path := range []string{"/api/v1/sod-rules", "/api/v1/approval-workflows", "/api/v1/sod-exemptions"} {
		if _, body := h.DoAs(g.Tok, "GET", path, nil); !strings.Contains(string(body), `"items":[]`) {
			t.Errorf("%s after bad input: %s", path, body)
		}
	}
	if mine := g.Queue(aliceTok, "mine"); len(mine) != 1 {
		t.Fatalf("requests after bad input: %+v", mine)
	}
}
