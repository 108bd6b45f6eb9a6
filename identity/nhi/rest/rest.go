// Package rest serves non-human identities under /api/v1/nhis.
package rest

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
)

// Handler serves NHIs. Object-level rights (owner, use/manage/admin
// grants, tenant admins) are checked by the service; every route needs an
// authenticated user or admin of the tenant.
type Handler struct {
	NHIs *nhi.Service
}

type cursor struct {
	After uuid.UUID `json:"a"`
}

var reportRoles = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	t := []string{"non-human identities"}
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis", OperationID: "listNHIs", Summary: "List the NHIs you may see", Tags: t,
		Response: httpx.Page[nhi.NHI]{}, Handler: h.list, Query: []httpx.Param{{Name: "kind"}, {Name: "status"},
			{Name: "owner_id"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}})
	api.Handle(httpx.Route{Method: "POST", Path: "/nhis", OperationID: "createNHI",
		Summary: "Register an agent, tool server or service account (returns its client secret once)", Tags: t,
		Request: nhi.CreateInput{}, Response: nhi.Created{}, Status: 201, Handler: h.create})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/reports/inactive", OperationID: "reportInactiveNHIs",
		Summary: "NHIs unused for ?days= (default 30)", Tags: t, Roles: reportRoles, Response: nhi.Report{},
		Query: []httpx.Param{{Name: "days", Type: "integer"}}, Handler: h.inactive})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/reports/orphaned", OperationID: "reportOrphanedNHIs",
		Summary: "NHIs without an active owner", Tags: t, Roles: reportRoles, Response: nhi.Report{}, Handler: h.orphaned})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/:id", OperationID: "getNHI", Summary: "Get an NHI", Tags: t,
		Response: nhi.NHI{}, Handler: httpx.GetByID(h.NHIs.Get, nhiVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/nhis/:id", OperationID: "updateNHI", Summary: "Update an NHI (manage)", Tags: t,
		Request: nhi.UpdateInput{}, Response: nhi.NHI{}, IfMatch: true, Handler: httpx.UpdateByID(h.NHIs.Update, nhiVersion)})
	api.Handle(httpx.Route{Method: "POST", Path: "/nhis/:id/transition", OperationID: "transitionNHI",
		Summary: "Move an NHI through its lifecycle, with a reason (admin)", Tags: t, Request: nhi.TransitionInput{}, Response: nhi.NHI{},
		Example: map[string]string{"status": "suspended", "reason": "investigating unusual tool calls"}, IfMatch: true, Handler: httpx.UpdateByID(h.NHIs.Transition, nhiVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/:id/secrets", OperationID: "listNHISecrets", Summary: "The NHI's client secrets (manage)",
		Tags: t, Response: []nhi.SecretInfo{}, Handler: h.secrets})
	api.Handle(httpx.Route{Method: "POST", Path: "/nhis/:id/secrets/rotate", OperationID: "rotateNHISecret",
		Summary: "Issue a new client secret; current ones work through the grace period (manage)", Tags: t,
		Response: nhi.Rotated{}, Status: 201, Handler: h.rotate})
	api.Handle(httpx.Route{Method: "PUT", Path: "/nhis/:id/client-keys", OperationID: "setNHIClientKeys",
		Summary: "Replace the public keys of private_key_jwt client authentication (manage)", Tags: t,
		Request: nhi.ClientKeysInput{}, Response: nhi.ClientKeys{}, Example: map[string]any{"keys": []any{}}, Handler: httpx.PostByID(h.NHIs.SetClientKeys, nil, fiber.StatusOK)})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/:id/permissions", OperationID: "listNHIPermissions", Summary: "Who may use or manage the NHI",
		Tags: t, Response: []nhi.Permission{}, Handler: h.permissions})
	api.Handle(httpx.Route{Method: "PUT", Path: "/nhis/:id/permissions", OperationID: "grantNHIPermission", Summary: "Grant a user use, manage or admin (admin)",
		Tags: t, Request: nhi.GrantInput{}, Response: nhi.Permission{},
		Example: map[string]string{"user_id": "01960f3a-0000-7000-8000-000000000001", "permission": "use"}, Handler: httpx.PostByID(h.NHIs.Grant, nil, fiber.StatusOK)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/nhis/:id/permissions/:user_id", OperationID: "revokeNHIPermission",
		Summary: "Remove a user's permission (admin)", Tags: t, Status: 204, Handler: h.revoke})
}

func (h *Handler) list(c *fiber.Ctx) error {
	o := nhi.ListOptions{Kind: c.Query("kind"), Status: c.Query("status")}
	if s := c.Query("owner_id"); s != "" {
		var err error
		if o.OwnerID, err = uuid.Parse(s); err != nil {
			return apperr.Invalid("owner_id", "must be a UUID")
		}
	}
	return httpx.Paged(c, func(limit int, cur cursor) ([]*nhi.NHI, bool, error) {
		o.Limit, o.After = limit, cur.After
		return h.NHIs.List(c.UserContext(), o)
	}, func(n *nhi.NHI) cursor { return cursor{After: n.ID} })
}

func (h *Handler) create(c *fiber.Ctx) error {
	var in nhi.CreateInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	n, err := h.NHIs.Create(c.UserContext(), in)
	if err != nil {
		return err
	}
	httpx.SetETag(c, n.Version)
	c.Location(httpx.JoinPath(c.Path(), n.ID.String()))
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(201).JSON(n)
}

func (h *Handler) secrets(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.NHIs.Secrets(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) rotate(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.NHIs.RotateSecret(c.UserContext(), id)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(201).JSON(out)
}

func (h *Handler) permissions(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.NHIs.Permissions(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) revoke(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	uid, err := httpx.PathUUID(c, "user_id")
	if err != nil {
		return err
	}
	if err := h.NHIs.Revoke(c.UserContext(), id, uid); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func (h *Handler) inactive(c *fiber.Ctx) error {
	days := 30
	if s := c.Query("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 3650 {
			return apperr.Invalid("days", "must be an integer from 1 to 3650")
		}
		days = n
	}
	out, err := h.NHIs.Inactive(c.UserContext(), days)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) orphaned(c *fiber.Ctx) error {
	out, err := h.NHIs.Orphaned(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func nhiVersion(n *nhi.NHI) int64 { return n.Version }
