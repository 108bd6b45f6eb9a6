package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp/totp"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestInteropWithRealClients runs test/interop/interop.mjs — openid-client
// with jose, and the MCP TypeScript SDK's OAuth client — against this
// server. It needs Node and `npm ci` in test/interop; CI sets
// XAVYO_REQUIRE_INTEROP=1 so that a missing setup fails instead of skipping.
func TestInteropWithRealClients(t *testing.T) {
	dir, _ := filepath.Abs("../../test/interop")
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client")); err != nil || nodeErr != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("node and test/interop/node_modules are required (npm ci --prefix test/interop): %v %v", err, nodeErr)
		}
		t.Skip("node or test/interop/node_modules missing")
	}
	data := t.TempDir()
	// Private egress: the back-channel logout receiver is on loopback.
	h := start(t, append(env(t, store.SQLite, data), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	slug := uniqueSlug("io")
	_, tok := tenantAdmin(t, h, slug)
	resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"oauth": map[string]any{"registration": "open", "confidential_registration": true}})
	expect(t, resp, body, 200, "allow confidential registration")
	_, body = h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := decode[userJSON](t, body)

	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@io.test", "password": "Analytical-engine-1843"})
	expect(t, resp, body, 201, "user")
	ada := decode[userJSON](t, body)
	adaTokens := h.Login(slug, "ada@io.test", "Analytical-engine-1843", 200)
	// A second person with an authenticator app (its secret goes to the
	// script, which computes codes as an app does).
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "grace@io.test", "password": "Analytical-engine-1843"})
	expect(t, resp, body, 201, "user")
	graceTok := h.Login(slug, "grace@io.test", "Analytical-engine-1843", 200).AccessToken
	resp, body = h.DoAs(graceTok, "POST", "/api/v1/me/mfa/totp", map[string]any{})
	expect(t, resp, body, 201, "enrol")
	enrolled := decode[struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}](t, body)
	code, _ := totp.GenerateCode(enrolled.Secret, time.Now())
	resp, body = h.DoAs(graceTok, "POST", "/api/v1/me/mfa/totp/"+enrolled.ID+"/confirm", map[string]any{"code": code})
	expect(t, resp, body, 200, "confirm")
	// A second authenticator (a backup phone): its codes do not collide
	// with the first one's in the script's step-up sign-in.
	resp, body = h.DoAs(graceTok, "POST", "/api/v1/me/mfa/totp", map[string]any{"name": "Backup phone"})
	expect(t, resp, body, 201, "enrol a second app")
	backup := decode[struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}](t, body)
	code, _ = totp.GenerateCode(backup.Secret, time.Now())
	resp, body = h.DoAs(graceTok, "POST", "/api/v1/me/mfa/totp/"+backup.ID+"/confirm", map[string]any{"code": code})
	expect(t, resp, body, 200, "confirm the second app")
	_, body = h.DoAs(graceTok, "GET", "/api/v1/me", nil)
	grace := decode[userJSON](t, body)
	// An approval grace decides (she owns the entitlement ada asks for),
	// under step-up.
	resp, body = h.DoAs(tok, "POST", "/api/v1/applications", map[string]any{"key": "erp", "name": "ERP", "type": "generic"})
	expect(t, resp, body, 201, "application")
	erp := decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(tok, "POST", "/api/v1/approval-workflows", map[string]any{"key": "owner", "name": "Owner",
		"steps": []any{map[string]any{"name": "owner", "approvers": []any{map[string]string{"type": "entitlement_owner"}}}}})
	expect(t, resp, body, 201, "workflow")
	workflow := decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(tok, "POST", "/api/v1/applications/"+erp+"/entitlements", map[string]any{"key": "pay", "requestable": true,
		"owner_id": grace.ID, "workflow_id": workflow, "risk_level": "high"})
	expect(t, resp, body, 201, "entitlement")
	pay := decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(adaTokens.AccessToken, "POST", "/api/v1/access-requests", map[string]any{"target_type": "entitlement", "target_id": pay, "justification": "payroll"})
	expect(t, resp, body, 201, "ada asks")
	approval := decode[struct{ ID string }](t, body).ID
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"step_up": map[string]any{"enabled": true}})
	expect(t, resp, body, 200, "step-up on")

	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "interop-bot", "name": "Interop", "owner_id": me.ID})
	expect(t, resp, body, 201, "agent")
	agent := decode[apptest.Agent](t, body)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: key.Public(), KeyID: "interop-1", Use: "sig", Algorithm: "ES256"}.MarshalJSON()
	priv, _ := jose.JSONWebKey{Key: key, KeyID: "interop-1", Algorithm: "ES256"}.MarshalJSON()
	resp, body = h.DoAs(tok, "PUT", "/api/v1/nhis/"+agent.ID+"/client-keys", map[string]any{"keys": []json.RawMessage{pub}})
	expect(t, resp, body, 200, "client keys")

	redirectURI := "http://127.0.0.1:9999/callback"
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Interop app", "redirect_uris": []string{redirectURI},
		"post_logout_redirect_uris": []string{"http://127.0.0.1:9999/signed-out"}})
	expect(t, resp, body, 201, "app client")
	app := decode[struct {
		ClientID string `json:"client_id"`
	}](t, body)

	cmd := exec.Command("node", "interop.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ADMIN="+h.App.Config().Admin.PublicURL, "AGENT="+h.App.Config().Agent.PublicURL, "SLUG="+slug,
		"NODE_EXTRA_CA_CERTS="+filepath.Join(data, "agent-ca.pem"),
		"CLIENT_ID="+agent.ClientID, "CLIENT_SECRET="+agent.ClientSecret, "AGENT_ID="+agent.ID, "PRIVATE_JWK="+string(priv),
		"USER_TOKEN="+adaTokens.AccessToken, "USER_ID="+ada.ID, "USER_LOGIN=ada@io.test", "USER_PASSWORD=Analytical-engine-1843",
		"APP_CLIENT_ID="+app.ClientID, "REDIRECT_URI="+redirectURI, "POST_LOGOUT_URI=http://127.0.0.1:9999/signed-out",
		"MFA_LOGIN=grace@io.test", "MFA_SECRET="+enrolled.Secret, "MFA_SECRET2="+backup.Secret, "APPROVAL_ID="+approval)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "interop: all passed") {
		t.Fatalf("interop.mjs failed: %v", err)
	}
}

// builtOnce is a build a test binary runs once, into its own directory.
type builtOnce struct {
	once sync.Once
	dir  string
	err  error
}

// get runs build into a new directory the first time; its directory.
func (b *builtOnce) get(t *testing.T, what string, build func(dir string) error) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "built"); b.err == nil {
			b.err = build(b.dir)
		}
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", what, b.err)
	}
	return b.dir
}

// goBuild runs the go command in dir, with its output in the error.
func goBuild(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// mcpBench builds the repository's MCP benchmark tools (bench/cmd:
// examples/mcp-echo as the upstream, and mcpload) once per test binary.
var mcpBenchBuild builtOnce

func mcpBench(t *testing.T) string {
	t.Helper()
	return mcpBenchBuild.get(t, "mcpbench", func(dir string) error {
		root, _ := filepath.Abs("../..")
		if err := goBuild(root, nil, "build", "-o", filepath.Join(dir, "mcp-upstream"), "./examples/mcp-echo"); err != nil {
			return err
		}
		return goBuild(root, nil, "build", "-o", dir+string(os.PathSeparator), "./bench/cmd/mcpload")
	})
}

// startBenchUpstream runs the upstream (mcp-echo) on a free loopback port
// and returns its MCP URL.
func startBenchUpstream(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(mcpBench(t), "mcp-upstream"), append([]string{"-addr", addr}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitListening(t, addr)
	return "http://" + addr + "/mcp"
}

// TestGatewayInteropWithOfficialSDK runs test/interop/gateway.mjs: the
// official MCP TypeScript SDK client through the gateway in front of
// the benchmarks' upstream, with a client-credentials token, an mTLS
// certificate and a user's code-flow token.
func TestGatewayInteropWithOfficialSDK(t *testing.T) {
	dir, _ := filepath.Abs("../../test/interop")
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "undici")); err != nil || nodeErr != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("node and test/interop/node_modules are required (npm ci --prefix test/interop): %v %v", err, nodeErr)
		}
		t.Skip("node or test/interop/node_modules missing")
	}
	upstream := startBenchUpstream(t, "-tools", "3")
	data := t.TempDir()
	h := start(t, append(env(t, store.SQLite, data), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	tt := newToolTenant(t, h, "bench", upstream)
	slug, tok, tools, me := tt.slug, tt.tok, tt.tools, userJSON{ID: tt.ownerID}
	for name, tl := range tools {
		if tl.ApprovalState != "approved" {
			t.Fatalf("auto-approval: %s %+v", name, tl)
		}
	}
	if len(tools) != 5 {
		t.Fatalf("mcpbench tools: %v", tools)
	}

	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "sdk-agent", "name": "SDK agent", "owner_id": me.ID})
	expect(t, resp, body, 201, "agent")
	agent := decode[apptest.Agent](t, body)
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "grace@gw.test", "password": "Compiler-pioneer-1952"})
	expect(t, resp, body, 201, "user")
	grace := decode[userJSON](t, body)
	grantEntitlement(t, h, tok, "nhi", agent.ID, tools["echo"].EntitlementID)
	grantEntitlement(t, h, tok, "nhi", agent.ID, tools["add"].EntitlementID)
	grantEntitlement(t, h, tok, "user", grace.ID, tools["echo"].EntitlementID)

	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
	expect(t, resp, body, 201, "certificate")
	cert := decode[apptest.Issued](t, body)
	certFile, keyFile := filepath.Join(data, "agent.pem"), filepath.Join(data, "agent.key")
	if err := os.WriteFile(certFile, []byte(cert.ChainPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(cert.PrivateKeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	redirectURI := "http://127.0.0.1:9999/callback"
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "SDK user app", "redirect_uris": []string{redirectURI}, "first_party": true})
	expect(t, resp, body, 201, "app client")
	app := decode[struct {
		ClientID string `json:"client_id"`
	}](t, body)

	cmd := exec.Command("node", "gateway.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ADMIN="+h.App.Config().Admin.PublicURL, "AGENT="+h.App.Config().Agent.PublicURL, "SLUG="+slug,
		"AGENT_CA="+filepath.Join(data, "agent-ca.pem"), "NODE_EXTRA_CA_CERTS="+filepath.Join(data, "agent-ca.pem"),
		"CLIENT_ID="+agent.ClientID, "CLIENT_SECRET="+agent.ClientSecret, "CERT_FILE="+certFile, "KEY_FILE="+keyFile,
		"APP_CLIENT_ID="+app.ClientID, "REDIRECT_URI="+redirectURI, "USER_LOGIN=grace@gw.test", "USER_PASSWORD=Compiler-pioneer-1952")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "gateway interop: all passed") {
		t.Fatalf("gateway.mjs failed: %v", err)
	}
	// The calls went through the gateway: their decisions are audited.
	resp, body = h.DoAs(tok, "GET", "/api/v1/audit?action=mcp.tools.call&limit=100", nil)
	expect(t, resp, body, 200, "audit")
	if n := strings.Count(string(body), `"outcome":"success"`); n != 7 {
		t.Errorf("allowed calls audited: %d, want 7", n)
	}
	if n := strings.Count(string(body), `"outcome":"denied"`); n != 7 {
		t.Errorf("denied calls audited: %d, want 7", n)
	}
}
