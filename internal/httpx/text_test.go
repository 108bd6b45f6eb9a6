package httpx_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
)

type limited struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Code        string            `json:"code,omitempty" maxlen:"8"`
	URL         string            `json:"url,omitempty"`
	Items       []limitedItem     `json:"items,omitempty"`
	Attributes  map[string]any    `json:"attributes,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

type limitedItem struct {
	Title string `json:"title"`
}

func TestLengthLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // characters, not bytes
	cases := map[string]struct {
		body  any
		field string
	}{
		"within":            {map[string]any{"name": long(httpx.MaxNameLen), "description": long(httpx.MaxTextLen), "code": "12345678"}, ""},
		"name":              {map[string]any{"name": long(httpx.MaxNameLen + 1)}, "name"},
		"description":       {map[string]any{"name": "a", "description": long(httpx.MaxTextLen + 1)}, "description"},
		"tagged":            {map[string]any{"name": "a", "code": "123456789"}, "code"},
		"other":             {map[string]any{"name": "a", "url": long(httpx.MaxValueLen + 1)}, "url"},
		"nested":            {map[string]any{"name": "a", "items": []any{map[string]any{"title": "ok"}, map[string]any{"title": long(httpx.MaxNameLen + 1)}}}, "items[1].title"},
		"map value":         {map[string]any{"name": "a", "attributes": map[string]any{"x": []any{long(httpx.MaxValueLen + 1)}}}, "attributes.x[0]"},
		"map key":           {map[string]any{"name": "a", "labels": map[string]string{long(httpx.MaxNameLen + 1): "v"}}, "labels"},
		"long but in bytes": {map[string]any{"name": long(httpx.MaxNameLen)}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			raw, _ := json.Marshal(tc.body)
			var v limited
			err := httpx.DecodeJSONBytes(raw, &v)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fields := apperr.FieldsOf(err)
			if apperr.KindOf(err) != apperr.KindInvalidArgument || len(fields) != 1 || fields[0].Field != tc.field {
				t.Fatalf("err=%v fields=%v, want invalid %s", err, fields, tc.field)
			}
		})
	}
}

// TestTextGuard: the admin app refuses NUL characters and invalid UTF-8
// in paths, queries, JSON and form bodies, and over-long query values,
// with 400 problem+json, before any handler runs.
func TestTextGuard(t *testing.T) {
	app := httpx.NewApp(httpx.AppConfig{})
	reached := 0
	app.All("/*", func(c *fiber.Ctx) error { reached++; return c.Status(202).SendString("ok") })
	cases := map[string]struct {
		method, target, ctype, body string
		want                        int
	}{
		"ok":              {"GET", "/api/v1/audit?action=mcp.tools.call", "", "", 202},
		"query nul":       {"GET", "/api/v1/audit?action=a%00b", "", "", 400},
		"query utf-8":     {"GET", "/api/v1/audit?action=%ff%fe", "", "", 400},
		"query name":      {"GET", "/api/v1/audit?%ff=1", "", "", 400},
		"query long":      {"GET", "/api/v1/audit?action=" + strings.Repeat("a", httpx.MaxQueryLen+1), "", "", 400},
		"path nul":        {"GET", "/api/v1/users/a%00b", "", "", 400},
		"path utf-8":      {"GET", "/api/v1/users/%ff", "", "", 400},
		"json nul":        {"POST", "/api/v1/auth/login", "application/json", `{"login":"a\u0000"}`, 400},
		"json utf-8":      {"POST", "/api/v1/auth/login", "application/json", "{\"login\":\"\xff\"}", 400},
		"json ok":         {"POST", "/api/v1/auth/login", "application/json", `{"login":"é"}`, 202},
		"form nul":        {"POST", "/t/acme/token", "application/x-www-form-urlencoded", "client_id=a%00b", 400},
		"form utf-8":      {"POST", "/t/acme/token", "application/x-www-form-urlencoded", "client_id=%ff", 400},
		"form ok":         {"POST", "/t/acme/token", "application/x-www-form-urlencoded", "client_id=abc", 202},
		"other body type": {"POST", "/t/acme/upload", "application/octet-stream", "\x00\xff", 202},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := reached
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 400 {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") || reached != before {
					t.Fatalf("content type %q, handler reached: %v", ct, reached != before)
				}
			}
		})
	}
}
