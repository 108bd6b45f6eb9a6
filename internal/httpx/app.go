package httpx

import (
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/reqid"
)

// AppConfig configures the admin plane's Fiber app.
type AppConfig struct {
	Logger *slog.Logger
	// BodyLimit bounds request bodies (default 1 MiB).
	BodyLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout bound connections
	// (defaults 15s, 30s, 120s).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
}

// NewApp returns a Fiber app with the settings of docs/design/0000-architecture.md §11 and the
// common middleware: panic recovery, request IDs, access logs, and the
// refusal of text no store can keep (textGuard).
func NewApp(cfg AppConfig) *fiber.App {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 15 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	app := fiber.New(fiber.Config{
		// Values handed to async work must not alias reused buffers.
		Immutable: true,
		// Large JWTs with act chains fit in the headers.
		ReadBufferSize:        32 << 10,
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		ErrorHandler:          ErrorHandler(cfg.Logger),
		DisableStartupMessage: true,
		AppName:               "xavyo",
		StrictRouting:         false,
		CaseSensitive:         true,
		// Reject requests whose Content-Length exceeds the limit before
		// reading them.
		StreamRequestBody: false,
	})
	app.Use(recoverer(cfg.Logger), requestID, accessLog(cfg.Logger), textGuard)
	return app
}

func recoverer(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic serving request", "panic", r, "request_id", RequestID(c), "stack", string(debug.Stack()))
				err = apperr.New(apperr.KindInternal, "internal error")
			}
		}()
		return c.Next()
	}
}

const localRequestID = "xavyo.request_id"

// requestID takes a well-formed X-Request-ID from the client or makes one,
// echoes it, and puts it in the request context.
func requestID(c *fiber.Ctx) error {
	id := reqid.OrNew(c.Get(fiber.HeaderXRequestID))
	c.Locals(localRequestID, id)
	c.Set(fiber.HeaderXRequestID, id)
	c.SetUserContext(reqid.With(c.UserContext(), id))
	return c.Next()
}

// RequestID returns the request's ID.
func RequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

func accessLog(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		status := c.Response().StatusCode()
		if err != nil {
			// The error handler has not run yet; log the status it will set.
			status = StatusOf(apperr.KindOf(err))
			var fe *fiber.Error
			if errors.As(err, &fe) {
				status = fe.Code
			}
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", RequestID(c)),
			slog.String("method", c.Method()),
			slog.String("path", c.Path()),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", c.IP()),
		}
		if t, ok := c.Locals(localTenant).(string); ok {
			attrs = append(attrs, slog.String("tenant_id", t))
		}
		log.LogAttrs(c.UserContext(), level, "http request", attrs...)
		return err
	}
}
