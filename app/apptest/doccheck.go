package apptest

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// DocCheck validates admin-API answers against an OpenAPI document: every
// JSON answer a test receives with a documented status must match its
// documented schema, so the document cannot drift from what the server
// does. Start checks against the running server's own document.
type DocCheck struct {
	raw      func() ([]byte, error)
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

// NewDocCheck checks against the OpenAPI document raw returns (read
// once, at the first check).
func NewDocCheck(raw func() ([]byte, error)) *DocCheck { return &DocCheck{raw: raw} }

const docURL = "file:///openapi.json"

func (d *DocCheck) load() error {
	d.once.Do(func() {
		raw, err := d.raw()
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

// Check validates one answer; nil when it matches or is not a documented
// JSON answer.
func (d *DocCheck) Check(method, path string, resp *http.Response, body []byte) error {
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
