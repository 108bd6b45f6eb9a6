// Package rest serves the audit log query under /api/v1/audit.
package rest

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Handler serves the audit query and the audit exports.
type Handler struct {
	DB *store.DB
	// Exports manages streams of records to SIEMs; nil serves none.
	Exports *audit.Exporter
}

type cursor struct {
	Before int64 `json:"b"`
}

// Mount registers the route.
func (h *Handler) Mount(api *httpx.API) {
	api.Handle(httpx.Route{Method: "GET", Path: "/audit", OperationID: "queryAudit",
		Summary: "Audit records of the tenant, newest first (action may end with * for a prefix)", Tags: []string{"audit"},
		Roles: []string{principal.RoleTenantAdmin, principal.RoleAuditor}, Response: httpx.Page[audit.Record]{},
		Query: []httpx.Param{{Name: "action"}, {Name: "actor_id"}, {Name: "target_id"}, {Name: "outcome"}, {Name: "request_id"},
			{Name: "since", Description: "RFC 3339"}, {Name: "until", Description: "RFC 3339"}, {Name: "limit", Type: "integer"}, {Name: "cursor"}},
		Handler: h.query})
	api.Handle(httpx.Route{Method: "GET", Path: "/audit/stats", OperationID: "auditStats",
		Summary: "The tenant's own figures: audit records by action and outcome over a window (default the last 24 hours, at most 31 days)",
		Tags:    []string{"audit"}, Roles: []string{principal.RoleTenantAdmin, principal.RoleAuditor}, Response: Stats{},
		Query: []httpx.Param{{Name: "action", Description: "exact, or a prefix ending with *"}, {Name: "since", Description: "RFC 3339"},
			{Name: "until", Description: "RFC 3339"}},
		Handler: h.stats})
	if h.Exports == nil {
		return
	}
	tags := []string{"audit"}
	readRoles, writeRoles := []string{principal.RoleTenantAdmin, principal.RoleAuditor}, []string{principal.RoleTenantAdmin}
	version := func(x *audit.Export) int64 { return x.Version }
	api.Handle(httpx.Route{Method: "GET", Path: "/audit-exports", OperationID: "listAuditExports", Summary: "The tenant's audit streams to SIEMs",
		Tags: tags, Roles: readRoles, Response: httpx.Page[audit.Export]{}, Handler: h.listExports})
	api.Handle(httpx.Route{Method: "POST", Path: "/audit-exports", OperationID: "createAuditExport",
		Summary: "Stream the tenant's audit records to a syslog receiver (RFC 5424 over TCP or TLS; JSON or CEF)", Tags: tags, Roles: writeRoles,
		Request: audit.ExportInput{}, Required: []string{"name", "address"}, Response: audit.Export{}, Status: 201,
		Handler: httpx.CreateJSON(h.Exports.CreateExport, version)})
	api.Handle(httpx.Route{Method: "GET", Path: "/audit-exports/:id", OperationID: "getAuditExport", Summary: "An audit stream, its cursor and lag",
		Tags: tags, Roles: readRoles, Response: audit.Export{}, Handler: httpx.GetByID(h.Exports.GetExport, version)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/audit-exports/:id", OperationID: "updateAuditExport", Summary: "Change or pause an audit stream",
		Tags: tags, Roles: writeRoles, Request: audit.ExportInput{}, Response: audit.Export{}, Handler: httpx.UpdateByID(h.Exports.UpdateExport, version)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/audit-exports/:id", OperationID: "deleteAuditExport", Summary: "Stop and remove an audit stream",
		Tags: tags, Roles: writeRoles, Status: 204, Handler: httpx.DeleteByID(h.Exports.DeleteExport)})
}

func (h *Handler) listExports(c *fiber.Ctx) error {
	xs, err := h.Exports.ListExports(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(httpx.PageOf(xs))
}

func (h *Handler) query(c *fiber.Ctx) error {
	page, err := httpx.ParsePage(c)
	if err != nil {
		return err
	}
	f := audit.Filter{Action: c.Query("action"), ActorID: c.Query("actor_id"), TargetID: c.Query("target_id"), Outcome: c.Query("outcome"),
		RequestID: c.Query("request_id"), Limit: page.Limit}
	if f.Since, err = queryTime(c, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return err
	}
	if page.Cursor != "" {
		var cur cursor
		if err := httpx.DecodeCursor(page.Cursor, &cur); err != nil {
			return err
		}
		f.Before = cur.Before
	}
	recs, more, err := audit.Query(c.UserContext(), h.DB, f)
	if err != nil {
		return err
	}
	out := httpx.Page[audit.Record]{Items: recs}
	if out.Items == nil {
		out.Items = []audit.Record{}
	}
	if more {
		out.NextCursor = httpx.EncodeCursor(cursor{Before: recs[len(recs)-1].Seq})
	}
	return c.JSON(out)
}

// Stats is the answer of GET /audit/stats.
type Stats struct {
	Since time.Time    `json:"since"`
	Until time.Time    `json:"until"`
	Items []audit.Stat `json:"items"`
}

func (h *Handler) stats(c *fiber.Ctx) error {
	until, err := queryTime(c, "until")
	if err != nil {
		return err
	}
	if until == nil {
		now := time.Now().UTC()
		until = &now
	}
	since, err := queryTime(c, "since")
	if err != nil {
		return err
	}
	if since == nil {
		s := until.Add(-24 * time.Hour)
		since = &s
	}
	items, err := audit.Stats(c.UserContext(), h.DB, c.Query("action"), *since, *until)
	if err != nil {
		return err
	}
	return c.JSON(Stats{Since: *since, Until: *until, Items: items})
}

// queryTime parses an optional RFC 3339 query parameter (nil if absent).
func queryTime(c *fiber.Ctx, name string) (*time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, apperr.Invalid(name, "must be an RFC 3339 time")
	}
	t = t.UTC()
	return &t, nil
}
