// Package rest serves the admin routes of A2A under /api/v1: importing an
// agent's own card and reading what is pinned.
package rest

import (
	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/a2a"
	"github.com/xavyo/xavyo/internal/httpx"
)

// Handler serves the routes.
type Handler struct {
	A2A *a2a.Handlers
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	tags := []string{"a2a"}
	api.Handle(httpx.Route{Method: "POST", Path: "/nhis/:id/a2a-card/import", OperationID: "importAgentCard",
		Summary: "Fetch an agent's own card from its A2A endpoint, verify its signatures, pin it (a changed card quarantines the agent until approved)",
		Tags:    tags, Response: a2a.CardStatus{}, Handler: h.importCard})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/:id/a2a-card", OperationID: "getAgentCard",
		Summary: "An agent's pinned and latest imported cards and what differs", Tags: tags, Response: a2a.CardStatus{},
		Handler: httpx.GetByID(h.A2A.CardStatus, nil)})
}

func (h *Handler) importCard(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	st, err := h.A2A.ImportCard(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(st)
}
