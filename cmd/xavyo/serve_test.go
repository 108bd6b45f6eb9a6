package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/config"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
	"github.com/xavyo/xavyo/pki/spiffe"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as a real server process.
	if os.Getenv("XAVYO_TEST_RUN_SERVE") == "1" {
		root := newRoot(os.Stdout, os.Stderr, os.Environ())
		root.SetArgs([]string{"serve"})
		if err := root.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "xavyo:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testdb.Main(m))
}

// sharedKEK is the key-encryption key of every PostgreSQL test server.
var sharedKEK = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

const testToken = "xvb_test-bootstrap-token-0123456789abcdefghijklmnop"

type harness struct {
	t      *testing.T
	s      *server
	out    *bytes.Buffer
	cancel context.CancelFunc
	done   chan error
	admin  string
	agent  string
	token  string
	http   *http.Client
	tls    *http.Client
}

// env returns the environment of a test server on backend flavor with a
// fresh data dir (PostgreSQL: the package database, owner migrates).
func env(t *testing.T, flavor store.Flavor, dataDir string) []string {
	e := []string{
		"XAVYO_DATA_DIR=" + dataDir,
		"XAVYO_ADMIN_ADDR=127.0.0.1:0",
		"XAVYO_AGENT_ADDR=127.0.0.1:0",
		"XAVYO_BOOTSTRAP_TOKEN=" + testToken,
		"XAVYO_SHUTDOWN_TIMEOUT=5s",
	}
	if flavor == store.Postgres {
		// The package database is shared by every test, as by replicas:
		// they share one KEK too.
		e = append(e, "XAVYO_DATABASE_URL="+testdb.AppURL(t), "XAVYO_DATABASE_MIGRATE_URL="+testdb.OwnerURL(t),
			"XAVYO_SECRETS_KEK="+sharedKEK)
	}
	return e
}

// envOwn is env, with a PostgreSQL database of the test's own: for tests
// that run in parallel (their servers must not act as each other's
// replicas).
func envOwn(t *testing.T, flavor store.Flavor, dataDir string) []string {
	e := env(t, flavor, dataDir)
	if flavor == store.Postgres {
		app, owner := testdb.OwnDatabase(t)
		for i, kv := range e {
			switch {
			case strings.HasPrefix(kv, "XAVYO_DATABASE_URL="):
				e[i] = "XAVYO_DATABASE_URL=" + app
			case strings.HasPrefix(kv, "XAVYO_DATABASE_MIGRATE_URL="):
				e[i] = "XAVYO_DATABASE_MIGRATE_URL=" + owner
			}
		}
	}
	return e
}

func start(t *testing.T, environ []string, prepare func(*server)) *harness {
	t.Helper()
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Fatal(err)
	}
	// Warnings and errors are kept and shown when the test fails (all of
	// the log with -v).
	warnings := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	t.Cleanup(func() {
		if t.Failed() && warnings.String() != "" {
			t.Logf("server warnings and errors:\n%s", warnings.String())
		}
	})
	out := &bytes.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newServer(ctx, cfg, log, out)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(s)
	}
	h := &harness{t: t, s: s, out: out, cancel: cancel, done: make(chan error, 1),
		admin: "http://" + s.adminLn.Addr().String(), agent: "https://" + s.agentLn.Addr().String(), token: cfg.BootstrapToken,
		http: &http.Client{Timeout: 10 * time.Second}}
	ca, err := os.ReadFile(filepath.Join(cfg.DataDir, "agent-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	h.tls = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	go func() { h.done <- s.run(ctx) }()
	t.Cleanup(h.stop)
	for i := 0; ; i++ {
		resp, err := h.http.Get(h.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		h.t.Error("serve did not stop")
	}
}

// do sends a request to the admin plane with the bootstrap token.
func (h *harness) do(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.doAs(h.token, method, path, body, hdr...)
}

type loginResult struct {
	AccessToken            string `json:"access_token"`
	RefreshToken           string `json:"refresh_token"`
	SessionID              string `json:"session_id"`
	Scope                  string `json:"scope"`
	PasswordChangeRequired bool   `json:"password_change_required"`
}

// login signs in through the API and expects status want.
func (h *harness) login(tenant, login, pw string, want int) loginResult {
	h.t.Helper()
	resp, body := h.doAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": tenant, "login": login, "password": pw})
	if resp.StatusCode != want {
		h.t.Fatalf("login %s/%s: %d %s", tenant, login, resp.StatusCode, body)
	}
	var out loginResult
	_ = json.Unmarshal(body, &out)
	return out
}

// doAs sends a request with a bearer token (none when empty).
func (h *harness) doAs(bearer, method, path string, body any, hdr ...string) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.admin+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	// Every answer must be what the API document says it is.
	if err := theDoc.check(method, path, resp, raw); err != nil {
		h.t.Errorf("API document drift: %v", err)
	}
	return resp, raw
}

type tenantJSON struct {
	ID      string          `json:"id"`
	Slug    string          `json:"slug"`
	Name    string          `json:"name"`
	Status  string          `json:"status"`
	Version int64           `json:"version"`
	Settngs json.RawMessage `json:"settings"`
}

func uniqueSlug(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
}

// TestTenantLifecycleSurvivesRestart is the foundation's acceptance path:
// both planes answer; with the bootstrap token, tenants are created,
// listed, updated with If-Match and deleted; a restart keeps them.
func TestTenantLifecycleSurvivesRestart(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			dir := t.TempDir()
			environ := env(t, flavor, dir)
			h := start(t, environ, nil)
			for _, u := range []string{h.admin + "/healthz", h.admin + "/readyz"} {
				resp, err := h.http.Get(u)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s: %v %v", u, resp, err)
				}
				resp.Body.Close()
			}
			for _, u := range []string{h.agent + "/healthz", h.agent + "/readyz"} {
				resp, err := h.tls.Get(u)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s: %v %v", u, resp, err)
				}
				resp.Body.Close()
			}

			slug := uniqueSlug("acme")
			resp, body := h.do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "Acme", "settings": map[string]any{"region": "eu"}})
			if resp.StatusCode != 201 || resp.Header.Get("ETag") != `"1"` || resp.Header.Get("Location") == "" {
				t.Fatalf("create: %d %s %v", resp.StatusCode, body, resp.Header)
			}
			var created tenantJSON
			_ = json.Unmarshal(body, &created)
			resp, body = h.do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "Again"})
			if resp.StatusCode != 409 {
				t.Fatalf("duplicate slug: %d %s", resp.StatusCode, body)
			}
			resp, body = h.do("PATCH", "/api/v1/tenants/"+created.ID, map[string]any{"name": "Acme Corp"}, "If-Match", `"1"`)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"2"` {
				t.Fatalf("update: %d %s", resp.StatusCode, body)
			}
			resp, body = h.do("PATCH", "/api/v1/tenants/"+created.ID, map[string]any{"name": "Stale"}, "If-Match", `"1"`)
			if resp.StatusCode != 412 {
				t.Fatalf("stale If-Match: %d %s", resp.StatusCode, body)
			}
			doomed := uniqueSlug("doomed")
			_, body = h.do("POST", "/api/v1/tenants", map[string]any{"slug": doomed, "name": "Doomed"})
			var d tenantJSON
			_ = json.Unmarshal(body, &d)
			if resp, body = h.do("DELETE", "/api/v1/tenants/"+d.ID, nil, "If-Match", `"1"`); resp.StatusCode != 204 {
				t.Fatalf("delete: %d %s", resp.StatusCode, body)
			}
			if resp, _ = h.do("GET", "/api/v1/tenants/"+d.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("deleted tenant still served: %d", resp.StatusCode)
			}

			h.stop()
			h = start(t, environ, nil)
			resp, body = h.do("GET", "/api/v1/tenants/"+created.ID, nil)
			var got tenantJSON
			_ = json.Unmarshal(body, &got)
			if resp.StatusCode != 200 || got.Name != "Acme Corp" || got.Version != 2 || got.Slug != slug {
				t.Fatalf("after restart: %d %s", resp.StatusCode, body)
			}
			_, body = h.do("GET", "/api/v1/tenants?status=deleted&limit=500", nil)
			if !strings.Contains(string(body), doomed) {
				t.Fatalf("deleted tenant not kept for retention: %s", body)
			}
			_, body = h.do("GET", "/api/v1/tenants?limit=500", nil)
			if strings.Contains(string(body), doomed) {
				t.Fatal("deleted tenant listed by default")
			}
		})
	}
}

func TestGeneratedBootstrapTokenIsPrintedOnceAndRevocable(t *testing.T) {
	dir := t.TempDir()
	environ := []string{"XAVYO_DATA_DIR=" + dir, "XAVYO_ADMIN_ADDR=127.0.0.1:0", "XAVYO_AGENT_ADDR=127.0.0.1:0"}
	h := start(t, environ, nil)
	printed := h.out.String()
	i := strings.Index(printed, "xvb_")
	if i < 0 {
		t.Fatalf("no token printed: %s", printed)
	}
	h.token = strings.Fields(printed[i:])[0]
	if resp, body := h.do("GET", "/api/v1/tenants", nil); resp.StatusCode != 200 {
		t.Fatalf("generated token refused: %d %s", resp.StatusCode, body)
	}
	token := h.token
	h.stop()

	h = start(t, environ, nil)
	if strings.Contains(h.out.String(), "xvb_") {
		t.Fatal("token printed again on the second start")
	}
	h.token = token
	if resp, _ := h.do("GET", "/api/v1/tenants", nil); resp.StatusCode != 200 {
		t.Fatal("token lost across restart")
	}
	h.stop()

	// An empty bootstrap_token revokes it, for good.
	h = start(t, append(environ, "XAVYO_BOOTSTRAP_TOKEN="), nil)
	h.token = token
	if resp, _ := h.do("GET", "/api/v1/tenants", nil); resp.StatusCode != 401 {
		t.Fatalf("revoked token accepted: %d", resp.StatusCode)
	}
	h.stop()
	h = start(t, environ, nil)
	h.token = token
	if resp, _ := h.do("GET", "/api/v1/tenants", nil); resp.StatusCode != 401 || strings.Contains(h.out.String(), "xvb_") {
		t.Fatalf("revocation did not hold across restart: %d", resp.StatusCode)
	}
}

// TestShutdownDrainsInFlightRequests cancels the server while a request
// is in flight: the request completes and serve returns nil.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	h := start(t, env(t, store.SQLite, t.TempDir()), func(s *server) {
		s.admin.Get("/test/slow", func(c *fiber.Ctx) error {
			close(started)
			time.Sleep(300 * time.Millisecond)
			return c.SendString("done")
		})
	})
	result := make(chan string, 1)
	go func() {
		resp, err := h.http.Get(h.admin + "/test/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	h.cancel()
	h.cancel = nil
	if got := <-result; got != "done" {
		t.Fatalf("in-flight request got %q", got)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := h.http.Get(h.admin + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) client(t *testing.T, uri string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (h *harness) agentClient(cert *tls.Certificate) *http.Client {
	base := h.tls.Transport.(*http.Transport).TLSClientConfig.Clone()
	if cert != nil {
		base.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: base}}
}

// TestAgentPlaneIgnoresForeignCertificates: a certificate from an extra
// trusted CA (agent.tls.client_ca_file) passes the handshake but names no
// NHI, even with a SPIFFE ID; an untrusted one fails the handshake;
// foreign origins get 403.
func TestAgentPlaneIgnoresForeignCertificates(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "client-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	environ := append(env(t, store.SQLite, dir), "XAVYO_AGENT_TLS_CLIENT_CA_FILE="+caFile,
		"XAVYO_AGENT_ALLOWED_ORIGINS=https://console.example.test")
	h := start(t, environ, func(s *server) {
		s.agent.Handle("GET /test/whoami", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(principal.From(r.Context()))
		}))
	})
	whoami := func(c *http.Client, origin string) (int, *principal.Principal) {
		req, _ := http.NewRequest("GET", h.agent+"/test/whoami", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p *principal.Principal
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}
	if code, p := whoami(h.agentClient(nil), ""); code != 200 || p != nil {
		t.Fatalf("no certificate: %d %+v", code, p)
	}
	id := spiffe.ID{TrustDomain: "xavyo.local", TenantID: uuid.New(), Kind: "agent", Name: "billing-bot"}
	cert := ca.client(t, id.String())
	if code, p := whoami(h.agentClient(&cert), ""); code != 200 || p != nil {
		t.Fatalf("a certificate xavyo did not issue became a principal: %d %+v", code, p)
	}
	rogue := newTestCA(t).client(t, id.String())
	if _, err := h.agentClient(&rogue).Get(h.agent + "/healthz"); err == nil {
		t.Fatal("a certificate from an untrusted CA was accepted")
	}
	if code, _ := whoami(h.agentClient(&cert), "https://evil.example.test"); code != 403 {
		t.Fatalf("foreign origin: %d", code)
	}
	if code, _ := whoami(h.agentClient(&cert), "https://console.example.test"); code != 200 {
		t.Fatalf("allowed origin: %d", code)
	}
}
