package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// Aggregate-endpoint limits.
const (
	maxListPages = 20
	maxOwnedURIs = 100_000
)

// listKeys maps each list method to its result member.
var listKeys = map[string]string{
	"prompts/list":             "prompts",
	"resources/list":           "resources",
	"resources/templates/list": "resourceTemplates",
}

// owners remembers which tool server listed each resource URI, per
// tenant, so that reads on the aggregate endpoint go to the right one.
type owners struct {
	mu  sync.Mutex
	uri map[string]uuid.UUID // tenant + " " + uri → server
}

func (o *owners) put(tenant uuid.UUID, uri string, server uuid.UUID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.uri == nil || len(o.uri) >= maxOwnedURIs {
		o.uri = map[string]uuid.UUID{}
	}
	k := tenant.String() + " " + uri
	if _, ok := o.uri[k]; !ok {
		o.uri[k] = server
	}
}

func (o *owners) get(tenant uuid.UUID, uri string) (uuid.UUID, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.uri[tenant.String()+" "+uri]
	return s, ok
}

// aggregate serves resources, prompts and completions on the aggregate
// endpoint across the permitted servers: lists are merged (prompt names
// prefixed "<server>__" like tools; resource URIs as the servers gave
// them), and a request about one item goes to the server it came from.
func (g *Gateway) aggregate(ctx context.Context, w http.ResponseWriter, ep *endpoint, servers []*serverEntry, m *message) {
	if key, ok := listKeys[m.Method]; ok {
		g.mergeLists(ctx, w, ep, servers, m, key)
		return
	}
	var params map[string]json.RawMessage
	if json.Unmarshal(m.Params, &params) != nil || params == nil {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "invalid params"}))
		return
	}
	switch m.Method {
	case "prompts/get":
		var name string
		_ = json.Unmarshal(params["name"], &name)
		srv, orig := splitName(servers, name)
		if srv == nil {
			writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "unknown prompt: " + name}))
			return
		}
		params["name"], _ = json.Marshal(orig)
		out, _ := json.Marshal(params)
		res, err := g.forward(ctx, srv, m.Method, out)
		writeJSON(w, http.StatusOK, answer(m.ID, res, err))
	case "resources/read":
		var uri string
		_ = json.Unmarshal(params["uri"], &uri)
		g.readResource(ctx, w, ep, servers, m, uri)
	case "completion/complete":
		var ref struct {
			Type string `json:"type"`
			Name string `json:"name"`
			URI  string `json:"uri"`
		}
		_ = json.Unmarshal(params["ref"], &ref)
		if ref.Type == "ref/prompt" {
			srv, orig := splitName(servers, ref.Name)
			if srv == nil {
				writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "unknown prompt: " + ref.Name}))
				return
			}
			var rm map[string]json.RawMessage
			_ = json.Unmarshal(params["ref"], &rm)
			rm["name"], _ = json.Marshal(orig)
			params["ref"], _ = json.Marshal(rm)
			out, _ := json.Marshal(params)
			res, err := g.forward(ctx, srv, m.Method, out)
			writeJSON(w, http.StatusOK, answer(m.ID, res, err))
			return
		}
		g.readResource(ctx, w, ep, servers, m, ref.URI)
	}
}

// splitName finds the permitted server of a "<server>__<name>" name.
func splitName(servers []*serverEntry, name string) (*serverEntry, string) {
	slug, orig, ok := strings.Cut(name, "__")
	if !ok || orig == "" {
		return nil, ""
	}
	for _, s := range servers {
		if s.slug == slug {
			return s, orig
		}
	}
	return nil, ""
}

// readResource sends a request about a resource URI (read, or a
// completion of a resource template) to the server that listed the URI,
// or else to each permitted server in turn until one answers without error.
func (g *Gateway) readResource(ctx context.Context, w http.ResponseWriter, ep *endpoint, servers []*serverEntry, m *message, uri string) {
	if len(servers) == 0 {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeDenied, Message: "no access to any tool server"}))
		return
	}
	order := servers
	if id, ok := g.owners.get(ep.tenant.ID, uri); ok {
		for i, s := range servers {
			if s.id == id {
				order = append([]*serverEntry{s}, append(append([]*serverEntry{}, servers[:i]...), servers[i+1:]...)...)
				break
			}
		}
	}
	var res *callResult
	var err error
	for _, s := range order {
		res, err = g.forward(ctx, s, m.Method, m.Params)
		if err == nil && res.Error == nil {
			break
		}
	}
	writeJSON(w, http.StatusOK, answer(m.ID, res, err))
}

// mergeLists pages through each permitted server's list and answers with
// one page holding them all. A server that fails is left out.
func (g *Gateway) mergeLists(ctx context.Context, w http.ResponseWriter, ep *endpoint, servers []*serverEntry, m *message, key string) {
	var b bytes.Buffer
	b.WriteString(`{"` + key + `":[`)
	n := 0
	for _, s := range servers {
		cursor := ""
		for page := 0; page < maxListPages; page++ {
			params := json.RawMessage(`{}`)
			if cursor != "" {
				params, _ = json.Marshal(map[string]string{"cursor": cursor})
			}
			res, err := g.forward(ctx, s, m.Method, params)
			if err != nil || res.Error != nil {
				if err != nil {
					g.cfg.Logger.Warn("tool server left out of a merged list", "server", s.slug, "method", m.Method, "error", err)
				}
				break
			}
			var body map[string]json.RawMessage
			if json.Unmarshal(res.Result, &body) != nil {
				break
			}
			var items []json.RawMessage
			_ = json.Unmarshal(body[key], &items)
			for _, it := range items {
				switch key {
				case "prompts":
					var d struct {
						Name string `json:"name"`
					}
					if json.Unmarshal(it, &d) != nil || d.Name == "" {
						continue
					}
					it = renamed(it, s.slug+"__"+d.Name)
				case "resources":
					var d struct {
						URI string `json:"uri"`
					}
					if json.Unmarshal(it, &d) == nil && d.URI != "" {
						g.owners.put(ep.tenant.ID, d.URI, s.id)
					}
				}
				if n > 0 {
					b.WriteByte(',')
				}
				b.Write(it)
				n++
			}
			_ = json.Unmarshal(body["nextCursor"], &cursor)
			if cursor == "" {
				break
			}
		}
	}
	b.WriteString(`]}`)
	writeJSON(w, http.StatusOK, resultBody(m.ID, b.Bytes()))
}
