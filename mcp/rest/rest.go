// Package rest serves the MCP gateway's admin routes: each tool server's
// upstream settings, catalog sync, synced tools and health.
package rest

import (
	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/mcp"
)

// Handler serves the routes; rights on each tool server (use, manage) are
// checked by the gateway.
type Handler struct {
	Gateway *mcp.Gateway
}

func settingsVersion(s *mcp.Settings) int64 { return s.Version }

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	t := []string{"MCP gateway"}
	api.Handle(httpx.Route{Method: "GET", Path: "/tool-servers/:id/upstream", OperationID: "getToolServerUpstream",
		Summary: "How the gateway reaches a tool server (secrets are never returned)", Tags: t, Response: mcp.Settings{},
		Handler: httpx.GetByID(h.Gateway.Settings, settingsVersion)})
	api.Handle(httpx.Route{Method: "PUT", Path: "/tool-servers/:id/upstream", OperationID: "setToolServerUpstream",
		Summary: "Set the upstream credential, timeout and auto-approval of a tool server (manage)", Tags: t,
		Request: mcp.SettingsInput{}, Response: mcp.Settings{}, IfMatch: true,
		Example: map[string]any{"credential_type": "bearer", "token": "upstream-token", "timeout_ms": 30000, "auto_approve": false},
		Handler: httpx.UpdateByID(h.Gateway.SetSettings, settingsVersion)})
	api.Handle(httpx.Route{Method: "POST", Path: "/tool-servers/:id/sync", OperationID: "syncToolServer",
		Summary: "Fetch the tool server's tools (every page) into the catalog; new or changed tools wait for approval (manage)", Tags: t,
		Response: mcp.SyncReport{}, Handler: h.sync})
	api.Handle(httpx.Route{Method: "GET", Path: "/tool-servers/:id/tools", OperationID: "listToolServerTools",
		Summary: "The synced tools of a tool server, definitions as the upstream sent them", Tags: t, Response: []mcp.Tool{}, Handler: h.tools})
	api.Handle(httpx.Route{Method: "GET", Path: "/tool-servers/:id/tools/:tool/diff", OperationID: "diffToolServerTool",
		Summary: "What changed in a tool since it was approved: the pinned and the latest definition, member by member", Tags: t,
		Response: mcp.ToolDiff{}, Handler: h.diff})
	api.Handle(httpx.Route{Method: "GET", Path: "/tool-servers/:id/health", OperationID: "getToolServerHealth",
		Summary: "Ping the tool server from this replica; circuit-breaker state", Tags: t, Response: mcp.Health{}, Handler: h.health})
}

func (h *Handler) sync(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	rep, err := h.Gateway.Sync(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

func (h *Handler) tools(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.Gateway.Tools(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) diff(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.Gateway.Diff(c.UserContext(), id, c.Params("tool"))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) health(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	out, err := h.Gateway.Health(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}
