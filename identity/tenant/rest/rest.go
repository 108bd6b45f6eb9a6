// Package rest serves the tenant API under /api/v1/tenants.
package rest

import (
	"context"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
)

// Onboarder creates a tenant together with its first administrator.
type Onboarder interface {
	CreateTenant(ctx context.Context, in tenant.CreateInput, admin *auth.AdminInput) (*auth.TenantWithAdmin, error)
}

// Handler serves tenants.
type Handler struct {
	Tenants *tenant.Service
	Onboard Onboarder
}

// CreateTenantInput creates a tenant and, optionally, its first admin.
type CreateTenantInput struct {
	tenant.CreateInput
	// Admin, when given, becomes the tenant's first tenant_admin; they
	// must change the password at first login.
	Admin *auth.AdminInput `json:"admin,omitempty"`
}

type cursor struct {
	After uuid.UUID `json:"a"`
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	tags := []string{"tenants"}
	api.Handle(httpx.Route{Method: fiber.MethodPost, Path: "/tenants", OperationID: "createTenant", Summary: "Create a tenant",
		Tags: tags, Scope: httpx.ScopePlatform, Request: CreateTenantInput{}, Response: auth.TenantWithAdmin{}, Status: fiber.StatusCreated,
		Handler: h.create})
	api.Handle(httpx.Route{Method: fiber.MethodGet, Path: "/tenants", OperationID: "listTenants", Summary: "List tenants",
		Tags: tags, Scope: httpx.ScopePlatform, Response: httpx.Page[tenant.Tenant]{},
		Query: []httpx.Param{
			{Name: "status", Description: "active, suspended or deleted"},
			{Name: "slug_prefix", Description: "only slugs starting with this"},
			{Name: "include_deleted", Description: "also list deleted tenants", Type: "boolean"},
			{Name: "limit", Description: "page size (1-500, default 50)", Type: "integer"},
			{Name: "cursor", Description: "next_cursor of the previous page"},
		},
		Handler: h.list})
	api.Handle(httpx.Route{Method: fiber.MethodGet, Path: "/tenants/:id", OperationID: "getTenant", Summary: "Get a tenant",
		Tags: tags, Scope: httpx.ScopePlatform, Response: tenant.Tenant{}, Handler: h.get})
	api.Handle(httpx.Route{Method: fiber.MethodPatch, Path: "/tenants/:id", OperationID: "updateTenant", Summary: "Update a tenant",
		Tags: tags, Scope: httpx.ScopePlatform, Request: tenant.UpdateInput{}, Response: tenant.Tenant{}, IfMatch: true,
		Handler: h.update})
	api.Handle(httpx.Route{Method: fiber.MethodDelete, Path: "/tenants/:id", OperationID: "deleteTenant",
		Summary: "Delete a tenant (soft delete: every endpoint refuses it afterwards)",
		Tags:    tags, Scope: httpx.ScopePlatform, Status: fiber.StatusNoContent, IfMatch: true, Handler: h.delete})
}

func (h *Handler) create(c *fiber.Ctx) error {
	var in CreateTenantInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	t, err := h.Onboard.CreateTenant(c.UserContext(), in.CreateInput, in.Admin)
	if err != nil {
		return err
	}
	httpx.SetETag(c, t.Version)
	c.Location(httpx.JoinPath(c.Path(), t.ID.String()))
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (h *Handler) list(c *fiber.Ctx) error {
	page, err := httpx.ParsePage(c)
	if err != nil {
		return err
	}
	o := tenant.ListOptions{Status: c.Query("status"), SlugPrefix: c.Query("slug_prefix"), Limit: page.Limit}
	if s := c.Query("include_deleted"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return apperr.Invalid("include_deleted", "must be true or false")
		}
		o.IncludeDeleted = b
	}
	if page.Cursor != "" {
		var cur cursor
		if err := httpx.DecodeCursor(page.Cursor, &cur); err != nil {
			return err
		}
		o.After = cur.After
	}
	items, more, err := h.Tenants.List(c.UserContext(), o)
	if err != nil {
		return err
	}
	out := httpx.PageOf(items)
	if more {
		out.NextCursor = httpx.EncodeCursor(cursor{After: items[len(items)-1].ID})
	}
	return c.JSON(out)
}

func (h *Handler) get(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	t, err := h.Tenants.Get(c.UserContext(), id)
	if err != nil {
		return err
	}
	httpx.SetETag(c, t.Version)
	return c.JSON(t)
}

func (h *Handler) update(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	ifVersion, err := httpx.IfMatch(c)
	if err != nil {
		return err
	}
	var in tenant.UpdateInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	t, err := h.Tenants.Update(c.UserContext(), id, in, ifVersion)
	if err != nil {
		return err
	}
	httpx.SetETag(c, t.Version)
	return c.JSON(t)
}

func (h *Handler) delete(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	ifVersion, err := httpx.IfMatch(c)
	if err != nil {
		return err
	}
	if err := h.Tenants.Delete(c.UserContext(), id, ifVersion); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
