package httpx

import (
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Scope says where a route works.
type Scope int

// Scopes.
const (
	// ScopeTenant routes work inside one tenant (store.WithTenant is set).
	ScopeTenant Scope = iota
	// ScopePlatform routes manage the platform itself (super_admin only).
	ScopePlatform
	// ScopeNone routes need no tenant (e.g. public documents, whoami).
	ScopeNone
)

// Param documents a query parameter.
type Param struct {
	Name        string
	Description string
	// Type is an OpenAPI scalar type (default "string").
	Type string
}

// Route is one admin API operation: how it is served, who may call it,
// and how it is documented — one table for both.
type Route struct {
	Method string
	// Path is relative to the API prefix, in Fiber syntax: /tenants/:id.
	Path        string
	OperationID string
	Summary     string
	Tags        []string
	// Public routes need no authentication.
	Public bool
	// Roles: any one of them admits the caller (super_admin admits all).
	Roles []string
	Scope Scope
	// Request is a value of the JSON body type (nil: no body).
	Request any
	// Example is a valid request body, shown in the document (and used by
	// tests that need one).
	Example any
	// Required names the body's members this operation requires beyond
	// what the Request type says (a type shared by create and update).
	Required []string
	// Response is a value of the JSON response type (nil: no body).
	Response any
	// Status is the success status (default 200).
	Status int
	Query  []Param
	// IfMatch documents an optional If-Match precondition.
	IfMatch bool
	// AllowRestricted admits principals that must change their password
	// first (logout, the password change itself).
	AllowRestricted bool
	// StepUp: where the caller's tenant asks for it, this risky operation
	// needs a recent sign-in with a second factor (RFC 9470); API keys
	// never pass.
	StepUp bool
	// StepUpWhen asks for step-up when it says this request is risky (by
	// what it changes: a grant of a high-risk tool); it runs in the
	// tenant of the request, before the handler.
	StepUpWhen func(c *fiber.Ctx) (bool, error)
	Handler    fiber.Handler
}

// APIConfig builds an API.
type APIConfig struct {
	Prefix         string
	Title, Version string
	Authenticators []Authenticator
	Tenants        TenantResolver
	// StepUp says which tenants ask for step-up (nil: none).
	StepUp      StepUpPolicy
	CrossTenant CrossTenantAuditor
	// Idempotency keeps answers to POSTs sent with an Idempotency-Key
	// (nil: the header is ignored).
	Idempotency Idempotency
}

// API registers routes under a prefix and documents each in its OpenAPI
// document.
type API struct {
	cfg    APIConfig
	router fiber.Router
	doc    *OpenAPI
}

// NewAPI mounts an API on app at cfg.Prefix.
func NewAPI(app *fiber.App, cfg APIConfig) *API {
	a := &API{cfg: cfg, doc: NewOpenAPI(cfg.Title, cfg.Version, cfg.Prefix)}
	a.router = app.Group(cfg.Prefix, authenticate(cfg.Authenticators))
	return a
}

// Doc returns the OpenAPI document of every route registered so far.
func (a *API) Doc() *OpenAPI { return a.doc }

// Prefix returns the mount path.
func (a *API) Prefix() string { return a.cfg.Prefix }

// Handle registers r.
func (a *API) Handle(r Route) {
	if r.Status == 0 {
		r.Status = fiber.StatusOK
	}
	rr := r
	chain := []fiber.Handler{authorize(&rr, a.cfg.Tenants, a.cfg.StepUp)}
	if r.Scope == ScopeTenant && !r.Public {
		chain = append(chain, scopeTenant(a.cfg.Tenants, a.cfg.CrossTenant))
	}
	if r.StepUpWhen != nil {
		chain = append(chain, stepUpWhen(&rr, a.cfg.StepUp))
	}
	if r.Method == fiber.MethodPost && !r.Public && a.cfg.Idempotency != nil {
		chain = append(chain, idempotent(a.cfg.Idempotency))
	}
	chain = append(chain, r.Handler)
	a.router.Add(r.Method, r.Path, chain...)
	a.doc.add(&rr)
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)\??`)

// OpenAPIPath converts a Fiber path to OpenAPI template syntax.
func OpenAPIPath(p string) string {
	return fiberParam.ReplaceAllString(p, "{$1}")
}

// PathParams lists a Fiber path's parameters.
func PathParams(p string) []string {
	var out []string
	for _, m := range fiberParam.FindAllStringSubmatch(p, -1) {
		out = append(out, m[1])
	}
	return out
}

// JoinPath joins a prefix and a path.
func JoinPath(prefix, p string) string {
	return strings.TrimSuffix(prefix, "/") + "/" + strings.TrimPrefix(p, "/")
}
