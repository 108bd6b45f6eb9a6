package httpx

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// The common shapes of REST handlers, so each is written once: parse the
// path ID, the If-Match precondition and the strict JSON body — in that
// order, so bad input is refused before any lookup — call the service,
// and write the ETag and JSON.

// GetByID serves GET …/:id.
func GetByID[T any](get func(context.Context, uuid.UUID) (*T, error), version func(*T) int64) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := PathUUID(c, "id")
		if err != nil {
			return err
		}
		v, err := get(c.UserContext(), id)
		if err != nil {
			return err
		}
		if version != nil {
			SetETag(c, version(v))
		}
		return c.JSON(v)
	}
}

// CreateJSON serves POST with a JSON body, answering 201.
func CreateJSON[In, T any](create func(context.Context, In) (*T, error), version func(*T) int64) fiber.Handler {
	return CreateJSONAt(create, version, nil)
}

// CreateJSONAt serves POST with a JSON body, answering 201 with the new
// record's ETag and, when id is given, its Location under the request path.
func CreateJSONAt[In, T any](create func(context.Context, In) (*T, error), version func(*T) int64, id func(*T) uuid.UUID) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in In
		if err := DecodeJSON(c, &in); err != nil {
			return err
		}
		v, err := create(c.UserContext(), in)
		if err != nil {
			return err
		}
		if version != nil {
			SetETag(c, version(v))
		}
		if id != nil {
			c.Location(JoinPath(c.Path(), id(v).String()))
		}
		return c.Status(fiber.StatusCreated).JSON(v)
	}
}

// UpdateByID serves PATCH …/:id with an optional If-Match.
func UpdateByID[In, T any](update func(context.Context, uuid.UUID, In, int64) (*T, error), version func(*T) int64) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := PathUUID(c, "id")
		if err != nil {
			return err
		}
		ifVersion, err := IfMatch(c)
		if err != nil {
			return err
		}
		var in In
		if err := DecodeJSON(c, &in); err != nil {
			return err
		}
		v, err := update(c.UserContext(), id, in, ifVersion)
		if err != nil {
			return err
		}
		if version != nil {
			SetETag(c, version(v))
		}
		return c.JSON(v)
	}
}

// DeleteByID serves DELETE …/:id, answering 204.
func DeleteByID(del func(context.Context, uuid.UUID) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := PathUUID(c, "id")
		if err != nil {
			return err
		}
		if err := del(c.UserContext(), id); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// DeleteByIDIfMatch serves DELETE …/:id with an optional If-Match,
// answering 204.
func DeleteByIDIfMatch(del func(context.Context, uuid.UUID, int64) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := PathUUID(c, "id")
		if err != nil {
			return err
		}
		v, err := IfMatch(c)
		if err != nil {
			return err
		}
		if err := del(c.UserContext(), id, v); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// PostByID serves POST …/:id with a JSON body (an action on the record,
// or a record added under it), answering status.
func PostByID[In, T any](act func(context.Context, uuid.UUID, In) (*T, error), version func(*T) int64, status int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := PathUUID(c, "id")
		if err != nil {
			return err
		}
		var in In
		if err := DecodeJSON(c, &in); err != nil {
			return err
		}
		v, err := act(c.UserContext(), id, in)
		if err != nil {
			return err
		}
		if version != nil {
			SetETag(c, version(v))
		}
		return c.Status(status).JSON(v)
	}
}

// Paged answers one page of a cursor-paged list: the limit and the cursor
// (of type C, decoded from the request; zero on the first page) go to
// list, which returns at most limit items and whether more follow; the
// next page's cursor is made from the last item by next.
func Paged[C, T any](c *fiber.Ctx, list func(limit int, cur C) ([]*T, bool, error), next func(*T) C) error {
	p, err := ParsePage(c)
	if err != nil {
		return err
	}
	var cur C
	if p.Cursor != "" {
		if err := DecodeCursor(p.Cursor, &cur); err != nil {
			return err
		}
	}
	items, more, err := list(p.Limit, cur)
	if err != nil {
		return err
	}
	out := PageOf(items)
	if more && len(items) > 0 {
		out.NextCursor = EncodeCursor(next(items[len(items)-1]))
	}
	return c.JSON(out)
}
