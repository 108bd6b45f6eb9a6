package oauth

import (
	"context"
	"strings"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Registration policies (per tenant).
const (
	RegistrationOpen  = "open"  // anyone may register a public client
	RegistrationToken = "token" // a tenant admin's bearer token is required
	RegistrationOff   = "off"
)

// RegistrationRequest is RFC 7591 client metadata (the subset served).
type RegistrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
}

// RegistrationResponse is RFC 7591 §3.2.1.
type RegistrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scope                   string   `json:"scope"`
}

// Register creates a public client from RFC 7591 metadata. Only public
// clients using the authorization code with PKCE are registered this way.
func (s *Server) Register(ctx context.Context, in RegistrationRequest) (*RegistrationResponse, error) {
	if in.TokenEndpointAuthMethod != "" && in.TokenEndpointAuthMethod != "none" {
		return nil, oerr(400, "invalid_client_metadata", "only public clients (token_endpoint_auth_method none) register here")
	}
	for _, g := range in.GrantTypes {
		if g != GrantAuthorizationCode && g != GrantRefreshToken {
			return nil, oerr(400, "invalid_client_metadata", "grant_types may be authorization_code and refresh_token")
		}
	}
	for _, r := range in.ResponseTypes {
		if r != "code" {
			return nil, oerr(400, "invalid_client_metadata", "response_types may be code")
		}
	}
	name := strings.TrimSpace(in.ClientName)
	if name == "" {
		name = "Unnamed client"
	}
	if len(name) > 200 {
		name = name[:200]
	}
	c, err := s.CreateAppClient(ctx, AppClientInput{Name: name, RedirectURIs: in.RedirectURIs, Scope: in.Scope})
	if err != nil {
		return nil, oerr(400, "invalid_redirect_uri", apperr.PublicMessage(err))
	}
	return &RegistrationResponse{ClientID: c.ClientID, ClientIDIssuedAt: c.CreatedAt.Unix(), ClientName: c.Name, RedirectURIs: c.RedirectURIs,
		TokenEndpointAuthMethod: "none", GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken}, ResponseTypes: []string{"code"},
		Scope: c.Scope}, nil
}
