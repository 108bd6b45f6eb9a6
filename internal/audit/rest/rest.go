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

// Handler serves the audit query.
type Handler struct {
	DB *store.DB
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
