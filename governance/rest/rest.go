// Package rest serves governance under /api/v1: applications,
// entitlements, roles, assignments, effective access and authorization.
package rest

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
)

var (
	readRoles  = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer}
	writeRoles = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin}
)

// Handler serves governance.
type Handler struct {
	Gov  *governance.Service
	Auth *governance.Authorizer
}

// SyncInput is a catalog sync.
type SyncInput struct {
	Tools       []governance.Tool `json:"tools"`
	AutoApprove bool              `json:"auto_approve,omitempty"`
}

// BatchInput asks several questions at once.
type BatchInput struct {
	Requests []governance.Request `json:"requests"`
}

// BatchOutput answers them in order.
type BatchOutput struct {
	Decisions []governance.Decision `json:"decisions"`
}

type keyCursor struct {
	K string `json:"k"`
}

type idCursor struct {
	I uuid.UUID `json:"i"`
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	app := []string{"applications"}
	api.Handle(httpx.Route{Method: "GET", Path: "/applications", OperationID: "listApplications", Summary: "List applications", Tags: app,
		Roles: readRoles, Response: httpx.Page[governance.Application]{}, Query: []httpx.Param{{Name: "type"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}},
		Handler: h.listApps})
	api.Handle(httpx.Route{Method: "POST", Path: "/applications", OperationID: "createApplication", Summary: "Register an application", Tags: app,
		Roles: writeRoles, Request: governance.ApplicationInput{}, Response: governance.Application{}, Status: 201, Handler: httpx.CreateJSON(h.Gov.CreateApplication, appVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/applications/:id", OperationID: "getApplication", Summary: "Get an application", Tags: app,
		Roles: readRoles, Response: governance.Application{}, Handler: httpx.GetByID(h.Gov.GetApplication, appVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/applications/:id", OperationID: "updateApplication", Summary: "Update an application", Tags: app,
		Roles: writeRoles, Request: governance.ApplicationInput{}, Response: governance.Application{}, IfMatch: true, Handler: httpx.UpdateByID(h.Gov.UpdateApplication, appVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/applications/:id", OperationID: "deleteApplication",
		Summary: "Delete an application with its entitlements and their assignments", Tags: app, Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Gov.DeleteApplication)})
	api.Handle(httpx.Route{Method: "POST", Path: "/applications/:id/tools/sync", OperationID: "syncTools",
		Summary: "Catalog sync: one mcp_tool entitlement per tool; new or changed tools wait for approval", Tags: app, Roles: writeRoles,
		Request: SyncInput{}, Response: []governance.SyncResult{}, Example: map[string]any{"tools": []any{}}, Handler: h.sync})
	api.Handle(httpx.Route{Method: "GET", Path: "/applications/:id/entitlements", OperationID: "listApplicationEntitlements",
		Summary: "An application's entitlements", Tags: app, Roles: readRoles, Response: httpx.Page[governance.Entitlement]{},
		Query: []httpx.Param{{Name: "kind"}, {Name: "approval_state"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: h.listEnts})
	api.Handle(httpx.Route{Method: "POST", Path: "/applications/:id/entitlements", OperationID: "createEntitlement", Summary: "Add an entitlement",
		Tags: app, Roles: writeRoles, Request: governance.EntitlementInput{}, Response: governance.Entitlement{}, Status: 201,
		Example: map[string]any{"key": "read"}, Handler: httpx.PostByID(h.Gov.CreateEntitlement, entVersion, fiber.StatusCreated)})

	ent := []string{"entitlements"}
	api.Handle(httpx.Route{Method: "GET", Path: "/entitlements/:id", OperationID: "getEntitlement", Summary: "Get an entitlement", Tags: ent,
		Roles: readRoles, Response: governance.Entitlement{}, Handler: httpx.GetByID(h.Gov.GetEntitlement, entVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/entitlements/:id", OperationID: "updateEntitlement",
		Summary: "Update an entitlement (approve a tool with approval_state)", Tags: ent, Roles: writeRoles, Request: governance.EntitlementInput{},
		Response: governance.Entitlement{}, IfMatch: true, Handler: httpx.UpdateByID(h.Gov.UpdateEntitlement, entVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/entitlements/:id", OperationID: "deleteEntitlement", Summary: "Delete an entitlement and its assignments",
		Tags: ent, Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Gov.DeleteEntitlement)})

	role := []string{"roles"}
	api.Handle(httpx.Route{Method: "GET", Path: "/roles", OperationID: "listRoles", Summary: "List roles", Tags: role, Roles: readRoles,
		Response: httpx.Page[governance.Role]{}, Query: []httpx.Param{{Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: listByKey(h.Gov.ListRoles, func(r *governance.Role) string { return r.Key })})
	api.Handle(httpx.Route{Method: "POST", Path: "/roles", OperationID: "createRole", Summary: "Create a role", Tags: role, Roles: writeRoles,
		Request: governance.RoleInput{}, Response: governance.Role{}, Status: 201, Handler: httpx.CreateJSON(h.Gov.CreateRole, roleVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/roles/:id", OperationID: "getRole", Summary: "Get a role", Tags: role, Roles: readRoles,
		Response: governance.Role{}, Handler: httpx.GetByID(h.Gov.GetRole, roleVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/roles/:id", OperationID: "updateRole", Summary: "Update a role", Tags: role, Roles: writeRoles,
		Request: governance.RoleInput{}, Response: governance.Role{}, IfMatch: true, Handler: httpx.UpdateByID(h.Gov.UpdateRole, roleVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/roles/:id", OperationID: "deleteRole", Summary: "Delete a role without children", Tags: role,
		Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Gov.DeleteRole)})

	as := []string{"assignments"}
	api.Handle(httpx.Route{Method: "GET", Path: "/assignments", OperationID: "listAssignments", Summary: "List assignments", Tags: as, Roles: readRoles,
		Response: httpx.Page[governance.Assignment]{}, Query: []httpx.Param{{Name: "subject_type"}, {Name: "subject_id"}, {Name: "target_type"},
			{Name: "target_id"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: h.listAssignments})
	api.Handle(httpx.Route{Method: "POST", Path: "/assignments", OperationID: "createAssignment",
		Summary: "Assign an entitlement or role to a user, group or NHI (step-up, where the tenant asks for it, for high-risk ones)", Tags: as,
		Roles: writeRoles, Request: governance.AssignmentInput{}, StepUpWhen: h.newHighRiskGrant,
		Response: governance.Assignment{}, Status: 201, Handler: httpx.CreateJSON(h.Gov.CreateAssignment, assignmentVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/assignments/:id", OperationID: "getAssignment", Summary: "Get an assignment", Tags: as,
		Roles: readRoles, Response: governance.Assignment{}, Handler: httpx.GetByID(h.Gov.GetAssignment, assignmentVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/assignments/:id", OperationID: "updateAssignment",
		Summary: "Change an assignment's validity, justification or constraints", Tags: as, Roles: writeRoles, Request: governance.AssignmentInput{},
		StepUpWhen: h.highRiskGrant,
		Response:   governance.Assignment{}, IfMatch: true, Handler: httpx.UpdateByID(h.Gov.UpdateAssignment, assignmentVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/assignments/:id", OperationID: "deleteAssignment", Summary: "Remove an assignment", Tags: as,
		Roles: writeRoles, Status: 204, StepUpWhen: h.highRiskGrant, Handler: httpx.DeleteByID(h.Gov.DeleteAssignment)})

	az := []string{"authorization"}
	api.Handle(httpx.Route{Method: "GET", Path: "/effective-access", OperationID: "effectiveAccess",
		Summary: "A subject's effective entitlements and why it holds each", Tags: az, Roles: readRoles, Response: []governance.Grant{},
		Query: []httpx.Param{{Name: "subject_type", Description: "user, group or nhi"}, {Name: "subject_id"}}, Handler: h.effective})
	api.Handle(httpx.Route{Method: "POST", Path: "/authorize", OperationID: "authorize",
		Summary: "May a subject use an entitlement with these arguments now? (answered from the snapshot, audited)", Tags: az, Roles: readRoles,
		Request: governance.Request{}, Response: governance.Decision{}, Handler: h.authorize})
	api.Handle(httpx.Route{Method: "POST", Path: "/authorize/batch", OperationID: "authorizeBatch", Summary: "Up to 100 authorization questions",
		Tags: az, Roles: readRoles, Request: BatchInput{}, Response: BatchOutput{}, Handler: h.authorizeBatch})
	h.mountRequests(api)
}

func page(c *fiber.Ctx) (httpx.PageRequest, error) { return httpx.ParsePage(c) }

// newHighRiskGrant reports whether a new assignment grants a high-risk
// entitlement (a body that does not say is left to the handler).
func (h *Handler) newHighRiskGrant(c *fiber.Ctx) (bool, error) {
	var in struct {
		TargetType string    `json:"target_type"`
		TargetID   uuid.UUID `json:"target_id"`
	}
	if json.Unmarshal(c.Body(), &in) != nil {
		return false, nil
	}
	return h.Gov.HighRiskTarget(c.UserContext(), in.TargetType, in.TargetID)
}

// highRiskGrant reports whether the assignment of the path grants a
// high-risk entitlement (an unknown one is left to the handler).
func (h *Handler) highRiskGrant(c *fiber.Ctx) (bool, error) {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return false, nil
	}
	a, err := h.Gov.GetAssignment(c.UserContext(), id)
	if err != nil {
		return false, nil
	}
	return h.Gov.HighRiskTarget(c.UserContext(), a.TargetType, a.TargetID)
}

func (h *Handler) listApps(c *fiber.Ctx) error {
	return httpx.Paged(c, func(limit int, cur keyCursor) ([]*governance.Application, bool, error) {
		return h.Gov.ListApplications(c.UserContext(), c.Query("type"), limit, cur.K)
	}, func(a *governance.Application) keyCursor { return keyCursor{K: a.Key} })
}

func (h *Handler) sync(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	var in SyncInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	if len(in.Tools) > 1000 {
		return apperr.Invalid("tools", "at most 1000 tools per sync")
	}
	out, err := h.Gov.UpsertTools(c.UserContext(), id, in.Tools, in.AutoApprove)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) listEnts(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.Gov.GetApplication(c.UserContext(), id); err != nil {
		return err
	}
	return httpx.Paged(c, func(limit int, cur idCursor) ([]*governance.Entitlement, bool, error) {
		return h.Gov.ListEntitlements(c.UserContext(), id, c.Query("kind"), c.Query("approval_state"), limit, cur.I)
	}, func(e *governance.Entitlement) idCursor { return idCursor{I: e.ID} })
}

func (h *Handler) listAssignments(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	o := governance.ListAssignmentsOptions{SubjectType: c.Query("subject_type"), TargetType: c.Query("target_type"), Limit: p.Limit}
	for name, dst := range map[string]*uuid.UUID{"subject_id": &o.SubjectID, "target_id": &o.TargetID} {
		if s := c.Query(name); s != "" {
			if *dst, err = uuid.Parse(s); err != nil {
				return apperr.Invalid(name, "must be a UUID")
			}
		}
	}
	if p.Cursor != "" {
		var cur idCursor
		if err := httpx.DecodeCursor(p.Cursor, &cur); err != nil {
			return err
		}
		o.After = cur.I
	}
	items, more, err := h.Gov.ListAssignments(c.UserContext(), o)
	if err != nil {
		return err
	}
	out := httpx.PageOf(items)
	if more {
		out.NextCursor = httpx.EncodeCursor(idCursor{I: items[len(items)-1].ID})
	}
	return c.JSON(out)
}

func (h *Handler) effective(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Query("subject_id"))
	if err != nil {
		return apperr.Invalid("subject_id", "must be a UUID")
	}
	out, err := h.Auth.Effective(c.UserContext(), c.Query("subject_type"), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) authorize(c *fiber.Ctx) error {
	var in governance.Request
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	d, err := h.Auth.Authorize(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (h *Handler) authorizeBatch(c *fiber.Ctx) error {
	var in BatchInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	out, err := h.Auth.AuthorizeBatch(c.UserContext(), in.Requests)
	if err != nil {
		return err
	}
	return c.JSON(BatchOutput{Decisions: out})
}

func appVersion(a *governance.Application) int64       { return a.Version }
func entVersion(e *governance.Entitlement) int64       { return e.Version }
func roleVersion(r *governance.Role) int64             { return r.Version }
func assignmentVersion(a *governance.Assignment) int64 { return a.Version }
