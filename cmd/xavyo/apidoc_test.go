package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// apiDoc validates admin-API responses against docs/openapi.json: every
// JSON answer the end-to-end tests receive with a documented status must
// match its documented schema, so the document cannot drift from what the
// server does.
type apiDoc struct {
	once     sync.Once
	err      error
	ops      []docOp
	compiler *jsonschema.Compiler
	mu       sync.Mutex
	schemas  map[string]*jsonschema.Schema
}

type docOp struct {
	method string
	path   *regexp.Regexp
	tmpl   string
}

var theDoc apiDoc

const docURL = "file:///openapi.json"

func (d *apiDoc) load() error {
	d.once.Do(func() {
		raw, err := os.ReadFile(openAPIGolden)
		if err != nil {
			d.err = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			d.err = err
			return
		}
		d.compiler = jsonschema.NewCompiler()
		d.compiler.DefaultDraft(jsonschema.Draft2020)
		if d.err = d.compiler.AddResource(docURL, doc); d.err != nil {
			return
		}
		d.schemas = map[string]*jsonschema.Schema{}
		param := regexp.MustCompile(`\{[^}]+\}`)
		for tmpl, ops := range doc.(map[string]any)["paths"].(map[string]any) {
			parts := param.Split(tmpl, -1)
			for i := range parts {
				parts[i] = regexp.QuoteMeta(parts[i])
			}
			re := regexp.MustCompile("^" + strings.Join(parts, `[^/]+`) + "$")
			for method := range ops.(map[string]any) {
				d.ops = append(d.ops, docOp{method: strings.ToUpper(method), path: re, tmpl: tmpl})
			}
		}
	})
	return d.err
}

// pointer escapes a JSON pointer token.
func pointer(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }

// check validates one response; nil when it matches or is not a
// documented JSON answer.
func (d *apiDoc) check(method, path string, resp *http.Response, body []byte) error {
	if !strings.HasPrefix(path, "/api/v1/") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || len(body) == 0 {
		return nil
	}
	if err := d.load(); err != nil {
		return fmt.Errorf("the API document: %w", err)
	}
	path, _, _ = strings.Cut(path, "?")
	var op *docOp
	for i := range d.ops {
		if d.ops[i].method == method && d.ops[i].path.MatchString(path) && (op == nil || len(d.ops[i].tmpl) > len(op.tmpl) ||
			strings.Count(d.ops[i].tmpl, "{") < strings.Count(op.tmpl, "{")) {
			op = &d.ops[i]
		}
	}
	if op == nil {
		return fmt.Errorf("%s %s is not in the API document", method, path)
	}
	loc := docURL + "#/paths/" + pointer(op.tmpl) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(resp.StatusCode) +
		"/content/application~1json/schema"
	d.mu.Lock()
	sch, ok := d.schemas[loc]
	if !ok {
		var err error
		if sch, err = d.compiler.Compile(loc); err != nil {
			sch = nil // an undocumented status or a body the document does not describe
		}
		d.schemas[loc] = sch
	}
	d.mu.Unlock()
	if sch == nil {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: the answer is not JSON: %w", method, path, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s %s (%s %s) answered %d with a body the document does not describe: %v", method, path, strings.ToUpper(method), op.tmpl,
			resp.StatusCode, err)
	}
	return nil
}

// TestAPIDocCatchesDrift: the response check refuses an answer the
// document does not describe (a wrong type, an unknown member, a missing
// one) and a route it does not list, and accepts a conforming answer.
func TestAPIDocCatchesDrift(t *testing.T) {
	ok := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	good := `{"items":[{"id":"01a24fee-5d13-7998-bbae-7f10f880ebb1","slug":"acme","name":"Acme","status":"active","settings":{},` +
		`"created_at":"2026-12-07T00:00:00Z","updated_at":"2026-12-07T00:00:00Z","version":1}]}`
	if err := theDoc.check("GET", "/api/v1/tenants", ok, []byte(good)); err != nil {
		t.Fatalf("a conforming answer: %v", err)
	}
	for name, body := range map[string]string{
		"wrong type":     strings.Replace(good, `"version":1`, `"version":"1"`, 1),
		"unknown member": strings.Replace(good, `"version":1`, `"version":1,"secret":"x"`, 1),
		"missing member": strings.Replace(good, `"slug":"acme",`, ``, 1),
	} {
		if err := theDoc.check("GET", "/api/v1/tenants", ok, []byte(body)); err == nil {
			t.Errorf("%s: not caught", name)
		}
	}
	if err := theDoc.check("GET", "/api/v1/no-such-route", ok, []byte(`{}`)); err == nil {
		t.Error("an undocumented route: not caught")
	}
}
