package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/xavyo/xavyo/internal/principal"
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
	h := http.Header{}
	h.Set(hdrVersion, v)
	h.Set(hdrMethod, "server/discover")
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
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
func (g *Gateway) bridgeStateless(w http.ResponseWriter, r *http.Request, ep *endpoint, p *principal.Principal, m *message, version string) {
	ctx := r.Context()
	var params struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	_ = json.Unmarshal(m.Params, &params)
	s := &session{tenant: ep.tenant.ID, subjectKind: string(p.Kind), subjectID: p.SubjectID, server: ep.server, version: version,
		expires: g.cfg.Now().Add(time.Minute)}
	_ = json.Unmarshal(params.Meta["io.modelcontextprotocol/logLevel"], &s.logLevel)
	switch m.Method {
	case "server/discover":
		res, _ := json.Marshal(map[string]any{
			"resultType":        "complete",
			"supportedVersions": ep.allVersions(),
			"capabilities":      map[string]any{"tools": map[string]any{}, "resources": map[string]any{}, "prompts": map[string]any{}, "completions": map[string]any{}},
			"ttlMs":             0,
			"cacheScope":        "private",
			"instructions":      "Tools of this gateway are the ones you are allowed to call; every call is checked and audited.",
			"_meta":             map[string]any{"io.modelcontextprotocol/serverInfo": map[string]any{"name": "xavyo MCP gateway (" + ep.tenant.Slug + "/" + ep.server + ")", "version": g.cfg.Version}},
		})
		writeJSON(w, http.StatusOK, resultBody(m.ID, res))
	case "tools/list":
		g.listTools(ctx, w, ep, p, m, true)
	case "tools/call":
		g.callTool(ctx, w, r, ep, p, s, m)
	case "resources/list", "resources/templates/list", "resources/read", "prompts/list", "prompts/get", "completion/complete":
		servers := g.permittedServers(ctx, ep, p)
		res, err := g.forward(ctx, servers[0], m.Method, withoutStatelessMeta(m.Params))
		if err == nil && res.Error == nil {
			res.Result = completeResult(res.Result, m.Method != "resources/read" && m.Method != "prompts/get" && m.Method != "completion/complete")
		}
		writeJSON(w, http.StatusOK, answer(m.ID, res, err))
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
