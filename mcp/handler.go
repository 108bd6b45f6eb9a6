package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/xavyo/xavyo/gateway"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
)

// Protocol revisions served to clients (the legacy, session era; 2024-11-05
// for clients of the HTTP+SSE transport).
var supportedVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

const latestVersion = "2025-11-25"

// Header names of streamable HTTP.
const (
	hdrSession = "Mcp-Session-Id"
	hdrVersion = "Mcp-Protocol-Version"
)

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeNoMethod       = -32601
	codeInvalidParams  = -32602
	codeInternal       = -32603
	// codeUnavailable: the tool server failed or did not answer.
	codeUnavailable = -32000
	// codeDenied: the gateway's policy refused the call.
	codeDenied = -32003
)

// message is one JSON-RPC message from a client.
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

func (m *message) isRequest() bool      { return m.Method != "" && len(m.ID) > 0 }
func (m *message) isNotification() bool { return m.Method != "" && len(m.ID) == 0 }

// validID reports a JSON-RPC id that is a string or a number.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	switch id[0] {
	case '"':
		var s string
		return json.Unmarshal(id, &s) == nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		return json.Unmarshal(id, &n) == nil
	}
	return false
}

// rpcError is a JSON-RPC error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func errorBody(id json.RawMessage, e rpcError) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcError        `json:"error"`
	}{"2.0", id, e})
	return b
}

func resultBody(id json.RawMessage, result []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(result) + len(id) + 32)
	b.WriteString(`{"jsonrpc":"2.0","id":`)
	b.Write(id)
	b.WriteString(`,"result":`)
	b.Write(result)
	b.WriteByte('}')
	return b.Bytes()
}

// Mount registers the MCP endpoints on the agent plane's mux.
func (g *Gateway) Mount(handle func(pattern string, h http.Handler)) {
	handle("/t/{slug}/mcp", http.HandlerFunc(g.serveHTTP))
	handle("/t/{slug}/mcp/{server}", http.HandlerFunc(g.serveHTTP))
}

// endpoint is one MCP endpoint being served.
type endpoint struct {
	tenant *tenant.Tenant
	server string // "" for the aggregate endpoint
	url    string
	cat    *catalog
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	slug, server := r.PathValue("slug"), r.PathValue("server")
	t, ctx, err := g.cfg.Enforcer.Tenant(ctx, slug)
	if err != nil {
		status, msg := http.StatusNotFound, "no such MCP endpoint"
		if k := apperr.KindOf(err); k != apperr.KindNotFound {
			status, msg = k.HTTPStatus(), apperr.PublicMessage(err)
		}
		writeJSON(w, status, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: msg}))
		return
	}
	// Everything below reads the tenant's records.
	r = r.WithContext(ctx)
	ep := &endpoint{tenant: t, server: server, url: g.cfg.AgentURL + "/t/" + slug + "/mcp"}
	if server != "" {
		ep.url += "/" + server
	}
	p, ok := g.authenticate(w, r, ep)
	if !ok {
		return
	}
	exp := p.Expiry
	if ep.cat, err = g.catalogs.get(ctx, t.ID); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody(nil, rpcError{Code: codeInternal, Message: apperr.PublicMessage(err)}))
		return
	}
	if server != "" {
		if s := ep.cat.bySlug[server]; s == nil || !s.active {
			writeJSON(w, http.StatusNotFound, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "no such MCP endpoint"}))
			return
		}
	}
	if v := r.Header.Get(hdrVersion); slices.Contains(modernVersions, v) {
		// The stateless era: POST only.
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "the stateless era serves POST only"}))
			return
		}
		g.postModern(w, r, ep, p, v, exp)
		return
	} else if v != "" && !slices.Contains(supportedVersions, v) {
		var id json.RawMessage
		if r.Method == http.MethodPost {
			m, _, ok := g.readMessage(w, r)
			if !ok {
				return
			}
			id = m.ID
		}
		unsupportedVersion(w, ep, id, v)
		return
	}
	switch r.Method {
	case http.MethodPost:
		if id := r.URL.Query().Get("session_id"); id != "" && r.Header.Get(hdrSession) == "" {
			g.postLegacy(w, r, ep, p, id)
			return
		}
		g.post(w, r, ep, p)
	case http.MethodDelete:
		s, ok := g.session(w, r, ep, p)
		if !ok {
			return
		}
		if err := g.sessions.terminate(ctx, s); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody(nil, rpcError{Code: codeInternal, Message: "could not end the session"}))
			return
		}
		g.subs.dropSession(sessionRef{tenant: s.tenant, hash: s.hash})
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		if isWebSocket(r) {
			g.serveWebSocket(w, r, ep, p, exp)
			return
		}
		if r.Header.Get(hdrSession) == "" && strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			// No session named: a client of the HTTP+SSE transport (2024-11-05).
			g.serveLegacyStream(w, r, ep, p, exp)
			return
		}
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			writeJSON(w, http.StatusNotAcceptable, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "GET opens an event stream: Accept text/event-stream"}))
			return
		}
		s, ok := g.session(w, r, ep, p)
		if !ok {
			return
		}
		g.listen(w, r, ep, p, s, exp, nil)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "method not allowed"}))
	}
}

// serverName is how the gateway names itself on an endpoint.
func (ep *endpoint) serverName() string {
	if ep.server != "" {
		return "xavyo MCP gateway (" + ep.tenant.Slug + "/" + ep.server + ")"
	}
	return "xavyo MCP gateway (" + ep.tenant.Slug + ")"
}

// authenticate finds the caller at the enforcement point: a bearer token
// for this exact endpoint with the mcp scope, or an NHI's client
// certificate. Others get 401 (403 for a missing scope) with a challenge
// naming the endpoint's resource metadata.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request, ep *endpoint) (*gateway.Caller, bool) {
	prm := g.cfg.AgentURL + "/.well-known/oauth-protected-resource/t/" + ep.tenant.Slug + "/mcp"
	if ep.server != "" {
		prm += "/" + ep.server
	}
	c, refusal := g.cfg.Enforcer.Authenticate(r, ep.tenant, gateway.Resource{URL: ep.url, Scope: "mcp", Metadata: prm})
	if refusal != nil {
		w.Header().Set("WWW-Authenticate", refusal.Challenge)
		if refusal.Nonce != "" {
			w.Header().Set("DPoP-Nonce", refusal.Nonce)
		}
		writeJSON(w, refusal.Status, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: refusal.Message}))
		return nil, false
	}
	return c, true
}

// session finds the request's session: it must exist on this endpoint
// and belong to this principal (else 404, as if unknown).
func (g *Gateway) session(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller) (*session, bool) {
	id := r.Header.Get(hdrSession)
	if id == "" {
		writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "Mcp-Session-Id header required; initialize first"}))
		return nil, false
	}
	if len(id) > 128 {
		writeJSON(w, http.StatusNotFound, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: errNoSession.Error()}))
		return nil, false
	}
	s, err := g.sessions.get(r.Context(), ep.tenant.ID, id, g.cfg.Now())
	if err == nil && (s.subjectKind != string(p.Kind) || s.subjectID != p.SubjectID || s.server != ep.server) {
		err = errNoSession
	}
	if err != nil {
		status := http.StatusNotFound
		if !errors.Is(err, errNoSession) {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: apperr.PublicMessage(err)}))
		return nil, false
	}
	return s, true
}

// post handles one JSON-RPC message.
func (g *Gateway) post(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller) {
	mp, _, ok := g.readMessage(w, r)
	if !ok {
		return
	}
	m := *mp
	if m.Method == "initialize" {
		if !m.isRequest() {
			writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "initialize is a request"}))
			return
		}
		g.initialize(w, r, ep, p, &m)
		return
	}
	s, ok := g.session(w, r, ep, p)
	if !ok {
		return
	}
	switch {
	case m.isNotification():
		if m.Method == "notifications/cancelled" {
			var c struct {
				RequestID json.RawMessage `json:"requestId"`
			}
			if json.Unmarshal(m.Params, &c) == nil && validID(c.RequestID) {
				s.cancel(string(c.RequestID))
			}
		}
		w.WriteHeader(http.StatusAccepted)
	case !m.isRequest():
		// The client's response to a tool server's request relayed to it.
		if !validID(m.ID) || !g.waiters.deliver(s, &m) {
			writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "no request of this session awaits this response"}))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		g.request(w, r, ep, p, s, &m)
	}
}

// initialize opens a session.
func (g *Gateway) initialize(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, m *message) {
	var in struct {
		ProtocolVersion string          `json:"protocolVersion"`
		ClientInfo      json.RawMessage `json:"clientInfo"`
		Capabilities    clientCaps      `json:"capabilities"`
	}
	if err := json.Unmarshal(m.Params, &in); err != nil || in.ProtocolVersion == "" {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "initialize needs protocolVersion"}))
		return
	}
	version := in.ProtocolVersion
	if !slices.Contains(supportedVersions, version) {
		version = latestVersion
	}
	s := &session{tenant: ep.tenant.ID, subjectKind: string(p.Kind), subjectID: p.SubjectID, server: ep.server, version: version,
		expires: g.cfg.Now().Add(g.cfg.SessionTTL), caps: in.Capabilities}
	id, err := g.sessions.create(r.Context(), s, in.ClientInfo)
	if err != nil {
		g.cfg.Logger.Error("mcp session not stored", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, errorBody(m.ID, rpcError{Code: codeInternal, Message: "could not open a session"}))
		return
	}
	res, _ := json.Marshal(map[string]any{
		"protocolVersion": version,
		"capabilities": map[string]any{
			"tools":     map[string]any{"listChanged": true},
			"resources": map[string]any{"subscribe": ep.server != ""},
			"prompts":   map[string]any{},
			"logging":   map[string]any{},
		},
		"serverInfo":   map[string]any{"name": ep.serverName(), "version": g.cfg.Version},
		"instructions": "Tools of this gateway are the ones you are allowed to call; every call is checked and audited.",
	})
	w.Header().Set(hdrSession, id)
	writeJSON(w, http.StatusOK, resultBody(m.ID, res))
}

// request answers one request of a session.
func (g *Gateway) request(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, s *session, m *message) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	key := string(m.ID)
	s.track(key, cancel)
	defer s.untrack(key)
	switch m.Method {
	case "ping":
		writeJSON(w, http.StatusOK, resultBody(m.ID, []byte("{}")))
	case "logging/setLevel":
		writeJSON(w, http.StatusOK, g.setLogLevel(ctx, s, m))
	case "tools/list":
		g.listTools(ctx, w, ep, p, m, false)
	case "tools/call":
		g.callTool(ctx, w, r, ep, p, s, m)
	case "resources/subscribe", "resources/unsubscribe":
		g.subscribe(ctx, w, ep, p, s, m)
	case "resources/list", "resources/templates/list", "resources/read", "prompts/list", "prompts/get", "completion/complete":
		g.passThrough(ctx, w, ep, p, m)
	default:
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeNoMethod, Message: "method not found: " + m.Method}))
	}
}
