package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-ldap/ldap/v3"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// AppClient is a relying-party client (an application people sign in to,
// such as an MCP client); NHI clients are managed with their NHIs.
type AppClient struct {
	ID         uuid.UUID `json:"id"`
	ClientID   string    `json:"client_id"`
	Name       string    `json:"name"`
	ClientType string    `json:"client_type" doc:"public (PKCE, no secret) or confidential (authenticates at the token endpoint)"`
	// TokenEndpointAuthMethod is none (public) or client_secret_basic /
	// client_secret_post (confidential).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	// ClientSecret is shown once, in the answer that creates the client.
	ClientSecret string   `json:"client_secret,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser back (exact match).
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// FirstParty clients are the organization's own: people are not asked
	// to consent to them (set by admins only).
	FirstParty bool `json:"first_party"`
	// BackchannelLogoutURI receives a logout token when a person's SSO
	// session in which the client signed them in ends.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	ClientProfile
	Scope     string    `json:"scope"`
	CreatedAt time.Time `json:"created_at"`
	Version   int64     `json:"version"`
	// ratHash is the SHA-256 of a dynamically registered client's
	// registration access token ("" for others); secretHash that of a
	// confidential client's secret.
	ratHash, secretHash string
	// jwks is a private_key_jwt client's key set (a self-signed mTLS
	// client's certificates), as stored.
	jwks string
	// sector is a pairwise client's sector, fixed at registration.
	sector string
}

// Confidential reports whether the client authenticates at the token
// endpoint.
func (c *AppClient) Confidential() bool { return c.ClientType == "confidential" }

// AppClientInput registers a relying-party client.
type AppClientInput struct {
	Name                   string   `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty" doc:"where RP-initiated logout may send the browser back (exact match)"`
	FirstParty             bool     `json:"first_party,omitempty" doc:"the organization's own application: people are not asked to consent"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty" doc:"where logout tokens are POSTed when a person's SSO session ends (OpenID Connect Back-Channel Logout)"`
	// TokenEndpointAuthMethod makes a confidential client (a web
	// application with a server side): its secret is in the answer, once.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty" doc:"none (public, PKCE; the default), client_secret_basic or client_secret_post (confidential: a secret is issued, shown once), private_key_jwt (confidential: signs assertions with a key of jwks), tls_client_auth (a certificate from a trusted CA with tls_client_auth_subject_dn, at the mTLS token endpoint) or self_signed_tls_client_auth (a certificate of jwks' x5c, at the mTLS token endpoint)"`
	// JWKS holds the public keys of a private_key_jwt client.
	JWKS json.RawMessage `json:"jwks,omitempty" doc:"the public keys a private_key_jwt client signs its assertions with, or the certificates (x5c) of a self_signed_tls_client_auth client (a JWK set)"`
	ClientProfile
	Scope string `json:"scope,omitempty" doc:"default: openid profile email offline_access mcp a2a"`
}

// ClientProfile is what a relying party says of itself beyond its
// redirect URIs and credentials (OpenID Connect Dynamic Client
// Registration §2, RFC 8705 §2.1.2 and §3.4, Front-Channel Logout §2).
type ClientProfile struct {
	LogoURI   string `json:"logo_uri,omitempty" doc:"the client's logo, shown on the consent page (https)"`
	ClientURI string `json:"client_uri,omitempty" doc:"the client's home page, linked from the consent page (https)"`
	PolicyURI string `json:"policy_uri,omitempty" doc:"how the client uses people's data (https)"`
	TOSURI    string `json:"tos_uri,omitempty" doc:"the client's terms of service (https)"`
	// SubjectType pairwise gives the client a subject of its own for each
	// person in ID tokens and userinfo (its sector: the redirect URIs'
	// host), so that clients cannot correlate people.
	SubjectType string `json:"subject_type,omitempty" doc:"public (the default) or pairwise: ID tokens and userinfo name each person by a subject of this client's sector only"`
	// FrontchannelLogoutURI is loaded in an iframe when a session the
	// client signed a person in to ends at xavyo.
	FrontchannelLogoutURI             string `json:"frontchannel_logout_uri,omitempty" doc:"loaded in a hidden frame of the sign-out page (OpenID Connect Front-Channel Logout)"`
	FrontchannelLogoutSessionRequired bool   `json:"frontchannel_logout_session_required,omitempty" doc:"add iss and sid to the front-channel logout URI"`
	// TLSClientAuthSubjectDN is the subject of a tls_client_auth client's
	// certificate (RFC 4514).
	TLSClientAuthSubjectDN string `json:"tls_client_auth_subject_dn,omitempty" doc:"for tls_client_auth: the subject DN its certificate must carry (RFC 4514, e.g. CN=app,O=Example)"`
	// CertificateBound binds the access tokens a client gets at the mTLS
	// token endpoint to its certificate (cnf x5t#S256).
	CertificateBound bool `json:"tls_client_certificate_bound_access_tokens,omitempty" doc:"bind access tokens obtained over mTLS to the client's certificate (RFC 8705 §3)"`
}

// webURL checks a URL a client registers to be shown or loaded: https, or
// loopback http, without credentials or fragment ("" for none).
func webURL(field, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	loopback := err == nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
	if err != nil || u.Fragment != "" || u.User != nil || len(raw) > 2000 || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && loopback)) {
		return apperr.Invalid(field, "must be an absolute https (or loopback http) URL without fragment or credentials")
	}
	return nil
}

// check validates a profile for a client with these redirect URIs and
// token endpoint auth method.
func (p *ClientProfile) check(redirects []string, method string) error {
	for f, v := range map[string]string{"logo_uri": p.LogoURI, "client_uri": p.ClientURI, "policy_uri": p.PolicyURI, "tos_uri": p.TOSURI,
		"frontchannel_logout_uri": p.FrontchannelLogoutURI} {
		if err := webURL(f, v); err != nil {
			return err
		}
	}
	switch p.SubjectType {
	case "", "public":
		p.SubjectType = ""
	case "pairwise":
		if sectorOf(redirects) == "" {
			return apperr.Invalid("subject_type", "a pairwise client's redirect URIs must share one host (its sector)")
		}
	default:
		return apperr.Invalid("subject_type", "must be public or pairwise")
	}
	if p.FrontchannelLogoutSessionRequired && p.FrontchannelLogoutURI == "" {
		return apperr.Invalid("frontchannel_logout_session_required", "needs a frontchannel_logout_uri")
	}
	switch {
	case method == "tls_client_auth":
		if _, err := ldap.ParseDN(p.TLSClientAuthSubjectDN); err != nil || p.TLSClientAuthSubjectDN == "" || len(p.TLSClientAuthSubjectDN) > 1000 {
			return apperr.Invalid("tls_client_auth_subject_dn", "a tls_client_auth client names its certificate's subject DN (RFC 4514)")
		}
	case p.TLSClientAuthSubjectDN != "":
		return apperr.Invalid("tls_client_auth_subject_dn", "only a tls_client_auth client names a subject DN")
	}
	if p.CertificateBound && method != "tls_client_auth" && method != "self_signed_tls_client_auth" {
		return apperr.Invalid("tls_client_certificate_bound_access_tokens", "only clients that authenticate with a certificate get certificate-bound tokens")
	}
	return nil
}

// sectorOf is the sector of a pairwise client: the one host (or private
// scheme) all its redirect URIs share, else "".
func sectorOf(redirects []string) string {
	sector := ""
	for _, r := range redirects {
		u, err := url.Parse(r)
		if err != nil {
			return ""
		}
		h := strings.ToLower(u.Hostname())
		if h == "" {
			h = strings.ToLower(u.Scheme) + ":"
		}
		if sector != "" && sector != h {
			return ""
		}
		sector = h
	}
	return sector
}

// ClientEvent is the change-event kind of relying-party clients.
const ClientEvent = "oauth.client"

func validRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Fragment != "" || u.User != nil || len(raw) > 2000 {
		return apperr.Invalid("redirect_uris", "each must be an absolute URL without fragment or credentials")
	}
	loopback := u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1"
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && loopback:
	case u.Scheme != "http" && u.Scheme != "https" && strings.Contains(u.Scheme, "."): // private-use scheme (RFC 8252)
	default:
		return apperr.Invalid("redirect_uris", "must be https, loopback http, or a reverse-DNS private scheme")
	}
	return nil
}

// publicKeySet checks a client's JWK set: 1 to 10 public signing keys of
// the algorithms assertions may use, each with a kid; no private parts.
func publicKeySet(raw json.RawMessage) (string, error) {
	bad := apperr.Invalid("jwks", "a JWK set of 1 to 10 public signing keys (ES256, RS256, PS256 or EdDSA), each with a kid")
	var set jose.JSONWebKeySet
	if len(raw) == 0 || len(raw) > 64<<10 || json.Unmarshal(raw, &set) != nil || len(set.Keys) == 0 || len(set.Keys) > 10 {
		return "", bad
	}
	for _, k := range set.Keys {
		if k.KeyID == "" || !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") ||
			(k.Algorithm != "" && !slices.Contains(assertionAlgs, jose.SignatureAlgorithm(k.Algorithm))) {
			return "", bad
		}
	}
	b, _ := json.Marshal(set)
	return string(b), nil
}

// keySet checks the keys a client registers for its method.
func (c *AppClient) keySet(raw json.RawMessage) (string, error) {
	switch c.TokenEndpointAuthMethod {
	case "private_key_jwt":
		return publicKeySet(raw)
	case "self_signed_tls_client_auth":
		return certificateSet(raw)
	}
	return "", apperr.Invalid("jwks", "only a private_key_jwt or self_signed_tls_client_auth client registers keys")
}

// certificateSet checks a self_signed_tls_client_auth client's JWK set:
// 1 to 10 keys, each carrying its self-signed certificate (x5c) whose
// public key is the key's.
func certificateSet(raw json.RawMessage) (string, error) {
	bad := apperr.Invalid("jwks", "a JWK set of 1 to 10 public keys, each with its self-signed certificate in x5c")
	var set jose.JSONWebKeySet
	if len(raw) == 0 || len(raw) > 64<<10 || json.Unmarshal(raw, &set) != nil || len(set.Keys) == 0 || len(set.Keys) > 10 {
		return "", bad
	}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || len(k.Certificates) == 0 {
			return "", bad
		}
	}
	b, _ := json.Marshal(set)
	return string(b), nil
}

// appClientKeys returns a relying party and its key set.
func (s *Server) appClientKeys(ctx context.Context, clientID string) (*AppClient, *jose.JSONWebKeySet, error) {
	c, err := s.appClient(ctx, clientID)
	if err != nil {
		return nil, nil, err
	}
	var set jose.JSONWebKeySet
	if c.jwks != "" {
		if err := json.Unmarshal([]byte(c.jwks), &set); err != nil {
			return nil, nil, err
		}
	}
	return c, &set, nil
}

// AuthenticateApp checks the secret of a confidential relying party
// presented with method (client_secret_basic or client_secret_post).
// Failures are counted per client and address and slowed down, and all
// answer ErrInvalidClient.
func (s *Server) AuthenticateApp(ctx context.Context, clientID, secret, method, remote string) (*AppClient, error) {
	key := clientID + "|" + remote
	if !s.limiter.allow(key, s.cfg.Now()) {
		return nil, ErrSlowDown
	}
	c, err := s.appClient(ctx, clientID)
	if apperr.KindOf(err) == apperr.KindUnavailable {
		return nil, AsError(err)
	}
	if err != nil || c.secretHash == "" || secret == "" || c.TokenEndpointAuthMethod != method ||
		subtle.ConstantTimeCompare([]byte(c.secretHash), []byte(digest(secret))) != 1 {
		s.limiter.fail(key, s.cfg.Now())
		return nil, ErrInvalidClient
	}
	return c, nil
}

// validBackchannel checks a back-channel logout URI: https, or loopback
// http, without fragment or credentials ("" for none).
func validBackchannel(raw string) error { return webURL("backchannel_logout_uri", raw) }

// validPostLogout checks post-logout redirect URIs as redirect URIs.
func validPostLogout(uris []string) error {
	if len(uris) > 20 {
		return apperr.Invalid("post_logout_redirect_uris", "list at most 20 URIs")
	}
	for _, r := range uris {
		if validRedirect(r) != nil {
			return apperr.Invalid("post_logout_redirect_uris", "each must be an absolute https, loopback http or reverse-DNS private-scheme URL without fragment or credentials")
		}
	}
	return nil
}

// defaultAppScope is what a relying-party client may ask for by default.
const defaultAppScope = "openid profile email offline_access mcp a2a"

// CreateAppClient registers a public relying-party client.
func (s *Server) CreateAppClient(ctx context.Context, in AppClientInput) (*AppClient, error) {
	return s.createAppClient(ctx, in, "")
}

// createAppClient registers a client; ratHash, when set, is the SHA-256 of
// its RFC 7592 registration access token.
func (s *Server) createAppClient(ctx context.Context, in AppClientInput, ratHash string) (*AppClient, error) {
	if strings.TrimSpace(in.Name) == "" || len(in.Name) > 200 {
		return nil, apperr.Invalid("name", "must be 1 to 200 characters")
	}
	if len(in.RedirectURIs) == 0 || len(in.RedirectURIs) > 20 {
		return nil, apperr.Invalid("redirect_uris", "list 1 to 20 redirect URIs")
	}
	for _, r := range in.RedirectURIs {
		if err := validRedirect(r); err != nil {
			return nil, err
		}
	}
	if err := validPostLogout(in.PostLogoutRedirectURIs); err != nil {
		return nil, err
	}
	if err := validBackchannel(in.BackchannelLogoutURI); err != nil {
		return nil, err
	}
	if err := in.check(in.RedirectURIs, in.TokenEndpointAuthMethod); err != nil {
		return nil, err
	}
	if in.SubjectType == "pairwise" && len(s.cfg.PairwiseKey) == 0 {
		return nil, apperr.Invalid("subject_type", "pairwise subjects are not configured on this server")
	}
	if in.Scope == "" {
		in.Scope = defaultAppScope
	}
	for _, sc := range strings.Fields(in.Scope) {
		if !containsStr(userScopes, sc) {
			return nil, apperr.Invalid("scope", "unknown scope "+sc)
		}
	}
	now := store.Now()
	c := &AppClient{ID: uuid.Must(uuid.NewV7()), ClientID: "app-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20], Name: in.Name,
		ClientType: "public", TokenEndpointAuthMethod: "none", RedirectURIs: in.RedirectURIs, PostLogoutRedirectURIs: in.PostLogoutRedirectURIs,
		FirstParty: in.FirstParty, BackchannelLogoutURI: in.BackchannelLogoutURI, ClientProfile: in.ClientProfile, Scope: in.Scope, CreatedAt: now,
		Version: 1, ratHash: ratHash}
	if c.SubjectType == "pairwise" {
		c.sector = sectorOf(c.RedirectURIs)
	}
	var secret string // in the answer only: never in the audit record or the change event
	switch in.TokenEndpointAuthMethod {
	case "", "none":
	case "client_secret_basic", "client_secret_post":
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		c.ClientType, c.TokenEndpointAuthMethod = "confidential", in.TokenEndpointAuthMethod
		secret = "xvs_" + base64.RawURLEncoding.EncodeToString(b)
		c.secretHash = digest(secret)
	case "private_key_jwt", "self_signed_tls_client_auth":
		c.ClientType, c.TokenEndpointAuthMethod = "confidential", in.TokenEndpointAuthMethod
		keys, err := c.keySet(in.JWKS)
		if err != nil {
			return nil, err
		}
		c.jwks = keys
	case "tls_client_auth":
		c.ClientType, c.TokenEndpointAuthMethod = "confidential", in.TokenEndpointAuthMethod
	default:
		return nil, apperr.Invalid("token_endpoint_auth_method",
			"must be none, client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth")
	}
	if len(in.JWKS) > 0 && in.TokenEndpointAuthMethod != "private_key_jwt" && in.TokenEndpointAuthMethod != "self_signed_tls_client_auth" {
		return nil, apperr.Invalid("jwks", "only a private_key_jwt or self_signed_tls_client_auth client registers keys")
	}
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := insertAppClient(ctx, tx, c); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: ClientEvent, ID: c.ClientID, Version: 1}, c); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.client.create", "oauth_client", c.ClientID, c)
	})
	if err != nil {
		return nil, err
	}
	c.ClientSecret = secret
	return c, nil
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// AppClients lists the tenant's relying-party clients.
func (s *Server) AppClients(ctx context.Context) ([]AppClient, error) {
	var out []AppClient
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listAppClients(ctx, tx)
		return err
	})
	return out, err
}

// DeleteAppClient removes a relying-party client.
func (s *Server) DeleteAppClient(ctx context.Context, id uuid.UUID) error {
	var clientID string
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if clientID, err = appClientIDOf(ctx, tx, id); err != nil {
			return err
		}
		if err := deleteClient(ctx, tx, id); err != nil {
			return err
		}
		if err := s.cfg.Tokens.RevokeClientInTx(ctx, tx, tx.TenantID(), clientID); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: ClientEvent, ID: clientID, Version: 2, Op: events.OpDelete}, nil); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.client.delete", "oauth_client", clientID, nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// appClient reads a public client for the code flow: registered, or
// described by its client ID metadata document.
func (s *Server) appClient(ctx context.Context, clientID string) (*AppClient, error) {
	if IsMetadataDocumentID(clientID) {
		return s.metadataClient(ctx, clientID)
	}
	var c *AppClient
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		c, err = appClientRow(ctx, tx, clientID, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// PublicClient is a public client naming itself (token endpoint auth
// method none): one that is registered or described by its metadata
// document. It may revoke its own tokens (RFC 7009 §2.1).
func (s *Server) PublicClient(ctx context.Context, clientID string) (*Client, error) {
	if clientID == "" {
		return nil, ErrInvalidClient
	}
	if _, err := s.appClient(ctx, clientID); err != nil {
		return nil, clientFailure(err)
	}
	return &Client{ID: clientID}, nil
}
