package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
)

// freeAddr returns a loopback address nobody listens on now, for a
// process the test starts. Its port is drawn below the kernel's ephemeral
// range (32768 and up on Linux), so that the outgoing connections of tests
// running in parallel (load tests open thousands) cannot take it before
// the process binds it, as a port the kernel handed out for :0 could be.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+mrand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// serveProcess runs this test binary as `xavyo serve` and waits until it
// answers; the harness talks to it over both planes.
func serveProcess(t *testing.T, environ []string) (*exec.Cmd, *harness) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(environ, "XAVYO_TEST_RUN_SERVE=1")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var adminAddr, agentAddr, dataDir string
	for _, e := range environ {
		k, v, _ := strings.Cut(e, "=")
		switch k {
		case "XAVYO_ADMIN_ADDR":
			adminAddr = v
		case "XAVYO_AGENT_ADDR":
			agentAddr = v
		case "XAVYO_DATA_DIR":
			dataDir = v
		}
	}
	h := apptest.Remote(t, adminAddr, agentAddr, testToken)
	h.Check = theDoc.Check
	for i := 0; ; i++ {
		resp, err := h.HTTP.Get(h.Admin + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if i > 600 {
			t.Fatalf("the server did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ca, err := os.ReadFile(filepath.Join(dataDir, "agent-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	h.TLS = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return cmd, h
}

// TestAnsweredCallsSurviveKill9: concurrent sessions call a tool through
// a real server process, which is killed with SIGKILL mid-load. After a
// restart, every call that got an answer has its audit record, and the
// tenant's audit chain verifies.
func TestAnsweredCallsSurviveKill9(t *testing.T) {
	up := newTestUpstream(t)
	dataDir := t.TempDir()
	environ := []string{"XAVYO_DATA_DIR=" + dataDir, "XAVYO_ADMIN_ADDR=" + freeAddr(t), "XAVYO_AGENT_ADDR=" + freeAddr(t),
		"XAVYO_BOOTSTRAP_TOKEN=" + testToken, "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_LOG_LEVEL=error"}
	cmd, h := serveProcess(t, environ)
	m := setupMCP(t, h, up)
	tok := m.agentToken(t, h, m.endpoint)

	var mu sync.Mutex
	answered := map[string]bool{} // args hash → answered
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		c := mcpClient(t, h, m.endpoint, tok, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("w%d-call-%d", w, i)
				res, err := callTool(c, "tools__echo", map[string]any{"text": text})
				if err != nil {
					return // the server is gone
				}
				if resultText(res) == text {
					mu.Lock()
					answered[echoArgsHash(text)] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	wg.Wait()
	if len(answered) < 20 {
		t.Fatalf("only %d calls answered before the kill", len(answered))
	}

	_, h = serveProcess(t, environ)
	recorded := auditedArgs(t, h, m.adminTok, "mcp.tools.call")
	missing := 0
	for h := range answered {
		if !recorded[h] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d answered calls have no audit record", missing, len(answered))
	}
	t.Logf("%d answered calls before SIGKILL, all audited (%d records)", len(answered), len(recorded))

	verifyAudit(t, environ, m.slug)
}

// echoArgsHash is the args_sha256 of the decision record of an echo call
// with text.
func echoArgsHash(text string) string {
	args, _ := json.Marshal(map[string]any{"text": text})
	sum := sha256.Sum256(args)
	return hex.EncodeToString(sum[:])
}

// auditRecord is what tests read of an audit record.
type auditRecord struct {
	Outcome string `json:"outcome"`
	Details struct {
		ArgsSHA256 string `json:"args_sha256"`
	} `json:"details"`
}

// auditRecords reads every record of action in the tenant of tok (all
// pages).
func auditRecords(t *testing.T, h *harness, tok, action string) []auditRecord {
	t.Helper()
	var out []auditRecord
	cursor := ""
	for {
		path := "/api/v1/audit?limit=500&action=" + url.QueryEscape(action)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		resp, body := h.DoAs(tok, "GET", path, nil)
		expect(t, resp, body, 200, "audit query")
		var page struct {
			Items      []auditRecord `json:"items"`
			NextCursor string        `json:"next_cursor"`
		}
		_ = json.Unmarshal(body, &page)
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// auditedArgs returns the argument hashes of the allowed records of
// action in the tenant of tok.
func auditedArgs(t *testing.T, h *harness, tok, action string) map[string]bool {
	t.Helper()
	recorded := map[string]bool{}
	for _, r := range auditRecords(t, h, tok, action) {
		if r.Outcome == "success" {
			recorded[r.Details.ArgsSHA256] = true
		}
	}
	return recorded
}

// verifyAudit runs `xavyo audit verify` for a tenant with environ.
func verifyAudit(t *testing.T, environ []string, slug string) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out, &out, append(os.Environ(), environ...))
	root.SetArgs([]string{"audit", "verify", "--tenant", slug})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "verifies") {
		t.Fatalf("audit verify: %v %s", err, out.String())
	}
}
