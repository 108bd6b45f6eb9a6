package mcp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xavyo/xavyo/gateway"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// Upstream eras, as probed.
const (
	eraUnknown int32 = iota
	eraSession
	eraStateless
)

// stateless reports whether the tool server speaks the stateless era: it
// answers server/discover listing a stateless revision. Probed once per
// connection; stdio and HTTP+SSE tool servers speak the session era.
func (u *upstream) stateless(ctx context.Context) bool {
	if u.cfg.command != "" || u.cfg.sse {
		return false
	}
	switch u.era.Load() {
	case eraSession:
		return false
	case eraStateless:
		return true
	}
	v := modernVersions[0]
	body := []byte(`{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{"_meta":{"` + metaVersion + `":"` + v + `","` + metaCapabilities + `":{}}}}`)
	h := statelessHeaders("server/discover")
	pctx, cancel := context.WithTimeout(ctx, u.cfg.timeout)
	defer cancel()
	resp, err := u.sendModern(pctx, h, body)
	if err != nil {
		return false // unknown still: probed again next time
	}
	defer resp.Body.Close()
	era := eraSession
	if resp.StatusCode == http.StatusOK {
		res, err := u.readAnswer(resp, "0")
		var d struct {
			SupportedVersions []string `json:"supportedVersions"`
		}
		if err == nil && res.Error == nil && json.Unmarshal(res.Result, &d) == nil && slices.Contains(d.SupportedVersions, v) {
			era = eraStateless
		}
	}
	u.era.Store(era)
	return era == eraStateless
}

// bridgeStateless serves a stateless-era request from a tool server of
// the session era, through the gateway's session with it: calls decided,
// audited and relayed like a session's (progress and log messages as the
// request's _meta asks; the tool server's own requests to the client are
// refused, as a stateless client cannot take them), lists and reads
// answered with the stateless era's result fields.
func (g *Gateway) bridgeStateless(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, m *message, version string, exp time.Time) {
	ctx := r.Context()
	var params struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	_ = json.Unmarshal(m.Params, &params)
	s := &session{tenant: ep.tenant.ID, subjectKind: string(p.Kind), subjectID: p.SubjectID, server: ep.server, version: version,
		expires: g.cfg.Now().Add(time.Minute)}
	_ = json.Unmarshal(params.Meta["io.modelcontextprotocol/logLevel"], &s.logLevel)
	// The client's capabilities, for tool servers of the stateless era.
	if c := params.Meta[metaCapabilities]; json.Unmarshal(c, &s.caps) == nil {
		s.capsJSON = c
	}
	switch m.Method {
	case "server/discover":
		res, _ := json.Marshal(map[string]any{
			"resultType":        "complete",
			"supportedVersions": ep.allVersions(),
			"capabilities":      map[string]any{"tools": map[string]any{"listChanged": true}, "resources": map[string]any{}, "prompts": map[string]any{}, "completions": map[string]any{}},
			"ttlMs":             0,
			"cacheScope":        "private",
			"instructions":      "Tools of this gateway are the ones you are allowed to call; every call is checked and audited.",
			"_meta":             map[string]any{"io.modelcontextprotocol/serverInfo": map[string]any{"name": ep.serverName(), "version": g.cfg.Version}},
		})
		writeJSON(w, http.StatusOK, resultBody(m.ID, res))
	case "tools/list":
		g.listTools(ctx, w, ep, p, m, true)
	case "tools/call":
		g.callTool(ctx, w, r, ep, p, s, m)
	case "resources/list", "resources/templates/list", "resources/read", "prompts/list", "prompts/get", "completion/complete":
		// Served as in the session era, then given the stateless fields.
		fm := *m
		fm.Params = withoutStatelessMeta(m.Params)
		cw := &captureWriter{header: http.Header{}, status: http.StatusOK}
		g.passThrough(ctx, cw, ep, p, &fm)
		var out map[string]json.RawMessage
		if json.Unmarshal(cw.body.Bytes(), &out) == nil && len(out["result"]) > 0 {
			out["result"] = completeResult(out["result"], listKeys[m.Method] != "")
			b, _ := json.Marshal(out)
			writeJSON(w, cw.status, b)
			return
		}
		writeJSON(w, cw.status, cw.body.Bytes())
	case "subscriptions/listen":
		// This principal's tool list changes, as on a session's stream.
		var in struct {
			Notifications struct {
				ToolsListChanged bool `json:"toolsListChanged"`
			} `json:"notifications"`
		}
		_ = json.Unmarshal(m.Params, &in)
		if !in.Notifications.ToolsListChanged {
			writeJSON(w, http.StatusBadRequest, errorBody(m.ID, rpcError{Code: codeInvalidParams,
				Message: "this endpoint offers toolsListChanged on subscriptions/listen; ask for it"}))
			return
		}
		g.listen(w, r, ep, p, nil, exp, m.ID)
	default:
		writeJSON(w, http.StatusNotFound, errorBody(m.ID, rpcError{Code: codeNoMethod, Message: "method not found: " + m.Method}))
	}
}

// completeResult adds the stateless era's resultType (and, for lists, the
// caching hints: private to this client, as lists are filtered per
// principal) to a session-era result.
func completeResult(result json.RawMessage, list bool) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(result, &obj) != nil || obj == nil {
		return result
	}
	if _, ok := obj["resultType"]; !ok {
		obj["resultType"] = json.RawMessage(`"complete"`)
	}
	if list {
		obj["ttlMs"], obj["cacheScope"] = json.RawMessage("0"), json.RawMessage(`"private"`)
	}
	out, _ := json.Marshal(obj)
	return out
}

// withoutStatelessMeta drops the stateless era's request keys from _meta
// before params go to a session-era tool server.
func withoutStatelessMeta(params json.RawMessage) json.RawMessage {
	if !bytes.Contains(params, []byte("io.modelcontextprotocol/")) {
		return params
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(params, &obj) != nil {
		return params
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(obj["_meta"], &meta) == nil {
		for k := range meta {
			if len(k) > len("io.modelcontextprotocol/") && k[:len("io.modelcontextprotocol/")] == "io.modelcontextprotocol/" {
				delete(meta, k)
			}
		}
		if len(meta) == 0 {
			delete(obj, "_meta")
		} else {
			obj["_meta"], _ = json.Marshal(meta)
		}
	}
	out, _ := json.Marshal(obj)
	return out
}

// statelessHeaders are the headers of a request of the stateless era the
// gateway sends a tool server.
func statelessHeaders(method string) http.Header {
	h := http.Header{}
	h.Set(hdrVersion, modernVersions[0])
	h.Set(hdrMethod, method)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	return h
}

// maxInputRounds bounds the rounds of input a stateless tool server may
// ask for within one call.
const maxInputRounds = 8

// sendStateless sends one request to a tool server of the stateless era
// on behalf of a session's client: the protocol keys in _meta and the
// headers that era wants, the answer read as JSON or an event stream
// (progress and log messages relayed). An input_required result is
// answered through the relay — each input request goes to the client as a
// request on the call's stream — and the request sent again with the
// responses and the tool server's request state.
func (u *upstream) sendStateless(ctx context.Context, method string, params json.RawMessage, rl *relay) (*callResult, error) {
	if method == "ping" {
		// Not of the stateless era: discovery stands in for it.
		method, params = "server/discover", nil
	}
	var p map[string]json.RawMessage
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || p == nil {
		p = map[string]json.RawMessage{}
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(p["_meta"], &meta) != nil || meta == nil {
		meta = map[string]json.RawMessage{}
	}
	v := modernVersions[0]
	meta[metaVersion], _ = json.Marshal(v)
	meta[metaCapabilities] = json.RawMessage("{}")
	meta["io.modelcontextprotocol/clientInfo"] = json.RawMessage(`{"name":"xavyo-gateway","version":"1"}`)
	if rl != nil {
		if len(rl.caps) > 0 {
			meta[metaCapabilities] = rl.caps
		}
		if rl.logs {
			meta["io.modelcontextprotocol/logLevel"] = json.RawMessage(`"debug"`)
		}
	}
	id := u.ids.Add(1)
	if rl != nil && rl.progress != nil {
		tok := "xv-" + strconv.FormatInt(id, 10)
		meta["progressToken"], _ = json.Marshal(tok)
		key := strconv.Quote(tok)
		u.progress.Store(key, rl.progress)
		defer u.progress.Delete(key)
	}
	p["_meta"], _ = json.Marshal(meta)
	h := statelessHeaders(method)
	var name string
	switch method {
	case "tools/call", "prompts/get":
		_ = json.Unmarshal(p["name"], &name)
	case "resources/read":
		_ = json.Unmarshal(p["uri"], &name)
	}
	if name != "" {
		h.Set(hdrName, headerSafe(name))
	}
	if rl != nil {
		for k, v := range rl.params {
			h.Set("Mcp-Param-"+k, v)
		}
	}
	for round := 0; ; round++ {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": p})
		resp, err := u.sendModern(ctx, h, body)
		if err != nil {
			return nil, err
		}
		want := strconv.FormatInt(id, 10)
		var res *callResult
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "text/event-stream" && resp.StatusCode == http.StatusOK {
			res, err = u.readEvents(resp.Body, want, rl, func(rpcAnswer) {})
		} else {
			res, err = u.readAnswer(resp, want)
			if err != nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
			}
		}
		_ = resp.Body.Close()
		if err != nil || res.Error != nil {
			return res, err
		}
		var ir struct {
			ResultType    string                     `json:"resultType"`
			InputRequests map[string]json.RawMessage `json:"inputRequests"`
			RequestState  json.RawMessage            `json:"requestState"`
		}
		if json.Unmarshal(res.Result, &ir) != nil || ir.ResultType != "input_required" || rl == nil || rl.request == nil || round == maxInputRounds {
			return res, nil
		}
		answers, rerr := askForInput(ctx, rl, ir.InputRequests)
		if rerr != nil {
			return &callResult{Error: &mcpgo.JSONRPCErrorDetails{Code: rerr.Code, Message: rerr.Message}}, nil
		}
		p["inputResponses"], _ = json.Marshal(answers)
		if len(ir.RequestState) > 0 {
			p["requestState"] = ir.RequestState
		} else {
			delete(p, "requestState")
		}
		id = u.ids.Add(1)
	}
}

// askForInput sends each input request of an input_required result to the
// session's client (through the relay) and gathers the responses by key.
func askForInput(ctx context.Context, rl *relay, requests map[string]json.RawMessage) (map[string]json.RawMessage, *rpcError) {
	answers := make(map[string]json.RawMessage, len(requests))
	for key, raw := range requests {
		var in struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(raw, &in) != nil {
			continue
		}
		out, rerr := rl.request(ctx, in.Method, in.Params)
		if rerr != nil {
			return nil, rerr
		}
		answers[key] = out
	}
	return answers, nil
}

// headerSafe is a header value as the stateless era writes one: plain
// when it is visible ASCII without surrounding space, else =?base64?…?=.
func headerSafe(v string) string {
	plain := v != "" && strings.TrimSpace(v) == v && !(strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?="))
	for i := 0; plain && i < len(v); i++ {
		plain = v[i] >= 0x20 && v[i] < 0x7f
	}
	if plain {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// listenStateless keeps a subscriptions/listen stream open to a tool
// server of the stateless era only, for list changes (the catalog is
// synced again) and updates of the resources uris names (sent to the
// subscribed sessions); a new call replaces the stream. The stream is
// opened again after a failure, with backoff.
func (u *upstream) listenStateless(uris []string) {
	u.lmu.Lock()
	if u.lstop != nil {
		u.lstop()
	}
	if u.lclosed {
		u.lstop = nil
		u.lmu.Unlock()
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	u.lstop = stop
	u.lmu.Unlock()
	filter, _ := json.Marshal(map[string]any{"toolsListChanged": true, "resourceSubscriptions": append([]string{}, uris...)})
	go func() {
		backoff := 250 * time.Millisecond
		for ctx.Err() == nil {
			id := u.ids.Add(1)
			v := modernVersions[0]
			body := []byte(`{"jsonrpc":"2.0","id":` + strconv.FormatInt(id, 10) + `,"method":"subscriptions/listen","params":{"_meta":{"` +
				metaVersion + `":"` + v + `","` + metaCapabilities + `":{}},"notifications":` + string(filter) + `}}`)
			h := statelessHeaders("subscriptions/listen")
			opened := time.Now()
			if resp, err := u.sendModern(ctx, h, body); err == nil {
				if resp.StatusCode == http.StatusOK {
					_, _ = u.readEvents(resp.Body, strconv.FormatInt(id, 10), nil, func(rpcAnswer) {})
				}
				_ = resp.Body.Close()
			}
			if time.Since(opened) > time.Minute {
				backoff = 250 * time.Millisecond
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
}

// captureWriter keeps a response in memory.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *captureWriter) WriteHeader(status int)      { c.status = status }

// paramHeaders derives the Mcp-Param-* headers a stateless-era tool
// server expects for a call: each input-schema property marked
// x-mcp-header, reachable through "properties" alone, whose value in the
// arguments is a string, an integer or a boolean.
func paramHeaders(def, args json.RawMessage) map[string]string {
	var tool struct {
		InputSchema map[string]any `json:"inputSchema"`
	}
	var a map[string]any
	if json.Unmarshal(def, &tool) != nil || tool.InputSchema == nil || json.Unmarshal(args, &a) != nil {
		return nil
	}
	out := map[string]string{}
	var walk func(schema, value map[string]any)
	walk = func(schema, value map[string]any) {
		props, _ := schema["properties"].(map[string]any)
		for key, raw := range props {
			prop, _ := raw.(map[string]any)
			if prop == nil {
				continue
			}
			v, present := value[key]
			if name, ok := prop["x-mcp-header"].(string); ok && name != "" && present {
				switch x := v.(type) {
				case string:
					out[name] = headerSafe(x)
				case bool:
					out[name] = strconv.FormatBool(x)
				case float64:
					if x == float64(int64(x)) {
						out[name] = strconv.FormatInt(int64(x), 10)
					}
				}
			}
			if sub, ok := v.(map[string]any); ok {
				walk(prop, sub)
			}
		}
	}
	walk(tool.InputSchema, a)
	return out
}
