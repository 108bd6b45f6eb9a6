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
	for name, dst := range map[string]**time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.Query(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return apperr.Invalid(name, "must be an RFC 3339 time")
			}
			*dst = &t
		}
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
