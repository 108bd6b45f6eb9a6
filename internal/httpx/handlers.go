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
