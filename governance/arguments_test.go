package governance_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestArgumentConstraints: exact values, prefixes, patterns and a JSON
// Schema fragment; a refusal names the argument and the kind of
// constraint, never the allowed values.
func TestArgumentConstraints(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		app, _ := f.gov.CreateApplication(f.ctx, governance.ApplicationInput{Key: "fs", Name: ptr("Files"), Type: "mcp_server"})
		ent, _ := f.gov.CreateEntitlement(f.ctx, app.ID, governance.EntitlementInput{Kind: governance.KindMCPTool, Key: "read_file", ApprovalState: ptr(governance.Approved)})
		owner, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "o@x.test"})
		bot, err := f.nhis.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: owner.ID})
		if err != nil {
			t.Fatal(err)
		}
		c := governance.Constraints{
			ArgumentConstraints: map[string][]json.RawMessage{"mode": {json.RawMessage(`"read"`), json.RawMessage(`"stat"`)}},
			ArgumentPrefixes:    map[string][]string{"path": {"/srv/public/"}},
			ArgumentPatterns:    map[string][]string{"path": {`/tmp/[a-z]+\.txt`}},
			ArgumentSchema:      json.RawMessage(`{"properties":{"limit":{"type":"integer","maximum":100}}}`),
		}
		if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "nhi", SubjectID: bot.ID, TargetType: "entitlement", TargetID: ent.ID, Constraints: &c}); err != nil {
			t.Fatal(err)
		}
		ask := func(args string) governance.Decision {
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(args), &m); err != nil {
				t.Fatal(err)
			}
			return f.decide(t, governance.Request{Subject: governance.Subject{Type: "nhi", ID: bot.ID}, EntitlementID: ent.ID, Arguments: m})
		}
		for args, want := range map[string]string{
			`{"mode":"read","path":"/srv/public/a.md"}`:             "",
			`{"mode":"stat","path":"/tmp/notes.txt","limit":100}`:   "",
			`{"mode":"write","path":"/srv/public/a.md"}`:            `argument "mode" is not allowed by the assignment's allowed values`,
			`{"mode":"read","path":"/etc/passwd"}`:                  `argument "path" is not allowed by the assignment's allowed prefixes or allowed patterns`,
			`{"mode":"read","path":"/tmp/notes.txt.sh"}`:            `argument "path"`,
			`{"mode":"read","path":7}`:                              `argument "path"`,
			`{"path":"/srv/public/a.md"}`:                           `argument "mode" is required`,
			`{"mode":"read","path":"/srv/public/a","limit":101}`:    `argument "limit" is not allowed by the assignment's argument schema (maximum)`,
			`{"mode":"read","path":"/srv/public/a","limit":"many"}`: `argument "limit" is not allowed by the assignment's argument schema (type)`,
		} {
			d := ask(args)
			if want == "" {
				if !d.Allowed() {
					t.Errorf("%s: refused: %s", args, d.Reason)
				}
				continue
			}
			if d.Allowed() || !strings.Contains(d.Reason, want) {
				t.Errorf("%s: %s %q, want %q", args, d.Decision, d.Reason, want)
			}
			if strings.Contains(d.Reason, "/srv/public/") || strings.Contains(d.Reason, "stat") {
				t.Errorf("%s: the refusal reveals the policy: %s", args, d.Reason)
			}
		}
		// Bad constraints are refused on write.
		for name, bad := range map[string]governance.Constraints{
			"pattern":      {ArgumentPatterns: map[string][]string{"p": {"("}}},
			"empty prefix": {ArgumentPrefixes: map[string][]string{"p": {""}}},
			"schema":       {ArgumentSchema: json.RawMessage(`{"type":"nonsense"}`)},
			"remote ref":   {ArgumentSchema: json.RawMessage(`{"$ref":"https://example.com/s.json"}`)},
			"file ref":     {ArgumentSchema: json.RawMessage(`{"$ref":"file:///etc/passwd"}`)},
			"reuse":        {ApprovalReuseMinutes: -1},
		} {
			if _, err := f.gov.CreateAssignment(f.ctx, governance.AssignmentInput{SubjectType: "nhi", SubjectID: bot.ID, TargetType: "entitlement",
				TargetID: ent.ID, Constraints: &bad}); apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Errorf("%s: %v", name, err)
			}
		}
		list, _, _ := f.gov.ListAssignments(f.ctx, governance.ListAssignmentsOptions{SubjectType: "nhi", SubjectID: bot.ID, TargetID: ent.ID, Limit: 10})
		if len(list) != 1 || list[0].ID == uuid.Nil {
			t.Fatalf("bad constraints wrote assignments: %d", len(list))
		}
	})
}
