package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/store"
)

// TestAgentPlaneRefusesBadText: NUL characters and invalid UTF-8 in the
// agent plane's paths, queries and token forms get 400 on both backends,
// before any store is asked.
func TestAgentPlaneRefusesBadText(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			slug := uniqueSlug("text")
			tenantAdmin(t, h, slug)
			for _, tc := range []struct{ method, path, body string }{
				{"GET", "/t/" + slug + "/pki/crl?x=%ff%fe", ""},
				{"GET", "/t/" + slug + "/a2a/agents?q=a%00b", ""},
				{"GET", "/t/" + slug + "%00/a2a/agents", ""},
				{"POST", "/t/" + slug + "/oauth/token", "grant_type=client_credentials&client_id=a%00b"},
				{"POST", "/t/" + slug + "/oauth/token", "grant_type=client_credentials&scope=%ff"},
			} {
				req, _ := http.NewRequest(tc.method, h.Agent+tc.path, strings.NewReader(tc.body))
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				resp, err := h.TLS.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_request") {
					t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestTenantCreationIsAtomic: a tenant whose first administrator's
// password the tenant's policy refuses (its own minimum length, or the
// administrator's address in it) is not created at all, so the corrected
// request then succeeds.
func TestTenantCreationIsAtomic(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			slug := uniqueSlug("atomic")
			strict := map[string]any{"policies": map[string]any{"password": map[string]any{"min_length": 30}}}
			for _, bad := range []map[string]any{
				{"slug": slug, "name": "Atomic", "settings": strict, "admin": map[string]any{"email": "root@atomic.test", "password": "Correct-horse-battery-9"}},
				{"slug": slug, "name": "Atomic", "admin": map[string]any{"email": "margaret.hamilton@atomic.test", "password": "margaret.hamilton-Apollo-11"}},
			} {
				resp, body := h.Do("POST", "/api/v1/tenants", bad)
				expect(t, resp, body, 400, "tenant with a refused admin password")
				if !strings.Contains(string(body), "admin.password") {
					t.Fatalf("the refusal does not name admin.password: %s", body)
				}
				_, body = h.Do("GET", "/api/v1/tenants?include_deleted=true&limit=500", nil)
				if strings.Contains(string(body), slug) {
					t.Fatalf("the tenant was created although its administrator was not: %s", body)
				}
			}
			resp, body := h.Do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "Atomic", "settings": strict,
				"admin": map[string]any{"email": "root@atomic.test", "password": "Correct-horse-battery-staple-99"}})
			expect(t, resp, body, 201, "the corrected request")
			h.Login(slug, "root@atomic.test", "Correct-horse-battery-staple-99", 200)
		})
	}
}

// TestApprovalCommentsAndCreateFields: a read-only viewer sees an
// approval but may not comment on it (participants and administrators
// may); an application created with a status has that status, and a bad
// one is refused.
func TestApprovalCommentsAndCreateFields(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			g := apptest.NewGovTenant(t, h, "cmt")
			_, requester := g.User("requester", "")
			viewerID, viewer := g.User("viewer", "")
			resp, body := h.DoAs(g.Tok, "PATCH", "/api/v1/users/"+viewerID, map[string]any{"admin_roles": []string{"viewer"}})
			expect(t, resp, body, 200, "make a viewer")
			ap := g.Request(requester, map[string]any{"target_id": g.Ent("ledger", nil)}, 201)
			comment := map[string]any{"comment": "looks fine to me"}
			resp, body = h.DoAs(viewer, "GET", "/api/v1/approvals/"+ap.ID, nil)
			expect(t, resp, body, 200, "a viewer reads the approval")
			resp, body = h.DoAs(viewer, "POST", "/api/v1/approvals/"+ap.ID+"/comments", comment)
			expect(t, resp, body, 403, "a viewer comments")
			resp, body = h.DoAs(requester, "POST", "/api/v1/approvals/"+ap.ID+"/comments", comment)
			expect(t, resp, body, 201, "the requester comments")
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/approvals/"+ap.ID+"/comments", comment)
			expect(t, resp, body, 201, "an administrator comments")
			resp, body = h.DoAs(g.Tok, "GET", "/api/v1/approvals/"+ap.ID+"/history", nil)
			expect(t, resp, body, 200, "history")
			if n := strings.Count(string(body), "looks fine to me"); n != 2 {
				t.Fatalf("%d comments recorded, want 2: %s", n, body)
			}

			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/applications", map[string]any{"key": "legacy", "name": "Legacy", "status": "inactive"})
			expect(t, resp, body, 201, "an inactive application")
			if got := decode[struct{ Status string }](t, body).Status; got != "inactive" {
				t.Fatalf("created with status %q, want inactive", got)
			}
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/applications", map[string]any{"key": "odd", "name": "Odd", "status": "sleeping"})
			expect(t, resp, body, 400, "an unknown status")
		})
	}
}

// TestAdminRolesAreReadLive: admin rights follow the subject's current
// roles — a demoted admin loses them at the next request and a promoted
// user gains them without signing in again; a token of a subject that
// does not exist is refused; a token signed with a tenant's own key
// claiming super_admin gets no platform rights; only users of the
// operators' tenant hold super_admin, and lose it when demoted.
func TestAdminRolesAreReadLive(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			g := apptest.NewGovTenant(t, h, "roles")
			bobID, bob := g.User("bob", "")
			resp, body := h.DoAs(g.Tok, "PATCH", "/api/v1/users/"+bobID, map[string]any{"admin_roles": []string{"tenant_admin"}})
			expect(t, resp, body, 200, "promote bob")
			newUser := func(tok, name string, want int) {
				t.Helper()
				resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": name + "@" + g.Slug + ".test"})
				expect(t, resp, body, want, "create "+name)
			}
			newUser(bob, "carol", 201) // the token bob had before his promotion
			resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/users/"+bobID, map[string]any{"admin_roles": []string{}})
			expect(t, resp, body, 200, "demote bob")
			newUser(bob, "dave", 403)
			resp, body = h.DoAs(bob, "POST", "/api/v1/users", map[string]any{"email": "eve@" + g.Slug + ".test", "admin_roles": []string{"tenant_admin"}})
			expect(t, resp, body, 403, "a demoted admin makes a new admin")
			resp, body = h.DoAs(g.Tok, "PATCH", "/api/v1/users/"+bobID, map[string]any{"status": "disabled"})
			expect(t, resp, body, 200, "disable bob")
			resp, body = h.DoAs(bob, "GET", "/api/v1/me", nil)
			expect(t, resp, body, 401, "a disabled user's token")

			// Tokens signed with the tenant's own key.
			tenants := map[string]string{}
			_, body = h.Do("GET", "/api/v1/tenants?limit=500", nil)
			for _, tn := range decode[pageJSON[tenantJSON]](t, body).Items {
				tenants[tn.Slug] = tn.ID
			}
			tid := uuid.MustParse(tenants[g.Slug])
			adminID := decodeMe(t, h, g.Tok)
			mint := func(sub string, roles []string) string {
				raw, err := h.App.Tokens().Mint(t.Context(), token.Claims{Claims: jwt.Claims{Subject: sub, Audience: jwt.Audience{h.App.Tokens().AdminAudience()},
					Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute))}, TenantID: tid, SessionID: uuid.NewString(), Roles: roles,
					SubjectKind: "user"})
				if err != nil {
					t.Fatal(err)
				}
				return raw
			}
			resp, body = h.DoAs(mint(adminID, []string{"super_admin", "tenant_admin"}), "GET", "/api/v1/tenants", nil)
			expect(t, resp, body, 403, "a tenant-signed token claiming super_admin")
			resp, body = h.DoAs(mint(uuid.NewString(), []string{"tenant_admin"}), "GET", "/api/v1/users", nil)
			expect(t, resp, body, 401, "a token of a subject that does not exist")

			// super_admin belongs to the operators' tenant.
			resp, body = h.DoAs(g.Tok, "POST", "/api/v1/users", map[string]any{"email": "root@" + g.Slug + ".test", "admin_roles": []string{"super_admin"}})
			expect(t, resp, body, 400, "super_admin in an ordinary tenant")
			op := tenants["operator"]
			if op == "" {
				t.Fatalf("no operators' tenant among %v", tenants)
			}
			resp, body = h.Do("POST", "/api/v1/users", map[string]any{"email": "ops@operator.test", "password": "Corr3ct-horse-battery-9",
				"admin_roles": []string{"super_admin"}}, "X-Tenant-ID", op)
			expect(t, resp, body, 201, "an operator")
			opID := decode[idJSON](t, body).ID
			ops := h.Login("operator", "ops@operator.test", "Corr3ct-horse-battery-9", 200).AccessToken
			resp, body = h.DoAs(ops, "GET", "/api/v1/tenants", nil)
			expect(t, resp, body, 200, "an operator lists tenants")
			resp, body = h.Do("PATCH", "/api/v1/users/"+opID, map[string]any{"admin_roles": []string{}}, "X-Tenant-ID", op)
			expect(t, resp, body, 200, "demote the operator")
			resp, body = h.DoAs(ops, "GET", "/api/v1/tenants", nil)
			expect(t, resp, body, 403, "a demoted operator lists tenants")
			resp, body = h.Do("DELETE", "/api/v1/tenants/"+op, nil)
			expect(t, resp, body, 409, "delete the operators' tenant")
		})
	}
}

// TestMetricsAreOperatorsOnly: /metrics answers operators (the bootstrap
// token) and the scraper's metrics token only, never anonymous callers or
// tenant admins; calls to made-up tool names add no label series of their
// own (they count as "unknown"), and no tenant id is a label.
func TestMetricsAreOperatorsOnly(t *testing.T) {
	const scrape = "metrics-scraper-token-0123456789abcdef"
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_METRICS_TOKEN="+scrape), nil)
	m := setupMCP(t, h, up)
	for _, tc := range []struct {
		bearer string
		want   int
	}{{"", 401}, {"not-the-token", 401}, {m.adminTok, 403}, {scrape, 200}, {testToken, 200}} {
		resp, body := h.DoAs(tc.bearer, "GET", "/metrics", nil)
		if resp.StatusCode != tc.want {
			t.Fatalf("metrics with %q: %d, want %d: %.200s", tc.bearer, resp.StatusCode, tc.want, body)
		}
	}
	c := mcpClient(t, h, m.endpoint, m.agentToken(t, h, m.endpoint), nil)
	if _, err := callTool(c, "tools__echo", map[string]any{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	before := len(h.Metrics(t))
	for i := range 200 {
		name := fmt.Sprintf("tools__made-up-%d-%s", i, strings.Repeat("x", 200))
		if res, err := callTool(c, name, map[string]any{}); err == nil && !res.IsError {
			t.Fatalf("an unknown tool answered: %+v", res)
		}
	}
	after := h.Metrics(t)
	if strings.Contains(after, "made-up") {
		t.Fatal("a made-up tool name became a label value")
	}
	if !strings.Contains(after, `tool="unknown"`) || !strings.Contains(after, `reason="unknown_tool"`) {
		t.Fatal("unknown tools are not counted as unknown")
	}
	if grow := len(after) - before; grow > 4000 {
		t.Fatalf("200 made-up tool names grew the metrics by %d bytes", grow)
	}
	if strings.Contains(after, m.tenantID) {
		t.Fatal("a tenant id is a label without the operator's consent")
	}
	// The tenant's own figures come from its REST API.
	resp, body := h.DoAs(m.adminTok, "GET", "/api/v1/audit/stats?action=mcp.tools.*", nil)
	expect(t, resp, body, 200, "audit stats")
	stats := decode[struct {
		Items []struct {
			Action, Outcome string
			Count           int
		}
	}](t, body)
	counts := map[string]int{}
	for _, it := range stats.Items {
		counts[it.Action+"/"+it.Outcome] = it.Count
	}
	if counts["mcp.tools.call/success"] < 1 || counts["mcp.tools.call/denied"] != 200 {
		t.Fatalf("stats: %s", body)
	}
	resp, body = h.DoAs(m.adminTok, "GET", "/api/v1/audit/stats?since=2026-01-01T00:00:00Z&until=2026-06-01T00:00:00Z", nil)
	expect(t, resp, body, 400, "a window over 31 days")
}

// TestAgentPlaneResourceBounds: a request body that trickles in is cut
// after agent.body_timeout (an answer that takes longer than it, once the
// body is in, is not); a principal's live MCP sessions are bounded (the
// oldest ends) and so are its open streams (429 beyond).
func TestAgentPlaneResourceBounds(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) { agentPlaneResourceBounds(t, flavor) })
	}
}

func agentPlaneResourceBounds(t *testing.T, flavor store.Flavor) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_AGENT_BODY_TIMEOUT=1s",
		"XAVYO_MCP_MAX_SESSIONS_PER_PRINCIPAL=3", "XAVYO_MCP_MAX_STREAMS_PER_PRINCIPAL=2"), nil)
	m := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)

	// A body of 100 bytes sent a byte every 400 ms, unauthenticated.
	u, _ := url.Parse(m.endpoint)
	conn, err := tls.Dial("tcp", u.Host, h.TLS.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", u.Path, u.Host)
	start := time.Now()
	cut := false
	for range 100 {
		if _, err := conn.Write([]byte(" ")); err != nil {
			cut = true
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
		if _, err := conn.Read(make([]byte, 512)); err != nil && !isTimeout(err) {
			cut = true // answered and closed, or closed
			break
		}
	}
	if !cut || time.Since(start) > 5*time.Second {
		t.Fatalf("a trickling body held the connection for %s (cut %v)", time.Since(start), cut)
	}
	// A call answered after longer than the body timeout still arrives.
	c := mcpClient(t, h, m.endpoint, tok, nil)
	res, err := callTool(c, "tools__slow", map[string]any{"ms": 1700})
	if err != nil || resultText(res) != "done" {
		t.Fatalf("a slow call after its body: %v %+v", err, res)
	}

	// Sessions: the fourth ends the first.
	initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	var ids []string
	for range 4 {
		resp, out := rawMCP(t, h.TLS, m.endpoint, initBody, "Authorization", "Bearer "+tok)
		if resp.StatusCode != 200 || out["result"] == nil {
			t.Fatalf("initialize: %d %v", resp.StatusCode, out)
		}
		ids = append(ids, resp.Header.Get("Mcp-Session-Id"))
	}
	ping := `{"jsonrpc":"2.0","id":2,"method":"ping"}`
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, ping, "Authorization", "Bearer "+tok, "Mcp-Session-Id", ids[0], "Mcp-Protocol-Version", "2025-06-18"); resp.StatusCode != 404 {
		t.Fatalf("the oldest session beyond the limit: %d", resp.StatusCode)
	}
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, ping, "Authorization", "Bearer "+tok, "Mcp-Session-Id", ids[3], "Mcp-Protocol-Version", "2025-06-18"); resp.StatusCode != 200 {
		t.Fatalf("the newest session: %d", resp.StatusCode)
	}

	// Streams: two open, the third refused.
	stream := func(id string) *http.Response {
		req, _ := http.NewRequest("GET", m.endpoint, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Mcp-Session-Id", id)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		hc := &http.Client{Transport: h.TLS.Transport}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, id := range ids[1:3] {
		resp := stream(id)
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
	}
	resp := stream(ids[3])
	resp.Body.Close()
	if resp.StatusCode != 429 {
		t.Fatalf("a third stream: %d", resp.StatusCode)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestEgressRefusalIsExplained: syncing a tool server whose address the
// egress policy refuses answers so (403, naming the policy), not "could
// not be reached", and names no address.
func TestEgressRefusalIsExplained(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, env(t, store.SQLite, t.TempDir()), nil) // egress.allow_private off
	slug := uniqueSlug("egress")
	_, tok := tenantAdmin(t, h, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "tools", "name": "Tools",
		"owner_id": decodeMe(t, h, tok), "profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": up.srv.URL + "/mcp"}}})
	expect(t, resp, body, 201, "tool server")
	resp, body = h.DoAs(tok, "POST", "/api/v1/tool-servers/"+decode[apptest.Agent](t, body).ID+"/sync", nil)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "egress policy") || strings.Contains(string(body), "127.0.0.1") {
		t.Fatalf("sync of a refused address: %d %s", resp.StatusCode, body)
	}
}
