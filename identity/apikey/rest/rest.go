// Package rest serves API keys under /api/v1/api-keys: make, list,
// rotate and revoke keys, and introspect one.
package rest

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/apikey"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
)

// Handler serves the routes.
type Handler struct {
	Keys *apikey.Service
}

// RotateInput says how long the old key keeps working.
type RotateInput struct {
	OverlapSeconds *int `json:"overlap_seconds,omitempty" doc:"how long the old key keeps working (default 3600; 0 to 604800)"`
}

// IntrospectInput names a key.
type IntrospectInput struct {
	Key string `json:"key"`
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	t := []string{"api keys"}
	api.Handle(httpx.Route{Method: "POST", Path: "/api-keys", OperationID: "createAPIKey",
		Summary: "Make an API key (shown once): its rights are its scopes within its owner's current roles", Tags: t,
		Request: apikey.CreateInput{}, Response: apikey.Created{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			var in apikey.CreateInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			out, err := h.Keys.Create(c.UserContext(), in)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "GET", Path: "/api-keys", OperationID: "listAPIKeys",
		Summary: "Your API keys (all=true: the tenant's, for tenant admins)", Tags: t, Response: []apikey.Key{},
		Query: []httpx.Param{{Name: "all", Type: "boolean"}}, Handler: func(c *fiber.Ctx) error {
			out, err := h.Keys.List(c.UserContext(), c.QueryBool("all"))
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/api-keys/:id/rotate", OperationID: "rotateAPIKey",
		Summary: "A new key like this one (shown once); the old one works until the overlap ends", Tags: t,
		Request: RotateInput{}, Response: apikey.Created{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			var in RotateInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			overlap := time.Hour
			if in.OverlapSeconds != nil {
				overlap = time.Duration(*in.OverlapSeconds) * time.Second
			}
			out, err := h.Keys.Rotate(c.UserContext(), id, overlap)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/api-keys/:id", OperationID: "revokeAPIKey",
		Summary: "Revoke an API key (at once, on every replica)", Tags: t, Status: 204, Handler: httpx.DeleteByID(h.Keys.Revoke)})
	api.Handle(httpx.Route{Method: "POST", Path: "/api-keys/introspect", OperationID: "introspectAPIKey",
		Summary: "Describe an API key of this tenant (another tenant's is not active)", Tags: t, Roles: []string{principal.RoleTenantAdmin},
		Request: IntrospectInput{}, Response: apikey.Introspection{}, Handler: func(c *fiber.Ctx) error {
			var in IntrospectInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.JSON(h.Keys.Introspect(c.UserContext(), in.Key))
		}})
}
