package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files (make generate)")

// openAPIGolden is the checked-in OpenAPI document: what clients generate
// from (make generate rewrites it).
const openAPIGolden = "../../docs/openapi.json"

// TestOpenAPIDocumentIsCurrent: the document the server serves is the
// checked-in one (docs/openapi.json), so a change of the API shows in
// review; -update (make generate) rewrites it. Every schema it references
// is defined, and none is a reference to itself.
func TestOpenAPIDocumentIsCurrent(t *testing.T) {
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	resp, body := h.Do("GET", "/api/v1/openapi.json", nil, "Authorization", "")
	expect(t, resp, body, 200, "openapi.json")
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	doc["info"].(map[string]any)["version"] = "see GET /api/v1/openapi.json" // the build's version is not part of the API
	pretty, _ := json.MarshalIndent(doc, "", "  ")
	pretty = append(pretty, '\n')
	if *update {
		if err := os.WriteFile(openAPIGolden, pretty, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(openAPIGolden)
	if err != nil {
		t.Fatalf("%v (make generate writes it)", err)
	}
	if !bytes.Equal(golden, pretty) {
		t.Fatal("docs/openapi.json is not the document the server serves: run make generate and review the change")
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for name, s := range schemas {
		if ref, _ := s.(map[string]any)["$ref"].(string); ref != "" {
			t.Errorf("schema %s is only a reference (%s)", name, ref)
		}
	}
	for _, ref := range refs(doc) {
		if _, ok := schemas[strings.TrimPrefix(ref, "#/components/schemas/")]; !ok {
			t.Errorf("dangling reference %s", ref)
		}
	}
}

// refs lists every $ref in v.
func refs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out = append(out, s)
			} else {
				out = append(out, refs(e)...)
			}
		}
	case []any:
		for _, e := range x {
			out = append(out, refs(e)...)
		}
	}
	return out
}

// TestOpenAPIDocumentValidates: a real OpenAPI validator
// (@apidevtools/swagger-parser, test/interop/openapi.mjs) finds no error
// in docs/openapi.json.
func TestOpenAPIDocumentValidates(t *testing.T) {
	dir, _ := filepath.Abs("../../test/interop")
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@apidevtools", "swagger-parser")); err != nil || nodeErr != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("node and test/interop/node_modules are required (npm ci --prefix test/interop): %v %v", err, nodeErr)
		}
		t.Skip("node or test/interop/node_modules missing")
	}
	doc, _ := filepath.Abs(openAPIGolden)
	cmd := exec.Command("node", "openapi.mjs", doc)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid OpenAPI") {
		t.Fatalf("openapi.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestDocsPage: the API reference page is served with its renderer from
// the binary under a Content-Security-Policy that admits nothing from
// elsewhere; with Chromium on the machine, the page is rendered headless
// and shows the operations of the document.
func TestDocsPage(t *testing.T) {
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	resp, body := h.Do("GET", "/api/v1/docs", nil, "Authorization", "")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script src="/api/v1/docs/redoc.standalone.js">`) ||
		!strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") {
		t.Fatalf("docs page: %d %q %s", resp.StatusCode, csp, body)
	}
	resp, body = h.Do("GET", "/api/v1/docs/redoc.standalone.js", nil, "Authorization", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || len(body) < 500_000 {
		t.Fatalf("renderer: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("no chromium here: the page was not rendered")
		return
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--virtual-time-budget=15000",
		"--dump-dom", h.Admin+"/api/v1/docs")
	cmd.Dir = t.TempDir()
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	for _, want := range []string{"xavyo admin API", "/api/v1/access-requests", "Request samples", "Response samples"} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
}

// TestOpenAPIClientCompiles: a client generated from docs/openapi.json
// (openapi-typescript) compiles with tsc --strict, used by a small program.
func TestOpenAPIClientCompiles(t *testing.T) {
	dir, _ := filepath.Abs("../../test/interop")
	bin := filepath.Join(dir, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "openapi-typescript")); err != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("test/interop/node_modules is required (npm ci --prefix test/interop): %v", err)
		}
		t.Skip("test/interop/node_modules missing")
	}
	work := t.TempDir()
	doc, _ := filepath.Abs(openAPIGolden)
	program, err := os.ReadFile(filepath.Join(dir, "openapi-client.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "use.ts"), program, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{filepath.Join(bin, "openapi-typescript"), doc, "-o", filepath.Join(work, "api.d.ts")},
		{filepath.Join(bin, "tsc"), "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
			filepath.Join(work, "use.ts")},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(args[0]), err, out)
		}
	}
}
