package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/store"
)

// TestOpenAPIDescribesEveryRoute fails when a route is served under
// /api/v1 without being in the OpenAPI document.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	seen := 0
	for _, r := range h.App.AdminPlane().GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Method == http.MethodHead {
			continue
		}
		seen++
		if !h.App.API().Doc().Has(r.Method, r.Path) {
			t.Errorf("%s %s is served but missing from the OpenAPI document", r.Method, r.Path)
		}
	}
	if seen < 5 {
		t.Fatalf("only %d routes found", seen)
	}
	// The check can fail: a route added behind the document's back.
	h.App.AdminPlane().Get("/api/v1/sneaky", func(c *fiber.Ctx) error { return nil })
	missing := false
	for _, r := range h.App.AdminPlane().GetRoutes(true) {
		if r.Path == "/api/v1/sneaky" && !h.App.API().Doc().Has(r.Method, r.Path) {
			missing = true
		}
	}
	if !missing {
		t.Fatal("an undocumented route went unnoticed")
	}

	resp, body := h.Do("GET", "/api/v1/openapi.json", nil, "Authorization", "")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %d %.200s", resp.StatusCode, body)
	}
	for _, r := range h.App.API().Doc().Routes() {
		p := httpx.OpenAPIPath(r.Path)
		if _, ok := doc.Paths[p][strings.ToLower(r.Method)]; !ok {
			t.Errorf("served document lacks %s %s", r.Method, p)
		}
	}
}

// badValue returns a JSON value of the wrong type for a field of type t.
func badValue(t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return 12345
	case reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		return "not-a-number-or-bool"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // json.RawMessage: must be an object here
			return 12345
		}
		return "not-an-array"
	}
	return 12345
}

type probe struct {
	name   string
	query  string
	body   any
	hdr    []string
	params func(name string) string
	want   int
	// bootstrap sends the bootstrap token instead of the route's usual credential.
	bootstrap bool
}

// tenantAdmin creates a tenant with a first admin through the API, signs
// the admin in, changes the forced password and returns the tenant's ID
// and an access token.
func tenantAdmin(t *testing.T, h *harness, slug string) (tenantID, access string) {
	t.Helper()
	return h.TenantAdmin(t, slug)
}

// TestBadInputChangesNothing walks every registered route with bad input:
// malformed JSON, wrong types, unknown fields, oversize and empty bodies,
// wrong media type, bad and unknown IDs, unknown, deleted and malformed
// tenants, missing and wrong credentials. Each gets a 4xx problem+json and
// the data is unchanged.
func TestBadInputChangesNothing(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			// A small body limit keeps the oversize probe within socket
			// buffers, so the server's 413 is read before the connection closes.
			h := start(t, append(env(t, flavor, t.TempDir()), "XAVYO_ADMIN_BODY_LIMIT=8192"), nil)
			liveID, adminToken := tenantAdmin(t, h, uniqueSlug("live"))
			_, body := h.Do("POST", "/api/v1/tenants", map[string]any{"slug": uniqueSlug("gone"), "name": "Gone"})
			var gone tenantJSON
			_ = json.Unmarshal(body, &gone)
			if resp, _ := h.Do("DELETE", "/api/v1/tenants/"+gone.ID, nil); resp.StatusCode != 204 {
				t.Fatal("setup delete failed")
			}
			snapshot := func() string {
				_, all := h.Do("GET", "/api/v1/tenants?include_deleted=true&limit=500", nil)
				var outbox, users, audits int
				_ = h.App.DB().SystemRead(t.Context(), func(tx *store.Tx) error {
					_ = tx.QueryRow(t.Context(), `SELECT COUNT(*) FROM users`).Scan(&users)
					return tx.QueryRow(t.Context(), `SELECT COUNT(*) FROM outbox`).Scan(&outbox)
				})
				_ = audits
				return fmt.Sprintf("%s|outbox=%d|users=%d", all, outbox, users)
			}
			before := snapshot()

			// Path parameters are UUIDs, except certificate serials (decimal).
			param := func(uuidValue string) func(string) string {
				return func(name string) string {
					if name != "serial" {
						return uuidValue
					}
					switch uuidValue {
					case "not-a-uuid":
						return "not-a-serial"
					case liveID, uuid.Nil.String():
						return "12345"
					}
					return "987654321"
				}
			}
			live := param(liveID)
			cases := 0
			for _, r := range h.App.API().Doc().Routes() {
				if r.Method == "GET" && r.Public {
					continue // documents, nothing to break
				}
				hasParams := len(httpx.PathParams(r.Path)) > 0
				var probes []probe
				if !r.Public {
					probes = append(probes,
						probe{name: "no credentials", hdr: []string{"Authorization", ""}, params: live, want: 401},
						probe{name: "wrong token", hdr: []string{"Authorization", "Bearer xvb_wrong"}, params: live, want: 401},
						probe{name: "malformed Authorization", hdr: []string{"Authorization", "Bearer"}, params: live, want: 401},
						probe{name: "forged JWT", hdr: []string{"Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, params: live, want: 401},
					)
				}
				if r.Request != nil {
					probes = append(probes,
						probe{name: "malformed JSON", body: `{"slug": "x",`, params: live, want: 400},
						probe{name: "not an object", body: `[1,2]`, params: live, want: 400},
						probe{name: "null", body: `null`, params: live, want: 400},
						probe{name: "trailing data", body: `{} {}`, params: live, want: 400},
						probe{name: "empty body", body: ``, params: live, want: 400},
						probe{name: "unknown field", body: `{"zz_unknown": 1}`, params: live, want: 400},
						probe{name: "oversize body", body: `{"name":"` + strings.Repeat("x", h.App.Config().Admin.BodyLimit) + `"}`, params: live, want: 413},
						probe{name: "wrong media type", body: `{}`, hdr: []string{"Content-Type", "text/plain"}, params: live, want: 415},
					)
					probes = append(probes, probe{name: "invalid UTF-8 in the body", body: "{\"zz\":\"\xff\xfe\"}", params: live, want: 400})
					for _, name := range jsonFields(reflect.TypeOf(r.Request)) {
						raw, _ := json.Marshal(map[string]any{name.name: badValue(name.typ)})
						probes = append(probes, probe{name: "wrong type for " + name.name, body: string(raw), params: live, want: 400})
						if base := name.typ; base.Kind() == reflect.String || base.Kind() == reflect.Pointer && base.Elem().Kind() == reflect.String {
							raw, _ = json.Marshal(map[string]any{name.name: "a\x00b"})
							probes = append(probes, probe{name: "NUL in " + name.name, body: string(raw), params: live, want: 400})
							if name.limit < h.App.Config().Admin.BodyLimit-100 {
								raw, _ = json.Marshal(map[string]any{name.name: strings.Repeat("x", name.limit+1)})
								probes = append(probes, probe{name: "over-long " + name.name, body: string(raw), params: live, want: 400})
							}
						}
					}
				}
				var valid any
				if r.Request != nil {
					valid = `{}`
					if r.Example != nil {
						valid = r.Example
					}
				}
				probes = append(probes,
					probe{name: "invalid UTF-8 in the query", query: "?action=%ff%fe", body: valid, params: live, want: 400},
					probe{name: "NUL in the query", query: "?q=a%00b", body: valid, params: live, want: 400},
					probe{name: "over-long query value", query: "?q=" + strings.Repeat("q", httpx.MaxQueryLen+1), body: valid, params: live, want: 400})
				if hasParams {
					probes = append(probes,
						probe{name: "bad UUID", body: valid, params: param("not-a-uuid"), want: 400},
						probe{name: "nil UUID", body: valid, params: param(uuid.Nil.String()), want: 400},
						probe{name: "unknown ID", body: valid, params: param(uuid.NewString()), want: 404},
					)
					if r.Scope == httpx.ScopePlatform {
						probes = append(probes, probe{name: "deleted tenant", body: valid, params: func(string) string { return gone.ID }, want: 404})
					}
				}
				if r.Scope == httpx.ScopeTenant && !r.Public {
					probes = append(probes,
						probe{name: "unknown X-Tenant-ID", body: valid, hdr: []string{"X-Tenant-ID", uuid.NewString()}, params: live, want: 404, bootstrap: true},
						probe{name: "deleted X-Tenant-ID", body: valid, hdr: []string{"X-Tenant-ID", gone.ID}, params: live, want: 404, bootstrap: true},
						probe{name: "malformed X-Tenant-ID", body: valid, hdr: []string{"X-Tenant-ID", "acme"}, params: live, want: 400, bootstrap: true},
						probe{name: "no tenant for the bootstrap token", body: valid, params: live, want: 400, bootstrap: true},
						probe{name: "X-Tenant-ID from a tenant user", body: valid, hdr: []string{"X-Tenant-ID", gone.ID}, params: live, want: 403},
					)
				}
				if r.IfMatch {
					probes = append(probes, probe{name: "malformed If-Match", body: valid, hdr: []string{"If-Match", "abc"}, params: live, want: 400})
				}
				for _, p := range probes {
					path := r.Path
					for _, name := range httpx.PathParams(r.Path) {
						path = strings.ReplaceAll(path, ":"+name, p.params(name))
					}
					cred := h.Token
					if r.Scope != httpx.ScopePlatform && !p.bootstrap {
						cred = adminToken
					}
					hdr := append([]string{"Authorization", "Bearer " + cred}, p.hdr...)
					if r.Public && !slices.Contains(p.hdr, "Authorization") {
						hdr = append(hdr, "Authorization", "")
					}
					resp, body := h.DoAs(cred, r.Method, path+p.query, p.body, hdr...)
					cases++
					if resp.StatusCode != p.want {
						t.Errorf("%s %s, %s: got %d, want %d: %.300s", r.Method, r.Path, p.name, resp.StatusCode, p.want, body)
						continue
					}
					var prob httpx.Problem
					if ct := resp.Header.Get("Content-Type"); ct != httpx.ProblemContentType || json.Unmarshal(body, &prob) != nil ||
						prob.Status != p.want || prob.Title == "" || prob.Code == "" {
						t.Errorf("%s %s, %s: not problem+json: %s %.300s", r.Method, r.Path, p.name, ct, body)
					}
				}
			}
			if cases < 300 {
				t.Fatalf("only %d probes ran", cases)
			}
			if after := snapshot(); after != before {
				t.Fatalf("bad input changed data:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

type jsonField struct {
	name  string
	typ   reflect.Type
	limit int // length limit of a string
}

// jsonFields lists a request type's JSON fields, embedded structs flattened.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		out = append(out, jsonField{name, f.Type, httpx.MaxLen(f, name)})
	}
	return out
}
