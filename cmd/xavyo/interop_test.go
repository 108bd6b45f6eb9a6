package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

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
	h := start(t, env(t, store.SQLite, data), nil)
	slug := uniqueSlug("io")
	_, tok := tenantAdmin(t, h, slug)
	_, body := h.doAs(tok, "GET", "/api/v1/me", nil)
	me := decode[userJSON](t, body)

	resp, body := h.doAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@io.test", "password": "Analytical-engine-1843"})
	expect(t, resp, body, 201, "user")
	ada := decode[userJSON](t, body)
	adaTokens := h.login(slug, "ada@io.test", "Analytical-engine-1843", 200)

	resp, body = h.doAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "interop-bot", "name": "Interop", "owner_id": me.ID})
	expect(t, resp, body, 201, "agent")
	agent := decode[agentJSON](t, body)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: key.Public(), KeyID: "interop-1", Use: "sig", Algorithm: "ES256"}.MarshalJSON()
	priv, _ := jose.JSONWebKey{Key: key, KeyID: "interop-1", Algorithm: "ES256"}.MarshalJSON()
	resp, body = h.doAs(tok, "PUT", "/api/v1/nhis/"+agent.ID+"/client-keys", map[string]any{"keys": []json.RawMessage{pub}})
	expect(t, resp, body, 200, "client keys")

	redirectURI := "http://127.0.0.1:9999/callback"
	resp, body = h.doAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Interop app", "redirect_uris": []string{redirectURI}})
	expect(t, resp, body, 201, "app client")
	app := decode[struct {
		ClientID string `json:"client_id"`
	}](t, body)

	cmd := exec.Command("node", "interop.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ADMIN="+h.s.cfg.Admin.PublicURL, "AGENT="+h.s.cfg.Agent.PublicURL, "SLUG="+slug,
		"NODE_EXTRA_CA_CERTS="+filepath.Join(data, "agent-ca.pem"),
		"CLIENT_ID="+agent.ClientID, "CLIENT_SECRET="+agent.ClientSecret, "AGENT_ID="+agent.ID, "PRIVATE_JWK="+string(priv),
		"USER_TOKEN="+adaTokens.AccessToken, "USER_ID="+ada.ID, "USER_LOGIN=ada@io.test", "USER_PASSWORD=Analytical-engine-1843",
		"APP_CLIENT_ID="+app.ClientID, "REDIRECT_URI="+redirectURI)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "interop: all passed") {
		t.Fatalf("interop.mjs failed: %v", err)
	}
}
