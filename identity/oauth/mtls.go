package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-ldap/ldap/v3"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/clientcert"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/textguard"
)

// TenantsBySlug resolves the tenant of a /t/{slug} path.
type TenantsBySlug interface {
	Resolve(ctx context.Context, slug string) (*tenant.Tenant, error)
}

// MTLSHandlers serve the RFC 8705 mTLS alias of the token endpoint on
// the agent plane, where client certificates are seen: tls_client_auth
// with xavyo-issued certificates, and certificate-bound tokens.
type MTLSHandlers struct {
	Server  *Server
	Tenants TenantsBySlug
}

// Mount registers the alias.
func (h *MTLSHandlers) Mount(handle func(pattern string, hd http.Handler)) {
	handle("POST /t/{slug}/oauth/token", http.HandlerFunc(h.token))
}

func (h *MTLSHandlers) writeJSON(w http.ResponseWriter, r *http.Request, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		oe := h.Server.Render(r.Context(), err)
		w.WriteHeader(oe.Status)
		_ = json.NewEncoder(w).Encode(oe)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func (h *MTLSHandlers) token(w http.ResponseWriter, r *http.Request) {
	t, err := h.Tenants.Resolve(r.Context(), r.PathValue("slug"))
	if err != nil {
		h.writeJSON(w, r, nil, issuerError(err))
		return
	}
	ctx := store.WithTenant(r.Context(), t.ID)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || r.ParseForm() != nil {
		h.writeJSON(w, r, nil, &Error{Code: "invalid_request", Description: "the token request is application/x-www-form-urlencoded", Status: 400})
		return
	}
	if err := textguard.CheckValues(r.PostForm); err != nil {
		h.writeJSON(w, r, nil, &Error{Code: "invalid_request", Description: apperr.PublicMessage(err), Status: 400})
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	p := principal.From(ctx)
	gt := r.PostForm.Get("grant_type")
	agent := (p != nil && p.AuthMethod == principal.MethodMTLS) || h.Server.IsAgentClient(ctx, r.PostForm.Get("client_id"))
	if gt == GrantAuthorizationCode || gt == GrantRefreshToken || (gt == GrantDeviceCode && !agent) {
		// A relying party (a web application) authenticating with its
		// certificate: tls_client_auth or self_signed_tls_client_auth.
		app, thumb, err := h.Server.AuthenticateAppCertificate(ctx, r.PostForm.Get("client_id"), host)
		if err != nil {
			h.writeJSON(w, r, nil, err)
			return
		}
		rp := RelyingParty{ClientID: app.ClientID, Authenticated: true, CertThumbprint: thumb}
		f := r.PostForm
		var out *TokenResponse
		switch gt {
		case GrantAuthorizationCode:
			out, err = h.Server.ExchangeCode(ctx, t.Slug, rp, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"))
		case GrantRefreshToken:
			out, err = h.Server.RefreshForClient(ctx, rp, f.Get("refresh_token"))
		default:
			out, err = h.Server.RedeemDevice(ctx, t.Slug, rp, f.Get("device_code"))
		}
		h.writeJSON(w, r, out, err)
		return
	}
	var c *Client
	switch {
	case p != nil && p.AuthMethod == principal.MethodMTLS && p.TenantID == t.ID:
		// tls_client_auth: a certificate from xavyo's CA names its NHI.
		id, err := uuid.Parse(p.SubjectID)
		if err != nil {
			h.writeJSON(w, r, nil, ErrInvalidClient)
			return
		}
		if c, err = h.Server.CertificateClient(ctx, id, p.CertThumbprint); err != nil {
			h.writeJSON(w, r, nil, err)
			return
		}
	case clientcert.SelfSigned(ctx) != "":
		// self_signed_tls_client_auth: the named client registered this certificate.
		if c, err = h.Server.SelfSignedClient(ctx, r.PostForm.Get("client_id"), clientcert.SelfSigned(ctx), host); err != nil {
			h.writeJSON(w, r, nil, err)
			return
		}
	default:
		h.writeJSON(w, r, nil, ErrInvalidClient)
		return
	}
	if cid := r.PostForm.Get("client_id"); cid != "" && cid != c.ID {
		h.writeJSON(w, r, nil, ErrInvalidClient)
		return
	}
	scope := strings.Fields(r.PostForm.Get("scope"))
	switch r.PostForm.Get("grant_type") {
	case GrantClientCredentials:
		out, err := h.Server.ClientCredentials(ctx, t.Slug, c, scope, r.PostForm["resource"])
		h.writeJSON(w, r, out, err)
	case GrantTokenExchange:
		f := r.PostForm
		out, err := h.Server.Exchange(ctx, t.Slug, c, f.Get("subject_token"), f.Get("subject_token_type"), f.Get("actor_token"),
			f.Get("actor_token_type"), scope, f["resource"], f["audience"])
		h.writeJSON(w, r, out, err)
	case GrantDeviceCode:
		// An agent redeems the device code a person approved for it.
		out, err := h.Server.RedeemDevice(ctx, t.Slug, RelyingParty{ClientID: c.ID, Authenticated: true, Agent: c}, r.PostForm.Get("device_code"))
		h.writeJSON(w, r, out, err)
	default:
		h.writeJSON(w, r, nil, &Error{Code: "unsupported_grant_type", Description: "this endpoint issues client credentials and token exchanges", Status: 400})
	}
}

// AuthenticateAppCertificate is RFC 8705 client authentication of a
// relying party at the mTLS token endpoint: tls_client_auth (a certificate
// the agent plane verified to a trusted CA, whose subject is the DN the
// client registered) or self_signed_tls_client_auth (one of the
// certificates the client registered). It returns the client and the
// certificate's x5t#S256. Failures are counted per client and address and
// all answer ErrInvalidClient.
func (s *Server) AuthenticateAppCertificate(ctx context.Context, clientID, remote string) (*AppClient, string, error) {
	key := clientID + "|" + remote
	if !s.limiter.allow(key, s.cfg.Now()) {
		return nil, "", ErrSlowDown
	}
	c, err := s.appClient(ctx, clientID)
	if apperr.KindOf(err) == apperr.KindUnavailable {
		return nil, "", AsError(err)
	}
	thumb, ok := "", false
	if err == nil && clientID != "" {
		switch c.TokenEndpointAuthMethod {
		case "tls_client_auth":
			if v := clientcert.VerifiedOf(ctx); v.Leaf != nil {
				want, e1 := ldap.ParseDN(c.TLSClientAuthSubjectDN)
				got, e2 := ldap.ParseDN(v.Leaf.Subject.String())
				ok, thumb = e1 == nil && e2 == nil && want.EqualFold(got), v.Thumbprint
			}
		case "self_signed_tls_client_auth":
			if thumb = clientcert.SelfSigned(ctx); thumb != "" {
				var set jose.JSONWebKeySet
				_ = json.Unmarshal([]byte(c.jwks), &set)
				for _, k := range set.Keys {
					if len(k.Certificates) > 0 {
						sum := sha256.Sum256(k.Certificates[0].Raw)
						ok = ok || base64.RawURLEncoding.EncodeToString(sum[:]) == thumb
					}
				}
			}
		}
	}
	if !ok {
		s.limiter.fail(key, s.cfg.Now())
		return nil, "", ErrInvalidClient
	}
	return c, thumb, nil
}

// issuerError is a failed tenant lookup: no such issuer, or the store
// cannot say now.
func issuerError(err error) *Error { return orNotFound(err, "no such issuer") }

// orNotFound renders a failed lookup: nothing found (err nil or of kind
// NotFound) is 404 with msg; anything else keeps its own answer (a store
// that cannot answer is 503, never "not found").
func orNotFound(err error, msg string) *Error {
	if err == nil || apperr.KindOf(err) == apperr.KindNotFound {
		return &Error{Code: "invalid_request", Description: msg, Status: 404}
	}
	return AsError(err)
}

// ResourceMetadata is RFC 9728 protected-resource metadata for the
// tenant's MCP endpoints, served on the agent plane so off-the-shelf MCP
// clients find the tenant's authorization server.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	// RFC 8705 certificate-bound tokens are accepted.
	TLSClientCertificateBoundTokens bool `json:"tls_client_certificate_bound_access_tokens"`
	// DPoP-bound tokens (RFC 9449) are accepted, with proofs signed so.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported"`
	DPoPBoundAccessTokensRequired bool     `json:"dpop_bound_access_tokens_required"`
}

// MountResourceMetadata registers the RFC 9728 documents.
func (h *MTLSHandlers) MountResourceMetadata(handle func(pattern string, hd http.Handler)) {
	serve := func(w http.ResponseWriter, r *http.Request) {
		t, err := h.Tenants.Resolve(r.Context(), r.PathValue("slug"))
		if err != nil {
			h.writeJSON(w, r, nil, orNotFound(err, "no such resource"))
			return
		}
		res := h.Server.cfg.AgentURL + "/t/" + t.Slug + "/mcp"
		if server := r.PathValue("server"); server != "" {
			ok, err := h.Server.cfg.NHIs.Serves(store.WithTenant(r.Context(), t.ID), nhi.KindToolServer, server)
			if err != nil || !ok {
				h.writeJSON(w, r, nil, orNotFound(err, "no such resource"))
				return
			}
			res += "/" + server
		}
		h.writeJSON(w, r, ResourceMetadata{Resource: res, AuthorizationServers: []string{h.Server.Issuer(t.Slug)}, ScopesSupported: []string{"mcp"},
			BearerMethodsSupported: []string{"header"}, ResourceName: t.Name + " MCP gateway", TLSClientCertificateBoundTokens: true,
			DPoPSigningAlgValuesSupported: dpop.AlgorithmNames()}, nil)
	}
	handle("GET /.well-known/oauth-protected-resource/t/{slug}/mcp", http.HandlerFunc(serve))
	handle("GET /.well-known/oauth-protected-resource/t/{slug}/mcp/{server}", http.HandlerFunc(serve))
}
