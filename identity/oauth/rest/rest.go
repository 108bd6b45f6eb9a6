// Package rest serves each tenant issuer's OAuth endpoints on the admin
// plane: metadata (RFC 8414 and OpenID discovery, including the
// path-inserted forms), token, introspection and revocation.
package rest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/federation"
	"github.com/xavyo/xavyo/identity/token"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Handler serves the OAuth endpoints.
type Handler struct {
	Server  *oauth.Server
	Tenants *tenant.Service
	// Auth keeps people's SSO sessions and sign-in transactions.
	Auth SignIn
	// Pages are the tenant's sign-in pages, where authorization requests
	// and device codes send people who must sign in.
	Pages *authrest.Pages
	// Admin verifies admin bearer tokens (registration policy "token").
	Admin httpx.Authenticator
	// AgentURL is agent.public_url, where the mTLS aliases live.
	AgentURL string
	// SignOut signs people out of other protocols' applications first
	// (nil: none).
	SignOut []SignOutHook
}

// SignOutHook signs a person out of other protocols' applications (SAML
// single logout) before their SSO session ends: it may take the browser
// away (true), to bring it back to resume, which finishes the sign-out.
type SignOutHook func(c *fiber.Ctx, t *tenant.Tenant, bs *auth.BrowserSession, resume string) (bool, error)

// SignIn is what the OpenID provider's pages need of identity/auth.
type SignIn interface {
	authrest.PageAuth
	EndBrowserSession(ctx context.Context, t *tenant.Tenant, bs *auth.BrowserSession) error
}

// Mount registers the routes on the admin plane.
func (h *Handler) Mount(app *fiber.App) {
	app.Get("/t/:slug/.well-known/oauth-authorization-server", h.metadata)
	app.Get("/t/:slug/.well-known/openid-configuration", h.metadata)
	app.Get("/.well-known/oauth-authorization-server/t/:slug", h.metadata)
	app.Get("/.well-known/openid-configuration/t/:slug", h.metadata)
	app.Get("/t/:slug/authorize", h.authorizeGet)
	app.Post("/t/:slug/authorize", h.authorizePost)
	app.Get("/t/:slug/consent", h.consent)
	app.Post("/t/:slug/consent", h.consent)
	app.Post("/t/:slug/device_authorization", h.deviceAuthorization)
	app.Get("/t/:slug/device", h.deviceGet)
	app.Post("/t/:slug/device", h.devicePost)
	app.Get("/t/:slug/end_session", h.endSessionGet)
	app.Post("/t/:slug/end_session", h.endSessionPost)
	// The person's own sign-out page: end_session without a client.
	app.Get("/t/:slug/logout", h.endSessionGet)
	app.Post("/t/:slug/logout", h.endSessionPost)
	h.Pages.Register(purposeAuthorize, authorizeFlow{h})
	h.Pages.Register(purposeDevice, deviceFlow{h})
	app.Post("/t/:slug/token", h.token)
	app.Post("/t/:slug/register", h.register)
	app.Get("/t/:slug/register/:client_id", h.registration)
	app.Put("/t/:slug/register/:client_id", h.registration)
	app.Delete("/t/:slug/register/:client_id", h.registration)
	app.Post("/t/:slug/introspect", h.introspect)
	app.Post("/t/:slug/revoke", h.revoke)
}

// write renders a result or an RFC 6749 §5.2 error, never cached.
func (h *Handler) write(c *fiber.Ctx, v any, err error) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	if n := h.Server.DPoPNonce(); n != "" {
		c.Set("DPoP-Nonce", n)
	}
	if err == nil {
		if tr, ok := v.(*oauth.TokenResponse); ok && c.Locals(dpopBound) != nil {
			tr.TokenType = "DPoP"
		}
		return c.JSON(v)
	}
	oe := h.Server.Render(c.UserContext(), err)
	if oe.Code == "invalid_client" && oe.Status == 401 {
		c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="xavyo"`)
	}
	return c.Status(oe.Status).JSON(oe)
}

func (h *Handler) tenant(c *fiber.Ctx) (*tenant.Tenant, context.Context, error) {
	t, err := h.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nil, nil, &oauth.Error{Code: "invalid_request", Description: "no such issuer", Status: 404}
	}
	if err != nil {
		return nil, nil, err
	}
	return t, store.WithTenant(c.UserContext(), t.ID), nil
}

// Metadata is the authorization server's metadata.
type Metadata struct {
	Issuer                                string   `json:"issuer"`
	AuthorizationEndpoint                 string   `json:"authorization_endpoint"`
	EndSessionEndpoint                    string   `json:"end_session_endpoint"`
	DeviceAuthorizationEndpoint           string   `json:"device_authorization_endpoint"`
	RegistrationEndpoint                  string   `json:"registration_endpoint,omitempty"`
	CIMDSupported                         bool     `json:"client_id_metadata_document_supported"`
	CodeChallengeMethodsSupported         []string `json:"code_challenge_methods_supported"`
	DPoPSigningAlgValuesSupported         []string `json:"dpop_signing_alg_values_supported"`
	AuthorizationResponseISS              bool     `json:"authorization_response_iss_parameter_supported"`
	TokenEndpoint                         string   `json:"token_endpoint"`
	JWKSURI                               string   `json:"jwks_uri"`
	IntrospectionEndpoint                 string   `json:"introspection_endpoint"`
	RevocationEndpoint                    string   `json:"revocation_endpoint"`
	UserinfoEndpoint                      string   `json:"userinfo_endpoint"`
	GrantTypesSupported                   []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported     []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods      []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods         []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                       []string `json:"scopes_supported"`
	ResponseTypesSupported                []string `json:"response_types_supported"`
	SubjectTypesSupported                 []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported      []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthSigningAlgsSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	// OpenID Connect sign-in: prompt values (OpenID Connect Prompt Create
	// registry name), the claims ID tokens carry, the classes of sign-in.
	PromptValuesSupported  []string `json:"prompt_values_supported"`
	ResponseModesSupported []string `json:"response_modes_supported"`
	// OpenID Connect Back-Channel Logout 1.0.
	BackchannelLogoutSupported         bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported  bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported        bool     `json:"frontchannel_logout_supported"`
	FrontchannelLogoutSessionSupported bool     `json:"frontchannel_logout_session_supported"`
	ClaimsSupported                    []string `json:"claims_supported"`
	ACRValuesSupported                 []string `json:"acr_values_supported"`
	// RFC 8705.
	MTLSEndpointAliases             map[string]string `json:"mtls_endpoint_aliases"`
	TLSClientCertificateBoundTokens bool              `json:"tls_client_certificate_bound_access_tokens"`
}

func (h *Handler) metadata(c *fiber.Ctx) error {
	t, _, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	iss := h.Server.Issuer(t.Slug)
	auth := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	md := Metadata{
		Issuer: iss, TokenEndpoint: iss + "/token", JWKSURI: iss + "/jwks", IntrospectionEndpoint: iss + "/introspect",
		RevocationEndpoint: iss + "/revoke", UserinfoEndpoint: iss + "/userinfo",
		GrantTypesSupported: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials, oauth.GrantTokenExchange,
			oauth.GrantJWTBearer, oauth.GrantDeviceCode},
		AuthorizationEndpoint:         iss + "/authorize",
		EndSessionEndpoint:            iss + "/end_session",
		DeviceAuthorizationEndpoint:   iss + "/device_authorization",
		RegistrationEndpoint:          iss + "/register",
		CIMDSupported:                 true,
		CodeChallengeMethodsSupported: []string{"S256"}, DPoPSigningAlgValuesSupported: dpop.AlgorithmNames(),
		AuthorizationResponseISS: true,
		// Public clients ("none") use the token endpoint (code, refresh)
		// and revoke their own tokens; introspection is for confidential
		// clients only.
		TokenEndpointAuthMethodsSupported: append(slices.Clone(auth), "none"), IntrospectionEndpointAuthMethods: auth,
		RevocationEndpointAuthMethods: append(slices.Clone(auth), "none"),
		ScopesSupported:               []string{"mcp", "a2a", "openid", "profile", "email", "offline_access"},
		ResponseTypesSupported:        []string{"code"}, SubjectTypesSupported: []string{"public", "pairwise"},
		PromptValuesSupported:      []string{"none", "login", "consent", "select_account"},
		ClaimsSupported:            []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "email"},
		ACRValuesSupported:         []string{oauth.ACRPassword, oauth.ACRMFA, oauth.ACRPhishingResistant},
		ResponseModesSupported:     []string{"query", "fragment", "form_post"},
		BackchannelLogoutSupported: true, BackchannelLogoutSessionSupported: true,
		FrontchannelLogoutSupported: true, FrontchannelLogoutSessionSupported: true,
		IDTokenSigningAlgValuesSupported:      []string{"ES256", "RS256"},
		TokenEndpointAuthSigningAlgsSupported: []string{"ES256", "RS256", "PS256", "EdDSA"},
		MTLSEndpointAliases:                   map[string]string{"token_endpoint": strings.TrimSuffix(h.AgentURL, "/") + "/t/" + t.Slug + "/oauth/token"},
		TLSClientCertificateBoundTokens:       true,
	}
	md.TokenEndpointAuthMethodsSupported = append(slices.Clone(auth), "tls_client_auth", "self_signed_tls_client_auth", "none")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(md)
}

// client authenticates the client: private_key_jwt when the form carries
// an assertion, else a secret from Basic auth or the form (one method only).
func (h *Handler) client(c *fiber.Ctx, ctx context.Context) (*oauth.Client, error) {
	if at := c.FormValue("client_assertion_type"); at != "" || c.FormValue("client_assertion") != "" {
		if at != oauth.AssertionType || c.FormValue("client_secret") != "" || c.Get(fiber.HeaderAuthorization) != "" {
			return nil, &oauth.Error{Code: "invalid_request", Description: "use one client authentication method; client_assertion_type must be jwt-bearer", Status: 400}
		}
		slug := c.Params("slug")
		return h.Server.AuthenticateAssertion(ctx, c.FormValue("client_assertion"), c.FormValue("client_id"), slug,
			h.Server.Issuer(slug)+c.Path()[len("/t/"+slug):], c.IP())
	}
	id, secret, _, err := credentials(c)
	if err != nil {
		return nil, err
	}
	return h.Server.Authenticate(ctx, id, secret, c.IP())
}

// relyingParty names the relying party of a token-endpoint-style request:
// a public client by client_id, a confidential one by its credentials.
func (h *Handler) relyingParty(c *fiber.Ctx, ctx context.Context) (string, bool, error) {
	if c.FormValue("client_assertion") != "" || c.FormValue("client_assertion_type") != "" {
		if c.FormValue("client_assertion_type") != oauth.AssertionType || c.FormValue("client_secret") != "" || c.Get(fiber.HeaderAuthorization) != "" {
			return "", false, &oauth.Error{Code: "invalid_request", Description: "use one client authentication method; client_assertion_type must be jwt-bearer", Status: 400}
		}
		slug := c.Params("slug")
		app, err := h.Server.AuthenticateAppAssertion(ctx, c.FormValue("client_assertion"), c.FormValue("client_id"), slug,
			h.Server.Issuer(slug)+c.Path()[len("/t/"+slug):], c.IP())
		if err != nil {
			return "", false, err
		}
		return app.ClientID, true, nil
	}
	if c.FormValue("client_secret") != "" || c.Get(fiber.HeaderAuthorization) != "" {
		id, secret, method, err := credentials(c)
		if err != nil {
			return "", false, err
		}
		app, err := h.Server.AuthenticateApp(ctx, id, secret, method, c.IP())
		if err != nil {
			return "", false, err
		}
		return app.ClientID, true, nil
	}
	if c.FormValue("client_id") == "" {
		return "", false, &oauth.Error{Code: "invalid_client", Description: "name the client (client_id), or authenticate it", Status: 401}
	}
	return c.FormValue("client_id"), false, nil
}

// credentials reads a client's id and secret from HTTP Basic
// (client_secret_basic) or the form (client_secret_post), and says which.
// Assertions are not credentials here.
func credentials(c *fiber.Ctx) (id, secret, method string, err error) {
	id, secret = c.FormValue("client_id"), c.FormValue("client_secret")
	if c.FormValue("client_assertion") != "" || c.FormValue("client_assertion_type") != "" {
		return "", "", "", &oauth.Error{Code: "invalid_client", Description: "this client authenticates with its secret", Status: 401}
	}
	hdr := c.Get(fiber.HeaderAuthorization)
	if hdr == "" {
		return id, secret, "client_secret_post", nil
	}
	scheme, value, _ := strings.Cut(hdr, " ")
	if !strings.EqualFold(scheme, "Basic") || secret != "" {
		return "", "", "", &oauth.Error{Code: "invalid_request", Description: "use one client authentication method", Status: 400}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return "", "", "", oauth.ErrInvalidClient
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", "", oauth.ErrInvalidClient
	}
	// RFC 6749 §2.3.1: both parts are form-urlencoded.
	bu, err1 := url.QueryUnescape(u)
	bp, err2 := url.QueryUnescape(p)
	if err1 != nil || err2 != nil || (id != "" && id != bu) {
		return "", "", "", oauth.ErrInvalidClient
	}
	return bu, bp, "client_secret_basic", nil
}

func multi(c *fiber.Ctx, key string) []string {
	var out []string
	for _, v := range c.Request().PostArgs().PeekMulti(key) {
		out = append(out, string(v))
	}
	return out
}

// dpopBound marks a token request that proved a DPoP key: its tokens are
// bound to it and of type DPoP.
const dpopBound = "xavyo.dpop"

// proveKey checks a token request's DPoP proof, if it has one (RFC 9449
// §5), and returns ctx binding the tokens minted in it to its key.
func (h *Handler) proveKey(c *fiber.Ctx, ctx context.Context, t *tenant.Tenant) (context.Context, error) {
	proofs := c.Request().Header.PeekAll("DPoP")
	if len(proofs) == 0 {
		return ctx, nil
	}
	if len(proofs) > 1 {
		return nil, &oauth.Error{Code: "invalid_dpop_proof", Description: "one DPoP proof per request", Status: 400}
	}
	p, err := h.Server.CheckProof(ctx, t.ID, string(proofs[0]), fiber.MethodPost, h.Server.Issuer(t.Slug)+"/token")
	switch {
	case err == nil:
	case errors.Is(err, token.ErrUseNonce):
		return nil, &oauth.Error{Code: "use_dpop_nonce", Description: apperr.PublicMessage(err), Status: 400}
	case apperr.KindOf(err) == apperr.KindUnavailable || apperr.KindOf(err) == apperr.KindInternal:
		return nil, err
	default:
		return nil, &oauth.Error{Code: "invalid_dpop_proof", Description: apperr.PublicMessage(err), Status: 400}
	}
	c.Locals(dpopBound, true)
	return token.WithDPoPKey(ctx, p.JKT), nil
}

func (h *Handler) token(c *fiber.Ctx) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationForm) {
		return h.write(c, nil, &oauth.Error{Code: "invalid_request", Description: "the token request is application/x-www-form-urlencoded", Status: 400})
	}
	if ctx, err = h.proveKey(c, ctx, t); err != nil {
		return h.write(c, nil, err)
	}
	switch c.FormValue("grant_type") {
	case oauth.GrantJWTBearer:
		if federation.IsIDJAG(c.FormValue("assertion")) {
			// An enterprise IdP's identity assertion grant: presented by
			// the client it was issued for, which authenticates.
			clientID, authenticated, err := h.relyingParty(c, ctx)
			if err != nil {
				return h.write(c, nil, err)
			}
			out, err := h.Server.RedeemIDJAG(ctx, t.Slug, oauth.RelyingParty{ClientID: clientID, Authenticated: authenticated}, c.FormValue("assertion"),
				strings.Fields(c.FormValue("scope")), multi(c, "resource"))
			return h.write(c, out, err)
		}
		// RFC 7523 §2.1: the assertion is the grant — signed by a key the
		// NHI registered, about itself (iss = sub = its client_id).
		if c.FormValue("client_secret") != "" || c.Get(fiber.HeaderAuthorization) != "" || c.FormValue("client_assertion") != "" {
			return h.write(c, nil, &oauth.Error{Code: "invalid_request", Description: "the jwt-bearer grant authenticates by its assertion", Status: 400})
		}
		slug := c.Params("slug")
		cl, err := h.Server.AuthenticateAssertion(ctx, c.FormValue("assertion"), c.FormValue("client_id"), slug, h.Server.Issuer(slug)+"/token", c.IP())
		if err != nil {
			return h.write(c, nil, &oauth.Error{Code: "invalid_grant", Description: "the assertion is not valid", Status: 400})
		}
		out, err := h.Server.ClientCredentials(ctx, t.Slug, cl, strings.Fields(c.FormValue("scope")), multi(c, "resource"))
		return h.write(c, out, err)
	case oauth.GrantTokenExchange:
		if c.FormValue("requested_token_type") != oauth.TokenTypeIDJAG {
			break
		}
		if c.FormValue("subject_token_type") != oauth.TokenTypeIDToken {
			// An agent acting for the person whose token it presents.
			cl, err := h.client(c, ctx)
			if err != nil {
				return h.write(c, nil, err)
			}
			out, err := h.Server.IssueIDJAGForAgent(ctx, cl, c.FormValue("subject_token"), c.FormValue("subject_token_type"), c.FormValue("audience"),
				multi(c, "resource"), strings.Fields(c.FormValue("scope")))
			return h.write(c, out, err)
		}
		// An ID-JAG for a person's ID token: asked by the client the ID
		// token was issued to.
		clientID, authenticated, err := h.relyingParty(c, ctx)
		if err != nil {
			return h.write(c, nil, err)
		}
		out, err := h.Server.IssueIDJAG(ctx, t.Slug, oauth.RelyingParty{ClientID: clientID, Authenticated: authenticated}, c.FormValue("subject_token"),
			c.FormValue("subject_token_type"), c.FormValue("audience"), multi(c, "resource"), strings.Fields(c.FormValue("scope")))
		return h.write(c, out, err)
	case oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantDeviceCode:
		// Relying parties: a public client (auth method none) names
		// itself, PKCE and rotation protect the grant; a confidential one
		// authenticates with its secret as it registered. An agent may
		// redeem a device code a person approved for it.
		var rp oauth.RelyingParty
		if c.FormValue("grant_type") == oauth.GrantDeviceCode {
			rp, err = h.deviceParty(c, ctx)
		} else {
			var clientID string
			var authenticated bool
			clientID, authenticated, err = h.relyingParty(c, ctx)
			rp = oauth.RelyingParty{ClientID: clientID, Authenticated: authenticated}
		}
		if err != nil {
			return h.write(c, nil, err)
		}
		switch c.FormValue("grant_type") {
		case oauth.GrantAuthorizationCode:
			out, err := h.Server.ExchangeCode(ctx, t.Slug, rp, c.FormValue("code"), c.FormValue("redirect_uri"), c.FormValue("code_verifier"))
			return h.write(c, out, err)
		case oauth.GrantDeviceCode:
			out, err := h.Server.RedeemDevice(ctx, t.Slug, rp, c.FormValue("device_code"))
			return h.write(c, out, err)
		}
		out, err := h.Server.RefreshForClient(ctx, rp, c.FormValue("refresh_token"))
		return h.write(c, out, err)
	}
	cl, err := h.client(c, ctx)
	if err != nil {
		return h.write(c, nil, err)
	}
	scope := strings.Fields(c.FormValue("scope"))
	switch c.FormValue("grant_type") {
	case oauth.GrantClientCredentials:
		out, err := h.Server.ClientCredentials(ctx, t.Slug, cl, scope, multi(c, "resource"))
		return h.write(c, out, err)
	case oauth.GrantTokenExchange:
		out, err := h.Server.Exchange(ctx, t.Slug, cl, c.FormValue("subject_token"), c.FormValue("subject_token_type"),
			c.FormValue("actor_token"), c.FormValue("actor_token_type"), scope, multi(c, "resource"), multi(c, "audience"))
		return h.write(c, out, err)
	case "":
		return h.write(c, nil, &oauth.Error{Code: "invalid_request", Description: "grant_type is required", Status: 400})
	default:
		return h.write(c, nil, &oauth.Error{Code: "unsupported_grant_type", Description: "this issuer does not support that grant", Status: 400})
	}
}

func (h *Handler) introspect(c *fiber.Ctx) error {
	_, ctx, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	if _, err := h.client(c, ctx); err != nil {
		return h.write(c, nil, err)
	}
	return h.write(c, h.Server.Introspect(ctx, c.FormValue("token")), nil)
}

func (h *Handler) revoke(c *fiber.Ctx) error {
	_, ctx, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	var cl *oauth.Client
	if c.Get(fiber.HeaderAuthorization) == "" && c.FormValue("client_secret") == "" && c.FormValue("client_assertion") == "" {
		// A public client (auth method none) names itself, and may revoke
		// only its own tokens (RFC 7009 §2.1).
		cl, err = h.Server.PublicClient(ctx, c.FormValue("client_id"))
	} else {
		cl, err = h.client(c, ctx)
	}
	if err != nil {
		return h.write(c, nil, err)
	}
	if c.FormValue("token") == "" {
		return h.write(c, nil, &oauth.Error{Code: "invalid_request", Description: "token is required", Status: 400})
	}
	if err := h.Server.Revoke(ctx, cl, c.FormValue("token"), c.FormValue("token_type_hint")); err != nil {
		return h.write(c, nil, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendStatus(200)
}

// MountClients registers the admin REST of relying-party clients.
func (h *Handler) MountClients(api *httpx.API) {
	t := []string{"oauth clients"}
	roles := []string{principal.RoleTenantAdmin}
	rs := []string{"resource servers"}
	api.Handle(httpx.Route{Method: "GET", Path: "/resource-servers", OperationID: "listResourceServers",
		Summary: "Other organizations' authorization servers this tenant's people may reach with an ID-JAG", Tags: rs,
		Roles: []string{principal.RoleTenantAdmin, principal.RoleAuditor}, Response: []oauth.ResourceServer{}, Handler: func(c *fiber.Ctx) error {
			out, err := h.Server.ResourceServers(c.UserContext())
			if err != nil {
				return err
			}
			if out == nil {
				out = []*oauth.ResourceServer{}
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/resource-servers", OperationID: "createResourceServer",
		Summary: "Register an authorization server people may get ID-JAGs for (holders of its entitlement)", Tags: rs, Roles: roles,
		Request: oauth.ResourceServerInput{}, Response: oauth.ResourceServer{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			var in oauth.ResourceServerInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			out, err := h.Server.CreateResourceServer(c.UserContext(), in)
			if err != nil {
				return err
			}
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/resource-servers/:id", OperationID: "deleteResourceServer", Summary: "Remove a resource server",
		Tags: rs, Roles: roles, Status: 204, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.Server.DeleteResourceServer(c.UserContext(), id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
	api.Handle(httpx.Route{Method: "GET", Path: "/clients", OperationID: "listClients", Summary: "Relying-party OAuth clients", Tags: t,
		Roles: []string{principal.RoleTenantAdmin, principal.RoleAuditor}, Response: []oauth.AppClient{},
		Handler: func(c *fiber.Ctx) error {
			out, err := h.Server.AppClients(c.UserContext())
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/clients", OperationID: "createClient",
		Summary: "Register a relying-party client: public (authorization code + PKCE) or confidential (a secret, shown once)", Tags: t, Roles: roles,
		Request: oauth.AppClientInput{}, Response: oauth.AppClient{}, Status: 201, Handler: httpx.CreateJSON(h.Server.CreateAppClient, nil)})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/clients/:id", OperationID: "deleteClient", Summary: "Remove a relying-party client",
		Tags: t, Roles: roles, Status: 204, Handler: httpx.DeleteByID(h.Server.DeleteAppClient)})

	me := []string{"me"}
	api.Handle(httpx.Route{Method: "GET", Path: "/me/consents", OperationID: "listMyConsents", Summary: "What you allowed applications",
		Tags: me, Response: []oauth.Consent{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			out, err := h.Server.Consents(c.UserContext(), id)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/me/consents/:id", OperationID: "revokeMyConsent",
		Summary: "Withdraw your consent to an application (the tokens it holds for you end)", Tags: me, Status: 204,
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			cid, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.Server.RevokeConsent(c.UserContext(), id, cid); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
}

// register is RFC 7591 dynamic registration under the tenant's policy.
func (h *Handler) register(c *fiber.Ctx) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	pol := tenant.PoliciesOf(t).OAuth
	switch pol.Registration {
	case oauth.RegistrationOff:
		return h.write(c, nil, &oauth.Error{Code: "access_denied", Description: "dynamic registration is off for this issuer", Status: 403})
	case oauth.RegistrationToken:
		raw, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
		if !ok || h.Admin == nil {
			return h.write(c, nil, &oauth.Error{Code: "invalid_token", Description: "registration needs a tenant admin's bearer token", Status: 401})
		}
		p, err := h.Admin.Authenticate(ctx, "Bearer", raw)
		if err != nil || p == nil || p.TenantID != t.ID || !p.HasRole(principal.RoleTenantAdmin) {
			return h.write(c, nil, &oauth.Error{Code: "invalid_token", Description: "registration needs a tenant admin's bearer token", Status: 401})
		}
	}
	var in oauth.RegistrationRequest
	if err := decodeLenient(c.Body(), &in); err != nil {
		return h.write(c, nil, &oauth.Error{Code: "invalid_client_metadata", Description: "the body must be a JSON object of client metadata", Status: 400})
	}
	out, err := h.Server.Register(ctx, t.Slug, in, pol.ConfidentialRegistration)
	if err != nil {
		return h.write(c, nil, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(201).JSON(out)
}

// registration serves RFC 7592 client configuration: read, replace and
// delete a dynamically registered client with its registration access
// token.
func (h *Handler) registration(c *fiber.Ctx) error {
	t, ctx, err := h.tenant(c)
	if err != nil {
		return h.write(c, nil, err)
	}
	raw, _ := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	clientID := c.Params("client_id")
	switch c.Method() {
	case fiber.MethodGet:
		out, err := h.Server.Registration(ctx, t.Slug, clientID, raw)
		return h.write(c, out, err)
	case fiber.MethodPut:
		var in struct {
			oauth.RegistrationRequest
			ClientID string `json:"client_id"`
		}
		if err := decodeLenient(c.Body(), &in); err != nil {
			return h.write(c, nil, &oauth.Error{Code: "invalid_client_metadata", Description: "the body must be a JSON object of client metadata", Status: 400})
		}
		out, err := h.Server.UpdateRegistration(ctx, t.Slug, clientID, raw, in.RegistrationRequest, in.ClientID)
		return h.write(c, out, err)
	default:
		if err := h.Server.DeleteRegistration(ctx, clientID, raw); err != nil {
			return h.write(c, nil, err)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// decodeLenient reads RFC 7591 metadata: unknown members are ignored, as
// the RFC requires of servers.
func decodeLenient(body []byte, v any) error {
	if len(body) == 0 || len(body) > 64<<10 {
		return errors.New("bad size")
	}
	return json.Unmarshal(body, v)
}
