package rest_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestGovernanceOverREST: registering a tool server creates its
// application (through the outbox), a catalog sync adds tool
// entitlements, an approved tool assigned to a group reaches a member,
// authorize answers from the snapshot, and every governance resource of
// another tenant is invisible — on both backends.
func TestGovernanceOverREST(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
			slugA, slugB := apptest.UniqueSlug("ga"), apptest.UniqueSlug("gb")
			_, tokA := h.TenantAdmin(t, slugA)
			_, tokB := h.TenantAdmin(t, slugB)
			_, body := h.DoAs(tokA, "GET", "/api/v1/me", nil)
			me := apptest.Decode[userJSON](t, body)
			resp, body := h.DoAs(tokA, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "github", "name": "GitHub MCP",
				"owner_id": me.ID, "profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": "https://mcp.example.test/mcp"}}})
			apptest.Expect(t, resp, body, 201, "register tool server")
			// The application appears once the outbox delivers the NHI event.
			var app idJSON
			for i := 0; ; i++ {
				_, body = h.DoAs(tokA, "GET", "/api/v1/applications?type=mcp_server", nil)
				if strings.Contains(string(body), `"key":"github"`) {
					page := apptest.Decode[struct{ Items []idJSON }](t, body)
					app = page.Items[0]
					break
				}
				if i > 200 {
					t.Fatalf("no application for the tool server: %s", body)
				}
				time.Sleep(25 * time.Millisecond)
			}
			resp, body = h.DoAs(tokA, "POST", "/api/v1/applications/"+app.ID+"/tools/sync", map[string]any{"tools": []any{
				map[string]string{"name": "create_issue", "hash": "h1"}, map[string]string{"name": "delete_repo", "hash": "h2"}}})
			apptest.Expect(t, resp, body, 200, "sync")
			synced := apptest.Decode[[]struct {
				EntitlementID string `json:"entitlement_id"`
				ApprovalState string `json:"approval_state"`
			}](t, body)
			if len(synced) != 2 || synced[0].ApprovalState != "pending" {
				t.Fatalf("sync: %s", body)
			}
			tool := synced[0].EntitlementID
			resp, body = h.DoAs(tokA, "POST", "/api/v1/groups", map[string]any{"name": "Devs"})
			apptest.Expect(t, resp, body, 201, "group")
			group := apptest.Decode[idJSON](t, body)
			h.DoAs(tokA, "PUT", "/api/v1/groups/"+group.ID+"/members/"+me.ID, nil)
			resp, body = h.DoAs(tokA, "POST", "/api/v1/assignments", map[string]any{"subject_type": "group", "subject_id": group.ID,
				"target_type": "entitlement", "target_id": tool, "justification": "devs file issues"})
			apptest.Expect(t, resp, body, 201, "assign")
			ask := map[string]any{"subject": map[string]any{"type": "user", "id": me.ID}, "application": "github", "entitlement": "create_issue"}
			resp, body = h.DoAs(tokA, "POST", "/api/v1/authorize", ask)
			apptest.Expect(t, resp, body, 200, "authorize")
			if !strings.Contains(string(body), `"decision":"deny"`) || !strings.Contains(string(body), "not approved") {
				t.Fatalf("a pending tool was allowed: %s", body)
			}
			resp, body = h.DoAs(tokA, "PATCH", "/api/v1/entitlements/"+tool, map[string]any{"approval_state": "approved"})
			apptest.Expect(t, resp, body, 200, "approve the tool")
			resp, body = h.DoAs(tokA, "POST", "/api/v1/authorize", ask)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"decision":"allow"`) || !strings.Contains(string(body), `"audit_id"`) {
				t.Fatalf("approved tool: %d %s", resp.StatusCode, body)
			}
			resp, body = h.DoAs(tokA, "GET", "/api/v1/effective-access?subject_type=user&subject_id="+me.ID, nil)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"type":"group"`) {
				t.Fatalf("effective access: %d %s", resp.StatusCode, body)
			}

			resp, body = h.DoAs(tokA, "POST", "/api/v1/roles", map[string]any{"key": "dev", "name": "Developer", "entitlement_ids": []string{tool}})
			apptest.Expect(t, resp, body, 201, "role")
			role := apptest.Decode[idJSON](t, body)
			resp, body = h.DoAs(tokA, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": me.ID, "target_type": "role", "target_id": role.ID})
			apptest.Expect(t, resp, body, 201, "assign role")
			assignment := apptest.Decode[idJSON](t, body)

			// Lists, filtered, answer on both backends.
			for path, want := range map[string]string{
				"/api/v1/assignments?subject_type=user&subject_id=" + me.ID: assignment.ID,
				"/api/v1/assignments?target_type=role&target_id=" + role.ID: assignment.ID,
				"/api/v1/applications/" + app.ID + "/entitlements":          tool,
				"/api/v1/nhis?kind=tool_server":                             `"slug":"github"`,
				"/api/v1/nhis?owner_id=" + me.ID:                            `"slug":"github"`,
			} {
				if resp, body := h.DoAs(tokA, "GET", path, nil); resp.StatusCode != 200 || !strings.Contains(string(body), want) {
					t.Errorf("list %s: %d %.300s", path, resp.StatusCode, body)
				}
			}

			// Tenant B sees none of it.
			for _, path := range []string{"/api/v1/roles/" + role.ID, "/api/v1/assignments/" + assignment.ID, "/api/v1/applications/" + app.ID, "/api/v1/entitlements/" + tool, "/api/v1/applications/" + app.ID + "/entitlements",
				"/api/v1/effective-access?subject_type=user&subject_id=" + me.ID} {
				if resp, body := h.DoAs(tokB, "GET", path, nil); resp.StatusCode != 404 {
					t.Errorf("B read %s: %d %s", path, resp.StatusCode, body)
				}
			}
			resp, body = h.DoAs(tokB, "POST", "/api/v1/authorize", ask)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"decision":"deny"`) {
				t.Fatalf("B authorized A's subject: %s", body)
			}
			resp, body = h.DoAs(tokB, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": me.ID,
				"target_type": "entitlement", "target_id": tool})
			if resp.StatusCode != 400 {
				t.Fatalf("B assigned across tenants: %d %s", resp.StatusCode, body)
			}
			_, body = h.DoAs(tokB, "GET", "/api/v1/assignments", nil)
			if strings.Contains(string(body), tool) {
				t.Fatal("B listed A's assignments")
			}
		})
	}
}

// TestSnapshotFollowsChangesOnAnotherReplica: a change made through one
// replica is reflected in the other's snapshot within a second.
func TestSnapshotFollowsChangesOnAnotherReplica(t *testing.T) {
	// Replicas share their public URLs (tokens name them as issuer and audience).
	shared := []string{"XAVYO_ADMIN_PUBLIC_URL=https://admin.xavyo.test", "XAVYO_AGENT_PUBLIC_URL=https://agents.xavyo.test"}
	one := apptest.Start(t, append(apptest.Env(t, store.Postgres, t.TempDir()), shared...), apptest.Options{})
	two := apptest.Start(t, append(apptest.Env(t, store.Postgres, t.TempDir()), shared...), apptest.Options{})
	slug := apptest.UniqueSlug("snap")
	_, tok := one.TenantAdmin(t, slug)
	_, body := one.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	_, body = one.DoAs(tok, "POST", "/api/v1/applications", map[string]any{"key": "crm", "name": "CRM"})
	app := apptest.Decode[idJSON](t, body)
	_, body = one.DoAs(tok, "POST", "/api/v1/applications/"+app.ID+"/entitlements", map[string]any{"key": "export"})
	ent := apptest.Decode[idJSON](t, body)
	ask := map[string]any{"subject": map[string]any{"type": "user", "id": me.ID}, "entitlement_id": ent.ID}
	if _, body := two.DoAs(tok, "POST", "/api/v1/authorize", ask); !strings.Contains(string(body), `"decision":"deny"`) {
		t.Fatalf("replica two before: %s", body)
	}
	resp, body := one.DoAs(tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": me.ID, "target_type": "entitlement", "target_id": ent.ID})
	apptest.Expect(t, resp, body, 201, "assign on replica one")
	begin := time.Now()
	for {
		_, body = two.DoAs(tok, "POST", "/api/v1/authorize", ask)
		if strings.Contains(string(body), `"decision":"allow"`) {
			t.Logf("replica two allowed after %v", time.Since(begin))
			break
		}
		if time.Since(begin) > time.Second {
			t.Fatalf("replica two still denies after a second: %s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type idJSON struct {
	ID string `json:"id"`
}

type userJSON struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}
