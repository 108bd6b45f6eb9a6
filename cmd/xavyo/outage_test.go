package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// a2aRecorder is an A2A 1.0 agent that answers SendMessage with the text
// it got and remembers each text it ran with.
type a2aRecorder struct {
	srv *httptest.Server
	ran sync.Map // text → true
	n   atomic.Int64
}

func newA2ARecorder(t *testing.T) *a2aRecorder {
	t.Helper()
	a := &a2aRecorder{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Params struct {
				Message struct {
					Parts []struct {
						Text string `json:"text"`
					} `json:"parts"`
				} `json:"message"`
			} `json:"params"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &req) != nil || len(req.Params.Message.Parts) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		text := req.Params.Message.Parts[0].Text
		a.ran.Store(text, true)
		a.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("A2A-Version", "1.0")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": map[string]any{
			"message": map[string]any{"messageId": "re-" + text, "role": "ROLE_AGENT", "parts": []map[string]any{{"text": text}}}}})
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// sendA2A sends one A2A 1.0 SendMessage through the gateway; ok when the
// agent's answer came back.
func sendA2A(h *harness, endpoint, bearer, text string) bool {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": map[string]any{
		"message": map[string]any{"messageId": "m-" + text, "role": "ROLE_USER", "parts": []map[string]any{{"text": text}}}}})
	req, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("A2A-Version", "1.0")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := h.TLS.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && bytes.Contains(out, []byte(`"re-`+text+`"`))
}

// a2aSetup registers a recording A2A agent and a caller allowed to call
// it in the tenant of tok; it returns the endpoint and the caller's token.
func a2aSetup(t *testing.T, h *harness, slug, tok string, agent *a2aRecorder) (endpoint, bearer string) {
	t.Helper()
	owner := decodeMe(t, h, tok)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "recorder", "name": "Recorder", "owner_id": owner,
		"profile": map[string]any{"agent": map[string]any{"a2a_endpoint": agent.srv.URL}}})
	expect(t, resp, body, 201, "A2A agent")
	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "a2a-caller", "name": "Caller", "owner_id": owner})
	expect(t, resp, body, 201, "A2A caller")
	caller := decode[apptest.Agent](t, body)
	grantEntitlement(t, h, tok, "nhi", caller.ID, a2aCall(t, h, tok, "recorder"))
	endpoint = h.Agent + "/t/" + slug + "/a2a/agents/recorder"
	return endpoint, a2aToken(t, h, slug, caller, endpoint)
}

// TestNoCallForwardedBeforeItsRecord: while the audit log cannot commit
// (its writer blocked by a lock the test holds), a tool call and an A2A
// call wait and reach neither the tool server nor the agent; once the
// lock is released both are recorded, then forwarded and answered.
func TestNoCallForwardedBeforeItsRecord(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			up := newTestUpstream(t)
			agent := newA2ARecorder(t)
			dataDir := t.TempDir()
			h := start(t, append(env(t, flavor, dataDir), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
			m := setupMCP(t, h, up)
			endpoint, bearer := a2aSetup(t, h, m.slug, m.adminTok, agent)
			c := mcpClient(t, h, m.endpoint, m.agentToken(t, h, m.endpoint), nil)
			if _, err := callTool(c, "tools__echo", map[string]any{"text": "warm"}); err != nil {
				t.Fatal(err)
			}
			if !sendA2A(h, endpoint, bearer, "warm") {
				t.Fatal("A2A call before the lock failed")
			}

			// Block the audit writer: SQLite's write lock, or the tenant's
			// chain head on PostgreSQL.
			var db *sql.DB
			var err error
			if flavor == store.SQLite {
				db, err = sql.Open("sqlite", "file:"+filepath.Join(dataDir, "xavyo.db")+"?_pragma=busy_timeout(10000)")
			} else {
				db, err = sql.Open("pgx", testdb.OwnerURL(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if flavor == store.SQLite {
				_, err = tx.Exec(`UPDATE audit_heads SET seq = seq WHERE tenant_id = ?`, m.tenantID)
			} else {
				_, err = tx.Exec(`SELECT 1 FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`, m.tenantID)
			}
			if err != nil {
				t.Fatal(err)
			}
			before, ranBefore := up.calls.Load(), agent.n.Load()
			var wg sync.WaitGroup
			var mcpErr error
			var mcpText string
			var a2aOK bool
			wg.Add(2)
			go func() {
				defer wg.Done()
				res, err := callTool(c, "tools__echo", map[string]any{"text": "while locked"})
				mcpErr, mcpText = err, resultText(res)
			}()
			go func() { defer wg.Done(); a2aOK = sendA2A(h, endpoint, bearer, "while-locked") }()
			time.Sleep(1500 * time.Millisecond)
			if got := up.calls.Load() - before; got != 0 {
				t.Errorf("the tool server ran %d call(s) whose decision record was not durable", got)
			}
			if got := agent.n.Load() - ranBefore; got != 0 {
				t.Errorf("the agent ran %d call(s) whose decision record was not durable", got)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if mcpErr != nil || mcpText != "while locked" || !a2aOK {
				t.Fatalf("after the lock: MCP %v %q, A2A ok=%v", mcpErr, mcpText, a2aOK)
			}
			if !auditedArgs(t, h, m.adminTok, "mcp.tools.call")[echoArgsHash("while locked")] {
				t.Fatal("the call that ran has no decision record")
			}
		})
	}
}

// TestDatabaseOutageUnderLoad: MCP and A2A load runs while a private
// PostgreSQL is stopped for 10 s (or crashes, with disk durability for
// 5 s). Every call the tool server or the agent ran has its decision
// record after recovery, calls go through again, and the tenant's audit
// chain verifies. (With the default process durability, a crash of
// PostgreSQL itself may lose the last asynchronously committed records:
// audit.durability disk is for that.)
func TestDatabaseOutageUnderLoad(t *testing.T) {
	t.Parallel() // waits more than it works: it overlaps the other waiting suites
	if testing.Short() {
		t.Skip("outages of several seconds")
	}
	for _, tc := range []struct {
		name, durability string
		crash            bool
		outage           time.Duration
	}{
		{"stopped", "process", false, 10 * time.Second},
		{"crashed", "disk", true, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			databaseOutage(t, tc.durability, tc.crash, tc.outage)
		})
	}
}

func databaseOutage(t *testing.T, durability string, crash bool, outage time.Duration) {
	cluster := testdb.StartCluster(t)
	up := newTestUpstream(t)
	agent := newA2ARecorder(t)
	dataDir := t.TempDir()
	environ := []string{"XAVYO_DATA_DIR=" + dataDir, "XAVYO_ADMIN_ADDR=127.0.0.1:0", "XAVYO_AGENT_ADDR=127.0.0.1:0",
		"XAVYO_BOOTSTRAP_TOKEN=" + testToken, "XAVYO_SHUTDOWN_TIMEOUT=5s", "XAVYO_EGRESS_ALLOW_PRIVATE=true",
		"XAVYO_DATABASE_URL=" + cluster.URL("xavyo_app"), "XAVYO_DATABASE_MIGRATE_URL=" + cluster.URL("postgres"),
		"XAVYO_SECRETS_KEK=" + sharedKEK, "XAVYO_AUDIT_DURABILITY=" + durability}
	h := start(t, environ, nil)
	m := setupMCP(t, h, up)
	endpoint, bearer := a2aSetup(t, h, m.slug, m.adminTok, agent)
	tok := m.agentToken(t, h, m.endpoint)

	var (
		refused, answers, afterRecovery atomic.Int64
		a2aRefused, a2aOK               atomic.Int64
		recovered                       atomic.Bool
		stop                            = make(chan struct{})
		wg                              sync.WaitGroup
	)
	for w := range 4 {
		c := mcpClient(t, h, m.endpoint, tok, nil)
		untilStopped(&wg, stop, func(i int) bool {
			text := fmt.Sprintf("w%d-%d", w, i)
			if res, err := callTool(c, "tools__echo", map[string]any{"text": text}); err != nil || resultText(res) != text {
				refused.Add(1)
				return false
			}
			answers.Add(1)
			if recovered.Load() {
				afterRecovery.Add(1)
			}
			return true
		})
	}
	for w := range 2 {
		untilStopped(&wg, stop, func(i int) bool {
			if !sendA2A(h, endpoint, bearer, fmt.Sprintf("a%d-%d", w, i)) {
				a2aRefused.Add(1)
				return false
			}
			a2aOK.Add(1)
			return true
		})
	}
	time.Sleep(2 * time.Second)
	if crash {
		cluster.Crash(t)
	} else {
		cluster.Stop(t)
	}
	time.Sleep(outage)
	cluster.Start(t)
	waitFor(t, "the store to answer again", func() bool {
		resp, err := h.HTTP.Get(h.Admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	recovered.Store(true)
	waitFor(t, "tool calls to go through again", func() bool { return afterRecovery.Load() >= 20 })
	close(stop)
	wg.Wait()
	if refused.Load() == 0 || a2aRefused.Load() == 0 {
		t.Fatalf("no call was refused during the outage (MCP %d, A2A %d): the outage did not happen", refused.Load(), a2aRefused.Load())
	}

	recorded := auditedArgs(t, h, m.adminTok, "mcp.tools.call")
	ran, unrecorded, example := 0, 0, ""
	up.echoed.Range(func(k, _ any) bool {
		ran++
		if !recorded[echoArgsHash(k.(string))] {
			unrecorded++
			example = k.(string)
		}
		return true
	})
	if unrecorded > 0 {
		t.Errorf("the tool server ran %d calls that have no decision record (e.g. %q)", unrecorded, example)
	}
	// A2A records carry no message content: the agent ran at most as many
	// calls as were recorded allowed.
	a2aRecorded := 0
	for _, r := range auditRecords(t, h, m.adminTok, "a2a.call") {
		if r.Outcome == "success" {
			a2aRecorded++
		}
	}
	if n := int(agent.n.Load()); n > a2aRecorded {
		t.Errorf("the agent ran %d calls, %d are recorded allowed", n, a2aRecorded)
	}
	t.Logf("MCP: %d answered, %d refused, %d ran upstream, %d recorded; A2A: %d answered, %d refused, %d ran, %d recorded",
		answers.Load(), refused.Load(), ran, len(recorded), a2aOK.Load(), a2aRefused.Load(), agent.n.Load(), a2aRecorded)
	verifyAudit(t, environ, m.slug)
}

// TestAnswersDuringDatabaseOutage: with the store down, clients hear
// "try again" — the token endpoint (and its mTLS alias) answers 503
// temporarily_unavailable, not invalid_client; sign-in answers 503, not
// 401 or 500 — and the JWKS is served from the key cache. Once the store
// is back, tokens are issued again.
func TestAnswersDuringDatabaseOutage(t *testing.T) {
	cluster := testdb.StartCluster(t)
	environ := []string{"XAVYO_DATA_DIR=" + t.TempDir(), "XAVYO_ADMIN_ADDR=127.0.0.1:0", "XAVYO_AGENT_ADDR=127.0.0.1:0",
		"XAVYO_BOOTSTRAP_TOKEN=" + testToken, "XAVYO_SHUTDOWN_TIMEOUT=5s",
		"XAVYO_DATABASE_URL=" + cluster.URL("xavyo_app"), "XAVYO_DATABASE_MIGRATE_URL=" + cluster.URL("postgres"), "XAVYO_SECRETS_KEK=" + sharedKEK}
	h := start(t, environ, nil)
	slug := uniqueSlug("outage")
	_, tok := tenantAdmin(t, h, slug)
	owner := decodeMe(t, h, tok)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "bot", "name": "Bot", "owner_id": owner})
	expect(t, resp, body, 201, "agent")
	agent := decode[apptest.Agent](t, body)
	token := func() (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"mcp"}}, agent.ClientID, agent.ClientSecret)
	}
	if code, out := token(); code != 200 {
		t.Fatalf("token before the outage: %d %v", code, out)
	}
	_, jwksBefore := h.DoAs("", "GET", "/t/"+slug+"/jwks", nil)

	cluster.Stop(t)
	code, out := token()
	if code != 503 || out["error"] != "temporarily_unavailable" {
		t.Errorf("token endpoint during the outage: %d %v", code, out)
	}
	for _, login := range []map[string]any{
		{"tenant": slug, "login": "admin@" + slug + ".test", "password": "N3w-passphrase-" + slug},
		{"tenant": "no-such-tenant", "login": "a@b.test", "password": "whatever-it-is-1"},
	} {
		resp, body := h.DoAs("", "POST", "/api/v1/auth/login", login)
		if resp.StatusCode != 503 {
			t.Errorf("login during the outage: %d %s", resp.StatusCode, body)
		}
	}
	resp, body = h.DoAs("", "GET", "/t/"+slug+"/jwks", nil)
	if resp.StatusCode != 200 || string(body) != string(jwksBefore) {
		t.Errorf("JWKS during the outage: %d %s", resp.StatusCode, body)
	}

	cluster.Start(t)
	waitFor(t, "tokens to be issued again", func() bool { code, _ := token(); return code == 200 })
}

// untilStopped runs call(0), call(1), … in a goroutine of wg until stop is
// closed; a failed call (false) is followed by a short pause.
func untilStopped(wg *sync.WaitGroup, stop <-chan struct{}, call func(i int) bool) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if !call(i) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
}
