package main

import (
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
)

// TestRetriesChangeNothingTwice: an admin POST replayed with the same
// Idempotency-Key gets the first answer again and makes one object; the
// key reused for another request is refused (422) and changes nothing; a
// key is the caller's own (another caller's identical key is a new
// request); an error answer is not kept; an identical assignment made
// without a key is refused as a duplicate (409), while a birthright one
// may sit beside the direct one.
func TestRetriesChangeNothingTwice(t *testing.T) {
	t.Parallel()
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			h := start(t, envOwn(t, flavor, t.TempDir()), nil)
			tenantID, tok := tenantAdmin(t, h, uniqueSlug("idem"))
			resp, body := h.DoAs(tok, "POST", "/api/v1/applications", map[string]any{"key": "crm", "name": "CRM"})
			expect(t, resp, body, 201, "application")
			app := decode[idJSON](t, body)
			resp, body = h.DoAs(tok, "POST", "/api/v1/applications/"+app.ID+"/entitlements", map[string]any{"key": "export"})
			expect(t, resp, body, 201, "entitlement")
			ent := decode[idJSON](t, body)
			resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ida@example.com", "display_name": "Ida", "password": "Idempotent-retries-1"})
			expect(t, resp, body, 201, "user")
			user := decode[idJSON](t, body)
			count := func() int {
				_, body := h.DoAs(tok, "GET", "/api/v1/assignments?subject_type=user&subject_id="+user.ID, nil)
				return len(decode[struct{ Items []idJSON }](t, body).Items)
			}
			grant := map[string]any{"subject_type": "user", "subject_id": user.ID, "target_type": "entitlement", "target_id": ent.ID}

			// The first request and its retry: one assignment, the same answer.
			resp, first := h.DoAs(tok, "POST", "/api/v1/assignments", grant, "Idempotency-Key", "grant-ida-export-1")
			expect(t, resp, first, 201, "assign with a key")
			if resp.Header.Get("Idempotent-Replayed") != "" {
				t.Fatal("a first answer marked as replayed")
			}
			resp, again := h.DoAs(tok, "POST", "/api/v1/assignments", grant, "Idempotency-Key", "grant-ida-export-1")
			expect(t, resp, again, 201, "the retry")
			if resp.Header.Get("Idempotent-Replayed") != "true" || string(again) != string(first) {
				t.Fatalf("the retry was not the first answer replayed: %q\n%s\n%s", resp.Header.Get("Idempotent-Replayed"), first, again)
			}
			if n := count(); n != 1 {
				t.Fatalf("%d assignments after a retry, want 1", n)
			}

			// The same key for another request: refused, nothing made.
			other := map[string]any{"subject_type": "user", "subject_id": user.ID, "target_type": "entitlement", "target_id": ent.ID, "source": "birthright"}
			resp, body = h.DoAs(tok, "POST", "/api/v1/assignments", other, "Idempotency-Key", "grant-ida-export-1")
			expect(t, resp, body, 422, "a key reused for another request")
			if n := count(); n != 1 {
				t.Fatalf("%d assignments after a refused reuse, want 1", n)
			}
			// Keys are checked before anything else runs.
			for _, bad := range []string{strings.Repeat("k", 256), "with space", "caf\u00e9"} {
				resp, body = h.DoAs(tok, "POST", "/api/v1/assignments", other, "Idempotency-Key", bad)
				expect(t, resp, body, 400, "a malformed key")
			}

			// An identical assignment without a key: a duplicate.
			resp, body = h.DoAs(tok, "POST", "/api/v1/assignments", grant)
			expect(t, resp, body, 409, "a duplicate assignment")
			if !strings.Contains(string(body), decode[idJSON](t, first).ID) {
				t.Errorf("the refusal does not name the existing assignment: %s", body)
			}
			// A birthright assignment beside the direct one is not a duplicate.
			resp, body = h.DoAs(tok, "POST", "/api/v1/assignments", other)
			expect(t, resp, body, 201, "a birthright assignment beside the direct one")
			// Nor is one with another validity window.
			windowed := map[string]any{"subject_type": "user", "subject_id": user.ID, "target_type": "entitlement", "target_id": ent.ID,
				"valid_until": "2099-01-01T00:00:00Z"}
			resp, body = h.DoAs(tok, "POST", "/api/v1/assignments", windowed)
			expect(t, resp, body, 201, "an assignment with its own window")
			if n := count(); n != 3 {
				t.Fatalf("%d assignments, want 3", n)
			}

			// An error answer is not kept: the retry runs again.
			resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": ""}, "Idempotency-Key", "group-1")
			expect(t, resp, body, 400, "an invalid group")
			resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": ""}, "Idempotency-Key", "group-1")
			if resp.StatusCode != 400 || resp.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("an error answer was replayed: %d %q %s", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), body)
			}
			resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": ""}, "Idempotency-Key", "group-1")
			expect(t, resp, body, 400, "the same invalid group")
			resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": "Retried"}, "Idempotency-Key", "group-2")
			expect(t, resp, body, 201, "a group with a key")
			group := decode[idJSON](t, body)

			// Another caller's identical key is its own: the bootstrap
			// operator acting in the tenant makes a second group.
			resp, body = h.Do("POST", "/api/v1/groups", map[string]any{"name": "Retried"}, "Idempotency-Key", "group-2", "X-Tenant-ID", tenantID)
			if resp.StatusCode == 201 && decode[idJSON](t, body).ID == group.ID {
				t.Fatal("another caller's key replayed this caller's answer")
			}
			if resp.StatusCode != 409 || resp.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("another caller with the same key: %d %s (want the name taken: 409)", resp.StatusCode, body)
			}
		})
	}
}
