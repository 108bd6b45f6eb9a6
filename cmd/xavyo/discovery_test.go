package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
)

// TestDiscoveryDocumentsAreCurrent: the documents clients discover xavyo
// by — the issuer's OpenID and OAuth metadata (both paths), the MCP
// endpoint's protected-resource metadata, the gateway's A2A card — are
// the checked-in ones in testdata/discovery (addresses replaced by
// {admin} and {agent}); -update (make generate) rewrites them. A change
// to what clients rely on shows in review.
func TestDiscoveryDocumentsAreCurrent(t *testing.T) {
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	docs := []struct{ file, base, path string }{
		{"openid-configuration.json", h.Admin, "/t/default/.well-known/openid-configuration"},
		{"oauth-authorization-server.json", h.Admin, "/.well-known/oauth-authorization-server/t/default"},
		{"protected-resource-mcp.json", h.Agent, "/.well-known/oauth-protected-resource/t/default/mcp"},
		{"agent-card.json", h.Agent, "/.well-known/agent-card.json"},
	}
	for _, d := range docs {
		resp, err := h.TLS.Get(d.base + d.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", d.path, resp.StatusCode, body)
		}
		body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte(h.Admin), []byte("{admin}")), []byte(h.Agent), []byte("{agent}"))
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: %v", d.path, err)
		}
		if m, ok := v.(map[string]any); ok && d.file == "agent-card.json" {
			m["version"] = "the build's version"
		}
		pretty, _ := json.MarshalIndent(v, "", "  ")
		pretty = append(pretty, '\n')
		golden := filepath.Join("testdata", "discovery", d.file)
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, pretty, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (make generate writes it)", err)
		}
		if !bytes.Equal(want, pretty) {
			t.Errorf("%s is not what %s serves: run make generate and review the change\n%s", golden, d.path, strings.TrimSpace(string(pretty)))
		}
	}
}
