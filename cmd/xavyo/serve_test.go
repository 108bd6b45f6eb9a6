package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
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

	"github.com/xavyo/xavyo/app"
	"github.com/xavyo/xavyo/app/apptest"
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

// The harness is apptest's: a whole server in the test process.
type harness = apptest.Harness

var sharedKEK = apptest.SharedKEK

const testToken = apptest.BootstrapToken

func env(t *testing.T, flavor store.Flavor, dataDir string) []string {
	return apptest.Env(t, flavor, dataDir)
}

func envOwn(t *testing.T, flavor store.Flavor, dataDir string) []string {
	return apptest.EnvOwn(t, flavor, dataDir)
}

// start runs a server whose every admin-plane answer is checked against
// its API document.
func start(t *testing.T, environ []string, prepare func(*app.App)) *harness {
	t.Helper()
	return apptest.Start(t, environ, apptest.Options{Prepare: prepare})
}

type tenantJSON struct {
	ID      string          `json:"id"`
	Slug    string          `json:"slug"`
	Name    string          `json:"name"`
	Status  string          `json:"status"`
	Version int64           `json:"version"`
	Settngs json.RawMessage `json:"settings"`
}

func uniqueSlug(prefix string) string { return apptest.UniqueSlug(prefix) }

// TestTenantLifecycleSurvivesRestart is the foundation's acceptance path:
// both planes answer; with the bootstrap token, tenants are created,
// listed, updated with If-Match and deleted; a restart keeps them.
func TestTenantLifecycleSurvivesRestart(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			dir := t.TempDir()
			environ := env(t, flavor, dir)
			h := start(t, environ, nil)
			for _, u := range []string{h.Admin + "/healthz", h.Admin + "/readyz"} {
				resp, err := h.HTTP.Get(u)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s: %v %v", u, resp, err)
				}
				resp.Body.Close()
			}
			for _, u := range []string{h.Agent + "/healthz", h.Agent + "/readyz"} {
				resp, err := h.TLS.Get(u)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s: %v %v", u, resp, err)
				}
				resp.Body.Close()
			}

			slug := uniqueSlug("acme")
			resp, body := h.Do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "Acme", "settings": map[string]any{"region": "eu"}})
			if resp.StatusCode != 201 || resp.Header.Get("ETag") != `"1"` || resp.Header.Get("Location") == "" {
				t.Fatalf("create: %d %s %v", resp.StatusCode, body, resp.Header)
			}
			var created tenantJSON
			_ = json.Unmarshal(body, &created)
			resp, body = h.Do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": "Again"})
			if resp.StatusCode != 409 {
				t.Fatalf("duplicate slug: %d %s", resp.StatusCode, body)
			}
			resp, body = h.Do("PATCH", "/api/v1/tenants/"+created.ID, map[string]any{"name": "Acme Corp"}, "If-Match", `"1"`)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"2"` {
				t.Fatalf("update: %d %s", resp.StatusCode, body)
			}
			resp, body = h.Do("PATCH", "/api/v1/tenants/"+created.ID, map[string]any{"name": "Stale"}, "If-Match", `"1"`)
			if resp.StatusCode != 412 {
				t.Fatalf("stale If-Match: %d %s", resp.StatusCode, body)
			}
			doomed := uniqueSlug("doomed")
			_, body = h.Do("POST", "/api/v1/tenants", map[string]any{"slug": doomed, "name": "Doomed"})
			var d tenantJSON
			_ = json.Unmarshal(body, &d)
			if resp, body = h.Do("DELETE", "/api/v1/tenants/"+d.ID, nil, "If-Match", `"1"`); resp.StatusCode != 204 {
				t.Fatalf("delete: %d %s", resp.StatusCode, body)
			}
			if resp, _ = h.Do("GET", "/api/v1/tenants/"+d.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("deleted tenant still served: %d", resp.StatusCode)
			}

			h.Stop()
			h = start(t, environ, nil)
			resp, body = h.Do("GET", "/api/v1/tenants/"+created.ID, nil)
			var got tenantJSON
			_ = json.Unmarshal(body, &got)
			if resp.StatusCode != 200 || got.Name != "Acme Corp" || got.Version != 2 || got.Slug != slug {
				t.Fatalf("after restart: %d %s", resp.StatusCode, body)
			}
			_, body = h.Do("GET", "/api/v1/tenants?status=deleted&limit=500", nil)
			if !strings.Contains(string(body), doomed) {
				t.Fatalf("deleted tenant not kept for retention: %s", body)
			}
			_, body = h.Do("GET", "/api/v1/tenants?limit=500", nil)
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
	printed := h.Out.String()
	i := strings.Index(printed, "xvb_")
	if i < 0 {
		t.Fatalf("no token printed: %s", printed)
	}
	h.Token = strings.Fields(printed[i:])[0]
	if resp, body := h.Do("GET", "/api/v1/tenants", nil); resp.StatusCode != 200 {
		t.Fatalf("generated token refused: %d %s", resp.StatusCode, body)
	}
	token := h.Token
	h.Stop()

	h = start(t, environ, nil)
	if strings.Contains(h.Out.String(), "xvb_") {
		t.Fatal("token printed again on the second start")
	}
	h.Token = token
	if resp, _ := h.Do("GET", "/api/v1/tenants", nil); resp.StatusCode != 200 {
		t.Fatal("token lost across restart")
	}
	h.Stop()

	// An empty bootstrap_token revokes it, for good.
	h = start(t, append(environ, "XAVYO_BOOTSTRAP_TOKEN="), nil)
	h.Token = token
	if resp, _ := h.Do("GET", "/api/v1/tenants", nil); resp.StatusCode != 401 {
		t.Fatalf("revoked token accepted: %d", resp.StatusCode)
	}
	h.Stop()
	h = start(t, environ, nil)
	h.Token = token
	if resp, _ := h.Do("GET", "/api/v1/tenants", nil); resp.StatusCode != 401 || strings.Contains(h.Out.String(), "xvb_") {
		t.Fatalf("revocation did not hold across restart: %d", resp.StatusCode)
	}
}

// TestShutdownDrainsInFlightRequests cancels the server while a request
// is in flight: the request completes and serve returns nil.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	h := start(t, env(t, store.SQLite, t.TempDir()), func(s *app.App) {
		s.AdminPlane().Get("/test/slow", func(c *fiber.Ctx) error {
			close(started)
			time.Sleep(300 * time.Millisecond)
			return c.SendString("done")
		})
	})
	result := make(chan string, 1)
	go func() {
		resp, err := h.HTTP.Get(h.Admin + "/test/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	h.Cancel()
	if got := <-result; got != "done" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := h.Wait(10 * time.Second); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if _, err := h.HTTP.Get(h.Admin + "/healthz"); err == nil {
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
	h := start(t, environ, func(s *app.App) {
		s.AgentPlane().Handle("GET /test/whoami", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(principal.From(r.Context()))
		}))
	})
	whoami := func(c *http.Client, origin string) (int, *principal.Principal) {
		req, _ := http.NewRequest("GET", h.Agent+"/test/whoami", nil)
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
	if code, p := whoami(h.AgentClient(nil), ""); code != 200 || p != nil {
		t.Fatalf("no certificate: %d %+v", code, p)
	}
	id := spiffe.ID{TrustDomain: "xavyo.local", TenantID: uuid.New(), Kind: "agent", Name: "billing-bot"}
	cert := ca.client(t, id.String())
	if code, p := whoami(h.AgentClient(&cert), ""); code != 200 || p != nil {
		t.Fatalf("a certificate xavyo did not issue became a principal: %d %+v", code, p)
	}
	rogue := newTestCA(t).client(t, id.String())
	if _, err := h.AgentClient(&rogue).Get(h.Agent + "/healthz"); err == nil {
		t.Fatal("a certificate from an untrusted CA was accepted")
	}
	if code, _ := whoami(h.AgentClient(&cert), "https://evil.example.test"); code != 403 {
		t.Fatalf("foreign origin: %d", code)
	}
	if code, _ := whoami(h.AgentClient(&cert), "https://console.example.test"); code != 200 {
		t.Fatalf("allowed origin: %d", code)
	}
}
