package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/store"
)

// suspendedText is the one refusal of a suspended tenant, whatever the
// protocol renders it in (problem+json, OAuth error, JSON-RPC, A2A).
const suspendedText = "the tenant is suspended"

// TestSuspendedTenantIsRefusedEverywhere walks every route of both planes
// that names a tenant (/t/{slug}/…: issuer, OAuth, MCP, A2A, PKI, resource
// metadata) and every admin API route with the credentials of a suspended
// tenant's admin: each answers 403 with the same refusal. Sign-in and
// token refresh are refused alike. Before the suspension and after the
// tenant is active again, the same requests are not refused that way.
func TestSuspendedTenantIsRefusedEverywhere(t *testing.T) {
	t.Parallel()
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			h := start(t, envOwn(t, flavor, t.TempDir()), nil)
			slug := uniqueSlug("held")
			tenantID, adminTok := tenantAdmin(t, h, slug)
			email, pw := "admin@"+slug+".test", "N3w-passphrase-"+slug
			refresh := h.Login(slug, email, pw, 200).RefreshToken

			requests := suspendableRequests(t, h, slug)
			if len(requests) < 25 {
				t.Fatalf("only %d tenant routes found", len(requests))
			}
			refusedAsSuspended := func(r tenantRequest) (bool, int, string) {
				code, body := r.send()
				return code == http.StatusForbidden && strings.Contains(body, suspendedText), code, body
			}
			for _, r := range requests {
				if refused, _, body := refusedAsSuspended(r); refused {
					t.Fatalf("%s refused as suspended before any suspension: %.200s", r.name, body)
				}
			}

			setStatus := func(status string) {
				t.Helper()
				resp, body := h.Do("GET", "/api/v1/tenants/"+tenantID, nil)
				var cur tenantJSON
				_ = json.Unmarshal(body, &cur)
				resp, body = h.Do("PATCH", "/api/v1/tenants/"+tenantID, map[string]any{"status": status}, "If-Match", resp.Header.Get("ETag"))
				expect(t, resp, body, 200, "set the tenant "+status)
			}
			setStatus("suspended")
			for _, r := range requests {
				if refused, code, body := refusedAsSuspended(r); !refused {
					t.Errorf("%s in a suspended tenant: %d %.300s", r.name, code, body)
				}
			}
			// Its admin's token, on every admin API route that is not public.
			routes := 0
			for _, r := range h.App.API().Doc().Routes() {
				if r.Public {
					continue
				}
				path := fillParams(r.Path, ":", slug)
				resp, body := h.DoAs(adminTok, r.Method, path, nil)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), suspendedText) {
					t.Errorf("%s %s with a suspended tenant's token: %d %.200s", r.Method, path, resp.StatusCode, body)
				}
				routes++
			}
			if routes < 50 {
				t.Fatalf("only %d admin routes walked", routes)
			}
			// Signing in and refreshing are refused the same way.
			resp, body := h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": email, "password": pw})
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), suspendedText) {
				t.Errorf("login in a suspended tenant: %d %s", resp.StatusCode, body)
			}
			resp, body = h.DoAs("", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": refresh})
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), suspendedText) {
				t.Errorf("refresh in a suspended tenant: %d %s", resp.StatusCode, body)
			}

			setStatus("active")
			for _, r := range requests {
				if refused, _, body := refusedAsSuspended(r); refused {
					t.Errorf("%s still refused once the tenant is active again: %.200s", r.name, body)
				}
			}
			if resp, body := h.DoAs(adminTok, "GET", "/api/v1/users", nil); resp.StatusCode != 200 {
				t.Errorf("the admin's token once the tenant is active again: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// tenantRequest is one request to a route that names a tenant.
type tenantRequest struct {
	name string
	send func() (int, string)
}

var muxParam = regexp.MustCompile(`\{([A-Za-z0-9_]+)(\.\.\.)?\}`)

// fillParams fills a route's path parameters: the tenant's slug for slug,
// a value that names nothing for the others. style is ":" for Fiber paths
// and "{" for net/http patterns.
func fillParams(path, style, slug string) string {
	if style == "{" {
		return muxParam.ReplaceAllStringFunc(path, func(m string) string {
			if m == "{slug}" {
				return slug
			}
			return "0198c0de-0000-7000-8000-000000000000"
		})
	}
	out := path
	for _, p := range httpx.PathParams(path) {
		v := "0198c0de-0000-7000-8000-000000000000"
		if p == "slug" {
			v = slug
		}
		out = strings.Replace(out, ":"+p, v, 1)
	}
	return out
}

// suspendableRequests lists a request to every route of both planes whose
// path names a tenant by its slug: the admin plane's issuer and OAuth
// routes, and every route on the agent plane.
func suspendableRequests(t *testing.T, h *harness, slug string) []tenantRequest {
	t.Helper()
	send := func(c *http.Client, method, url string) func() (int, string) {
		return func() (int, string) {
			var body io.Reader
			ctype := ""
			if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
				body, ctype = strings.NewReader("grant_type=client_credentials"), "application/x-www-form-urlencoded"
				if strings.Contains(url, "/mcp") || strings.Contains(url, "/a2a/") {
					body, ctype = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), "application/json"
				}
			}
			req, err := http.NewRequest(method, url, body)
			if err != nil {
				t.Fatal(err)
			}
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
				req.Header.Set("Accept", "application/json, text/event-stream")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, url, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
	}
	var out []tenantRequest
	seen := map[string]bool{}
	for _, r := range h.App.AdminPlane().GetRoutes(true) {
		if !strings.Contains(r.Path, ":slug") || r.Method == http.MethodHead || r.Method == http.MethodOptions || r.Method == "CONNECT" || r.Method == "TRACE" {
			continue
		}
		key := r.Method + " " + r.Path
		if seen[key] {
			continue
		}
		seen[key] = true
		path := fillParams(r.Path, ":", slug)
		out = append(out, tenantRequest{name: "admin plane " + key, send: send(h.HTTP, r.Method, h.Admin+path)})
	}
	for _, p := range h.App.AgentPlane().Patterns() {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = http.MethodPost, p
		}
		if !strings.Contains(path, "{slug}") {
			continue
		}
		out = append(out, tenantRequest{name: "agent plane " + p, send: send(h.TLS, method, h.Agent+fillParams(path, "{", slug))})
	}
	return out
}
