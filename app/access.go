package app

import (
	"net"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/gateway"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/config"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/mcp"
	"github.com/xavyo/xavyo/pki"
)

// What end-to-end tests and the command line read of a built App. None of
// these is for changing it.

// Config is the configuration the App runs with (public URLs filled in).
func (s *App) Config() *config.Config { return s.cfg }

// DB is the store.
func (s *App) DB() *store.DB { return s.db }

// Bus carries change events between replicas.
func (s *App) Bus() *events.Bus { return s.bus }

// Tokens is the token service.
func (s *App) Tokens() *token.Service { return s.tokens }

// Hasher hashes and verifies passwords.
func (s *App) Hasher() *password.Hasher { return s.hasher }

// CA is the agent CA.
func (s *App) CA() *pki.CA { return s.ca }

// MCP is the MCP gateway.
func (s *App) MCP() *mcp.Gateway { return s.mcp }

// AdminPlane is the admin plane's HTTP application.
func (s *App) AdminPlane() *fiber.App { return s.admin }

// API is the admin API (its routes and OpenAPI document).
func (s *App) API() *httpx.API { return s.api }

// AgentPlane is the agent plane's server.
func (s *App) AgentPlane() *gateway.Server { return s.agent }

// AdminAddr is the admin plane's bound listen address.
func (s *App) AdminAddr() net.Addr { return s.adminLn.Addr() }

// AgentAddr is the agent plane's bound listen address.
func (s *App) AgentAddr() net.Addr { return s.agentLn.Addr() }
