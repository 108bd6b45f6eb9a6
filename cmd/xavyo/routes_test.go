package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
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
	for _, r := range h.s.admin.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Method == http.MethodHead {
			continue
		}
		seen++
		if !h.s.api.Doc().Has(r.Method, r.Path) {
			t.Errorf("%s %s is served but missing from the OpenAPI document", r.Method, r.Path)
		}
	}
	if seen < 5 {
		t.Fatalf("only %d routes found", seen)
	}
	// The check can fail: a route added behind the document's back.
	h.s.admin.Get("/api/v1/sneaky", func(c *fiber.Ctx) error { return nil })
	missing := false
	for _, r := range h.s.admin.GetRoutes(true) {
		if r.Path == "/api/v1/sneaky" && !h.s.api.Doc().Has(r.Method, r.Path) {
			missing = true
		}
	}
	if !missing {
		t.Fatal("an undocumented route went unnoticed")
	}

	resp, body := h.do("GET", "/api/v1/openapi.json", nil, "Authorization", "")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %d %.200s", resp.StatusCode, body)
	}
	for _, r := range h.s.api.Doc().Routes() {
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
	body   any
	hdr    []string
	params func(name string) string
	want   int
}

// TestBadInputChangesNothing walks every registered route with bad input:
// malformed JSON, wrong types, unknown fields, oversize and empty bodies,
// wrong media type, bad UUIDs, unknown and deleted tenants, missing and
// wrong credentials. Each gets a 4xx problem+json and the data is unchanged.
func TestBadInputChangesNothing(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			// A small body limit keeps the oversize probe within socket
			// buffers, so the server's 413 is read before the connection closes.
			h := start(t, append(env(t, flavor, t.TempDir()), "XAVYO_ADMIN_BODY_LIMIT=8192"), nil)
			_, body := h.do("POST", "/api/v1/tenants", map[string]any{"slug": uniqueSlug("live"), "name": "Live"})
			var live tenantJSON
			_ = json.Unmarshal(body, &live)
			_, body = h.do("POST", "/api/v1/tenants", map[string]any{"slug": uniqueSlug("gone"), "name": "Gone"})
			var gone tenantJSON
			_ = json.Unmarshal(body, &gone)
			if resp, _ := h.do("DELETE", "/api/v1/tenants/"+gone.ID, nil); resp.StatusCode != 204 {
				t.Fatal("setup delete failed")
			}
			snapshot := func() string {
				_, all := h.do("GET", "/api/v1/tenants?include_deleted=true&limit=500", nil)
				var outbox int
				_ = h.s.db.SystemRead(t.Context(), func(tx *store.Tx) error {
					return tx.QueryRow(t.Context(), `SELECT COUNT(*) FROM outbox`).Scan(&outbox)
				})
				return fmt.Sprintf("%s|outbox=%d", all, outbox)
			}
			before := snapshot()

			liveID := func(string) string { return live.ID }
			cases := 0
			for _, r := range h.s.api.Doc().Routes() {
				if r.Public {
					continue
				}
				hasParams := len(httpx.PathParams(r.Path)) > 0
				var probes []probe
				probes = append(probes,
					probe{name: "no credentials", hdr: []string{"Authorization", ""}, params: liveID, want: 401},
					probe{name: "wrong token", hdr: []string{"Authorization", "Bearer xvb_wrong"}, params: liveID, want: 401},
					probe{name: "malformed Authorization", hdr: []string{"Authorization", "Bearer"}, params: liveID, want: 401},
				)
				if r.Request != nil {
					probes = append(probes,
						probe{name: "malformed JSON", body: `{"slug": "x",`, params: liveID, want: 400},
						probe{name: "not an object", body: `[1,2]`, params: liveID, want: 400},
						probe{name: "null", body: `null`, params: liveID, want: 400},
						probe{name: "trailing data", body: `{} {}`, params: liveID, want: 400},
						probe{name: "empty body", body: ``, params: liveID, want: 400},
						probe{name: "unknown field", body: `{"zz_unknown": 1}`, params: liveID, want: 400},
						probe{name: "oversize body", body: `{"name":"` + strings.Repeat("x", h.s.cfg.Admin.BodyLimit) + `"}`, params: liveID, want: 413},
						probe{name: "wrong media type", body: `{}`, hdr: []string{"Content-Type", "text/plain"}, params: liveID, want: 415},
					)
					rt := reflect.TypeOf(r.Request)
					for i := range rt.NumField() {
						f := rt.Field(i)
						name := strings.Split(f.Tag.Get("json"), ",")[0]
						raw, _ := json.Marshal(map[string]any{name: badValue(f.Type)})
						probes = append(probes, probe{name: "wrong type for " + name, body: string(raw), params: liveID, want: 400})
					}
				}
				if hasParams {
					valid := `{}`
					if r.Request == nil {
						valid = ""
					}
					var body any
					if valid != "" {
						body = valid
					}
					probes = append(probes,
						probe{name: "bad UUID", body: body, params: func(string) string { return "not-a-uuid" }, want: 400},
						probe{name: "nil UUID", body: body, params: func(string) string { return uuid.Nil.String() }, want: 400},
						probe{name: "unknown tenant", body: body, params: func(string) string { return uuid.NewString() }, want: 404},
						probe{name: "deleted tenant", body: body, params: func(string) string { return gone.ID }, want: 404},
					)
				}
				if r.IfMatch {
					probes = append(probes, probe{name: "malformed If-Match", body: jsonBody(r), hdr: []string{"If-Match", "abc"}, params: liveID, want: 400})
				}
				for _, p := range probes {
					path := r.Path
					for _, name := range httpx.PathParams(r.Path) {
						path = strings.ReplaceAll(path, ":"+name, p.params(name))
					}
					resp, body := h.do(r.Method, path, p.body, p.hdr...)
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
			if cases < 40 {
				t.Fatalf("only %d probes ran", cases)
			}
			if after := snapshot(); after != before {
				t.Fatalf("bad input changed data:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func jsonBody(r httpx.Route) any {
	if r.Request == nil {
		return nil
	}
	return `{}`
}
