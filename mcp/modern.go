package mcp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/egress"
)

// modernVersions are the stateless-era revisions served (2026-07-28 on):
// no session, each request carries its version and the client's
// capabilities in _meta, and its method and name in headers.
var modernVersions = []string{"2026-07-28"}

// Error codes of the stateless era.
const (
	codeHeaderMismatch     = -32020
	codeUnsupportedVersion = -32022
)

// Keys of a stateless request's _meta.
const (
	metaVersion      = "io.modelcontextprotocol/protocolVersion"
	metaCapabilities = "io.modelcontextprotocol/clientCapabilities"
)

// Header names of the stateless era.
const (
	hdrMethod = "Mcp-Method"
	hdrName   = "Mcp-Name"
)

// allVersions lists every revision an endpoint serves, newest first.
func (ep *endpoint) allVersions() []string {
	return append(slices.Clone(modernVersions), supportedVersions...)
}

func unsupportedVersion(w http.ResponseWriter, ep *endpoint, id json.RawMessage, requested string) {
	all := ep.allVersions()
	writeJSON(w, http.StatusBadRequest, errorBody(id, rpcError{Code: codeUnsupportedVersion,
		Message: "unsupported protocol version " + requested + "; supported: " + strings.Join(all, ", "),
		Data:    map[string]any{"requested": requested, "supported": all}}))
}

// headerValue decodes a header of the stateless era: optional whitespace
// trimmed, the =?base64?…?= form decoded.
func headerValue(h http.Header, name string) (string, bool) {
	vs, ok := h[http.CanonicalHeaderKey(name)]
	if !ok || len(vs) != 1 {
		return "", false
	}
	v := strings.TrimSpace(vs[0])
	// Only the whole sentinel form is encoded; anything else is plain.
	if len(v) >= len("=?base64??=") && strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?=") {
		b, err := base64.StdEncoding.DecodeString(v[len("=?base64?") : len(v)-len("?=")])
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return v, true
}

// postModern serves one request of the stateless era on a tool server's
// endpoint. The gateway checks what it relies on (the headers against the
// body, the version, the principal's access), decides tools/call and
// filters tools/list; everything else goes to the tool server as the
// client sent it, and the tool server's answer (JSON or a stream) comes
// back as it is: request state, input requests and subscriptions pass
// through untouched.
func (g *Gateway) postModern(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, version string, exp time.Time) {
	m, body, ok := g.readMessage(w, r)
	if !ok {
		return
	}
	if !m.isRequest() {
		if m.isNotification() {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "the stateless era has no responses from clients"}))
		return
	}
	if e := checkModernHeaders(r.Header, m, version); e != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(m.ID, *e))
		return
	}
	servers := g.permittedServers(r.Context(), ep, p)
	if ep.server == "" || len(servers) == 0 {
		// The aggregate endpoint answers for its servers; a principal
		// holding no tool of this server gets an empty list, and its calls
		// are refused and audited like any.
		g.bridgeStateless(w, r, ep, p, m, version, exp)
		return
	}
	up, err := g.upstreamByID(r.Context(), servers[0].id)
	if err != nil || !up.stateless(r.Context()) {
		// The bridge serves session-era tool servers, and answers for an
		// unreachable one (a call decided and audited, then failed).
		g.bridgeStateless(w, r, ep, p, m, version, exp)
		return
	}
	switch m.Method {
	case "tools/call":
		a, ok := g.admit(r.Context(), w, ep, p, "", m, &sseWriter{w: w})
		if !ok {
			return
		}
		g.forwardModern(w, r, up, body, m, a, p, exp)
	case "tools/list":
		g.listModern(w, r, ep, p, up, body, m)
	default:
		g.forwardModern(w, r, up, body, m, nil, p, exp)
	}
}

// readMessage reads one JSON-RPC message (not a batch) within the size
// limit, answering a bad one.
func (g *Gateway) readMessage(w http.ResponseWriter, r *http.Request) (*message, []byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxMessageBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "message too large"}))
			return nil, nil, false
		}
		writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeParse, Message: "could not read the body"}))
		return nil, nil, false
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "JSON-RPC batches are not supported"}))
		return nil, nil, false
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeParse, Message: "parse error: not a JSON-RPC message"}))
		return nil, nil, false
	}
	if m.JSONRPC != "2.0" || (len(m.ID) > 0 && !validID(m.ID)) || (m.Method == "" && len(m.Result) == 0 && len(m.Error) == 0) {
		writeJSON(w, http.StatusBadRequest, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "invalid JSON-RPC message"}))
		return nil, nil, false
	}
	return &m, body, true
}

// checkModernHeaders checks a stateless request's headers against its
// body (Mcp-Method, Mcp-Name, the version in _meta) and the _meta keys
// every request needs.
func checkModernHeaders(h http.Header, m *message, version string) *rpcError {
	var params struct {
		Name string                     `json:"name"`
		URI  string                     `json:"uri"`
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if len(m.Params) > 0 && json.Unmarshal(m.Params, &params) != nil {
		return &rpcError{Code: codeInvalidParams, Message: "invalid params"}
	}
	if method, ok := headerValue(h, hdrMethod); !ok || method != m.Method {
		return &rpcError{Code: codeHeaderMismatch, Message: "header mismatch: Mcp-Method must be present and equal the body's method"}
	}
	var want string
	switch m.Method {
	case "tools/call", "prompts/get":
		want = params.Name
	case "resources/read":
		want = params.URI
	}
	if name, ok := headerValue(h, hdrName); want != "" && (!ok || name != want) {
		return &rpcError{Code: codeHeaderMismatch, Message: "header mismatch: Mcp-Name must be present and equal the body's name or uri"}
	}
	var metaVer string
	if json.Unmarshal(params.Meta[metaVersion], &metaVer) != nil || metaVer == "" {
		return &rpcError{Code: codeInvalidParams, Message: `missing or invalid _meta field "` + metaVersion + `"`}
	}
	if c := params.Meta[metaCapabilities]; len(c) == 0 || c[0] != '{' {
		return &rpcError{Code: codeInvalidParams, Message: `missing or invalid _meta field "` + metaCapabilities + `"`}
	}
	if metaVer != version {
		return &rpcError{Code: codeHeaderMismatch, Message: "header mismatch: MCP-Protocol-Version must equal _meta's protocol version"}
	}
	return nil
}

// forwardedHeaders are the request headers a stateless request takes to
// the tool server (besides Mcp-Param-*).
var forwardedHeaders = []string{hdrVersion, hdrMethod, hdrName, "Accept", "Content-Type"}

// sendModern sends a stateless request to the tool server as the client
// sent it, with the tool server's credential.
func (u *upstream) sendModern(ctx context.Context, in http.Header, body []byte) (*http.Response, error) {
	if !u.allow(time.Now()) {
		return nil, ErrUpstreamUnavailable
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range forwardedHeaders {
		if v := in.Values(h); len(v) > 0 {
			req.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
	for k, v := range in {
		if strings.HasPrefix(k, "Mcp-Param-") {
			req.Header[k] = v
		}
	}
	resp, err := u.client.Do(req)
	if err != nil && ctx.Err() == nil {
		u.record(err)
		return nil, egress.Unreachable("the tool server", err)
	}
	if err != nil {
		return nil, err
	}
	u.record(nil)
	return resp, nil
}

// forwardModern forwards a stateless request and relays the answer as it
// comes. For an admitted tools/call (a set), the final response waits for
// the decision record, and the outcome is recorded.
func (g *Gateway) forwardModern(w http.ResponseWriter, r *http.Request, up *upstream, body []byte, m *message, a *admitted, p *gateway.Caller, exp time.Time) {
	ctx := r.Context()
	var cancel context.CancelFunc
	if m.Method != "subscriptions/listen" {
		ctx, cancel = context.WithTimeout(ctx, up.cfg.timeout)
	} else {
		// A listen stream lasts as long as the token that opened it, and
		// no longer than the gateway's own streams.
		if exp.IsZero() {
			ctx, cancel = context.WithCancel(ctx)
		} else {
			ctx, cancel = context.WithDeadline(ctx, exp)
		}
		done := g.streams.doneCh()
		go func() {
			select {
			case <-done:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	defer cancel()
	status := "ok"
	final := func(resp []byte) {
		if a == nil {
			return
		}
		var res rpcAnswer
		switch {
		case json.Unmarshal(resp, &res) != nil:
			status = "unavailable"
		case res.Error != nil:
			status = "rpc_error"
		case isToolError(res.Result):
			status = "tool_error"
		case isInputRequired(res.Result):
			status = "input_required"
		}
		_ = a.receipt.Wait(context.WithoutCancel(ctx))
	}
	// A wait for approval may have opened the answer's event stream
	// (progress): the rest of the answer goes on it.
	var rc *http.ResponseController
	if a != nil && a.stream != nil {
		rc = a.stream.takeOver()
	}
	reply := func(status int, body []byte) {
		if rc != nil {
			_ = writeEvent(w, rc, "message", body)
			return
		}
		writeJSON(w, status, body)
	}
	resp, err := up.sendModern(ctx, r.Header, body)
	if err != nil {
		if a != nil {
			_ = a.receipt.Wait(context.WithoutCancel(ctx))
			st := "unavailable"
			if errors.Is(err, context.Canceled) {
				st = "cancelled"
			} else if ctx.Err() != nil {
				st = "timeout"
			}
			g.finish(ctx, a.receipt.ID, a.entry, a.t, a.start, st, p)
		}
		reply(http.StatusBadGateway, errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server failed: " + apperr.PublicMessage(err)}))
		return
	}
	defer resp.Body.Close()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" && resp.StatusCode == http.StatusOK {
		if rc == nil {
			rc = openEventStream(w)
		}
		if err := copyEvents(w, rc, resp.Body, m.ID, final); err != nil && a != nil && status == "ok" {
			status = "unavailable"
			if ctx.Err() != nil {
				status = "cancelled"
			}
		}
	} else {
		out, err := io.ReadAll(io.LimitReader(resp.Body, g.cfg.MaxMessageBytes*4))
		if err != nil {
			status = "unavailable"
		}
		if resp.StatusCode != http.StatusOK {
			status = "rpc_error"
		}
		final(out)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			// The tool server refused the gateway's credential, not the
			// client's: the client must not take it for its own 401/403.
			reply(http.StatusBadGateway, errorBody(m.ID, rpcError{Code: codeUnavailable,
				Message: "the tool server refused the gateway's credential (HTTP " + strconv.Itoa(resp.StatusCode) + ")"}))
		} else if rc != nil {
			// The stream is open: the answer is its last event, a
			// JSON-RPC message whatever the tool server's status.
			if !json.Valid(out) {
				out = errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server answered HTTP " + strconv.Itoa(resp.StatusCode)})
			}
			_ = writeEvent(w, rc, "message", out)
		} else {
			if ct := resp.Header.Get("Content-Type"); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(out)
		}
	}
	if a != nil {
		g.finish(ctx, a.receipt.ID, a.entry, a.t, a.start, status, p)
	}
}

// copyEvents relays an event stream event by event; the response to id
// is handed to final before it is written.
func copyEvents(w http.ResponseWriter, rc *http.ResponseController, body io.Reader, id json.RawMessage, final func([]byte)) error {
	return scanEvents(body, func(raw, data []byte) (bool, error) {
		var r rpcAnswer
		if len(data) > 0 && json.Unmarshal(data, &r) == nil && r.Method == "" && bytes.Equal(r.ID, id) {
			final(data)
		}
		if _, err := w.Write(append(raw, '\n')); err != nil {
			return true, err
		}
		return false, rc.Flush()
	})
}

// listModern answers a stateless tools/list: the tool server's own page,
// with only the tools this principal may call, and private to it.
func (g *Gateway) listModern(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, up *upstream, body []byte, m *message) {
	ctx, cancel := context.WithTimeout(r.Context(), up.cfg.timeout)
	defer cancel()
	resp, err := up.sendModern(ctx, r.Header, body)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server failed: " + apperr.PublicMessage(err)}))
		return
	}
	defer resp.Body.Close()
	res, err := up.readAnswer(resp, string(m.ID))
	if err != nil {
		writeJSON(w, http.StatusBadGateway, errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server's answer was unreadable"}))
		return
	}
	if res.Error != nil {
		writeJSON(w, resp.StatusCode, answer(m.ID, res, nil))
		return
	}
	var page map[string]json.RawMessage
	var tools []json.RawMessage
	if json.Unmarshal(res.Result, &page) != nil || json.Unmarshal(page["tools"], &tools) != nil {
		writeJSON(w, http.StatusBadGateway, errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server's tool list was unreadable"}))
		return
	}
	snap, err := g.cfg.Access.Snapshot(ctx, ep.tenant.ID)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody(m.ID, rpcError{Code: codeInternal, Message: apperr.PublicMessage(err)}))
		return
	}
	ok := p.Governed
	now := g.cfg.Now()
	kept := make([]json.RawMessage, 0, len(tools))
	for _, raw := range tools {
		var tl struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &tl)
		// Only catalogued, approved tools the principal holds: a tool the
		// gateway has not synced yet stays hidden.
		t := ep.lookup(tl.Name)
		if !ok || t == nil || !t.server.active || !p.May(snap, t.ent, now) {
			continue
		}
		// Pinned: a definition other than the approved one is never shown;
		// a sync puts it in quarantine for an admin.
		if h, err := canonicalHash(raw); err != nil || h != t.hash {
			up.resync()
			continue
		}
		kept = append(kept, raw)
	}
	page["tools"], _ = json.Marshal(kept)
	page["cacheScope"] = json.RawMessage(`"private"`)
	out, _ := json.Marshal(page)
	writeJSON(w, http.StatusOK, resultBody(m.ID, out))
}
