// Package apptest runs a whole xavyo (both planes and the workers, built by
// app.New) inside a test, so end-to-end tests can live beside the packages
// they test: start one with Start on either backend, talk to it over
// loopback HTTP.
//
// A package whose tests use PostgreSQL runs them through testdb.Main in
// its TestMain.
package apptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/app"
	"github.com/xavyo/xavyo/internal/config"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// BootstrapToken is the super_admin bootstrap token of every test server.
const BootstrapToken = "xvb_test-bootstrap-token-0123456789abcdefghijklmnop"

// SharedKEK is the key-encryption key of every PostgreSQL test server:
// servers on the package database act as replicas and share it.
var SharedKEK = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// Env is the environment of a test server on backend flavor with data in
// dataDir (PostgreSQL: the package database, the owner migrates).
func Env(t testing.TB, flavor store.Flavor, dataDir string) []string {
	e := []string{
		"XAVYO_DATA_DIR=" + dataDir,
		"XAVYO_ADMIN_ADDR=127.0.0.1:0",
		"XAVYO_AGENT_ADDR=127.0.0.1:0",
		"XAVYO_BOOTSTRAP_TOKEN=" + BootstrapToken,
		"XAVYO_SHUTDOWN_TIMEOUT=5s",
	}
	if flavor == store.Postgres {
		e = append(e, "XAVYO_DATABASE_URL="+testdb.AppURL(t), "XAVYO_DATABASE_MIGRATE_URL="+testdb.OwnerURL(t),
			"XAVYO_SECRETS_KEK="+SharedKEK)
	}
	return e
}

// EnvOwn is Env with a PostgreSQL database of the test's own: for tests
// that run in parallel (their servers must not act as each other's
// replicas).
func EnvOwn(t testing.TB, flavor store.Flavor, dataDir string) []string {
	e := Env(t, flavor, dataDir)
	if flavor == store.Postgres {
		appURL, owner := testdb.OwnDatabase(t)
		for i, kv := range e {
			switch {
			case strings.HasPrefix(kv, "XAVYO_DATABASE_URL="):
				e[i] = "XAVYO_DATABASE_URL=" + appURL
			case strings.HasPrefix(kv, "XAVYO_DATABASE_MIGRATE_URL="):
				e[i] = "XAVYO_DATABASE_MIGRATE_URL=" + owner
			}
		}
	}
	return e
}

// Options tune a test server.
type Options struct {
	// Prepare runs after New and before Run: a test adds routes of its own.
	Prepare func(*app.App)
	// Check vets every admin-plane answer Do and DoAs get (default: the
	// answer must match the running server's OpenAPI document).
	Check func(method, path string, resp *http.Response, body []byte) error
	// FetchRoots is app.Config.FetchRoots.
	FetchRoots *x509.CertPool
}

// Harness is a running test server and clients for it.
type Harness struct {
	T *testing.T
	// App is the server (nil when the harness talks to a server process).
	App *app.App
	// Out is what the server printed at start (the banner).
	Out *Buffer
	// Admin and Agent are the planes' base URLs.
	Admin, Agent string
	// Token is the bootstrap token.
	Token string
	// HTTP is a plain client; TLS trusts the agent plane's development CA.
	HTTP, TLS *http.Client
	Check     func(method, path string, resp *http.Response, body []byte) error

	cancel context.CancelFunc
	done   chan error
}

// Start builds a server from environ (config.Load's environment), runs it
// and waits until it answers; it stops when the test ends.
func Start(t *testing.T, environ []string, o Options) *Harness {
	t.Helper()
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Fatal(err)
	}
	// Warnings and errors are kept and shown when the test fails (all of
	// the log with -v).
	warnings := &Buffer{}
	log := slog.New(slog.NewTextHandler(warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	t.Cleanup(func() {
		if t.Failed() && warnings.String() != "" {
			t.Logf("server warnings and errors:\n%s", warnings.String())
		}
	})
	out := &Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, app.Config{Config: cfg, Logger: log, Out: out, Version: "test", FetchRoots: o.FetchRoots})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if o.Prepare != nil {
		o.Prepare(a)
	}
	if o.Check == nil {
		o.Check = liveCheck(a)
	}
	h := &Harness{T: t, App: a, Out: out, cancel: cancel, done: make(chan error, 1),
		Admin: "http://" + a.AdminAddr().String(), Agent: "https://" + a.AgentAddr().String(), Token: cfg.BootstrapToken,
		HTTP: &http.Client{Timeout: 10 * time.Second}, Check: o.Check}
	ca, err := os.ReadFile(filepath.Join(cfg.DataDir, "agent-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	h.TLS = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(h.Stop)
	for i := 0; ; i++ {
		resp, err := h.HTTP.Get(h.Admin + "/healthz")
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

// docChecks holds one compiled check per distinct OpenAPI document:
// compiling the document's schemas is the costly part, and every server
// of a test binary serves the same document (unless a test adds routes).
var docChecks sync.Map // [sha256.Size]byte → *DocCheck

// liveCheck checks answers against a's own OpenAPI document, read at the
// first check (after Prepare added its routes).
func liveCheck(a *app.App) func(method, path string, resp *http.Response, body []byte) error {
	var (
		once sync.Once
		dc   *DocCheck
		err  error
	)
	return func(method, path string, resp *http.Response, body []byte) error {
		once.Do(func() {
			var raw []byte
			if raw, err = json.Marshal(a.API().Doc()); err != nil {
				return
			}
			v, _ := docChecks.LoadOrStore(sha256.Sum256(raw), NewDocCheck(func() ([]byte, error) { return raw, nil }))
			dc = v.(*DocCheck)
		})
		if err != nil {
			return err
		}
		return dc.Check(method, path, resp, body)
	}
}

// Remote is a harness for a server running in another process at the
// given addresses.
func Remote(t *testing.T, adminAddr, agentAddr, token string) *Harness {
	return &Harness{T: t, Admin: "http://" + adminAddr, Agent: "https://" + agentAddr, Token: token,
		HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// Cancel begins the server's shutdown and returns at once.
func (h *Harness) Cancel() {
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// Wait waits up to d for the server to stop, and returns what Run did.
func (h *Harness) Wait(d time.Duration) error {
	select {
	case err := <-h.done:
		return err
	case <-time.After(d):
		return context.DeadlineExceeded
	}
}

// Stop shuts the server down and fails the test if it does not stop
// cleanly.
func (h *Harness) Stop() {
	if h.cancel == nil {
		return
	}
	h.Cancel()
	if err := h.Wait(20 * time.Second); err != nil {
		h.T.Errorf("the server stopped with: %v", err)
	}
}

// Do sends a request to the admin plane with the bootstrap token.
func (h *Harness) Do(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	h.T.Helper()
	return h.DoAs(h.Token, method, path, body, hdr...)
}

// DoAs sends a request to the admin plane with a bearer token (none when
// empty); body is sent as is (string, []byte) or as JSON; hdr are header
// name and value pairs (an empty value removes the header).
func (h *Harness) DoAs(bearer, method, path string, body any, hdr ...string) (*http.Response, []byte) {
	h.T.Helper()
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
	req, err := http.NewRequest(method, h.Admin+path, rd)
	if err != nil {
		h.T.Fatal(err)
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
	resp, err := h.HTTP.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if h.Check != nil {
		if err := h.Check(method, path, resp, raw); err != nil {
			h.T.Errorf("API document drift: %v", err)
		}
	}
	return resp, raw
}

// LoginResult is the answer of a password sign-in.
type LoginResult struct {
	AccessToken            string `json:"access_token"`
	RefreshToken           string `json:"refresh_token"`
	SessionID              string `json:"session_id"`
	Scope                  string `json:"scope"`
	PasswordChangeRequired bool   `json:"password_change_required"`
}

// Login signs in through the API and expects status want.
func (h *Harness) Login(tenant, login, pw string, want int) LoginResult {
	h.T.Helper()
	resp, body := h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": tenant, "login": login, "password": pw})
	if resp.StatusCode != want {
		h.T.Fatalf("login %s/%s: %d %s", tenant, login, resp.StatusCode, body)
	}
	var out LoginResult
	_ = json.Unmarshal(body, &out)
	return out
}

// Form posts an OAuth form to the admin plane, with HTTP Basic client
// authentication when basicID is set.
func (h *Harness) Form(path string, v url.Values, basicID, basicSecret string) (int, map[string]any) {
	h.T.Helper()
	req, _ := http.NewRequest("POST", h.Admin+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := h.HTTP.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// AgentClient trusts the agent plane and presents cert when not nil.
func (h *Harness) AgentClient(cert *tls.Certificate) *http.Client {
	base := h.TLS.Transport.(*http.Transport).TLSClientConfig.Clone()
	if cert != nil {
		base.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: base}}
}

// MTLSClient presents cert, trusts the agent plane and resumes sessions.
func (h *Harness) MTLSClient(cert tls.Certificate) *http.Client {
	c := h.AgentClient(&cert)
	c.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	return c
}

// Metrics reads the admin plane's Prometheus metrics as an operator (the
// bootstrap token).
func (h *Harness) Metrics(t *testing.T) string {
	t.Helper()
	resp, body := h.Do("GET", "/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// TenantAdmin creates a tenant with a first admin, signs the admin in,
// changes the generated password and returns the tenant's id and the
// admin's access token.
func (h *Harness) TenantAdmin(t *testing.T, slug string) (tenantID, access string) {
	t.Helper()
	resp, body := h.Do("POST", "/api/v1/tenants", map[string]any{"slug": slug, "name": slug, "admin": map[string]any{"email": "admin@" + slug + ".test"}})
	if resp.StatusCode != 201 {
		t.Fatalf("create tenant with admin: %d %s", resp.StatusCode, body)
	}
	var created struct {
		ID           string `json:"id"`
		InitialAdmin struct {
			Email, Password string
		} `json:"initial_admin"`
	}
	_ = json.Unmarshal(body, &created)
	if created.InitialAdmin.Password == "" {
		t.Fatalf("no generated admin password: %s", body)
	}
	tok := h.Login(slug, created.InitialAdmin.Email, created.InitialAdmin.Password, 200)
	if !tok.PasswordChangeRequired {
		t.Fatal("a first admin must change the password")
	}
	newPW := "N3w-passphrase-" + slug
	resp, body = h.DoAs(tok.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"current_password": created.InitialAdmin.Password, "new_password": newPW})
	if resp.StatusCode != 200 {
		t.Fatalf("change password: %d %s", resp.StatusCode, body)
	}
	var fresh LoginResult
	_ = json.Unmarshal(body, &fresh)
	return created.ID, fresh.AccessToken
}

// UniqueSlug is a fresh tenant slug starting with prefix.
func UniqueSlug(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
}

// Decode unmarshals a JSON answer or fails the test.
func Decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// Expect fails the test unless resp has status want.
func Expect(t testing.TB, resp *http.Response, body []byte, want int, what string) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: got %d, want %d: %s", what, resp.StatusCode, want, body)
	}
}

// Get fetches url with c and returns the status, the body and the TLS
// state of the connection.
func Get(t testing.TB, c *http.Client, url string) (int, []byte, *tls.ConnectionState) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.TLS
}

// WaitFor polls cond for up to 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Buffer collects output written while a server runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
