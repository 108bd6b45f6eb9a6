package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/dpop/dpoptest"
	"github.com/xavyo/xavyo/internal/store"
)

// dpopToken asks the token endpoint for the agent's client-credentials
// token with a DPoP proof (none when proof is ""); the answer's status,
// body and DPoP-Nonce.
func dpopToken(t *testing.T, h *harness, m *mcpSetup, proof string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.Admin+"/t/"+m.slug+"/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "resource": {m.endpoint}, "scope": {"mcp"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(m.agent.ClientID), url.QueryEscape(m.agent.ClientSecret))
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := h.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header.Get("DPoP-Nonce")
}

// TestDPoP: an agent proves a key at the token endpoint and gets a token
// bound to it (token_type DPoP, cnf.jkt), then calls a tool through the
// gateway with a proof per request (ath the token's hash). Refused: a
// proof used again (on this replica or the other), a proof for another
// URL or method, a proof of another key, the bound token as a bearer
// token, an unbound token with the DPoP scheme, a token-endpoint proof
// used twice. Metadata advertise the proof algorithms.
func TestDPoP(t *testing.T) {
	up := newTestUpstream(t)
	agentAddr, adminAddr := freeAddr(t), freeAddr(t)
	public := []string{"XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_AGENT_PUBLIC_URL=https://" + agentAddr, "XAVYO_ADMIN_PUBLIC_URL=http://" + adminAddr}
	one := start(t, append(append(env(t, store.Postgres, t.TempDir()), public...), "XAVYO_AGENT_ADDR="+agentAddr, "XAVYO_ADMIN_ADDR="+adminAddr), nil)
	two := start(t, append(env(t, store.Postgres, t.TempDir()), public...), nil)
	m := setupMCP(t, one, up)
	key := dpoptest.New()
	tokenURL := one.Admin + "/t/" + m.slug + "/token"

	proof := key.Proof("POST", tokenURL, "", "", nil)
	code, out, _ := dpopToken(t, one, m, proof)
	if code != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("DPoP token: %d %v", code, out)
	}
	tok := out["access_token"].(string)
	if cnf, _ := apptest.JWTClaims(t, tok)["cnf"].(map[string]any); cnf == nil || cnf["jkt"] != key.JKT() {
		t.Fatalf("the token must be bound to the key: %v", apptest.JWTClaims(t, tok))
	}
	if code, out, _ := dpopToken(t, one, m, proof); code != 400 || out["error"] != "invalid_dpop_proof" {
		t.Fatalf("a token-endpoint proof used twice: %d %v", code, out)
	}
	if code, out, _ := dpopToken(t, one, m, key.Proof("POST", tokenURL, "", "", map[string]any{"htu": one.Admin + "/t/other/token"})); code != 400 ||
		out["error"] != "invalid_dpop_proof" {
		t.Fatalf("a proof for another token endpoint: %d %v", code, out)
	}

	call := func(h *harness, endpoint, authz, proof string, sid string) (*http.Response, map[string]any) {
		t.Helper()
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"dpop","version":"1"}}}`
		hdr := []string{"Authorization", authz}
		if sid != "" {
			body = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tools__echo","arguments":{"text":"bound"}}}`
			hdr = append(hdr, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
		}
		if proof != "" {
			hdr = append(hdr, "DPoP", proof)
		}
		return rawMCP(t, h.TLS, endpoint, body, hdr...)
	}
	resp, out := call(one, m.endpoint, "DPoP "+tok, key.Proof("POST", m.endpoint, tok, "", nil), "")
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize with DPoP: %d %v", resp.StatusCode, out)
	}
	used := key.Proof("POST", m.endpoint, tok, "", nil)
	if resp, out := call(one, m.endpoint, "DPoP "+tok, used, sid); resp.StatusCode != 200 || !strings.Contains(apptest.JSON(out), "bound") {
		t.Fatalf("a tool call with DPoP: %d %v", resp.StatusCode, out)
	}
	refused := func(what string, resp *http.Response, want string) {
		t.Helper()
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != 401 || !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, want) || !strings.Contains(ch, `algs="ES256`) {
			t.Fatalf("%s: %d %q", what, resp.StatusCode, ch)
		}
	}
	resp, _ = call(one, m.endpoint, "DPoP "+tok, used, sid)
	refused("a proof used again", resp, "invalid_dpop_proof")
	twoEndpoint := strings.Replace(m.endpoint, one.Agent, two.Agent, 1)
	resp, _ = call(two, twoEndpoint, "DPoP "+tok, key.Proof("POST", m.endpoint, tok, "", map[string]any{"jti": "shared-jti"}), sid)
	if resp.StatusCode != 200 {
		t.Fatalf("a fresh proof on the other replica: %d", resp.StatusCode)
	}
	resp, _ = call(one, m.endpoint, "DPoP "+tok, key.Proof("POST", m.endpoint, tok, "", map[string]any{"jti": "shared-jti"}), sid)
	refused("a proof used on the other replica", resp, "invalid_dpop_proof")
	resp, _ = call(one, m.endpoint, "DPoP "+tok, key.Proof("POST", m.endpoint+"/elsewhere", tok, "", nil), sid)
	refused("a proof for another URL", resp, "invalid_dpop_proof")
	resp, _ = call(one, m.endpoint, "DPoP "+tok, key.Proof("GET", m.endpoint, tok, "", nil), sid)
	refused("a proof for another method", resp, "invalid_dpop_proof")
	resp, _ = call(one, m.endpoint, "DPoP "+tok, dpoptest.New().Proof("POST", m.endpoint, tok, "", nil), sid)
	refused("a proof of another key", resp, "invalid_token")
	resp, _ = call(one, m.endpoint, "DPoP "+tok, "", sid)
	refused("no proof", resp, "invalid_dpop_proof")
	resp, _ = call(one, m.endpoint, "Bearer "+tok, "", sid)
	refused("the bound token as a bearer token", resp, "invalid_token")
	bearer := m.agentToken(t, one, m.endpoint)
	resp, _ = call(one, m.endpoint, "DPoP "+bearer, key.Proof("POST", m.endpoint, bearer, "", nil), sid)
	refused("an unbound token with the DPoP scheme", resp, "invalid_token")
	if resp, out := call(one, m.endpoint, "Bearer "+bearer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("bearer tokens still work: %d %v", resp.StatusCode, out)
	}

	// Over WebSocket the upgrade proves the key once; its messages,
	// authenticated one by one, need no proofs of their own.
	dialer := websocket.Dialer{TLSClientConfig: one.TLS.Transport.(*http.Transport).TLSClientConfig, Subprotocols: []string{"mcp"},
		HandshakeTimeout: 5 * time.Second}
	wsURL := "wss" + strings.TrimPrefix(m.endpoint, "https")
	if _, resp, err := dialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + tok}}); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("a bound token's WebSocket without a proof: %v %v", err, resp)
	}
	conn, resp, err := dialer.Dial(wsURL, http.Header{"Authorization": {"DPoP " + tok}, "DPoP": {key.Proof("GET", m.endpoint, tok, "", nil)}})
	if err != nil {
		t.Fatalf("WebSocket with DPoP: %v %v", err, resp)
	}
	defer conn.Close()
	for i, msg := range []string{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ws","version":"1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tools__echo","arguments":{"text":"over the socket"}}}`} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, frame, err := conn.ReadMessage()
		if err != nil || !strings.Contains(string(frame), `"result"`) || (i == 1 && !strings.Contains(string(frame), "over the socket")) {
			t.Fatalf("WebSocket message %d: %v %s", i, err, frame)
		}
	}

	_, meta, _ := apptest.Get(t, one.HTTP, one.Admin+"/t/"+m.slug+"/.well-known/openid-configuration")
	if !strings.Contains(string(meta), `"dpop_signing_alg_values_supported":["ES256"`) {
		t.Fatalf("AS metadata: %s", meta)
	}
	_, prm, _ := apptest.Get(t, one.TLS, one.Agent+"/.well-known/oauth-protected-resource/t/"+m.slug+"/mcp")
	if !strings.Contains(string(prm), `"dpop_signing_alg_values_supported":["ES256"`) {
		t.Fatalf("protected resource metadata: %s", prm)
	}
}

// TestDPoPNonces: with dpop.require_nonce, a proof without the server's
// nonce is answered use_dpop_nonce with a DPoP-Nonce, at the token
// endpoint and at the gateway, and the retry with it goes through.
func TestDPoPNonces(t *testing.T) {
	up := newTestUpstream(t)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_DPOP_REQUIRE_NONCE=true"), nil)
	m := setupMCP(t, h, up)
	key := dpoptest.New()
	tokenURL := h.Admin + "/t/" + m.slug + "/token"
	code, out, nonce := dpopToken(t, h, m, key.Proof("POST", tokenURL, "", "", nil))
	if code != 400 || out["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("no nonce at the token endpoint: %d %v %q", code, out, nonce)
	}
	code, out, _ = dpopToken(t, h, m, key.Proof("POST", tokenURL, "", nonce, nil))
	if code != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("with the nonce: %d %v", code, out)
	}
	tok := out["access_token"].(string)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"dpop","version":"1"}}}`
	resp, _ := rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "DPoP "+tok, "DPoP", key.Proof("POST", m.endpoint, tok, "", nil))
	gwNonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") || gwNonce == "" {
		t.Fatalf("no nonce at the gateway: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, out := rawMCP(t, h.TLS, m.endpoint, init, "Authorization", "DPoP "+tok, "DPoP", key.Proof("POST", m.endpoint, tok, gwNonce, nil)); resp.StatusCode != 200 {
		t.Fatalf("with the gateway's nonce: %d %v", resp.StatusCode, out)
	}
}
