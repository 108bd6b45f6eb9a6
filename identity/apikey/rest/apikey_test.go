package rest_test

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type created struct {
	ID     string `json:"id"`
	Prefix string `json:"prefix"`
	Key    string `json:"key"`
}

// TestAPIKeys: a key works as a bearer on the admin plane with its scopes
// within its owner's current roles; it is shown once and listed without
// its secret; a key makes no keys; revoked, expired, rotated-out and
// address-limited keys fail; introspection answers only at the key's
// tenant; the agent plane never takes a key; uses are counted.
func TestAPIKeys(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			apiKeys(t, flavor)
		})
	}
}

func apiKeys(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug, other := apptest.UniqueSlug("key"), apptest.UniqueSlug("kez")
	_, admin := h.TenantAdmin(t, slug)
	_, otherAdmin := h.TenantAdmin(t, other)
	resp, body := h.DoAs(admin, "POST", "/api/v1/users", map[string]any{"email": "ada@key.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	ada := h.Login(slug, "ada@key.test", "Analytical-engine-1843", 200).AccessToken

	mk := func(tok string, in map[string]any) created {
		t.Helper()
		resp, body := h.DoAs(tok, "POST", "/api/v1/api-keys", in)
		apptest.Expect(t, resp, body, 201, "key")
		k := apptest.Decode[created](t, body)
		if !strings.HasPrefix(k.Key, k.Prefix+"_") || !strings.HasPrefix(k.Prefix, "xvk_") {
			t.Fatalf("key %+v", k)
		}
		return k
	}
	status := func(key, method, path string) int {
		t.Helper()
		resp, _ := h.DoAs(key, method, path, nil)
		return resp.StatusCode
	}
	for name, bad := range map[string]map[string]any{
		"no scope":       {"name": "k"},
		"unknown scope":  {"name": "k", "scopes": []string{"super_admin"}},
		"no name":        {"scopes": []string{"viewer"}},
		"a bad range":    {"name": "k", "scopes": []string{"viewer"}, "allowed_ips": []string{"10.0.0.0/99"}},
		"an expiry past": {"name": "k", "scopes": []string{"viewer"}, "expires_at": time.Now().Add(-time.Hour)},
	} {
		resp, body := h.DoAs(admin, "POST", "/api/v1/api-keys", bad)
		apptest.Expect(t, resp, body, 400, name)
	}

	// Keys of NHIs: tenant admins only, and only for NHIs of the tenant.
	_, body = h.DoAs(admin, "GET", "/api/v1/me", nil)
	owner := apptest.Decode[struct {
		ID string `json:"id"`
	}](t, body).ID
	resp, body = h.DoAs(admin, "POST", "/api/v1/nhis", map[string]any{"kind": "service_account", "slug": "sync", "name": "Sync", "owner_id": owner, "profile": map[string]any{"service_account": map[string]any{"purpose": "directory sync"}}})
	apptest.Expect(t, resp, body, 201, "nhi")
	bot := apptest.Decode[struct {
		ID string `json:"id"`
	}](t, body).ID
	resp, body = h.DoAs(admin, "POST", "/api/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"scim"}, "nhi_id": "0190a0b0-0000-7000-8000-000000000000"})
	apptest.Expect(t, resp, body, 404, "a key of an unknown NHI")
	resp, body = h.DoAs(ada, "POST", "/api/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"scim"}, "nhi_id": bot})
	apptest.Expect(t, resp, body, 403, "a key of an NHI by a non-admin")
	resp, body = h.DoAs(admin, "POST", "/api/v1/api-keys", map[string]any{"name": "sync", "scopes": []string{"scim"}, "nhi_id": bot})
	apptest.Expect(t, resp, body, 201, "a key of an NHI")
	if !strings.Contains(string(body), `"owner_kind":"nhi"`) {
		t.Fatalf("an NHI's key: %s", body)
	}

	ops := mk(admin, map[string]any{"name": "ops", "scopes": []string{"tenant_admin", "scim"}})
	if st := status(ops.Key, "GET", "/api/v1/users"); st != 200 {
		t.Fatalf("an admin's key: %d", st)
	}
	resp, body = h.DoAs(ops.Key, "POST", "/api/v1/api-keys", map[string]any{"name": "k2", "scopes": []string{"viewer"}})
	apptest.Expect(t, resp, body, 403, "a key making a key")
	// Ada holds no admin role: her key's tenant_admin scope gives nothing.
	adas := mk(ada, map[string]any{"name": "mine", "scopes": []string{"tenant_admin"}})
	if st := status(adas.Key, "GET", "/api/v1/users"); st != 403 {
		t.Fatalf("a scope its owner lacks: %d", st)
	}
	if st := status(adas.Key, "GET", "/api/v1/me"); st != 200 {
		t.Fatalf("the owner's own routes: %d", st)
	}
	// Listed without secrets; the uses counted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body = h.DoAs(admin, "GET", "/api/v1/api-keys?all=true", nil)
		apptest.Expect(t, resp, body, 200, "list")
		if strings.Contains(string(body), strings.TrimPrefix(ops.Key, ops.Prefix+"_")) {
			t.Fatalf("the list shows a secret: %s", body)
		}
		if strings.Contains(string(body), `"last_used_at"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(body), `"last_used_at"`) || !strings.Contains(string(body), adas.Prefix) {
		t.Fatalf("the list: %s", body)
	}
	// Introspection: at the key's tenant only.
	resp, body = h.DoAs(admin, "POST", "/api/v1/api-keys/introspect", map[string]any{"key": ops.Key})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"active":true`) || !strings.Contains(string(body), ops.Prefix) {
		t.Fatalf("introspection: %d %s", resp.StatusCode, body)
	}
	resp, body = h.DoAs(otherAdmin, "POST", "/api/v1/api-keys/introspect", map[string]any{"key": ops.Key})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"active":false`) {
		t.Fatalf("introspection at another tenant: %d %s", resp.StatusCode, body)
	}
	// The agent plane takes no key.
	req, _ := http.NewRequest("POST", h.Agent+"/t/"+slug+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Authorization", "Bearer "+ops.Key)
	req.Header.Set("Content-Type", "application/json")
	if r, err := h.TLS.Do(req); err != nil || r.StatusCode != 401 {
		t.Fatalf("a key on the agent plane: %v %v", r, err)
	}
	// Addresses.
	far := mk(admin, map[string]any{"name": "far", "scopes": []string{"viewer"}, "allowed_ips": []string{"10.0.0.0/8"}})
	near := mk(admin, map[string]any{"name": "near", "scopes": []string{"viewer"}, "allowed_ips": []string{"127.0.0.1", "::1"}})
	if st := status(far.Key, "GET", "/api/v1/me"); st != 401 {
		t.Fatalf("from an address the key does not allow: %d", st)
	}
	if st := status(near.Key, "GET", "/api/v1/me"); st != 200 {
		t.Fatalf("from an address it allows: %d", st)
	}
	// A wrong secret for a real public id.
	if st := status(ops.Prefix+"_"+strings.Repeat("A", 43), "GET", "/api/v1/me"); st != 401 {
		t.Fatalf("a wrong secret: %d", st)
	}
	// Expiry, rotation with overlap, revocation.
	soon := mk(admin, map[string]any{"name": "soon", "scopes": []string{"viewer"}, "expires_at": time.Now().Add(1500 * time.Millisecond)})
	resp, body = h.DoAs(admin, "POST", "/api/v1/api-keys/"+near.ID+"/rotate", map[string]any{"overlap_seconds": 1})
	apptest.Expect(t, resp, body, 201, "rotate")
	rotated := apptest.Decode[created](t, body)
	if st := status(near.Key, "GET", "/api/v1/me"); st != 200 {
		t.Fatalf("the old key within the overlap: %d", st)
	}
	time.Sleep(1600 * time.Millisecond)
	for name, c := range map[string]struct {
		key  string
		want int
	}{"an expired key": {soon.Key, 401}, "the old key after the overlap": {near.Key, 401}, "the new key": {rotated.Key, 200}} {
		if st := status(c.key, "GET", "/api/v1/me"); st != c.want {
			t.Fatalf("%s: %d, want %d", name, st, c.want)
		}
	}
	resp, body = h.DoAs(admin, "DELETE", "/api/v1/api-keys/"+ops.ID, nil)
	apptest.Expect(t, resp, body, 204, "revoke")
	if st := status(ops.Key, "GET", "/api/v1/users"); st != 401 {
		t.Fatalf("a revoked key: %d", st)
	}
	resp, body = h.DoAs(ada, "DELETE", "/api/v1/api-keys/"+rotated.ID, nil)
	apptest.Expect(t, resp, body, 404, "someone else's key")
}
