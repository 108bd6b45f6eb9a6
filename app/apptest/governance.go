package apptest

import "testing"

// Approval is an access request's approval as the API answers it.
type Approval struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	CurrentStep  int     `json:"current_step"`
	Escalated    bool    `json:"escalated"`
	AssignmentID *string `json:"assignment_id"`
	Reason       string  `json:"reason"`
	Approvers    []struct {
		Step   int    `json:"step"`
		UserID string `json:"user_id"`
		Via    string `json:"via"`
	} `json:"approvers"`
}

// GovTenant is a tenant with an admin (Tok) and an application (App),
// with helpers to make people, entitlements, workflows and access
// requests.
type GovTenant struct {
	H    *Harness
	T    *testing.T
	Slug string
	Tok  string
	App  string
}

// NewGovTenant makes one on h.
func NewGovTenant(t *testing.T, h *Harness, prefix string) *GovTenant {
	g := &GovTenant{H: h, T: t, Slug: UniqueSlug(prefix)}
	_, g.Tok = h.TenantAdmin(t, g.Slug)
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/applications", map[string]any{"key": "erp", "name": "ERP", "type": "generic"})
	Expect(t, resp, body, 201, "application")
	g.App = Decode[struct{ ID string }](t, body).ID
	return g
}

// User creates a user (with a manager, if given) and returns its ID and a token.
func (g *GovTenant) User(name, manager string) (id, tok string) {
	g.T.Helper()
	in := map[string]any{"email": name + "@" + g.Slug + ".test", "password": "Corr3ct-horse-battery-9", "given_name": name}
	if manager != "" {
		in["manager_id"] = manager
	}
	resp, body := g.H.DoAs(g.Tok, "POST", "/api/v1/users", in)
	Expect(g.T, resp, body, 201, "user "+name)
	id = Decode[struct{ ID string }](g.T, body).ID
	return id, g.H.Login(g.Slug, name+"@"+g.Slug+".test", "Corr3ct-horse-battery-9", 200).AccessToken
}

// Ent creates a requestable entitlement of the ERP application.
func (g *GovTenant) Ent(key string, extra map[string]any) string {
	g.T.Helper()
	in := map[string]any{"key": key, "requestable": true}
	for k, v := range extra {
		in[k] = v
	}
	resp, body := g.H.DoAs(g.Tok, "POST", "/api/v1/applications/"+g.App+"/entitlements", in)
	Expect(g.T, resp, body, 201, "entitlement "+key)
	return Decode[struct{ ID string }](g.T, body).ID
}

// Workflow creates an approval workflow.
func (g *GovTenant) Workflow(key string, in map[string]any) string {
	g.T.Helper()
	in["key"] = key
	resp, body := g.H.DoAs(g.Tok, "POST", "/api/v1/approval-workflows", in)
	Expect(g.T, resp, body, 201, "workflow "+key)
	return Decode[struct{ ID string }](g.T, body).ID
}

// Request files an access request (default justification and target
// type) and expects status want.
func (g *GovTenant) Request(tok string, in map[string]any, want int) Approval {
	g.T.Helper()
	if _, ok := in["justification"]; !ok {
		in["justification"] = "needed for the quarter close"
	}
	if _, ok := in["target_type"]; !ok {
		in["target_type"] = "entitlement"
	}
	resp, body := g.H.DoAs(tok, "POST", "/api/v1/access-requests", in)
	Expect(g.T, resp, body, want, "access request")
	if want >= 300 {
		return Approval{}
	}
	return Decode[Approval](g.T, body)
}

// Decide decides an approval step and expects status want.
func (g *GovTenant) Decide(tok, id, decision string, step int, want int) Approval {
	g.T.Helper()
	resp, body := g.H.DoAs(tok, "POST", "/api/v1/approvals/"+id+"/decision", map[string]any{"decision": decision, "step": step})
	Expect(g.T, resp, body, want, "decision")
	if want >= 300 {
		return Approval{}
	}
	return Decode[Approval](g.T, body)
}

// Approval reads an approval.
func (g *GovTenant) Approval(tok, id string) Approval {
	g.T.Helper()
	resp, body := g.H.DoAs(tok, "GET", "/api/v1/approvals/"+id, nil)
	Expect(g.T, resp, body, 200, "get approval")
	return Decode[Approval](g.T, body)
}

// Queue lists an approval queue.
func (g *GovTenant) Queue(tok, queue string) []Approval {
	g.T.Helper()
	resp, body := g.H.DoAs(tok, "GET", "/api/v1/approvals?queue="+queue, nil)
	Expect(g.T, resp, body, 200, "queue "+queue)
	return Decode[struct{ Items []Approval }](g.T, body).Items
}
