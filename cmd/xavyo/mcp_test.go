package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/store"
)

// upstreamSecret is the credential the gateway presents to the test upstream.
const upstreamSecret = "upstream-secret-7f3a"

// testUpstream is a real MCP server (mcp-go, streamable HTTP) that
// demands its own bearer token and records what the gateway sent it.
type testUpstream struct {
	srv      *httptest.Server
	mcp      *mcpserver.MCPServer
	calls    atomic.Int64
	badAuth  atomic.Int64
	deletes  atomic.Int64 // authorized DELETEs (sessions ended)
	echoed   sync.Map     // texts echo ran with → true
	mu       sync.Mutex
	authSeen map[string]bool
}

func newTestUpstream(t *testing.T) *testUpstream {
	t.Helper()
	u := &testUpstream{authSeen: map[string]bool{}}
	s := mcpserver.NewMCPServer("test-upstream", "1.0.0", mcpserver.WithToolCapabilities(true), mcpserver.WithPaginationLimit(2),
		mcpserver.WithPromptCapabilities(true), mcpserver.WithResourceCapabilities(false, true))
	s.AddPrompt(mcp.NewPrompt("greet", mcp.WithArgument("who")), func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return mcp.NewGetPromptResult("greeting", []mcp.PromptMessage{
			mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("Hello, "+req.Params.Arguments["who"]))}), nil
	})
	s.AddResource(mcp.NewResource("docs://readme", "readme", mcp.WithMIMEType("text/plain")), func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: "docs://readme", MIMEType: "text/plain", Text: "read me"}}, nil
	})
	text := func(s string) *mcp.CallToolResult { return mcp.NewToolResultText(s) }
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echo the text."), mcp.WithString("text", mcp.Required(), mcp.MaxLength(100))),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			u.calls.Add(1)
			v, _ := req.RequireString("text")
			u.echoed.Store(v, true)
			return text(v), nil
		})
	s.AddTool(mcp.NewTool("add", mcp.WithNumber("a", mcp.Required()), mcp.WithNumber("b", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			u.calls.Add(1)
			a, _ := req.RequireFloat("a")
			b, _ := req.RequireFloat("b")
			return text(fmt.Sprint(a + b)), nil
		})
	s.AddTool(mcp.NewTool("delete_repo", mcp.WithString("name", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			u.calls.Add(1)
			return text("deleted"), nil
		})
	s.AddTool(mcp.NewTool("slow", mcp.WithNumber("ms", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			u.calls.Add(1)
			ms, _ := req.RequireFloat("ms")
			if tok := req.Params.Meta; tok != nil && tok.ProgressToken != nil {
				_ = mcpserver.ServerFromContext(ctx).SendNotificationToClient(ctx, "notifications/progress",
					map[string]any{"progressToken": tok.ProgressToken, "progress": 1, "total": 2, "message": "half way"})
			}
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return text("done"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	u.mcp = s
	h := mcpserver.NewStreamableHTTPServer(s)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		u.mu.Lock()
		u.authSeen[auth] = true
		u.mu.Unlock()
		if auth != "Bearer "+upstreamSecret {
			u.badAuth.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			u.deletes.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeUpstream(t, u.srv) })
	return u
}

// closeUpstream closes a test tool server once xavyo has stopped (the
// cleanups run in reverse): a connection of xavyo's still open then is a
// leak, reported, and cut so that the test ends instead of hanging.
func closeUpstream(t *testing.T, srv *httptest.Server) {
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("a connection to the tool server outlived the gateway")
		srv.CloseClientConnections()
		<-done
	}
}

// mcpSetup is a tenant with a synced tool server, an agent and grants.
type mcpSetup struct {
	slug, adminTok, ownerID string
	tenantID                string
	server                  apptest.Agent
	agent                   apptest.Agent
	ents                    map[string]string // tool → entitlement ID
	assign                  map[string]string // tool → assignment ID
	endpoint                string
}

func setupMCP(t *testing.T, h *harness, up *testUpstream) *mcpSetup {
	t.Helper()
	m := &mcpSetup{slug: uniqueSlug("mcp"), ents: map[string]string{}, assign: map[string]string{}}
	m.tenantID, m.adminTok = tenantAdmin(t, h, m.slug)
	_, body := h.DoAs(m.adminTok, "GET", "/api/v1/me", nil)
	m.ownerID = decode[userJSON](t, body).ID
	resp, body := h.DoAs(m.adminTok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "tools", "name": "Tools",
		"owner_id": m.ownerID, "profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": up.srv.URL + "/mcp"}}})
	expect(t, resp, body, 201, "create tool server")
	m.server = decode[apptest.Agent](t, body)
	resp, body = h.DoAs(m.adminTok, "PUT", "/api/v1/tool-servers/"+m.server.ID+"/upstream",
		map[string]any{"credential_type": "bearer", "token": upstreamSecret, "timeout_ms": 2000})
	expect(t, resp, body, 200, "upstream settings")
	if strings.Contains(string(body), upstreamSecret) {
		t.Fatalf("settings echo the secret: %s", body)
	}
	tools := syncTools(t, h, m.adminTok, m.server.ID)
	if len(tools) != 4 {
		t.Fatalf("sync found %d tools: %v", len(tools), tools)
	}
	for name, tl := range tools {
		if tl.ApprovalState != "pending" {
			t.Fatalf("a new tool must wait for approval: %s %+v", name, tl)
		}
		m.ents[name] = tl.EntitlementID
	}
	// Approve all but delete_repo's grant; leave "slow" approved too.
	for _, name := range []string{"echo", "add", "delete_repo", "slow"} {
		resp, body = h.DoAs(m.adminTok, "PATCH", "/api/v1/entitlements/"+m.ents[name], map[string]any{"approval_state": "approved"})
		expect(t, resp, body, 200, "approve "+name)
	}
	resp, body = h.DoAs(m.adminTok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "helper", "name": "Helper", "owner_id": m.ownerID})
	expect(t, resp, body, 201, "create agent")
	m.agent = decode[apptest.Agent](t, body)
	for _, name := range []string{"echo", "add", "slow"} {
		m.assign[name] = grantEntitlement(t, h, m.adminTok, "nhi", m.agent.ID, m.ents[name])
	}
	m.endpoint = h.Agent + "/t/" + m.slug + "/mcp"
	return m
}

// syncedTool is one tool of a catalog sync's report.
type syncedTool struct {
	EntitlementID string `json:"entitlement_id"`
	ApprovalState string `json:"approval_state"`
}

// syncTools syncs a tool server's catalog and returns its tools by name.
func syncTools(t *testing.T, h *harness, tok, serverID string) map[string]syncedTool {
	t.Helper()
	resp, body := h.DoAs(tok, "POST", "/api/v1/tool-servers/"+serverID+"/sync", nil)
	expect(t, resp, body, 200, "sync")
	var rep struct {
		Tools []struct {
			Name string `json:"name"`
			syncedTool
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("sync report: %v %s", err, body)
	}
	out := map[string]syncedTool{}
	for _, tl := range rep.Tools {
		out[tl.Name] = tl.syncedTool
	}
	return out
}

// grantEntitlement assigns an entitlement to a subject; the assignment's ID.
func grantEntitlement(t *testing.T, h *harness, tok, subjectType, subjectID, entitlementID string) string {
	t.Helper()
	resp, body := h.DoAs(tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": subjectType, "subject_id": subjectID,
		"target_type": "entitlement", "target_id": entitlementID})
	expect(t, resp, body, 201, "grant")
	return decode[struct{ ID string }](t, body).ID
}

// agentToken gets the agent a client-credentials token for resource.
func (m *mcpSetup) agentToken(t *testing.T, h *harness, resource string) string {
	t.Helper()
	code, out := h.Form("/t/"+m.slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {"mcp"}},
		m.agent.ClientID, m.agent.ClientSecret)
	if code != 200 {
		t.Fatalf("token: %d %v", code, out)
	}
	return out["access_token"].(string)
}

// mcpClient is the mcp-go client over streamable HTTP through the gateway.
func mcpClient(t *testing.T, h *harness, endpoint, bearer string, cert *tls.Certificate) *client.Client {
	t.Helper()
	hc := h.TLS
	if cert != nil {
		hc = h.MTLSClient(*cert)
	}
	opts := []transport.StreamableHTTPCOption{transport.WithHTTPBasicClient(hc)}
	if bearer != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + bearer}))
	}
	c, err := client.NewStreamableHttpClient(endpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	initClient(t, c, "2025-06-18")
	return c
}

// initClient starts an mcp-go client (closed at the test's end) and
// initializes it at version, which the gateway must accept as is.
func initClient(t *testing.T, c *client.Client, version string) *mcp.InitializeResult {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	// Start's context carries the client's streams (SSE, the GET stream):
	// it lives as long as the client.
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcp.Implementation{Name: "gateway-test", Version: "1"}
	res, err := c.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if res.ProtocolVersion != version {
		t.Fatalf("negotiated %q, want %q", res.ProtocolVersion, version)
	}
	return res
}

func toolNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	return out
}

func callTool(c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = name, args
	return c.CallTool(ctx, req)
}

func resultText(r *mcp.CallToolResult) string {
	if r == nil || len(r.Content) == 0 {
		return ""
	}
	if tc, ok := r.Content[0].(mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

// auditCount counts audit records of an action and outcome.
func auditCount(t *testing.T, h *harness, tok, action, outcome string) int {
	t.Helper()
	resp, body := h.DoAs(tok, "GET", "/api/v1/audit?limit=500&action="+url.QueryEscape(action)+"&outcome="+outcome, nil)
	expect(t, resp, body, 200, "audit query")
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	_ = json.Unmarshal(body, &page)
	return len(page.Items)
}

// TestMCPGateway: an agent with a client-credentials token sees exactly
// its approved, granted tools, calls one (proxied with the upstream's own
// credential, never the agent's token), is refused another with a reason
// and an audit id; revoking the grant or suspending the agent takes effect
// on the next call of the open session; everything is audited.
func TestMCPGateway(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			up := newTestUpstream(t)
			h := start(t, append(env(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
			m := setupMCP(t, h, up)
			tok := m.agentToken(t, h, m.endpoint)
			c := mcpClient(t, h, m.endpoint, tok, nil)

			names := toolNames(t, c)
			if strings.Join(names, ",") != "tools__add,tools__echo,tools__slow" {
				t.Fatalf("tools/list: %v", names)
			}
			res, err := callTool(c, "tools__echo", map[string]any{"text": "hello"})
			if err != nil || res.IsError || resultText(res) != "hello" {
				t.Fatalf("echo: %v %+v", err, res)
			}
			res, err = callTool(c, "tools__add", map[string]any{"a": 2, "b": 40})
			if err != nil || resultText(res) != "42" {
				t.Fatalf("add: %v %+v", err, res)
			}
			// Approved but not granted: refused with the reason and an audit id.
			if _, err := callTool(c, "tools__delete_repo", map[string]any{"name": "prod"}); err == nil ||
				!strings.Contains(err.Error(), "no assignment grants this entitlement") {
				t.Fatalf("ungranted tool: %v", err)
			}
			// Unknown tool, and arguments that break the tool's schema.
			if _, err := callTool(c, "tools__nope", nil); err == nil || !strings.Contains(err.Error(), "unknown tool") {
				t.Fatalf("unknown tool: %v", err)
			}
			if _, err := callTool(c, "tools__echo", map[string]any{"text": strings.Repeat("x", 101)}); err == nil || !strings.Contains(err.Error(), "invalid arguments") {
				t.Fatalf("schema: %v", err)
			}
			if _, err := callTool(c, "tools__add", map[string]any{"a": "two", "b": 1}); err == nil {
				t.Fatal("a string for a number passed the schema")
			}
			if n := up.calls.Load(); n != 2 {
				t.Fatalf("upstream saw %d calls, want 2 (denials never reach it)", n)
			}
			up.mu.Lock()
			for auth := range up.authSeen {
				if strings.Contains(auth, tok) {
					t.Fatal("the agent's token reached the upstream")
				}
			}
			up.mu.Unlock()
			// New settings end the upstream session: with the credential too.
			resp0, body0 := h.DoAs(m.adminTok, "PUT", "/api/v1/tool-servers/"+m.server.ID+"/upstream",
				map[string]any{"credential_type": "bearer", "token": upstreamSecret, "timeout_ms": 2000})
			expect(t, resp0, body0, 200, "settings again")
			for deadline := time.Now().Add(5 * time.Second); up.deletes.Load() == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the old upstream session was not ended")
				}
			}
			if up.badAuth.Load() != 0 {
				t.Fatalf("the gateway called upstream without its credential %d times", up.badAuth.Load())
			}

			// Prompts and resources of permitted servers, merged on the aggregate endpoint.
			bg := context.Background()
			prompts, err := c.ListPrompts(bg, mcp.ListPromptsRequest{})
			if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "tools__greet" {
				t.Fatalf("prompts/list: %v %+v", err, prompts)
			}
			gp := mcp.GetPromptRequest{}
			gp.Params.Name, gp.Params.Arguments = "tools__greet", map[string]string{"who": "Ada"}
			if got, err := c.GetPrompt(bg, gp); err != nil || len(got.Messages) != 1 || got.Messages[0].Content.(mcp.TextContent).Text != "Hello, Ada" {
				t.Fatalf("prompts/get: %v %+v", err, got)
			}
			resources, err := c.ListResources(bg, mcp.ListResourcesRequest{})
			if err != nil || len(resources.Resources) != 1 || resources.Resources[0].URI != "docs://readme" {
				t.Fatalf("resources/list: %v %+v", err, resources)
			}
			rr := mcp.ReadResourceRequest{}
			rr.Params.URI = "docs://readme"
			if got, err := c.ReadResource(bg, rr); err != nil || len(got.Contents) != 1 || got.Contents[0].(mcp.TextResourceContents).Text != "read me" {
				t.Fatalf("resources/read: %v %+v", err, got)
			}

			// Arguments reach the audit log only when the tenant asks, redacted.
			resp, body := h.DoAs(m.adminTok, "PATCH", "/api/v1/policies", map[string]any{"mcp": map[string]any{"audit_arguments": true, "redact_keys": []string{"text"}}})
			expect(t, resp, body, 200, "audit arguments policy")
			if _, err := callTool(c, "tools__add", map[string]any{"a": 20, "b": 22}); err != nil {
				t.Fatal(err)
			}
			if _, err := callTool(c, "tools__echo", map[string]any{"text": "top secret words"}); err != nil {
				t.Fatal(err)
			}
			resp, body = h.DoAs(m.adminTok, "GET", "/api/v1/audit?action=mcp.tools.call&limit=2", nil)
			expect(t, resp, body, 200, "audit")
			if !strings.Contains(string(body), `"arguments":{"text":"[redacted]"}`) || !strings.Contains(string(body), `"arguments":{"a":20,"b":22}`) ||
				strings.Contains(string(body), "top secret words") {
				t.Fatalf("audited arguments: %s", body)
			}
			// Prometheus metrics per tool and decision.
			metrics := h.Metrics(t)
			if !strings.Contains(string(metrics), `xavyo_mcp_tool_calls_total{decision="allow",server="tools",tool="echo",upstream_status="ok"}`) ||
				!strings.Contains(string(metrics), `xavyo_mcp_tool_calls_total{decision="deny",server="tools",tool="delete_repo",upstream_status=""} 1`) {
				t.Fatalf("metrics: %s", metrics)
			}

			// The per-server endpoint: original names, its own audience.
			serverURL := m.endpoint + "/tools"
			sc := mcpClient(t, h, serverURL, m.agentToken(t, h, serverURL), nil)
			if got := strings.Join(toolNames(t, sc), ","); got != "add,echo,slow" {
				t.Fatalf("server endpoint tools: %s", got)
			}
			if res, err := callTool(sc, "echo", map[string]any{"text": "direct"}); err != nil || resultText(res) != "direct" {
				t.Fatalf("server endpoint call: %v %+v", err, res)
			}
			if prompts, err := sc.ListPrompts(context.Background(), mcp.ListPromptsRequest{}); err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "greet" {
				t.Fatalf("server endpoint prompts/list: %v %+v", err, prompts)
			}

			// Revoking the grant: refused on the open session's next call.
			resp, body = h.DoAs(m.adminTok, "DELETE", "/api/v1/assignments/"+m.assign["add"], nil)
			expect(t, resp, body, 204, "revoke grant")
			if _, err := callTool(c, "tools__add", map[string]any{"a": 1, "b": 1}); err == nil {
				t.Fatal("a revoked grant still calls")
			}
			if got := strings.Join(toolNames(t, c), ","); got != "tools__echo,tools__slow" {
				t.Fatalf("tools after revocation: %s", got)
			}
			// Suspending the agent: refused on the next call, token still valid.
			_, body = h.DoAs(m.adminTok, "GET", "/api/v1/nhis/"+m.agent.ID, nil)
			ver := decode[struct{ Version int64 }](t, body).Version
			resp, body = h.DoAs(m.adminTok, "POST", "/api/v1/nhis/"+m.agent.ID+"/transition", map[string]any{"status": "suspended", "reason": "test"},
				"If-Match", fmt.Sprintf(`"%d"`, ver))
			expect(t, resp, body, 200, "suspend")
			if _, err := callTool(c, "tools__echo", map[string]any{"text": "x"}); err == nil || !strings.Contains(err.Error(), "not active") {
				t.Fatalf("suspended agent: %v", err)
			}
			if prompts, err := c.ListPrompts(context.Background(), mcp.ListPromptsRequest{}); err != nil || len(prompts.Prompts) != 0 {
				t.Fatalf("a suspended agent still sees prompts: %v %+v", err, prompts)
			}
			if _, err := c.ReadResource(context.Background(), rr); err == nil {
				t.Fatal("a suspended agent still reads resources")
			}

			if n := auditCount(t, h, m.adminTok, "mcp.tools.call", "success"); n != 5 {
				t.Errorf("allowed-call records: %d, want 5", n)
			}
			if n := auditCount(t, h, m.adminTok, "mcp.tools.call", "denied"); n != 6 {
				t.Errorf("denied-call records: %d, want 6", n)
			}
			if n := auditCount(t, h, m.adminTok, "mcp.tools.*", ""); n < 12 {
				t.Errorf("records under mcp.tools.*: %d", n)
			}
		})
	}
}

// rawMCP posts one JSON-RPC body to the gateway and returns the answer.
func rawMCP(t *testing.T, hc *http.Client, endpoint, body string, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp, out
}

func rpcCode(out map[string]any) float64 {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return c
}

// TestMCPToolListsArePaged: the catalog sync reads every page of the
// upstream's list (it pages by 2), and the gateway pages its own lists
// (mcp.page_size 2): the pages hold each permitted tool once.
func TestMCPToolListsArePaged(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_MCP_PAGE_SIZE=2"), nil)
	m := setupMCP(t, h, up) // fails unless the sync found all four tools
	resp, body := h.DoAs(m.adminTok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "nhi", "subject_id": m.agent.ID,
		"target_type": "entitlement", "target_id": m.ents["delete_repo"]})
	expect(t, resp, body, 201, "grant the fourth tool")
	c := mcpClient(t, h, m.endpoint, m.agentToken(t, h, m.endpoint), nil)
	var names []string
	req := mcp.ListToolsRequest{}
	for pages := 1; ; pages++ {
		res, err := c.ListToolsByPage(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tools) > 2 {
			t.Fatalf("page of %d tools", len(res.Tools))
		}
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		if res.NextCursor == "" {
			if pages != 2 {
				t.Fatalf("%d pages", pages)
			}
			break
		}
		req.Params.Cursor = res.NextCursor
	}
	if strings.Join(names, ",") != "tools__add,tools__delete_repo,tools__echo,tools__slow" {
		t.Fatalf("paged tools: %v", names)
	}
	tok := m.agentToken(t, h, m.endpoint)
	resp, _ = rawMCP(t, h.TLS, m.endpoint, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		"Authorization", "Bearer "+tok)
	if _, out := rawMCP(t, h.TLS, m.endpoint, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"%%%"}}`,
		"Authorization", "Bearer "+tok, "Mcp-Session-Id", resp.Header.Get("Mcp-Session-Id")); rpcCode(out) != -32602 {
		t.Fatalf("bad cursor: %v", out)
	}
}

// TestMCPGatewayRefusesBadInput: missing, foreign-audience and other
// tenants' tokens; bad Origin; malformed JSON-RPC, batches, unknown
// methods, oversized messages, unsupported versions, unknown sessions and
// sessions of another principal — each the protocol's error, and a
// session in use meanwhile is unaffected.
func TestMCPGatewayRefusesBadInput(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	other := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)
	c := mcpClient(t, h, m.endpoint, tok, nil)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

	// No token: 401 pointing at the resource metadata, which names the issuer.
	resp, _ := rawMCP(t, h.TLS, m.endpoint, init)
	prm := h.Agent + "/.well-known/oauth-protected-resource/t/" + m.slug + "/mcp"
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+prm+`"`) ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="mcp"`) {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	code, b, _ := apptest.Get(t, h.TLS, prm)
	if code != 200 || !strings.Contains(string(b), `"authorization_servers":["`+h.Admin+`/t/`+m.slug+`"]`) {
		t.Fatalf("resource metadata: %d %s", code, b)
	}
	for name, bearer := range map[string]string{
		"garbage":            "not-a-token",
		"other endpoint":     m.agentToken(t, h, m.endpoint+"/tools"),
		"other tenant":       other.agentToken(t, h, other.endpoint),
		"admin API audience": m.adminTok,
	} {
		resp, _ := rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "Bearer "+bearer)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// An expired token, otherwise right (tenant, audience, scope, signature).
	expired, err := h.App.Tokens().Mint(context.Background(), token.Claims{Claims: jwt.Claims{Subject: m.agent.ID, Audience: jwt.Audience{m.endpoint},
		Expiry: jwt.NewNumericDate(time.Now().Add(-2 * time.Minute))}, TenantID: uuid.MustParse(m.tenantID), Scope: "mcp", SubjectKind: "nhi"})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := h.App.Tokens().Mint(context.Background(), token.Claims{Claims: jwt.Claims{Subject: m.agent.ID, Audience: jwt.Audience{m.endpoint},
		Expiry: jwt.NewNumericDate(time.Now().Add(2 * time.Minute))}, TenantID: uuid.MustParse(m.tenantID), Scope: "mcp", SubjectKind: "nhi"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "Bearer "+fresh); resp.StatusCode != 200 {
		t.Fatalf("the same token unexpired: %d", resp.StatusCode)
	}
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "Bearer "+expired); resp.StatusCode != 401 ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// A token without the mcp scope.
	code2, out := h.Form("/t/"+m.slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {m.endpoint}, "scope": {"a2a"}},
		m.agent.ClientID, m.agent.ClientSecret)
	if code2 != 200 {
		t.Fatalf("a2a token: %d %v", code2, out)
	}
	resp, _ = rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "Bearer "+out["access_token"].(string))
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("no mcp scope: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	auth := []string{"Authorization", "Bearer " + tok}
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, init, append(auth, "Origin", "https://evil.example")...); resp.StatusCode != 403 {
		t.Fatalf("bad origin: %d", resp.StatusCode)
	}
	resp, out = rawMCP(t, h.TLS, m.endpoint, init, auth...)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d %v", resp.StatusCode, out)
	}
	sess := append(auth, "Mcp-Session-Id", sid)
	cases := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   float64
	}{
		{"not JSON", `{"jsonrpc":`, sess, 400, -32700},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, sess, 400, -32600},
		{"wrong version field", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, sess, 400, -32600},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, sess, 400, -32600},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"tools/destroy"}`, sess, 200, -32601},
		{"no session", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, auth, 400, -32600},
		{"unknown session", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, append(auth, "Mcp-Session-Id", "nope"), 404, -32600},
		{"unsupported protocol version", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, append(sess, "MCP-Protocol-Version", "1999-01-01"), 400, -32022},
		{"stateless era without Mcp-Method", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, append(auth, "MCP-Protocol-Version", "2026-07-28"), 400, -32020},
		{"oversized", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 5<<20) + `"}}`, sess, 413, -32600},
		{"call without name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, sess, 200, -32602},
		{"arguments not an object", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tools__echo","arguments":[1]}}`, sess, 200, -32602},
	}
	for _, tc := range cases {
		resp, out := rawMCP(t, h.TLS, m.endpoint, tc.body, tc.hdr...)
		if resp.StatusCode != tc.status || rpcCode(out) != tc.code {
			t.Errorf("%s: %d %v", tc.name, resp.StatusCode, out)
		}
	}
	// The stateless era on a tool server's endpoint: headers must match the
	// body, _meta must carry the version and capabilities; nothing reaches
	// the tool server or the audit log.
	serverEP := m.endpoint + "/tools"
	modern := []string{"Authorization", "Bearer " + m.agentToken(t, h, serverEP), "MCP-Protocol-Version", "2026-07-28"}
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	callsBefore := up.calls.Load()
	for _, tc := range []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   float64
	}{
		{"no Mcp-Method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`, modern, 400, -32020},
		{"Mcp-Method differs", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`, append(modern, "Mcp-Method", "TOOLS/LIST"), 400, -32020},
		{"Mcp-Name differs", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},` + meta + `}}`,
			append(modern, "Mcp-Method", "tools/call", "Mcp-Name", "add"), 400, -32020},
		{"no Mcp-Name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},` + meta + `}}`,
			append(modern, "Mcp-Method", "tools/call"), 400, -32020},
		{"no _meta", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`, append(modern, "Mcp-Method", "tools/list"), 400, -32602},
		{"_meta version differs", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}}`,
			append(modern, "Mcp-Method", "tools/list"), 400, -32020},
	} {
		resp, out := rawMCP(t, h.TLS, serverEP, tc.body, tc.hdr...)
		if resp.StatusCode != tc.status || rpcCode(out) != tc.code || out["id"] != float64(1) {
			t.Errorf("%s: %d %v", tc.name, resp.StatusCode, out)
		}
	}
	if up.calls.Load() != callsBefore {
		t.Error("a refused stateless request reached the tool server")
	}
	req, _ := http.NewRequest("GET", serverEP, nil)
	req.Header.Set("Authorization", modern[1])
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	if resp, err := h.TLS.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET in the stateless era: %v %v", err, resp)
	}

	// Another agent of the same tenant cannot ride this session.
	resp, body := h.DoAs(m.adminTok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "intruder", "name": "Intruder", "owner_id": m.ownerID})
	expect(t, resp, body, 201, "second agent")
	intruder := decode[apptest.Agent](t, body)
	code2, out = h.Form("/t/"+m.slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {m.endpoint}},
		intruder.ClientID, intruder.ClientSecret)
	if code2 != 200 {
		t.Fatal(out)
	}
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		"Authorization", "Bearer "+out["access_token"].(string), "Mcp-Session-Id", sid); resp.StatusCode != 404 {
		t.Fatalf("hijacked session: %d", resp.StatusCode)
	}
	// DELETE ends the session; it is then unknown.
	req, _ = http.NewRequest("DELETE", m.endpoint, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Mcp-Session-Id", sid)
	dr, err := h.TLS.Do(req)
	if err != nil || dr.StatusCode != 204 {
		t.Fatalf("delete session: %v %v", err, dr)
	}
	dr.Body.Close()
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, sess...); resp.StatusCode != 404 {
		t.Fatalf("ended session: %d", resp.StatusCode)
	}
	// The client's own session was unaffected throughout.
	if res, err := callTool(c, "tools__echo", map[string]any{"text": "still here"}); err != nil || resultText(res) != "still here" {
		t.Fatalf("other session: %v %+v", err, res)
	}
	// Ended sessions are purged: the terminated one an hour on, all of them once expired.
	if n, err := h.App.MCP().PurgeSessions(context.Background(), time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("purge of the terminated session: %d %v", n, err)
	}
	if n, err := h.App.MCP().PurgeSessions(context.Background(), time.Now().Add(25*time.Hour)); err != nil || n < 1 {
		t.Fatalf("purge of expired sessions: %d %v", n, err)
	}

}

// TestMCPGatewayStreamsProgressAndFailsFast: progress notifications pass
// through with the client's token; an upstream slower than the tool
// server's timeout, or gone, gives a prompt error (never a hang); a new
// tool needs approval before anyone sees it.
func TestMCPGatewayStreamsProgressAndFailsFast(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)
	c := mcpClient(t, h, m.endpoint, tok, nil)

	var got []mcp.JSONRPCNotification
	var mu sync.Mutex
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = "tools__slow", map[string]any{"ms": 50}
	req.Params.Meta = &mcp.Meta{ProgressToken: "client-token-1"}
	res, err := c.CallTool(context.Background(), req)
	if err != nil || resultText(res) != "done" {
		t.Fatalf("slow call: %v %+v", err, res)
	}
	mu.Lock()
	if len(got) != 1 || got[0].Method != "notifications/progress" || got[0].Params.AdditionalFields["progressToken"] != "client-token-1" {
		t.Fatalf("progress: %+v", got)
	}
	mu.Unlock()

	// Slower than the 2 s timeout: a clean error soon after it.
	begin := time.Now()
	if _, err := callTool(c, "tools__slow", map[string]any{"ms": 10000}); err == nil || !strings.Contains(err.Error(), "did not answer within") {
		t.Fatalf("timeout: %v", err)
	}
	if d := time.Since(begin); d > 6*time.Second {
		t.Fatalf("the timeout took %s", d)
	}
	// A new upstream tool is invisible until approved.
	up.mcp.AddTool(mcp.NewTool("fresh"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("fresh"), nil
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := h.DoAs(m.adminTok, "GET", "/api/v1/tool-servers/"+m.server.ID+"/tools", nil)
		if bytes.Contains(body, []byte(`"name":"fresh"`)) {
			break // synced on notifications/tools/list_changed
		}
		if time.Now().After(deadline) {
			t.Fatalf("list_changed did not sync the catalog: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if names := strings.Join(toolNames(t, c), ","); strings.Contains(names, "fresh") {
		t.Fatalf("an unapproved tool is listed: %s", names)
	}
	// Health checks of connected upstreams feed a gauge.
	hctx, stopHealth := context.WithCancel(context.Background())
	defer stopHealth()
	go func() { _ = h.App.MCP().RunHealthChecks(hctx, 50*time.Millisecond) }()
	upGauge := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			b := h.Metrics(t)
			// No tenant label: the operator did not ask for tenant ids.
			if strings.Contains(string(b), `xavyo_mcp_upstream_up{server="tools"} `+want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("xavyo_mcp_upstream_up never became %s", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	upGauge("1")
	// The upstream goes away: a prompt error, then the circuit opens.
	up.srv.CloseClientConnections()
	up.srv.Close()
	for i := 0; i < 6; i++ {
		begin = time.Now()
		if _, err := callTool(c, "tools__echo", map[string]any{"text": "x"}); err == nil {
			t.Fatal("a call to a dead upstream succeeded")
		}
		if d := time.Since(begin); d > 3*time.Second {
			t.Fatalf("a dead upstream took %s to fail", d)
		}
	}
	resp, body := h.DoAs(m.adminTok, "GET", "/api/v1/tool-servers/"+m.server.ID+"/health", nil)
	expect(t, resp, body, 200, "health")
	if !strings.Contains(string(body), `"reachable":false`) || !strings.Contains(string(body), `"circuit":"open"`) {
		t.Fatalf("health: %s", body)
	}
	upGauge("0")
}

// TestMCPGatewayWithCertificates: an agent calls with its xavyo-issued
// client certificate alone; a certificate-bound token works only with its
// certificate; a certificate of tenant A is refused at tenant B; revoking
// the certificate refuses the open session's next call.
func TestMCPGatewayWithCertificates(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	other := setupMCP(t, h, up)
	resp, body := h.DoAs(m.adminTok, "POST", "/api/v1/nhis/"+m.agent.ID+"/certificates", map[string]any{})
	expect(t, resp, body, 201, "issue")
	cert := decode[apptest.Issued](t, body)
	kp := cert.KeyPair(t, "")

	c := mcpClient(t, h, m.endpoint, "", &kp)
	if got := strings.Join(toolNames(t, c), ","); got != "tools__add,tools__echo,tools__slow" {
		t.Fatalf("mTLS tools/list: %s", got)
	}
	if res, err := callTool(c, "tools__echo", map[string]any{"text": "by certificate"}); err != nil || resultText(res) != "by certificate" {
		t.Fatalf("mTLS call: %v %+v", err, res)
	}
	// The call counts as the agent's use (inactivity reports).
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body := h.DoAs(m.adminTok, "GET", "/api/v1/nhis/"+m.agent.ID, nil)
		if strings.Contains(string(body), `"last_used_at"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no last_used_at after a call: %s", body)
		}
	}
	if _, err := callTool(c, "tools__delete_repo", map[string]any{"name": "x"}); err == nil {
		t.Fatal("mTLS: an ungranted tool was called")
	}
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	if resp, _ := rawMCP(t, h.MTLSClient(kp), other.endpoint, init); resp.StatusCode != 401 {
		t.Fatalf("A's certificate at B: %d", resp.StatusCode)
	}

	// A certificate-bound token (RFC 8705) from the mTLS token alias.
	req, _ := http.NewRequest("POST", h.Agent+"/t/"+m.slug+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"},
		"client_id": {m.agent.ClientID}, "resource": {m.endpoint}, "scope": {"mcp"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tr, err := h.MTLSClient(kp).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tokOut map[string]any
	_ = json.NewDecoder(tr.Body).Decode(&tokOut)
	tr.Body.Close()
	bound, _ := tokOut["access_token"].(string)
	if tr.StatusCode != 200 || apptest.JWTClaims(t, bound)["cnf"] == nil {
		t.Fatalf("bound token: %d %v", tr.StatusCode, tokOut)
	}
	if resp, _ := rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "Bearer "+bound); resp.StatusCode != 401 {
		t.Fatalf("bound token without its certificate: %d", resp.StatusCode)
	}
	bc := mcpClient(t, h, m.endpoint, bound, &kp)
	if res, err := callTool(bc, "tools__echo", map[string]any{"text": "bound"}); err != nil || resultText(res) != "bound" {
		t.Fatalf("bound token with its certificate: %v %+v", err, res)
	}

	// Revocation: the open session's next call is refused.
	resp, body = h.DoAs(m.adminTok, "POST", "/api/v1/nhis/"+m.agent.ID+"/certificates/"+cert.Serial+"/revoke", map[string]any{"reason": "key compromise"})
	expect(t, resp, body, 204, "revoke")
	if _, err := callTool(c, "tools__echo", map[string]any{"text": "after revocation"}); err == nil {
		t.Fatal("a revoked certificate still calls")
	}
}

// TestMCPSessionsMoveBetweenReplicas: two replicas behind one public
// URL share PostgreSQL. A session opened on one is continued on the
// other, and a grant revoked on the first is refused by the second within
// a second.
func TestMCPSessionsMoveBetweenReplicas(t *testing.T) {
	up := newTestUpstream(t)
	agentAddr, adminAddr := freeAddr(t), freeAddr(t)
	public := []string{"XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_AGENT_PUBLIC_URL=https://" + agentAddr, "XAVYO_ADMIN_PUBLIC_URL=http://" + adminAddr}
	one := start(t, append(append(env(t, store.Postgres, t.TempDir()), public...), "XAVYO_AGENT_ADDR="+agentAddr, "XAVYO_ADMIN_ADDR="+adminAddr), nil)
	two := start(t, append(env(t, store.Postgres, t.TempDir()), public...), nil)
	m := setupMCP(t, one, up)
	tok := m.agentToken(t, one, m.endpoint)
	twoEndpoint := strings.Replace(m.endpoint, one.Agent, two.Agent, 1)
	if twoEndpoint == m.endpoint {
		t.Fatal("the replicas share a listener")
	}
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	resp, out := rawMCP(t, one.TLS, m.endpoint, init, "Authorization", "Bearer "+tok)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize on one: %d %v", resp.StatusCode, out)
	}
	call := func(h *harness, endpoint string) map[string]any {
		_, out := rawMCP(t, h.TLS, endpoint, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tools__echo","arguments":{"text":"hop"}}}`,
			"Authorization", "Bearer "+tok, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
		return out
	}
	if out := call(one, m.endpoint); out["result"] == nil {
		t.Fatalf("call on one: %v", out)
	}
	if out := call(two, twoEndpoint); out["result"] == nil {
		t.Fatalf("the session did not continue on two: %v", out)
	}
	resp, body := one.DoAs(m.adminTok, "DELETE", "/api/v1/assignments/"+m.assign["echo"], nil)
	expect(t, resp, body, 204, "revoke on one")
	begin := time.Now()
	for {
		out := call(two, twoEndpoint)
		if out["error"] != nil {
			t.Logf("revocation enforced by the other replica after %v", time.Since(begin))
			break
		}
		if time.Since(begin) > time.Second {
			t.Fatalf("replica two still allows the call a second after the revocation: %v", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMCPUpstreamCredentials: the gateway reaches upstreams with an mTLS
// certificate that xavyo's CA issues to the tool server (checked by an
// upstream that trusts only that CA), and with client-credentials tokens
// from the upstream's own authorization server.
func TestMCPUpstreamCredentials(t *testing.T) {
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	slug := uniqueSlug("cred")
	tid, tok := tenantAdmin(t, h, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	owner := decode[userJSON](t, body).ID

	echo := mcpserver.NewMCPServer("cred-upstream", "1.0.0")
	echo.AddTool(mcp.NewTool("whoami"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	handler := mcpserver.NewStreamableHTTPServer(echo)

	// mTLS: the upstream trusts xavyo's CA only and records who called.
	var peers sync.Map
	mtlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, u := range r.TLS.PeerCertificates[0].URIs {
			peers.Store(u.String(), true)
		}
		handler.ServeHTTP(w, r)
	}))
	mtlsUp.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: h.App.CA().Pool()}
	mtlsUp.StartTLS()
	t.Cleanup(func() { mtlsUp.CloseClientConnections(); mtlsUp.Close() })
	serverCA := string(pemCert(mtlsUp.Certificate().Raw))

	// Client credentials: a token endpoint and an upstream that wants its token.
	var issuedTokens atomic.Int64
	ccUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			id, secret, _ := r.BasicAuth()
			if r.FormValue("grant_type") != "client_credentials" || id != "xavyo" || secret != "s3cret" {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			issuedTokens.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"cc-token-1","token_type":"Bearer","expires_in":3600}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer cc-token-1" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ccUp.CloseClientConnections(); ccUp.Close() })

	for _, tc := range []struct {
		slug, url string
		settings  map[string]any
	}{
		{"mtls-up", mtlsUp.URL + "/mcp", map[string]any{"credential_type": "mtls", "server_ca_pem": serverCA, "auto_approve": true}},
		{"cc-up", ccUp.URL + "/mcp", map[string]any{"credential_type": "oauth_client_credentials", "token_url": ccUp.URL + "/token",
			"client_id": "xavyo", "client_secret": "s3cret", "scope": "tools", "auto_approve": true}},
	} {
		resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": tc.slug, "name": tc.slug, "owner_id": owner,
			"profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": tc.url}}})
		expect(t, resp, body, 201, "tool server "+tc.slug)
		server := decode[apptest.Agent](t, body)
		resp, body = h.DoAs(tok, "PUT", "/api/v1/tool-servers/"+server.ID+"/upstream", tc.settings)
		expect(t, resp, body, 200, "settings "+tc.slug)
		if strings.Contains(string(body), "s3cret") {
			t.Fatalf("the client secret is echoed: %s", body)
		}
		resp, body = h.DoAs(tok, "POST", "/api/v1/tool-servers/"+server.ID+"/sync", nil)
		expect(t, resp, body, 200, "sync "+tc.slug)
		if !strings.Contains(string(body), `"name":"whoami"`) {
			t.Fatalf("%s: %s", tc.slug, body)
		}
		resp, body = h.DoAs(tok, "GET", "/api/v1/tool-servers/"+server.ID+"/health", nil)
		expect(t, resp, body, 200, "health "+tc.slug)
		if !strings.Contains(string(body), `"reachable":true`) {
			t.Fatalf("%s health: %s", tc.slug, body)
		}
		if tc.slug == "mtls-up" {
			want := "spiffe://xavyo.local/t/" + tid + "/tool_server/" + server.ID
			if _, ok := peers.Load(want); !ok {
				t.Fatalf("the upstream did not see the tool server's SPIFFE ID %s", want)
			}
		}
	}
	if issuedTokens.Load() != 1 {
		t.Fatalf("upstream tokens issued: %d, want 1 (cached)", issuedTokens.Load())
	}
	// Without the server's CA, the mTLS upstream's certificate is not trusted.
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "untrusted", "name": "untrusted", "owner_id": owner,
		"profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": mtlsUp.URL + "/mcp"}}})
	expect(t, resp, body, 201, "untrusted server")
	untrusted := decode[apptest.Agent](t, body)
	resp, body = h.DoAs(tok, "POST", "/api/v1/tool-servers/"+untrusted.ID+"/sync", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("sync with an untrusted upstream certificate: %d %s", resp.StatusCode, body)
	}
	// Bad settings change nothing.
	_, before := h.DoAs(tok, "GET", "/api/v1/tool-servers/"+untrusted.ID+"/upstream", nil)
	for _, bad := range []map[string]any{
		{"credential_type": "bearer"},
		{"credential_type": "magic"},
		{"credential_type": "oauth_client_credentials", "token_url": "ftp://x", "client_id": "a", "client_secret": "b"},
		{"credential_type": "none", "server_ca_pem": "not a PEM"},
		{"credential_type": "none", "timeout_ms": 5},
		{"credential_type": "none", "token": "stray"},
	} {
		resp, body := h.DoAs(tok, "PUT", "/api/v1/tool-servers/"+untrusted.ID+"/upstream", bad)
		if resp.StatusCode != 400 {
			t.Errorf("settings %v: %d %s", bad, resp.StatusCode, body)
		}
	}
	_, body = h.DoAs(tok, "GET", "/api/v1/tool-servers/"+untrusted.ID+"/upstream", nil)
	if !bytes.Equal(body, before) || !strings.Contains(string(body), `"credential_type":"none"`) {
		t.Fatalf("bad settings changed something: %s, before %s", body, before)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestMCPListChangedReachesClients: a client listening on its session's
// GET stream is told when its own tool list changes (a grant revoked), and
// not when something else in the tenant changes.
func TestMCPListChangedReachesClients(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)
	c, err := client.NewStreamableHttpClient(m.endpoint, transport.WithHTTPBasicClient(&http.Client{Transport: h.TLS.Transport}),
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tok}),
		transport.WithContinuousListening()) //nolint:staticcheck // SA1019: the legacy era's GET stream is what is tested
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	c.OnNotification(func(n mcp.JSONRPCNotification) { got <- n.Method })
	if res := initClient(t, c, "2025-11-25"); res.Capabilities.Tools == nil || !res.Capabilities.Tools.ListChanged {
		t.Fatalf("initialize: %+v", res)
	}
	// The client opens its GET stream after initialize.
	for deadline := time.Now().Add(5 * time.Second); h.App.MCP().OpenStreams() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client did not open its event stream")
		}
	}
	// Something that does not change this agent's tools.
	resp, body := h.DoAs(m.adminTok, "POST", "/api/v1/users", map[string]any{"email": "bystander@mcp.test"})
	expect(t, resp, body, 201, "unrelated change")
	// Something that does.
	resp, body = h.DoAs(m.adminTok, "DELETE", "/api/v1/assignments/"+m.assign["slow"], nil)
	expect(t, resp, body, 204, "revoke")
	select {
	case method := <-got:
		if method != "notifications/tools/list_changed" {
			t.Fatalf("notification %q", method)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no list_changed after the grant was revoked")
	}
	select {
	case method := <-got:
		t.Fatalf("a second notification (%q): the unrelated change notified too", method)
	case <-time.After(300 * time.Millisecond):
	}
	if names := strings.Join(toolNames(t, c), ","); names != "tools__add,tools__echo" {
		t.Fatalf("tools after the change: %s", names)
	}
}

// TestMCPCancellationReachesUpstream: a client's notifications/cancelled
// ends its in-flight call at once (instead of after the tool's 5 s), and
// the gateway tells the upstream, whose handler sees its context end.
func TestMCPCancellationReachesUpstream(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	var upstreamCancelled atomic.Bool
	up.mcp.AddTool(mcp.NewTool("wait", mcp.WithNumber("ms", mcp.Required())), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		select {
		case <-time.After(5 * time.Second):
			return mcp.NewToolResultText("done"), nil
		case <-ctx.Done():
			upstreamCancelled.Store(true)
			return nil, ctx.Err()
		}
	})
	wait := syncTools(t, h, m.adminTok, m.server.ID)["wait"].EntitlementID
	resp, body := h.DoAs(m.adminTok, "PATCH", "/api/v1/entitlements/"+wait, map[string]any{"approval_state": "approved"})
	expect(t, resp, body, 200, "approve wait")
	grantEntitlement(t, h, m.adminTok, "nhi", m.agent.ID, wait)
	tok := m.agentToken(t, h, m.endpoint)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	resp, _ = rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "Bearer "+tok)
	hdr := []string{"Authorization", "Bearer " + tok, "Mcp-Session-Id", resp.Header.Get("Mcp-Session-Id")}
	begin := time.Now()
	done := make(chan map[string]any, 1)
	go func() {
		_, out := rawMCP(t, h.TLS, m.endpoint, `{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"tools__wait","arguments":{"ms":5000}}}`, hdr...)
		done <- out
	}()
	// Cancel until the call ends (the first notification may come before
	// the call is in flight: cancelling an unknown request does nothing).
	var out map[string]any
	for tick := time.NewTicker(100 * time.Millisecond); out == nil; {
		select {
		case out = <-done:
		case <-tick.C:
			if resp, _ := rawMCP(t, h.TLS, m.endpoint, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"call-7","reason":"user gave up"}}`, hdr...); resp.StatusCode != 202 {
				t.Fatalf("cancel notification: %d", resp.StatusCode)
			}
		}
	}
	if out["result"] != nil || !strings.Contains(apptest.JSON(out), "cancelled") {
		t.Fatalf("cancelled call answered %v", out)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("cancellation took %s", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !upstreamCancelled.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the upstream was not told of the cancellation")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMCPOverWebSocket: the same endpoint over WebSocket (subprotocol
// mcp, one JSON-RPC message per frame): initialize, the permitted tools,
// a call, a refusal; list_changed arrives as a frame when a grant is
// revoked; a revoked token fails the next message and closes the socket.
func TestMCPOverWebSocket(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)
	dialer := websocket.Dialer{TLSClientConfig: h.TLS.Transport.(*http.Transport).TLSClientConfig, Subprotocols: []string{"mcp"},
		HandshakeTimeout: 5 * time.Second}
	wsURL := "wss" + strings.TrimPrefix(m.endpoint, "https")
	if _, resp, err := dialer.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("WebSocket without a token: %v %v", err, resp)
	}
	conn, resp, err := dialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	defer conn.Close()
	if conn.Subprotocol() != "mcp" {
		t.Fatalf("subprotocol %q", conn.Subprotocol())
	}
	frames := make(chan map[string]any, 16)
	go func() {
		defer close(frames)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var msg map[string]any
			_ = json.Unmarshal(b, &msg)
			frames <- msg
		}
	}()
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("%s: the socket closed", what)
			}
			return f
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no frame", what)
		}
		return nil
	}
	send := func(s string) {
		t.Helper()
		if err := conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ws","version":"1"}}}`)
	if f := next("initialize"); f["result"] == nil {
		t.Fatalf("initialize: %v", f)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if f := next("tools/list"); !strings.Contains(apptest.JSON(f), `"name":"tools__echo"`) || strings.Contains(apptest.JSON(f), "delete_repo") {
		t.Fatalf("tools/list: %v", f)
	}
	send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"tools__echo","arguments":{"text":"over a socket"}}}`)
	if f := next("call"); !strings.Contains(apptest.JSON(f), "over a socket") {
		t.Fatalf("call: %v", f)
	}
	send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"tools__delete_repo","arguments":{"name":"x"}}}`)
	if f := next("refusal"); rpcCode(f) != -32003 {
		t.Fatalf("refusal: %v", f)
	}
	for deadline := time.Now().Add(5 * time.Second); h.App.MCP().OpenStreams() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the socket's notifications are not listened for")
		}
	}
	rsp, body := h.DoAs(m.adminTok, "DELETE", "/api/v1/assignments/"+m.assign["add"], nil)
	expect(t, rsp, body, 204, "revoke grant")
	if f := next("list_changed"); f["method"] != "notifications/tools/list_changed" {
		t.Fatalf("expected list_changed, got %v", f)
	}
	// Revoke the token (RFC 7009): the next message fails, the socket closes.
	if code, out := h.Form("/t/"+m.slug+"/revoke", url.Values{"token": {tok}}, m.agent.ClientID, m.agent.ClientSecret); code != 200 {
		t.Fatalf("revoke token: %d %v", code, out)
	}
	send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"tools__echo","arguments":{"text":"after revocation"}}}`)
	for f := range frames {
		if strings.Contains(apptest.JSON(f), "after revocation") {
			t.Fatal("a revoked token still calls over the socket")
		}
	}
	// Closing the socket ended its session (the server does so as it lets go).
	deadline := time.Now().Add(5 * time.Second)
	for ended := int64(0); ended != 1; {
		n, err := h.App.MCP().PurgeSessions(context.Background(), time.Now().Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if ended += n; ended == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the socket's session was not ended with it (%d purged)", ended)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMCPOverLegacySSE: mcp-go's client over the HTTP+SSE transport
// (2024-11-05) on the same endpoint: the permitted tools, a call, a
// refusal; a POST to another principal's stream is refused.
func TestMCPOverLegacySSE(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)
	c, err := client.NewSSEMCPClient(m.endpoint, transport.WithHTTPClient(&http.Client{Transport: h.TLS.Transport}),
		transport.WithHeaders(map[string]string{"Authorization": "Bearer " + tok}))
	if err != nil {
		t.Fatal(err)
	}
	initClient(t, c, "2024-11-05")
	if names := strings.Join(toolNames(t, c), ","); names != "tools__add,tools__echo,tools__slow" {
		t.Fatalf("tools over SSE: %s", names)
	}
	if r, err := callTool(c, "tools__echo", map[string]any{"text": "over SSE"}); err != nil || resultText(r) != "over SSE" {
		t.Fatalf("call over SSE: %v %+v", err, r)
	}
	if _, err := callTool(c, "tools__delete_repo", map[string]any{"name": "x"}); err == nil || !strings.Contains(err.Error(), "no assignment grants") {
		t.Fatalf("refusal over SSE: %v", err)
	}
	// Another agent cannot post into this stream.
	endpoint := c.GetTransport().(*transport.SSE).GetEndpoint()
	if endpoint == nil || endpoint.Query().Get("session_id") == "" {
		t.Fatalf("endpoint event: %v", endpoint)
	}
	resp, body := h.DoAs(m.adminTok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "other-agent", "name": "Other", "owner_id": m.ownerID})
	expect(t, resp, body, 201, "other agent")
	other := decode[apptest.Agent](t, body)
	code, out := h.Form("/t/"+m.slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {m.endpoint}}, other.ClientID, other.ClientSecret)
	if code != 200 {
		t.Fatal(out)
	}
	if resp, _ := rawMCP(t, h.TLS, endpoint.String(), `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`, "Authorization", "Bearer "+out["access_token"].(string)); resp.StatusCode != 404 {
		t.Fatalf("another agent posted into the stream: %d", resp.StatusCode)
	}
}

// TestMCPStdioUpstream: a tool server whose command (on the operator's
// allowlist) runs as a process of the gateway, spoken to over stdio; when
// the process exits, the next call starts another. A command off the
// allowlist cannot be registered.
func TestMCPStdioUpstream(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mcp-echo")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/mcp-echo").CombinedOutput(); err != nil {
		t.Fatalf("build mcp-echo: %v\n%s", err, out)
	}
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_MCP_STDIO_ALLOWLIST="+bin), nil)
	slug := uniqueSlug("stdio")
	_, tok := tenantAdmin(t, h, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	owner := decode[userJSON](t, body).ID
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "rogue", "name": "Rogue", "owner_id": owner,
		"profile": map[string]any{"tool_server": map[string]any{"transport": "stdio", "command": "/bin/sh", "args": []string{"-c", "id"}}}})
	if resp.StatusCode != 400 {
		t.Fatalf("a command off the allowlist: %d %s", resp.StatusCode, body)
	}
	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "local", "name": "Local", "owner_id": owner,
		"profile": map[string]any{"tool_server": map[string]any{"transport": "stdio", "command": bin, "args": []string{"-stdio", "-crashable"}}}})
	expect(t, resp, body, 201, "stdio tool server")
	server := decode[apptest.Agent](t, body)
	resp, body = h.DoAs(tok, "PUT", "/api/v1/tool-servers/"+server.ID+"/upstream", map[string]any{"auto_approve": true})
	expect(t, resp, body, 200, "settings")
	tools := syncTools(t, h, tok, server.ID)
	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "user-of-local", "name": "Agent", "owner_id": owner})
	expect(t, resp, body, 201, "agent")
	agent := decode[apptest.Agent](t, body)
	grantEntitlement(t, h, tok, "nhi", agent.ID, tools["echo"].EntitlementID)
	grantEntitlement(t, h, tok, "nhi", agent.ID, tools["exit"].EntitlementID)
	endpoint := h.Agent + "/t/" + slug + "/mcp/local"
	code, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {endpoint}}, agent.ClientID, agent.ClientSecret)
	if code != 200 {
		t.Fatal(out)
	}
	c := mcpClient(t, h, endpoint, out["access_token"].(string), nil)
	if got := strings.Join(toolNames(t, c), ","); got != "echo,exit" {
		t.Fatalf("stdio tools: %s", got)
	}
	if r, err := callTool(c, "echo", map[string]any{"text": "from a process"}); err != nil || resultText(r) != "from a process" {
		t.Fatalf("stdio call: %v %+v", err, r)
	}
	// The process exits; within a few calls the gateway has started another.
	_, _ = callTool(c, "exit", nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := callTool(c, "echo", map[string]any{"text": "again"})
		if err == nil && resultText(r) == "again" {
			break
		}
		t.Logf("after exit: %v", err)
		if time.Now().After(deadline) {
			t.Fatalf("no restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A client of the stateless era in front of this session-era process:
	// the gateway bridges, over its own session with the process.
	do := statelessCaller(t, h, endpoint, out["access_token"].(string), "{}")
	if names := statelessToolNames(t, do); names != "echo,exit" {
		t.Fatalf("stateless list through the bridge: %s", names)
	}
	resp, res := do("tools/call", "echo", `"name":"echo","arguments":{"text":"bridged"},`)
	if r, _ := res["result"].(map[string]any); resp.StatusCode != 200 || r == nil || r["resultType"] != "complete" || !strings.Contains(fmt.Sprint(r["content"]), "bridged") {
		t.Fatalf("stateless call through the bridge: %d %v", resp.StatusCode, res)
	}
	if resp, res = do("server/discover", "", ""); resp.StatusCode != 200 || !strings.Contains(fmt.Sprint(res), "2026-07-28") {
		t.Fatalf("discover through the bridge: %d %v", resp.StatusCode, res)
	}
	if resp, res = do("ping", "", ""); resp.StatusCode != 404 || rpcCode(res) != -32601 {
		t.Errorf("ping is not of the stateless era: %d %v", resp.StatusCode, res)
	}
}

// TestMCPSSEUpstream: a tool server that speaks only the HTTP+SSE
// transport (2024-11-05), behind its own bearer token, is synced and
// called through the gateway's streamable HTTP endpoint.
func TestMCPSSEUpstream(t *testing.T) {
	s := mcpserver.NewMCPServer("sse-upstream", "1.0.0", mcpserver.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("shout", mcp.WithString("text", mcp.Required())), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		v, _ := req.RequireString("text")
		return mcp.NewToolResultText(strings.ToUpper(v)), nil
	})
	var sseSrv *mcpserver.SSEServer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+upstreamSecret {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sseSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	sseSrv = mcpserver.NewSSEServer(s, mcpserver.WithBaseURL(srv.URL))

	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	slug := uniqueSlug("sseup")
	_, tok := tenantAdmin(t, h, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	owner := decode[userJSON](t, body).ID
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": "old", "name": "Old server", "owner_id": owner,
		"profile": map[string]any{"tool_server": map[string]any{"transport": "sse", "url": srv.URL + "/sse"}}})
	expect(t, resp, body, 201, "sse tool server")
	server := decode[apptest.Agent](t, body)
	resp, body = h.DoAs(tok, "PUT", "/api/v1/tool-servers/"+server.ID+"/upstream", map[string]any{"auto_approve": true, "credential_type": "bearer", "token": upstreamSecret})
	expect(t, resp, body, 200, "settings")
	tools := syncTools(t, h, tok, server.ID)
	if len(tools) != 1 || tools["shout"].EntitlementID == "" {
		t.Fatalf("sync: %v", tools)
	}
	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "caller", "name": "Caller", "owner_id": owner})
	expect(t, resp, body, 201, "agent")
	agent := decode[apptest.Agent](t, body)
	grantEntitlement(t, h, tok, "nhi", agent.ID, tools["shout"].EntitlementID)
	endpoint := h.Agent + "/t/" + slug + "/mcp"
	code, out := h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {endpoint}}, agent.ClientID, agent.ClientSecret)
	if code != 200 {
		t.Fatal(out)
	}
	c := mcpClient(t, h, endpoint, out["access_token"].(string), nil)
	if r, err := callTool(c, "old__shout", map[string]any{"text": "legacy"}); err != nil || resultText(r) != "LEGACY" {
		t.Fatalf("call through to an SSE upstream: %v %+v", err, r)
	}
}

// TestMCPReplicaKilledMidSession: two replicas share PostgreSQL behind one
// public URL; the one a client's session began on is killed (SIGKILL);
// the client's next request, with the same session, succeeds on the other.
func TestMCPReplicaKilledMidSession(t *testing.T) {
	up := newTestUpstream(t)
	agentAddr, adminAddr := freeAddr(t), freeAddr(t)
	public := []string{"XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_AGENT_PUBLIC_URL=https://" + agentAddr, "XAVYO_ADMIN_PUBLIC_URL=http://" + adminAddr,
		"XAVYO_LOG_LEVEL=error"}
	base := env(t, store.Postgres, t.TempDir())
	var procEnv []string
	for _, e := range base {
		if !strings.HasPrefix(e, "XAVYO_ADMIN_ADDR=") && !strings.HasPrefix(e, "XAVYO_AGENT_ADDR=") {
			procEnv = append(procEnv, e)
		}
	}
	procEnv = append(append(procEnv, public...), "XAVYO_AGENT_ADDR="+agentAddr, "XAVYO_ADMIN_ADDR="+adminAddr)
	cmd, one := serveProcess(t, procEnv)
	two := start(t, append(env(t, store.Postgres, t.TempDir()), public...), nil)
	m := setupMCP(t, one, up)
	tok := m.agentToken(t, one, m.endpoint)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	resp, out := rawMCP(t, one.TLS, m.endpoint, init, "Authorization", "Bearer "+tok)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize on one: %d %v", resp.StatusCode, out)
	}
	call := func(h *harness, endpoint string, text string) map[string]any {
		_, out := rawMCP(t, h.TLS, endpoint, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tools__echo","arguments":{"text":"`+text+`"}}}`,
			"Authorization", "Bearer "+tok, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
		return out
	}
	if out := call(one, m.endpoint, "before"); !strings.Contains(apptest.JSON(out), `"text":"before"`) {
		t.Fatalf("call on one: %v", out)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	twoEndpoint := strings.Replace(m.endpoint, "https://"+agentAddr, two.Agent, 1)
	if out := call(two, twoEndpoint, "after"); !strings.Contains(apptest.JSON(out), `"text":"after"`) {
		t.Fatalf("the session did not survive its replica: %v", out)
	}
}

// TestMCPAdminRoutesStayInTheirTenant: another tenant's admin cannot see,
// change, sync or ping a tool server, does not see its audit records, and
// a registration access token is worth nothing at another issuer.
func TestMCPAdminRoutesStayInTheirTenant(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	a := setupMCP(t, h, up)
	b := setupMCP(t, h, up)
	c := mcpClient(t, h, a.endpoint, a.agentToken(t, h, a.endpoint), nil)
	if _, err := callTool(c, "tools__echo", map[string]any{"text": "tenant A only"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/upstream"}, {"PUT", "/upstream"}, {"POST", "/sync"}, {"GET", "/tools"}, {"GET", "/health"},
	} {
		var body any
		if r.method == "PUT" {
			body = map[string]any{"credential_type": "none"}
		}
		resp, out := h.DoAs(b.adminTok, r.method, "/api/v1/tool-servers/"+a.server.ID+r.path, body)
		if resp.StatusCode != 404 {
			t.Errorf("tenant B %s %s on A's tool server: %d %s", r.method, r.path, resp.StatusCode, out)
		}
	}
	resp, body := h.DoAs(a.adminTok, "GET", "/api/v1/audit?action=mcp.tools.*&limit=500", nil)
	expect(t, resp, body, 200, "A's audit")
	if !strings.Contains(string(body), `"target_id":"tools/echo"`) {
		t.Fatalf("tenant A does not see its own call: %s", body)
	}
	resp, body = h.DoAs(b.adminTok, "GET", "/api/v1/audit?action=mcp.tools.*&limit=500", nil)
	expect(t, resp, body, 200, "B's audit")
	if strings.Contains(string(body), a.agent.ID) || strings.Contains(string(body), "tools/echo") {
		t.Fatalf("tenant B sees A's tool calls: %s", body)
	}
	resp, body = h.DoAs("", "POST", "/t/"+a.slug+"/register", map[string]any{"redirect_uris": []string{"http://localhost:1/cb"}})
	expect(t, resp, body, 201, "register at A")
	reg := decode[struct {
		ClientID string `json:"client_id"`
		RAT      string `json:"registration_access_token"`
	}](t, body)
	if resp, body := h.DoAs(reg.RAT, "GET", "/t/"+b.slug+"/register/"+reg.ClientID, nil); resp.StatusCode != 401 {
		t.Fatalf("A's registration token at B: %d %s", resp.StatusCode, body)
	}
}

// statelessCaller sends requests of the stateless era (2026-07-28) to an
// endpoint with a token: headers and _meta as that era wants them, with
// the client capabilities caps (a JSON object).
func statelessCaller(t *testing.T, h *harness, ep, tok, caps string) func(method, name, params string) (*http.Response, map[string]any) {
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps +
		`,"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	return func(method, name, params string) (*http.Response, map[string]any) {
		hdr := []string{"Authorization", "Bearer " + tok, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", method}
		if name != "" {
			hdr = append(hdr, "Mcp-Name", name)
		}
		return rawMCP(t, h.TLS, ep, `{"jsonrpc":"2.0","id":7,"method":"`+method+`","params":{`+params+meta+`}}`, hdr...)
	}
}

// statelessToolNames lists an endpoint's tools in the stateless era, every
// page; each page must be private to the caller.
func statelessToolNames(t *testing.T, do func(method, name, params string) (*http.Response, map[string]any)) string {
	t.Helper()
	var names []string
	cursor := ""
	for range 10 {
		params := ""
		if cursor != "" {
			params = `"cursor":"` + cursor + `",`
		}
		resp, out := do("tools/list", "", params)
		res, _ := out["result"].(map[string]any)
		if resp.StatusCode != 200 || res == nil || res["cacheScope"] != "private" || res["resultType"] != "complete" {
			t.Fatalf("tools/list: %d %v", resp.StatusCode, out)
		}
		for _, tl := range res["tools"].([]any) {
			names = append(names, tl.(map[string]any)["name"].(string))
		}
		if cursor, _ = res["nextCursor"].(string); cursor == "" {
			break
		}
	}
	return strings.Join(names, ",")
}

// TestMCPStatelessClient: a client of the stateless era on a tool
// server's endpoint, in front of a tool server that speaks that era too:
// the gateway lists exactly the granted tools (the tool server's pages,
// filtered), decides, audits and forwards calls, and passes the rest
// through.
func TestMCPStatelessClient(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	m := setupMCP(t, h, up)
	ep := m.endpoint + "/tools"
	do := statelessCaller(t, h, ep, m.agentToken(t, h, ep), "{}")
	resp, out := do("server/discover", "", "")
	res, _ := out["result"].(map[string]any)
	if resp.StatusCode != 200 || res == nil || !strings.Contains(fmt.Sprint(res["supportedVersions"]), "2026-07-28") || res["resultType"] != "complete" {
		t.Fatalf("discover: %d %v", resp.StatusCode, out)
	}
	if names := statelessToolNames(t, do); names != "add,echo,slow" {
		t.Fatalf("listed: %v", names)
	}
	before := auditCount(t, h, m.adminTok, "mcp.tools.call", "success")
	calls := up.calls.Load()
	resp, out = do("tools/call", "echo", `"name":"echo","arguments":{"text":"stateless"},`)
	res, _ = out["result"].(map[string]any)
	if resp.StatusCode != 200 || res == nil || res["resultType"] != "complete" || !strings.Contains(fmt.Sprint(res["content"]), "stateless") {
		t.Fatalf("tools/call: %d %v", resp.StatusCode, out)
	}
	if n := auditCount(t, h, m.adminTok, "mcp.tools.call", "success"); n != before+1 {
		t.Errorf("audited calls: %d, want %d", n, before+1)
	}
	if _, out = do("tools/call", "delete_repo", `"name":"delete_repo","arguments":{"name":"x"},`); rpcCode(out) != -32003 {
		t.Errorf("ungranted call: %v", out)
	}
	if up.calls.Load() != calls+1 {
		t.Errorf("upstream calls: %d, want %d", up.calls.Load(), calls+1)
	}
	resp, out = do("prompts/list", "", "")
	res, _ = out["result"].(map[string]any)
	if resp.StatusCode != 200 || res == nil || !strings.Contains(fmt.Sprint(res["prompts"]), "greet") {
		t.Fatalf("prompts/list: %d %v", resp.StatusCode, out)
	}

	// subscriptions/listen on the aggregate endpoint: acknowledged, then
	// list_changed (tagged with the subscription) when a grant is revoked.
	agg := m.agentToken(t, h, m.endpoint)
	body := `{"jsonrpc":"2.0","id":"sub-1","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest("POST", m.endpoint, strings.NewReader(body))
	for k, v := range map[string]string{"Authorization": "Bearer " + agg, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen",
		"Content-Type": "application/json", "Accept": "application/json, text/event-stream"} {
		req.Header.Set(k, v)
	}
	lresp, err := h.TLS.Do(req)
	if err != nil || lresp.StatusCode != 200 {
		t.Fatalf("listen: %v %v", err, lresp)
	}
	defer lresp.Body.Close()
	events := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(lresp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	next := func(what string) string {
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s on the listen stream", what)
		}
		return ""
	}
	if e := next("acknowledgement"); !strings.Contains(e, "notifications/subscriptions/acknowledged") || !strings.Contains(e, `"io.modelcontextprotocol/subscriptionId":"sub-1"`) {
		t.Fatalf("first event: %s", e)
	}
	resp, body2 := h.DoAs(m.adminTok, "DELETE", "/api/v1/assignments/"+m.assign["add"], nil)
	expect(t, resp, body2, 204, "revoke")
	if e := next("list_changed"); !strings.Contains(e, "notifications/tools/list_changed") || !strings.Contains(e, `"sub-1"`) {
		t.Fatalf("after a revocation: %s", e)
	}
	if names := statelessToolNames(t, statelessCaller(t, h, m.endpoint, agg, "{}")); names != "tools__echo,tools__slow" {
		t.Fatalf("listed after the revocation: %v", names)
	}
}
