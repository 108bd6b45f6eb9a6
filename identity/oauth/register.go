package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Registration policies (per tenant).
const (
	RegistrationOpen  = "open"  // anyone may register a client
	RegistrationToken = "token" // a tenant admin's bearer token is required
	RegistrationOff   = "off"
)

// RegistrationRequest is RFC 7591 client metadata (the subset served).
type RegistrationRequest struct {
	RedirectURIs            []string        `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string        `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI    string          `json:"backchannel_logout_uri,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	ClientProfile
}

// RegistrationResponse is RFC 7591 §3.2.1, with the RFC 7592 management
// credential: registration_access_token (shown at registration only) and
// registration_client_uri.
type RegistrationResponse struct {
	ClientID                string   `json:"client_id"`
	RegistrationAccessToken string   `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string   `json:"registration_client_uri"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI    string   `json:"backchannel_logout_uri,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	// ClientSecret is shown once, in the answer that registers the client;
	// it does not expire (client_secret_expires_at 0).
	ClientSecret          string          `json:"client_secret,omitempty"`
	ClientSecretExpiresAt *int64          `json:"client_secret_expires_at,omitempty"`
	JWKS                  json.RawMessage `json:"jwks,omitempty"`
	GrantTypes            []string        `json:"grant_types"`
	ResponseTypes         []string        `json:"response_types"`
	Scope                 string          `json:"scope"`
	ClientProfile
}

// checkMetadata validates RFC 7591 metadata and returns the client name.
func checkMetadata(in *RegistrationRequest) (string, *Error) {
	if err := validPostLogout(in.PostLogoutRedirectURIs); err != nil {
		return "", oerr(400, "invalid_client_metadata", apperr.PublicMessage(err))
	}
	if err := validBackchannel(in.BackchannelLogoutURI); err != nil {
		return "", oerr(400, "invalid_client_metadata", apperr.PublicMessage(err))
	}
	for _, g := range in.GrantTypes {
		if g != GrantAuthorizationCode && g != GrantRefreshToken && g != GrantDeviceCode {
			return "", oerr(400, "invalid_client_metadata", "grant_types may be authorization_code, refresh_token and "+GrantDeviceCode)
		}
	}
	for _, r := range in.ResponseTypes {
		if r != "code" {
			return "", oerr(400, "invalid_client_metadata", "response_types may be code")
		}
	}
	name := strings.TrimSpace(in.ClientName)
	if name == "" {
		name = "Unnamed client"
	}
	if len(name) > 200 {
		name = name[:200]
	}
	return name, nil
}

// Register creates a client from RFC 7591 metadata: a public one (code
// flow with PKCE) or, where the tenant allows it (confidential), one that
// authenticates at the token endpoint as it registers (a secret issued
// here, shown once; keys or certificates it registers; a certificate
// subject). The response carries an RFC 7592 registration access token
// (256-bit random, stored as SHA-256) for reading, updating and deleting
// the client.
func (s *Server) Register(ctx context.Context, slug string, in RegistrationRequest, confidential bool) (*RegistrationResponse, error) {
	name, oe := checkMetadata(&in)
	if oe != nil {
		return nil, oe
	}
	if in.TokenEndpointAuthMethod != "" && in.TokenEndpointAuthMethod != "none" && !confidential {
		return nil, oerr(400, "invalid_client_metadata", "this issuer registers public clients only (token_endpoint_auth_method none)")
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	rat := "xvr_" + base64.RawURLEncoding.EncodeToString(b[:])
	c, err := s.createAppClient(ctx, AppClientInput{Name: name, RedirectURIs: in.RedirectURIs, PostLogoutRedirectURIs: in.PostLogoutRedirectURIs,
		BackchannelLogoutURI: in.BackchannelLogoutURI, Scope: in.Scope, TokenEndpointAuthMethod: in.TokenEndpointAuthMethod, JWKS: in.JWKS,
		ClientProfile: in.ClientProfile}, digest(rat))
	if oe := metadataError(err); oe != nil {
		return nil, oe
	}
	if err != nil {
		// The store's failures are not the client's metadata: a 5xx,
		// its cause logged by the renderer.
		return nil, AsError(err)
	}
	out := s.registration(slug, c)
	out.RegistrationAccessToken = rat
	if c.ClientSecret != "" {
		var never int64
		out.ClientSecret, out.ClientSecretExpiresAt = c.ClientSecret, &never
	}
	return out, nil
}

// metadataError renders a client that could not be created from its
// metadata: the redirect URIs' own error code for them, the metadata's
// for the rest (nil for no error; a store failure is a 5xx).
func metadataError(err error) *Error {
	switch {
	case err == nil:
		return nil
	case apperr.KindOf(err) != apperr.KindInvalidArgument:
		return AsError(err)
	case len(apperr.FieldsOf(err)) > 0 && apperr.FieldsOf(err)[0].Field == "redirect_uris":
		return oerr(400, "invalid_redirect_uri", apperr.PublicMessage(err))
	}
	return oerr(400, "invalid_client_metadata", apperr.PublicMessage(err))
}

func (s *Server) registration(slug string, c *AppClient) *RegistrationResponse {
	out := &RegistrationResponse{ClientID: c.ClientID, RegistrationClientURI: s.Issuer(slug) + "/register/" + c.ClientID,
		ClientIDIssuedAt: c.CreatedAt.Unix(), ClientName: c.Name, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		BackchannelLogoutURI:    c.BackchannelLogoutURI,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode},
		ResponseTypes: []string{"code"},
		Scope:         c.Scope, ClientProfile: c.ClientProfile}
	if c.jwks != "" {
		out.JWKS = json.RawMessage(c.jwks)
	}
	return out
}

// errRAT answers every failed RFC 7592 request alike: unknown clients,
// clients registered otherwise and wrong tokens are not told apart.
var errRAT = &Error{Code: "invalid_token", Description: "the registration access token is not valid for this client", Status: 401}

// registered reads a dynamically registered client whose registration
// access token is rat (in a transaction, locked when lock).
func registered(ctx context.Context, tx *store.Tx, clientID, rat string, lock bool) (*AppClient, error) {
	c, err := appClientRow(ctx, tx, clientID, lock)
	if store.NoRows(err) {
		return nil, errRAT
	}
	if err != nil {
		return nil, err
	}
	if rat == "" || c.ratHash == "" || subtle.ConstantTimeCompare([]byte(c.ratHash), []byte(digest(rat))) != 1 {
		return nil, errRAT
	}
	return c, nil
}

// Registration reads a registered client (RFC 7592 §2.1).
func (s *Server) Registration(ctx context.Context, slug, clientID, rat string) (*RegistrationResponse, error) {
	var c *AppClient
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		c, err = registered(ctx, tx, clientID, rat, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.registration(slug, c), nil
}

// UpdateRegistration replaces a registered client's metadata (RFC 7592
// §2.2): the body carries the client_id and the full metadata.
func (s *Server) UpdateRegistration(ctx context.Context, slug, clientID, rat string, in RegistrationRequest, bodyClientID string) (*RegistrationResponse, error) {
	name, oe := checkMetadata(&in)
	if oe != nil {
		return nil, oe
	}
	if bodyClientID != clientID {
		return nil, oerr(400, "invalid_client_metadata", "the body's client_id must be this client's")
	}
	if len(in.RedirectURIs) == 0 || len(in.RedirectURIs) > 20 {
		return nil, oerr(400, "invalid_redirect_uri", "list 1 to 20 redirect URIs")
	}
	for _, r := range in.RedirectURIs {
		if err := validRedirect(r); err != nil {
			return nil, oerr(400, "invalid_redirect_uri", apperr.PublicMessage(err))
		}
	}
	scope := in.Scope
	if scope == "" {
		scope = defaultAppScope
	}
	for _, sc := range strings.Fields(scope) {
		if !containsStr(userScopes, sc) {
			return nil, oerr(400, "invalid_client_metadata", "unknown scope "+sc)
		}
	}
	var c *AppClient
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if c, err = registered(ctx, tx, clientID, rat, true); err != nil {
			return err
		}
		if in.TokenEndpointAuthMethod != "" && in.TokenEndpointAuthMethod != c.TokenEndpointAuthMethod {
			return oerr(400, "invalid_client_metadata", "a client's token_endpoint_auth_method cannot change; register a new client")
		}
		if err := in.check(in.RedirectURIs, c.TokenEndpointAuthMethod); err != nil {
			return metadataError(err)
		}
		// The subjects a client knows people by must not change under it.
		if in.SubjectType != c.SubjectType {
			return oerr(400, "invalid_client_metadata", "a client's subject_type cannot change; register a new client")
		}
		if c.SubjectType == "pairwise" && sectorOf(in.RedirectURIs) != c.sector {
			return oerr(400, "invalid_redirect_uri", "a pairwise client's redirect URIs stay on its sector's host "+c.sector)
		}
		if len(in.JWKS) > 0 {
			// New keys or certificates replace the old (rotation); without
			// jwks the registered ones stay.
			keys, err := c.keySet(in.JWKS)
			if err != nil {
				return metadataError(err)
			}
			c.jwks = keys
		}
		c.ClientProfile = in.ClientProfile
		c.Name, c.RedirectURIs, c.PostLogoutRedirectURIs, c.BackchannelLogoutURI, c.Scope = name, in.RedirectURIs, in.PostLogoutRedirectURIs,
			in.BackchannelLogoutURI, scope
		c.Version++
		if err := updateAppClient(ctx, tx, c); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: ClientEvent, ID: c.ClientID, Version: c.Version}, c); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.client.update", "oauth_client", c.ClientID, c)
	})
	if oe := metadataError(err); oe != nil && apperr.KindOf(err) == apperr.KindInvalidArgument {
		return nil, oe
	}
	if err != nil {
		return nil, err
	}
	return s.registration(slug, c), nil
}

// DeleteRegistration removes a registered client (RFC 7592 §2.3).
func (s *Server) DeleteRegistration(ctx context.Context, clientID, rat string) error {
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		c, err := registered(ctx, tx, clientID, rat, true)
		if err != nil {
			return err
		}
		if err := deleteClient(ctx, tx, c.ID); err != nil {
			return err
		}
		// RFC 7592 §2.3: a deleted client's grants and tokens end with it.
		if err := s.cfg.Tokens.RevokeClientInTx(ctx, tx, tx.TenantID(), clientID); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: ClientEvent, ID: clientID, Version: c.Version + 1, Op: events.OpDelete}, nil); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.client.delete", "oauth_client", clientID, nil)
	})
	if err != nil {
		return err
	}
	return nil
}
