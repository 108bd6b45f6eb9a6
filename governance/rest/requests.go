package rest

import (
	"context"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
)

type nameCursor struct {
	N string    `json:"n"`
	I uuid.UUID `json:"i"`
}

// mountRequests registers the catalog, access requests, approvals,
// workflows, delegations and separation of duties.
func (h *Handler) mountRequests(api *httpx.API) {
	rq := []string{"access requests"}
	api.Handle(httpx.Route{Method: "GET", Path: "/request-catalog", OperationID: "requestCatalog",
		Summary: "What may be requested: requestable entitlements (tools included) and roles, by name", Tags: rq,
		Response: httpx.Page[governance.CatalogItem]{}, Query: []httpx.Param{{Name: "q", Description: "text in name, key, description or application"},
			{Name: "type", Description: "entitlement or role"}, {Name: "kind", Description: "entitlement kind, e.g. mcp_tool"}, {Name: "application_id"},
			{Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: h.catalog})
	api.Handle(httpx.Route{Method: "POST", Path: "/access-requests", OperationID: "requestAccess",
		Summary: "Request an entitlement or role for yourself, a report or an NHI you manage", Tags: rq, Request: governance.AccessRequestInput{},
		Response: governance.Approval{}, Status: 201, Example: map[string]any{"target_type": "entitlement", "target_id": uuid.Nil, "justification": "on-call"},
		Handler: httpx.CreateJSON(h.Gov.RequestAccess, approvalVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/access-requests", OperationID: "listAccessRequests",
		Summary: "Access requests: yours (queue=mine), those you may decide (to_decide), or all (governance readers)", Tags: rq,
		Response: httpx.Page[governance.Approval]{}, Query: approvalQuery, Handler: h.listApprovals(governance.KindAccessRequest)})

	ap := []string{"approvals"}
	api.Handle(httpx.Route{Method: "GET", Path: "/approvals", OperationID: "listApprovals",
		Summary: "Approvals of every kind: yours, those you may decide, or all", Tags: ap, Response: httpx.Page[governance.Approval]{},
		Query: append([]httpx.Param{{Name: "kind", Description: "access_request or tool_call"}}, approvalQuery...), Handler: h.listApprovals("")})
	api.Handle(httpx.Route{Method: "GET", Path: "/approvals/:id", OperationID: "getApproval", Summary: "An approval with its approvers",
		Tags: ap, Response: governance.Approval{}, Handler: httpx.GetByID(h.Gov.GetApproval, approvalVersion)})
	api.Handle(httpx.Route{Method: "POST", Path: "/approvals/:id/decision", OperationID: "decideApproval", StepUp: true,
		Summary: "Approve or deny the current step (as its approver, a delegate, or an administrator)", Tags: ap, Request: governance.DecisionInput{},
		Response: governance.Approval{}, Example: map[string]any{"decision": "approve"}, Handler: httpx.PostByID(h.Gov.Decide, approvalVersion, fiber.StatusOK)})
	api.Handle(httpx.Route{Method: "POST", Path: "/approvals/:id/cancel", OperationID: "cancelApproval",
		Summary: "Withdraw a pending request (requester, subject or administrator)", Tags: ap, Request: governance.CancelInput{}, Response: governance.Approval{},
		Example: map[string]any{}, Handler: httpx.PostByID(h.Gov.Cancel, approvalVersion, fiber.StatusOK)})
	api.Handle(httpx.Route{Method: "POST", Path: "/approvals/:id/comments", OperationID: "commentApproval", Summary: "Comment on an approval",
		Tags: ap, Request: governance.CommentInput{}, Response: governance.ApprovalEvent{}, Status: 201, Example: map[string]any{"comment": "why?"},
		Handler: httpx.PostByID(h.Gov.Comment, nil, fiber.StatusCreated)})
	api.Handle(httpx.Route{Method: "GET", Path: "/approvals/:id/history", OperationID: "approvalHistory",
		Summary: "Everything that happened to an approval, in order", Tags: ap, Response: []governance.ApprovalEvent{}, Handler: h.history})

	wf := []string{"approval workflows"}
	api.Handle(httpx.Route{Method: "GET", Path: "/approval-workflows", OperationID: "listWorkflows", Summary: "List approval workflows", Tags: wf,
		Roles: readRoles, Response: httpx.Page[governance.Workflow]{}, Query: []httpx.Param{{Name: "limit", Type: "integer"}, {Name: "cursor"}},
		Handler: listByKey(h.Gov.ListWorkflows, func(w *governance.Workflow) string { return w.Key })})
	api.Handle(httpx.Route{Method: "POST", Path: "/approval-workflows", OperationID: "createWorkflow", Summary: "Create an approval workflow",
		Tags: wf, Roles: writeRoles, Request: governance.WorkflowInput{}, Response: governance.Workflow{}, Status: 201,
		Example: map[string]any{"key": "two-step", "steps": []any{map[string]any{"approvers": []any{map[string]string{"type": "manager"}}}}},
		Handler: httpx.CreateJSON(h.Gov.CreateWorkflow, workflowVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/approval-workflows/:id", OperationID: "getWorkflow", Summary: "Get an approval workflow",
		Tags: wf, Roles: readRoles, Response: governance.Workflow{}, Handler: httpx.GetByID(h.Gov.GetWorkflow, workflowVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/approval-workflows/:id", OperationID: "updateWorkflow",
		Summary: "Change an approval workflow (open approvals keep their steps)", Tags: wf, Roles: writeRoles, Request: governance.WorkflowInput{},
		Response: governance.Workflow{}, IfMatch: true, Handler: httpx.UpdateByID(h.Gov.UpdateWorkflow, workflowVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/approval-workflows/:id", OperationID: "deleteWorkflow",
		Summary: "Delete an approval workflow no entitlement or role uses", Tags: wf, Roles: writeRoles, Status: 204,
		Handler: httpx.DeleteByID(h.Gov.DeleteWorkflow)})

	dl := []string{"approval delegations"}
	api.Handle(httpx.Route{Method: "GET", Path: "/approval-delegations", OperationID: "listDelegations",
		Summary: "Current and future delegations you gave or received (all=true: every one, for governance readers)", Tags: dl,
		Response: []governance.Delegation{}, Query: []httpx.Param{{Name: "all", Type: "boolean"}}, Handler: h.listDelegations})
	api.Handle(httpx.Route{Method: "POST", Path: "/approval-delegations", OperationID: "createDelegation",
		Summary: "Let someone decide your approvals while you are away", Tags: dl, Request: governance.DelegationInput{},
		Response: governance.Delegation{}, Status: 201, Handler: httpx.CreateJSON(h.Gov.CreateDelegation, nil)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/approval-delegations/:id", OperationID: "deleteDelegation", Summary: "End a delegation",
		Tags: dl, Status: 204, Handler: httpx.DeleteByID(h.Gov.DeleteDelegation)})

	sod := []string{"separation of duties"}
	api.Handle(httpx.Route{Method: "GET", Path: "/sod-rules", OperationID: "listSoDRules", Summary: "List separation-of-duties rules", Tags: sod,
		Roles: readRoles, Response: httpx.Page[governance.SoDRule]{}, Query: []httpx.Param{{Name: "limit", Type: "integer"}, {Name: "cursor"}},
		Handler: listByKey(h.Gov.ListSoDRules, func(r *governance.SoDRule) string { return r.Key })})
	api.Handle(httpx.Route{Method: "POST", Path: "/sod-rules", OperationID: "createSoDRule",
		Summary: "Add a rule: entitlements that conflict, or a set of which at most N may be held", Tags: sod, Roles: writeRoles,
		Request: governance.SoDRuleInput{}, Response: governance.SoDRule{}, Status: 201,
		Example: map[string]any{"key": "pay-approve", "kind": "conflict", "entitlement_ids": []uuid.UUID{uuid.Nil}, "conflicting_ids": []uuid.UUID{uuid.Max}},
		Handler: httpx.CreateJSON(h.Gov.CreateSoDRule, sodVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/sod-rules/:id", OperationID: "getSoDRule", Summary: "Get a rule", Tags: sod, Roles: readRoles,
		Response: governance.SoDRule{}, Handler: httpx.GetByID(h.Gov.GetSoDRule, sodVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/sod-rules/:id", OperationID: "updateSoDRule", Summary: "Change a rule", Tags: sod,
		Roles: writeRoles, Request: governance.SoDRuleInput{}, Response: governance.SoDRule{}, IfMatch: true, Handler: httpx.UpdateByID(h.Gov.UpdateSoDRule, sodVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/sod-rules/:id", OperationID: "deleteSoDRule", Summary: "Delete a rule with its exemptions and violations",
		Tags: sod, Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Gov.DeleteSoDRule)})
	api.Handle(httpx.Route{Method: "GET", Path: "/sod-exemptions", OperationID: "listSoDExemptions", Summary: "List exemptions, newest first",
		Tags: sod, Roles: readRoles, Response: httpx.Page[governance.SoDExemption]{}, Query: []httpx.Param{{Name: "rule_id"},
			{Name: "active", Type: "boolean"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: h.listExemptions})
	api.Handle(httpx.Route{Method: "POST", Path: "/sod-exemptions", OperationID: "createSoDExemption",
		Summary: "Let a subject break a rule until a date (you are recorded as the approver)", Tags: sod, Roles: writeRoles,
		Request: governance.SoDExemptionInput{}, Response: governance.SoDExemption{}, Status: 201, Handler: httpx.CreateJSON(h.Gov.CreateSoDExemption, nil)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/sod-exemptions/:id", OperationID: "revokeSoDExemption", Summary: "Revoke an exemption now",
		Tags: sod, Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Gov.RevokeSoDExemption)})
	api.Handle(httpx.Route{Method: "GET", Path: "/sod-violations", OperationID: "listSoDViolations", Summary: "Violations found by scans, newest first",
		Tags: sod, Roles: readRoles, Response: httpx.Page[governance.SoDViolation]{}, Query: []httpx.Param{{Name: "status", Description: "open or resolved"},
			{Name: "rule_id"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: h.listViolations})
	api.Handle(httpx.Route{Method: "POST", Path: "/sod-scans", OperationID: "scanSoD",
		Summary: "Run a detective scan now: every rule against every user's and NHI's effective access", Tags: sod, Roles: writeRoles,
		Response: governance.ScanResult{}, Handler: h.scan})
}

var approvalQuery = []httpx.Param{{Name: "queue", Description: "mine (default), to_decide or all"}, {Name: "status"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}

func optUUID(c *fiber.Ctx, name string) (uuid.UUID, error) {
	s := c.Query(name)
	if s == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, apperr.Invalid(name, "must be a UUID")
	}
	return id, nil
}

func optBool(c *fiber.Ctx, name string) (bool, error) {
	s := c.Query(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, apperr.Invalid(name, "must be true or false")
	}
	return b, nil
}

// idPage reads the page size and an ID cursor.
func idPage(c *fiber.Ctx) (int, uuid.UUID, error) {
	p, err := page(c)
	if err != nil {
		return 0, uuid.Nil, err
	}
	var cur idCursor
	if p.Cursor != "" {
		if err := httpx.DecodeCursor(p.Cursor, &cur); err != nil {
			return 0, uuid.Nil, err
		}
	}
	return p.Limit, cur.I, nil
}

func pageByID[T any](c *fiber.Ctx, items []*T, more bool, id func(*T) uuid.UUID) error {
	out := httpx.PageOf(items)
	if more {
		out.NextCursor = httpx.EncodeCursor(idCursor{I: id(items[len(items)-1])})
	}
	return c.JSON(out)
}

// listByKey serves a list paged by key.
func listByKey[T any](list func(context.Context, int, string) ([]*T, bool, error), key func(*T) string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := page(c)
		if err != nil {
			return err
		}
		var cur keyCursor
		if p.Cursor != "" {
			if err := httpx.DecodeCursor(p.Cursor, &cur); err != nil {
				return err
			}
		}
		items, more, err := list(c.UserContext(), p.Limit, cur.K)
		if err != nil {
			return err
		}
		out := httpx.PageOf(items)
		if more {
			out.NextCursor = httpx.EncodeCursor(keyCursor{K: key(items[len(items)-1])})
		}
		return c.JSON(out)
	}
}

func (h *Handler) catalog(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	o := governance.CatalogOptions{Query: c.Query("q"), Type: c.Query("type"), Kind: c.Query("kind"), Limit: p.Limit}
	if o.ApplicationID, err = optUUID(c, "application_id"); err != nil {
		return err
	}
	if p.Cursor != "" {
		var cur nameCursor
		if err := httpx.DecodeCursor(p.Cursor, &cur); err != nil {
			return err
		}
		o.AfterName, o.AfterID = cur.N, cur.I
	}
	items, more, err := h.Gov.Catalog(c.UserContext(), o)
	if err != nil {
		return err
	}
	out := httpx.PageOf(items)
	if more {
		last := items[len(items)-1]
		out.NextCursor = httpx.EncodeCursor(nameCursor{N: last.Name, I: last.ID})
	}
	return c.JSON(out)
}

func (h *Handler) listApprovals(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		limit, before, err := idPage(c)
		if err != nil {
			return err
		}
		o := governance.ListApprovalsOptions{Queue: c.Query("queue"), Kind: kind, Status: c.Query("status"), Limit: limit, Before: before}
		if kind == "" {
			o.Kind = c.Query("kind")
		}
		items, more, err := h.Gov.ListApprovals(c.UserContext(), o)
		if err != nil {
			return err
		}
		return pageByID(c, items, more, func(a *governance.Approval) uuid.UUID { return a.ID })
	}
}

func (h *Handler) history(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.Gov.History(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) listDelegations(c *fiber.Ctx) error {
	all, err := optBool(c, "all")
	if err != nil {
		return err
	}
	out, err := h.Gov.ListDelegations(c.UserContext(), all)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) listExemptions(c *fiber.Ctx) error {
	limit, before, err := idPage(c)
	if err != nil {
		return err
	}
	rule, err := optUUID(c, "rule_id")
	if err != nil {
		return err
	}
	active, err := optBool(c, "active")
	if err != nil {
		return err
	}
	items, more, err := h.Gov.ListSoDExemptions(c.UserContext(), rule, active, limit, before)
	if err != nil {
		return err
	}
	return pageByID(c, items, more, func(x *governance.SoDExemption) uuid.UUID { return x.ID })
}

func (h *Handler) listViolations(c *fiber.Ctx) error {
	limit, before, err := idPage(c)
	if err != nil {
		return err
	}
	rule, err := optUUID(c, "rule_id")
	if err != nil {
		return err
	}
	items, more, err := h.Gov.ListSoDViolations(c.UserContext(), c.Query("status"), rule, limit, before)
	if err != nil {
		return err
	}
	return pageByID(c, items, more, func(v *governance.SoDViolation) uuid.UUID { return v.ID })
}

func (h *Handler) scan(c *fiber.Ctx) error {
	out, err := h.Gov.ScanSoD(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func approvalVersion(a *governance.Approval) int64 { return a.Version }
func workflowVersion(w *governance.Workflow) int64 { return w.Version }
func sodVersion(r *governance.SoDRule) int64       { return r.Version }
