// Package rest serves webhooks under /api/v1: subscriptions, their
// secrets, deliveries and redelivery.
package rest

import (
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/webhooks"
)

var (
	readRoles  = []string{principal.RoleTenantAdmin, principal.RoleAuditor}
	writeRoles = []string{principal.RoleTenantAdmin}
)

// Handler serves the routes.
type Handler struct {
	Webhooks *webhooks.Service
}

type idCursor struct {
	I uuid.UUID `json:"i"`
}

// EventTypes lists what a subscription may ask for.
type EventTypes struct {
	Types []string `json:"types"`
}

func version(s *webhooks.Subscription) int64 { return s.Version }

func secretVersion(s *webhooks.WithSecret) int64 { return s.Version }

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	tags := []string{"webhooks"}
	api.Handle(httpx.Route{Method: "GET", Path: "/webhook-event-types", OperationID: "listWebhookEventTypes",
		Summary: "The event types a webhook may subscribe to", Tags: tags, Roles: readRoles, Response: EventTypes{},
		Handler: func(c *fiber.Ctx) error { return c.JSON(EventTypes{Types: webhooks.Deliverable}) }})
	api.Handle(httpx.Route{Method: "GET", Path: "/webhooks", OperationID: "listWebhooks", Summary: "List webhook subscriptions", Tags: tags,
		Roles: readRoles, Response: httpx.Page[webhooks.Subscription]{}, Query: []httpx.Param{{Name: "limit", Type: "integer"}, {Name: "cursor"}},
		Handler: h.list})
	api.Handle(httpx.Route{Method: "POST", Path: "/webhooks", OperationID: "createWebhook",
		Summary: "Subscribe an endpoint to events (the signing secret is shown once)", Tags: tags, Roles: writeRoles,
		Request: webhooks.Input{}, Response: webhooks.WithSecret{}, Status: 201, Handler: httpx.CreateJSON(h.Webhooks.Create, secretVersion)})
	api.Handle(httpx.Route{Method: "GET", Path: "/webhooks/:id", OperationID: "getWebhook", Summary: "Get a webhook subscription", Tags: tags,
		Roles: readRoles, Response: webhooks.Subscription{}, Handler: httpx.GetByID(h.Webhooks.Get, version)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/webhooks/:id", OperationID: "updateWebhook",
		Summary: "Change a webhook subscription (status active resumes a paused one)", Tags: tags, Roles: writeRoles,
		Request: webhooks.Input{}, Response: webhooks.Subscription{}, Handler: httpx.UpdateByID(h.Webhooks.Update, version)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/webhooks/:id", OperationID: "deleteWebhook", Summary: "Delete a webhook subscription and its deliveries",
		Tags: tags, Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Webhooks.Delete)})
	api.Handle(httpx.Route{Method: "POST", Path: "/webhooks/:id/rotate-secret", OperationID: "rotateWebhookSecret",
		Summary: "Give a webhook a new signing secret (shown once; the old one stops at once)", Tags: tags, Roles: writeRoles,
		Response: webhooks.WithSecret{}, Handler: h.rotate})
	api.Handle(httpx.Route{Method: "POST", Path: "/webhooks/:id/test", OperationID: "testWebhook",
		Summary: "Queue a test event for a webhook", Tags: tags, Roles: writeRoles, Response: webhooks.Delivery{}, Status: 202, Handler: h.test})
	api.Handle(httpx.Route{Method: "GET", Path: "/webhooks/:id/deliveries", OperationID: "listWebhookDeliveries",
		Summary: "A webhook's deliveries, newest first", Tags: tags, Roles: readRoles, Response: httpx.Page[webhooks.Delivery]{},
		Query: []httpx.Param{{Name: "status"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}}, Handler: h.deliveries})
	api.Handle(httpx.Route{Method: "POST", Path: "/webhooks/:id/deliveries/:delivery_id/redeliver", OperationID: "redeliverWebhook",
		Summary: "Queue a delivery again, now (a dead one gets its attempts anew)", Tags: tags, Roles: writeRoles,
		Response: webhooks.Delivery{}, Status: 202, Handler: h.redeliver})
}

func (h *Handler) list(c *fiber.Ctx) error {
	return paged(c, func(limit int, after uuid.UUID) ([]*webhooks.Subscription, bool, error) {
		return h.Webhooks.List(c.UserContext(), limit, after)
	}, func(s *webhooks.Subscription) uuid.UUID { return s.ID })
}

// paged serves a page of a list cursored by record ID.
func paged[T any](c *fiber.Ctx, list func(limit int, cursor uuid.UUID) ([]*T, bool, error), id func(*T) uuid.UUID) error {
	p, err := httpx.ParsePage(c)
	if err != nil {
		return err
	}
	var cur idCursor
	if p.Cursor != "" {
		if err := httpx.DecodeCursor(p.Cursor, &cur); err != nil {
			return err
		}
	}
	items, more, err := list(p.Limit, cur.I)
	if err != nil {
		return err
	}
	out := httpx.PageOf(items)
	if more {
		out.NextCursor = httpx.EncodeCursor(idCursor{I: id(items[len(items)-1])})
	}
	return c.JSON(out)
}

func (h *Handler) rotate(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.Webhooks.RotateSecret(c.UserContext(), id)
	if err != nil {
		return err
	}
	httpx.SetETag(c, out.Version)
	return c.JSON(out)
}

func (h *Handler) test(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.Webhooks.Test(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}

func (h *Handler) deliveries(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	return paged(c, func(limit int, before uuid.UUID) ([]*webhooks.Delivery, bool, error) {
		return h.Webhooks.Deliveries(c.UserContext(), id, c.Query("status"), limit, before)
	}, func(d *webhooks.Delivery) uuid.UUID { return d.ID })
}

func (h *Handler) redeliver(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	did, err := httpx.PathUUID(c, "delivery_id")
	if err != nil {
		return err
	}
	d, err := h.Webhooks.Redeliver(c.UserContext(), id, did)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}
