// Package httpx is the admin plane's HTTP plumbing on Fiber: the app with
// xavyo's settings, problem+json errors (RFC 9457), request IDs, access
// logs, strict JSON decoding, cursor pagination, ETags, authentication and
// role checks in one place, and the OpenAPI document built from the same
// route table that serves requests.
package httpx

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/internal/apperr"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	Code      string              `json:"code"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []apperr.FieldError `json:"errors,omitempty"`
}

// StatusOf maps an error kind to an HTTP status (apperr.Kind.HTTPStatus).
func StatusOf(k apperr.Kind) int { return k.HTTPStatus() }

// ErrorHandler renders every error as problem+json, once, and logs
// internal causes (never sent to the client).
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var (
			status int
			p      Problem
		)
		var fe *fiber.Error
		switch {
		case errors.As(err, &fe):
			status = fe.Code
			p.Code = fiberCode(fe.Code)
			p.Detail = fiberDetail(fe)
		default:
			k := apperr.KindOf(err)
			status = StatusOf(k)
			p.Code = k.String()
			p.Detail = apperr.PublicMessage(err)
			p.Errors = apperr.FieldsOf(err)
			if status >= 500 {
				log.Error("request failed", "error", err, "request_id", RequestID(c), "method", c.Method(), "path", c.Path())
			}
		}
		p.Status = status
		p.Title = http.StatusText(status)
		p.Type = "https://xavyo.dev/problems/" + p.Code
		p.Instance = c.Path()
		p.RequestID = RequestID(c)
		if status == http.StatusUnauthorized && c.GetRespHeader(fiber.HeaderWWWAuthenticate) == "" {
			// A challenge set on the way (RFC 9470 step-up) is kept.
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="xavyo"`)
		}
		c.Set(fiber.HeaderContentType, ProblemContentType)
		c.Status(status)
		b, mErr := c.App().Config().JSONEncoder(p)
		if mErr != nil {
			return c.SendString(`{"title":"Internal Server Error","status":500}`)
		}
		return c.Send(b)
	}
}

func fiberCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return apperr.KindNotFound.String()
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return apperr.KindTooLarge.String()
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	if status >= 500 {
		return apperr.KindInternal.String()
	}
	return apperr.KindInvalidArgument.String()
}

func fiberDetail(fe *fiber.Error) string {
	switch fe.Code {
	case http.StatusNotFound:
		return "no such route"
	case http.StatusMethodNotAllowed:
		return "method not allowed on this route"
	case http.StatusRequestEntityTooLarge:
		return "request body too large"
	}
	if fe.Code >= 500 {
		return "internal error"
	}
	return fe.Message
}
