package httpx

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
)

// OpenAPI is an OpenAPI 3.1 document built from registered routes.
type OpenAPI struct {
	title, version, prefix string
	ops                    []*Route
	schemas                map[string]any
	// names maps each named schema to its Go type: two types of one name
	// (in two packages) get names of their own.
	names map[string]reflect.Type
	types map[reflect.Type]string
}

// NewOpenAPI returns an empty document for an API mounted at prefix.
func NewOpenAPI(title, version, prefix string) *OpenAPI {
	return &OpenAPI{title: title, version: version, prefix: prefix}
}

func (d *OpenAPI) add(r *Route) { d.ops = append(d.ops, r) }

// Routes returns the documented routes, with full Fiber paths.
func (d *OpenAPI) Routes() []Route {
	out := make([]Route, 0, len(d.ops))
	for _, r := range d.ops {
		c := *r
		c.Path = JoinPath(d.prefix, r.Path)
		out = append(out, c)
	}
	return out
}

// Has reports whether the document describes method on a full Fiber path.
func (d *OpenAPI) Has(method, fullPath string) bool {
	for _, r := range d.ops {
		if r.Method == method && JoinPath(d.prefix, r.Path) == fullPath {
			return true
		}
	}
	return false
}

// MarshalJSON renders the document.
func (d *OpenAPI) MarshalJSON() ([]byte, error) {
	d.schemas, d.names, d.types = map[string]any{}, map[string]reflect.Type{}, map[reflect.Type]string{}
	d.schema(reflect.TypeOf(Problem{}))
	paths := map[string]map[string]any{}
	for _, r := range d.ops {
		p := OpenAPIPath(JoinPath(d.prefix, r.Path))
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(r.Method)] = d.operation(r)
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": d.title, "version": d.version},
		"paths":   paths,
		"components": map[string]any{
			"schemas": d.schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "An access token, or the bootstrap token (break-glass super_admin)."},
			},
		},
	}
	return json.Marshal(doc)
}

func (d *OpenAPI) operation(r *Route) map[string]any {
	op := map[string]any{"operationId": r.OperationID, "summary": r.Summary}
	if len(r.Tags) > 0 {
		op["tags"] = r.Tags
	}
	var params []any
	for _, name := range PathParams(r.Path) {
		params = append(params, map[string]any{"name": name, "in": "path", "required": true,
			"schema": map[string]any{"type": "string"}})
	}
	for _, q := range r.Query {
		typ := q.Type
		if typ == "" {
			typ = "string"
		}
		params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description,
			"schema": map[string]any{"type": typ}})
	}
	if r.Scope == ScopeTenant && !r.Public {
		params = append(params, map[string]any{"name": "X-Tenant-ID", "in": "header",
			"description": "super_admin only: act inside this tenant (audited)", "schema": map[string]any{"type": "string", "format": "uuid"}})
	}
	if r.IfMatch {
		params = append(params, map[string]any{"name": "If-Match", "in": "header",
			"description": "the ETag of the version being changed; 412 if it is stale", "schema": map[string]any{"type": "string"}})
	}
	if r.Method == "POST" && !r.Public {
		params = append(params, map[string]any{"name": HeaderIdempotencyKey, "in": "header",
			"description": "makes a retry safe: the first answer to this key (1-255 visible ASCII characters) is kept 24 hours and " +
				"replayed, with Idempotent-Replayed: true, to the same caller sending the same request again; " +
				"422 if the key was used for another request, 409 while the first is still running",
			"schema": map[string]any{"type": "string", "minLength": 1, "maxLength": 255}})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if r.Request != nil {
		body := d.schema(reflect.TypeOf(r.Request))
		if len(r.Required) > 0 {
			// A type shared by create and update: what this operation
			// requires besides.
			body = map[string]any{"allOf": []any{body, map[string]any{"required": r.Required}}}
		}
		media := map[string]any{"schema": body}
		if r.Example != nil {
			media["example"] = r.Example
		}
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": media}}
	}
	problem := map[string]any{"content": map[string]any{ProblemContentType: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
	ok := map[string]any{"description": http.StatusText(r.Status)}
	if r.Response != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": d.schema(reflect.TypeOf(r.Response))}}
	}
	responses := map[string]any{strconv.Itoa(r.Status): ok, "default": mergeDesc(problem, "error (RFC 9457 problem details)")}
	op["responses"] = responses
	if r.Public {
		op["security"] = []any{}
	} else {
		op["security"] = []any{map[string]any{"bearer": []any{}}}
		roles := r.Roles
		if r.Scope == ScopePlatform {
			roles = []string{"super_admin"}
		}
		if len(roles) > 0 {
			op["x-roles"] = roles
		}
	}
	return op
}

func mergeDesc(m map[string]any, desc string) map[string]any {
	m["description"] = desc
	return m
}

var (
	timeType = reflect.TypeOf(time.Time{})
	uuidType = reflect.TypeOf(uuid.UUID{})
	rawType  = reflect.TypeOf(json.RawMessage{})
	fieldErr = reflect.TypeOf(apperr.FieldError{})
)

// schema returns the JSON Schema of t, registering named structs as
// components.
func (d *OpenAPI) schema(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case uuidType:
		return map[string]any{"type": "string", "format": "uuid"}
	case rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := d.schema(t.Elem())
		if typ, ok := s["type"].(string); ok {
			s["type"] = []string{typ, "null"}
		}
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			// encoding/json writes bytes as base64 text.
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": d.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": d.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name, known := d.types[t]
		if !known {
			name = schemaName(t)
			if other, taken := d.names[name]; taken && other != t {
				// Another package's type of the same name: qualified.
				pkg := t.PkgPath()[strings.LastIndexByte(t.PkgPath(), '/')+1:]
				name = strings.ToUpper(pkg[:1]) + pkg[1:] + name
			}
			d.names[name], d.types[t] = t, name
			d.schemas[name] = map[string]any{} // break cycles
			d.schemas[name] = d.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func (d *OpenAPI) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	d.fields(t, props, &required)
	sort.Strings(required)
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		obj["required"] = required
	}
	return obj
}

// fields adds t's JSON fields to props, flattening embedded structs as
// encoding/json does.
func (d *OpenAPI) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			d.fields(f.Type, props, required)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := d.schema(f.Type)
		if doc := f.Tag.Get("doc"); doc != "" {
			if _, isRef := s["$ref"]; !isRef {
				s["description"] = doc
			}
		}
		if typ := s["type"]; typ == "string" || slices.Equal(asStrings(typ), []string{"string", "null"}) {
			if _, hasFormat := s["format"]; !hasFormat {
				s["maxLength"] = MaxLen(f, name)
			}
		}
		props[name] = s
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}

func schemaName(t reflect.Type) string {
	name := t.Name()
	if t == fieldErr {
		return "FieldError"
	}
	if i := strings.IndexByte(name, '['); i >= 0 {
		// Generic instantiation: Page[pkg.Tenant] → TenantPage.
		inner := name[i+1 : len(name)-1]
		if j := strings.LastIndexByte(inner, '.'); j >= 0 {
			inner = inner[j+1:]
		}
		return inner + name[:i]
	}
	return name
}

func asStrings(v any) []string {
	s, _ := v.([]string)
	return s
}
