package rest_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestWebhooksNotifyApprovers: an access request's pending approval and
// its decision reach the tenant's endpoint, naming the approvers.
func TestWebhooksNotifyApprovers(t *testing.T) {
	sink := &apptest.WebhookSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	g := apptest.NewGovTenant(t, h, "wha")
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL, "events": []string{"approval."}})
	apptest.Expect(t, resp, body, 201, "subscribe")
	sink.SetSecret(apptest.Decode[struct{ Secret string }](t, body).Secret)
	ownerID, ownerTok := g.User("olivia", "")
	_, aliceTok := g.User("alice", "")
	ent := g.Ent("pay", map[string]any{"owner_id": ownerID})
	req := g.Request(aliceTok, map[string]any{"target_id": ent}, 201)
	find := func(typ string) map[string]any {
		for _, ev := range sink.Events() {
			if ev["type"] == typ {
				return ev
			}
		}
		return nil
	}
	apptest.WaitFor(t, "approval.pending at the endpoint", func() bool { return find("approval.pending") != nil })
	if data := fmt.Sprint(find("approval.pending")["data"]); !strings.Contains(data, ownerID) || !strings.Contains(data, req.ID) {
		t.Fatalf("the pending approval does not name its approver: %s", data)
	}
	resp, body = h.DoAs(ownerTok, "POST", "/api/v1/approvals/"+req.ID+"/decision", map[string]any{"decision": "approve"})
	apptest.Expect(t, resp, body, 200, "approve")
	apptest.WaitFor(t, "approval.decided at the endpoint", func() bool { return find("approval.decided") != nil })
	if data := fmt.Sprint(find("approval.decided")["data"]); !strings.Contains(data, "approved") {
		t.Fatalf("the decision: %s", data)
	}
	if bad := sink.Bad(); len(bad) > 0 {
		t.Fatalf("unverified deliveries: %v", bad)
	}
}
