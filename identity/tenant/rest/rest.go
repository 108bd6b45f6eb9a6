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
		Tags: tags, Scope: httpx.ScopePlatform, Response: tenant.Tenant{}, Handler: httpx.GetByID(h.Tenants.Get, tenantVersion)})
	api.Handle(httpx.Route{Method: fiber.MethodPatch, Path: "/tenants/:id", OperationID: "updateTenant", Summary: "Update a tenant",
		Tags: tags, Scope: httpx.ScopePlatform, Request: tenant.UpdateInput{}, Response: tenant.Tenant{}, IfMatch: true,
		Handler: httpx.UpdateByID(h.Tenants.Update, tenantVersion)})
	api.Handle(httpx.Route{Method: fiber.MethodDelete, Path: "/tenants/:id", OperationID: "deleteTenant",
		Summary: "Delete a tenant (soft delete: every endpoint refuses it afterwards)",
		Tags:    tags, Scope: httpx.ScopePlatform, Status: fiber.StatusNoContent, IfMatch: true, Handler: httpx.DeleteByIDIfMatch(h.Tenants.Delete)})
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
	o := tenant.ListOptions{Status: c.Query("status"), SlugPrefix: c.Query("slug_prefix")}
	if s := c.Query("include_deleted"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return apperr.Invalid("include_deleted", "must be true or false")
		}
		o.IncludeDeleted = b
	}
	return httpx.Paged(c, func(limit int, cur cursor) ([]*tenant.Tenant, bool, error) {
		o.Limit, o.After = limit, cur.After
		return h.Tenants.List(c.UserContext(), o)
	}, func(t *tenant.Tenant) cursor { return cursor{After: t.ID} })
}

func tenantVersion(t *tenant.Tenant) int64 { return t.Version }
