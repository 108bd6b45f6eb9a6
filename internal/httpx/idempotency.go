package httpx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/idempotency"
	"github.com/xavyo/xavyo/internal/store"
)

// Idempotency keeps the first answer to each Idempotency-Key
// (internal/idempotency.Store).
type Idempotency interface {
	Claim(ctx context.Context, k idempotency.Key, r idempotency.Request) (*idempotency.Answer, error)
	Settle(ctx context.Context, k idempotency.Key, a idempotency.Answer)
	Release(ctx context.Context, k idempotency.Key)
}

// HeaderIdempotencyKey is the request header of
// draft-ietf-httpapi-idempotency-key-header.
const HeaderIdempotencyKey = "Idempotency-Key"

// idempotent makes a POST with an Idempotency-Key happen once: the first
// request runs and its answer is kept 24 hours; a retry by the same caller
// with the same key and the same request gets that answer again (with
// Idempotent-Replayed: true), one with another request gets 422, one
// while the first still runs gets 409. An error answer is not kept: it
// changed nothing, and a retry runs again.
func idempotent(keys Idempotency) fiber.Handler {
	return func(c *fiber.Ctx) error {
		raw := c.Get(HeaderIdempotencyKey)
		if raw == "" {
			return c.Next()
		}
		if len(raw) > 255 || strings.IndexFunc(raw, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
			return apperr.Invalid(HeaderIdempotencyKey, "must be 1 to 255 visible ASCII characters")
		}
		p := Principal(c)
		if p == nil {
			return c.Next()
		}
		tenant, _ := store.TenantFrom(c.UserContext())
		if tenant == uuid.Nil && p.TenantID != uuid.Nil && !p.IsSuperAdmin() {
			tenant = p.TenantID
		}
		k := idempotency.Key{Tenant: tenant, Principal: string(p.Kind) + ":" + p.SubjectID, Key: raw}
		sum := sha256.New()
		sum.Write(c.Request().URI().QueryString())
		sum.Write([]byte{0})
		sum.Write(c.Body())
		req := idempotency.Request{Method: c.Method(), Path: c.Path(), Hash: hex.EncodeToString(sum.Sum(nil))}
		ans, err := keys.Claim(c.UserContext(), k, req)
		if err != nil {
			return err
		}
		if ans != nil {
			c.Set("Idempotent-Replayed", "true")
			if ans.ContentType != "" {
				c.Set(fiber.HeaderContentType, ans.ContentType)
			}
			if ans.Location != "" {
				c.Set(fiber.HeaderLocation, ans.Location)
			}
			return c.Status(ans.Status).Send(ans.Body)
		}
		err = c.Next()
		status := c.Response().StatusCode()
		if err != nil || status >= 400 {
			keys.Release(c.UserContext(), k)
			return err
		}
		keys.Settle(c.UserContext(), k, idempotency.Answer{Status: status, ContentType: string(c.Response().Header.ContentType()),
			Location: string(c.Response().Header.Peek(fiber.HeaderLocation)), Body: append([]byte(nil), c.Response().Body()...)})
		return nil
	}
}
