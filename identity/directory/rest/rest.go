// Package rest serves users, groups and attribute definitions under
// /api/v1.
package rest

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
)

// ReadRoles may read the directory; WriteRoles may change it.
var (
	ReadRoles  = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer}
	WriteRoles = []string{principal.RoleTenantAdmin}
)

// Handler serves the directory.
type Handler struct {
	Directory *directory.Service
}

// SetPasswordInput is an administrator's password reset.
type SetPasswordInput struct {
	Password string `json:"password"`
	// MustChange forces a change at next login (default true).
	MustChange *bool `json:"must_change,omitempty"`
}

type groupCursor struct {
	Name string    `json:"n"`
	ID   uuid.UUID `json:"i"`
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	u := []string{"users"}
	g := []string{"groups"}
	a := []string{"attribute definitions"}
	idUser := httpx.Route{Tags: u, Roles: ReadRoles}
	route := func(base httpx.Route, r httpx.Route) httpx.Route {
		r.Tags = base.Tags
		if r.Roles == nil {
			r.Roles = base.Roles
		}
		return r
	}
	api.Handle(route(idUser, httpx.Route{Method: "GET", Path: "/users", OperationID: "listUsers", Summary: "List users",
		Response: httpx.Page[directory.User]{}, Handler: h.listUsers, Query: []httpx.Param{
			{Name: "status"}, {Name: "email", Description: "exact email"}, {Name: "q", Description: "prefix of email, username or display name"},
			{Name: "group_id", Description: "only members of this group"},
			{Name: "sort", Description: "created_at, email, username or display_name; prefix - for descending"},
			{Name: "limit", Type: "integer"}, {Name: "cursor"}}}))
	api.Handle(route(idUser, httpx.Route{Method: "POST", Path: "/users", OperationID: "createUser", Summary: "Create a user",
		Roles: WriteRoles, Request: directory.CreateUserInput{}, Response: directory.User{}, Status: 201, Handler: httpx.CreateJSONAt(h.Directory.CreateUser, userVersion, userID)}))
	api.Handle(route(idUser, httpx.Route{Method: "POST", Path: "/users/bulk", OperationID: "bulkUsers", Summary: "Create and update users in bulk, with a result per row",
		Roles: WriteRoles, Request: directory.BulkInput{}, Response: directory.BulkOutput{}, Handler: h.bulk}))
	api.Handle(route(idUser, httpx.Route{Method: "GET", Path: "/users/:id", OperationID: "getUser", Summary: "Get a user",
		Response: directory.User{}, Handler: httpx.GetByID(h.Directory.GetUser, userVersion)}))
	api.Handle(route(idUser, httpx.Route{Method: "PATCH", Path: "/users/:id", OperationID: "updateUser", Summary: "Update a user",
		Roles: WriteRoles, Request: directory.UpdateUserInput{}, Response: directory.User{}, IfMatch: true, Handler: httpx.UpdateByID(h.Directory.UpdateUser, userVersion)}))
	api.Handle(route(idUser, httpx.Route{Method: "DELETE", Path: "/users/:id", OperationID: "deleteUser", Summary: "Delete a user",
		Roles: WriteRoles, Status: 204, IfMatch: true, Handler: httpx.DeleteByIDIfMatch(h.Directory.DeleteUser)}))
	api.Handle(route(idUser, httpx.Route{Method: "POST", Path: "/users/:id/password", OperationID: "setUserPassword",
		Summary: "Set a user's password (they must change it at next login unless must_change is false)",
		Roles:   WriteRoles, Request: SetPasswordInput{}, Response: directory.User{}, Handler: h.setPassword}))
	api.Handle(route(idUser, httpx.Route{Method: "POST", Path: "/users/:id/unlock", OperationID: "unlockUser", Summary: "Clear a lockout",
		Roles: WriteRoles, Response: directory.User{}, Handler: h.unlock}))
	api.Handle(route(idUser, httpx.Route{Method: "GET", Path: "/users/:id/groups", OperationID: "listUserGroups", Summary: "Groups a user is in",
		Response: []directory.Group{}, Handler: h.userGroups}))
	api.Handle(route(idUser, httpx.Route{Method: "GET", Path: "/users/:id/links", OperationID: "listUserLinks",
		Summary: "A user's external identities (upstream identity providers' subjects)", Response: []directory.Link{}, Handler: h.userLinks}))
	api.Handle(route(idUser, httpx.Route{Method: "DELETE", Path: "/users/:id/links/:link_id", OperationID: "deleteUserLink",
		Summary: "Unlink one of a user's external identities (its next upstream sign-in finds no account, or asks to link again)", Roles: WriteRoles,
		Status: 204, Handler: h.unlink}))

	api.Handle(httpx.Route{Method: "GET", Path: "/groups", OperationID: "listGroups", Summary: "List groups", Tags: g, Roles: ReadRoles,
		Response: httpx.Page[directory.Group]{}, Handler: h.listGroups, Query: []httpx.Param{
			{Name: "name_prefix"}, {Name: "parent_id", Description: "children of this group; the nil UUID for roots"},
			{Name: "limit", Type: "integer"}, {Name: "cursor"}}})
	api.Handle(httpx.Route{Method: "POST", Path: "/groups", OperationID: "createGroup", Summary: "Create a group", Tags: g, Roles: WriteRoles,
		Request: directory.GroupInput{}, Response: directory.Group{}, Status: 201, Handler: httpx.CreateJSONAt(h.Directory.CreateGroup, groupVersion, groupID)})
	api.Handle(httpx.Route{Method: "GET", Path: "/groups/:id", OperationID: "getGroup", Summary: "Get a group", Tags: g, Roles: ReadRoles,
		Response: directory.Group{}, Handler: httpx.GetByID(h.Directory.GetGroup, groupVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/groups/:id", OperationID: "updateGroup", Summary: "Rename or move a group", Tags: g,
		Roles: WriteRoles, Request: directory.GroupInput{}, Response: directory.Group{}, IfMatch: true, Handler: httpx.UpdateByID(h.Directory.UpdateGroup, groupVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/groups/:id", OperationID: "deleteGroup", Summary: "Delete a group without children",
		Tags: g, Roles: WriteRoles, Status: 204, IfMatch: true, Handler: httpx.DeleteByIDIfMatch(h.Directory.DeleteGroup)})
	api.Handle(httpx.Route{Method: "GET", Path: "/groups/:id/members", OperationID: "listGroupMembers", Summary: "List a group's members",
		Tags: g, Roles: ReadRoles, Response: httpx.Page[directory.User]{}, Query: []httpx.Param{{Name: "limit", Type: "integer"}, {Name: "cursor"}},
		Handler: h.members})
	api.Handle(httpx.Route{Method: "PUT", Path: "/groups/:id/members/:user_id", OperationID: "addGroupMember", Summary: "Add a user to a group",
		Tags: g, Roles: WriteRoles, Response: directory.Membership{}, Handler: h.addMember})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/groups/:id/members/:user_id", OperationID: "removeGroupMember",
		Summary: "Remove a user from a group", Tags: g, Roles: WriteRoles, Status: 204, Handler: h.removeMember})

	api.Handle(httpx.Route{Method: "GET", Path: "/attribute-definitions", OperationID: "listAttributeDefinitions",
		Summary: "List custom user attributes", Tags: a, Roles: ReadRoles, Response: []directory.AttributeDefinition{}, Handler: h.listAttrs})
	api.Handle(httpx.Route{Method: "POST", Path: "/attribute-definitions", OperationID: "createAttributeDefinition",
		Summary: "Define a custom user attribute", Tags: a, Roles: WriteRoles, Request: directory.AttributeDefinitionInput{},
		Response: directory.AttributeDefinition{}, Status: 201, Handler: httpx.CreateJSON(h.Directory.CreateAttributeDefinition, attrVersion)})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/attribute-definitions/:id", OperationID: "updateAttributeDefinition",
		Summary: "Change a custom attribute's requiredness, values or description", Tags: a, Roles: WriteRoles,
		Request: directory.AttributeDefinitionInput{}, Response: directory.AttributeDefinition{}, IfMatch: true, Handler: httpx.UpdateByID(h.Directory.UpdateAttributeDefinition, attrVersion)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/attribute-definitions/:id", OperationID: "deleteAttributeDefinition",
		Summary: "Remove a custom attribute no user carries", Tags: a, Roles: WriteRoles, Status: 204, Handler: httpx.DeleteByID(h.Directory.DeleteAttributeDefinition)})
}

func (h *Handler) listUsers(c *fiber.Ctx) error {
	page, err := httpx.ParsePage(c)
	if err != nil {
		return err
	}
	o := directory.ListUsersOptions{Status: c.Query("status"), Email: c.Query("email"), Query: c.Query("q"), Limit: page.Limit}
	if s := c.Query("sort"); s != "" {
		o.Desc = strings.HasPrefix(s, "-")
		o.Sort = directory.UserSort(strings.TrimPrefix(s, "-"))
	}
	if s := c.Query("group_id"); s != "" {
		if o.GroupID, err = uuid.Parse(s); err != nil {
			return apperr.Invalid("group_id", "must be a UUID")
		}
	}
	return h.userPage(c, o, page.Cursor)
}

func (h *Handler) bulk(c *fiber.Ctx) error {
	var in directory.BulkInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	out, err := h.Directory.Bulk(c.UserContext(), in, func(err error) int { return httpx.StatusOf(apperr.KindOf(err)) })
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) setPassword(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	var in SetPasswordInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	must := true
	if in.MustChange != nil {
		must = *in.MustChange
	}
	u, err := h.Directory.SetPassword(c.UserContext(), id, in.Password, must)
	if err != nil {
		return err
	}
	httpx.SetETag(c, u.Version)
	return c.JSON(u)
}

func (h *Handler) unlock(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	u, err := h.Directory.Unlock(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (h *Handler) userGroups(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	gs, err := h.Directory.GroupsOfUser(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(gs)
}

func (h *Handler) userLinks(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.Directory.GetUser(c.UserContext(), id); err != nil {
		return err
	}
	ls, err := h.Directory.Links(c.UserContext(), id)
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []*directory.Link{}
	}
	return c.JSON(ls)
}

func (h *Handler) unlink(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	link, err := httpx.PathUUID(c, "link_id")
	if err != nil {
		return err
	}
	if err := h.Directory.Unlink(c.UserContext(), id, link); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func (h *Handler) listGroups(c *fiber.Ctx) error {
	page, err := httpx.ParsePage(c)
	if err != nil {
		return err
	}
	o := directory.ListGroupsOptions{NamePrefix: c.Query("name_prefix"), Limit: page.Limit}
	if s := c.Query("parent_id"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			return apperr.Invalid("parent_id", "must be a UUID")
		}
		o.ParentID = &id
	}
	if page.Cursor != "" {
		var cur groupCursor
		if err := httpx.DecodeCursor(page.Cursor, &cur); err != nil {
			return err
		}
		o.AfterName, o.AfterID = cur.Name, cur.ID
	}
	gs, more, err := h.Directory.ListGroups(c.UserContext(), o)
	if err != nil {
		return err
	}
	out := httpx.PageOf(gs)
	if more {
		last := gs[len(gs)-1]
		out.NextCursor = httpx.EncodeCursor(groupCursor{Name: last.Name, ID: last.ID})
	}
	return c.JSON(out)
}

func (h *Handler) members(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.Directory.GetGroup(c.UserContext(), id); err != nil {
		return err
	}
	page, err := httpx.ParsePage(c)
	if err != nil {
		return err
	}
	o := directory.ListUsersOptions{GroupID: id, Limit: page.Limit}
	return h.userPage(c, o, page.Cursor)
}

func (h *Handler) addMember(c *fiber.Ctx) error {
	gid, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	uid, err := httpx.PathUUID(c, "user_id")
	if err != nil {
		return err
	}
	m, created, err := h.Directory.AddMember(c.UserContext(), gid, uid)
	if err != nil {
		return err
	}
	status := 200
	if created {
		status = 201
	}
	return c.Status(status).JSON(m)
}

func (h *Handler) removeMember(c *fiber.Ctx) error {
	gid, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	uid, err := httpx.PathUUID(c, "user_id")
	if err != nil {
		return err
	}
	if err := h.Directory.RemoveMember(c.UserContext(), gid, uid); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func (h *Handler) listAttrs(c *fiber.Ctx) error {
	defs, err := h.Directory.ListAttributeDefinitions(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(defs)
}

func userVersion(u *directory.User) int64                { return u.Version }
func groupVersion(g *directory.Group) int64              { return g.Version }
func attrVersion(d *directory.AttributeDefinition) int64 { return d.Version }

// userPage answers one page of users listed with o after cursor.
func (h *Handler) userPage(c *fiber.Ctx, o directory.ListUsersOptions, cursor string) error {
	if cursor != "" {
		var cur directory.UserCursor
		if err := httpx.DecodeCursor(cursor, &cur); err != nil {
			return err
		}
		o.After = &cur
	}
	users, next, err := h.Directory.ListUsers(c.UserContext(), o)
	if err != nil {
		return err
	}
	out := httpx.PageOf(users)
	if next != nil {
		out.NextCursor = httpx.EncodeCursor(next)
	}
	return c.JSON(out)
}

func userID(u *directory.User) uuid.UUID   { return u.ID }
func groupID(g *directory.Group) uuid.UUID { return g.ID }
