// Package oauth is the OAuth 2.1 authorization server of each tenant's
// issuer ({admin.public_url}/t/{slug}): client authentication, the token
// endpoint's grants (client credentials, token exchange with act chains,
// refresh with rotation), resource indicators, introspection and
// revocation — all on the one token service (docs/design/0006).
package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Grant and token types (URNs, not credentials).
//
//nolint:gosec // G101: these are RFC 8693 identifiers
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	TokenTypeAccess        = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
)

// Error is an RFC 6749 §5.2 error.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Status      int    `json:"-"`
	// cause is what made a 5xx answer, for the log only.
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Code + ": " + e.Description + ": " + e.cause.Error()
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause of a 5xx answer.
func (e *Error) Unwrap() error { return e.cause }

// Is matches errors of the same code and status (a sentinel with or
// without a cause).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.cause == nil && t.Code == e.Code && t.Status == e.Status && t.Description == e.Description
}

func oerr(status int, code, desc string) *Error {
	return &Error{Code: code, Description: desc, Status: status}
}

// AsError maps any error to the OAuth error a client is told: OAuth
// errors as they are, the store's unavailability as
// temporarily_unavailable (503), an unknown resource as 404, bad input as
// invalid_request, anything else as server_error without its cause.
func AsError(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	switch apperr.KindOf(err) {
	case apperr.KindUnavailable:
		u := *ErrUnavailable
		u.cause = err
		return &u
	case apperr.KindNotFound:
		return &Error{Code: "invalid_request", Description: apperr.PublicMessage(err), Status: 404}
	case apperr.KindInvalidArgument:
		return &Error{Code: "invalid_request", Description: apperr.PublicMessage(err), Status: 400}
	case apperr.KindPermissionDenied:
		return &Error{Code: "access_denied", Description: apperr.PublicMessage(err), Status: 403}
	}
	return &Error{Code: "server_error", Description: "the server could not answer", Status: 500, cause: err}
}

// Render is the OAuth error of err, as every issuer endpoint answers it:
// the cause of a 5xx answer is logged with the request id, never sent.
func (s *Server) Render(ctx context.Context, err error) *Error {
	oe := AsError(err)
	if oe.Status >= 500 {
		var own *Error
		if !errors.As(err, &own) || own.Status >= 500 {
			s.cfg.Logger.Error("issuer request failed", "error", err, "status", oe.Status, "request_id", reqid.From(ctx))
		}
	}
	return oe
}

// CheckProof checks a DPoP proof of a request to the tenant's
// endpoints (see token.Service.CheckProof).
func (s *Server) CheckProof(ctx context.Context, tenant uuid.UUID, raw, method, target string) (*dpop.Proof, error) {
	return s.cfg.Tokens.CheckProof(ctx, tenant, raw, method, target, "")
}

// DPoPNonce is a fresh DPoP server nonce ("" : none are required).
func (s *Server) DPoPNonce() string { return s.cfg.Tokens.DPoPNonce() }

// clientFailure is a failed client lookup: the store's unavailability is
// said as such; anything else is a failed authentication.
func clientFailure(err error) error {
	if apperr.KindOf(err) == apperr.KindUnavailable {
		return AsError(err)
	}
	return ErrInvalidClient
}

// Errors.
var (
	ErrInvalidClient = oerr(401, "invalid_client", "client authentication failed")
	// ErrUnavailable says the store cannot answer now: the client should
	// retry, not conclude its credentials were revoked.
	ErrUnavailable = oerr(503, "temporarily_unavailable", "the authorization server cannot answer now; try again later")
	ErrSlowDown    = oerr(429, "invalid_client", "too many failed client authentications; try again later")
)

// Config configures the server.
type Config struct {
	Tokens  *token.Service
	NHIs    *nhi.Service
	Tenants *tenant.Service
	DB      *store.DB
	// AdminURL and AgentURL are admin.public_url and agent.public_url.
	AdminURL, AgentURL string
	// AccessTTL is the lifetime of client-credential and exchanged tokens (default 10 min).
	AccessTTL time.Duration
	// Audit records client registrations.
	Audit audit.Recorder
	// Auth checks passwords on the login page.
	Auth PasswordChecker
	// Fetch retrieves client ID metadata documents; it must be the egress
	// client (nil: metadata documents are not accepted).
	Fetch *http.Client
	// PairwiseKey keys the pairwise subjects of clients that ask for them
	// (32 bytes derived from the KEK; nil: no client may ask).
	PairwiseKey []byte
	// RedeemIDJAG checks an identity assertion grant (ID-JAG) presented
	// by a client to this tenant's authorization server (audience: its
	// issuer) and finds the person it asserts (nil: none are accepted).
	RedeemIDJAG func(ctx context.Context, raw, audience, clientID string) (*IdentityGrant, error)
	// Entitlements says whether an entitlement exists in the tenant of
	// ctx; Access whether a person (and the agent acting for them, when
	// agent is not uuid.Nil) holds one now (ID-JAGs are issued only to
	// people holding their resource server's); Email is a person's
	// address (nil Access: ID-JAGs are not issued).
	Entitlements func(ctx context.Context, id uuid.UUID) error
	Access       func(ctx context.Context, tenant, user, agent, entitlement uuid.UUID) (bool, error)
	Email        func(ctx context.Context, user uuid.UUID) (string, error)
	// Logger logs the causes of the errors answered as server_error or
	// temporarily_unavailable (default slog.Default()).
	Logger *slog.Logger
	Now    func() time.Time
}

// Server answers the token, introspection and revocation endpoints.
type Server struct {
	cfg     Config
	limiter *limiter
	replay  replayCache
	cimd    cimdCache
}

// New returns a server.
func New(cfg Config) *Server {
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.AdminURL = strings.TrimSuffix(cfg.AdminURL, "/")
	cfg.AgentURL = strings.TrimSuffix(cfg.AgentURL, "/")
	return &Server{cfg: cfg, limiter: &limiter{window: time.Minute, max: 10, hits: map[string]*bucket{}}}
}

// Issuer returns a tenant's issuer URL.
func (s *Server) Issuer(slug string) string { return s.cfg.AdminURL + "/t/" + slug }

// Client is an authenticated OAuth client.
type Client struct {
	ID     string
	NHI    *nhi.NHI
	Scopes []string
	// CertThumbprint, set when the client authenticated with a certificate
	// (RFC 8705), binds the tokens issued to it (cnf.x5t#S256).
	CertThumbprint string
}

func (c *Client) cnf() *token.Confirmation {
	if c.CertThumbprint == "" {
		return nil
	}
	return &token.Confirmation{X5tS256: c.CertThumbprint}
}

// SelfSignedClient is self_signed_tls_client_auth (RFC 8705 §2.2): the
// client names itself and must have registered the presented certificate
// (x5c of one of its keys). Failures count toward the guessing slow-down.
func (s *Server) SelfSignedClient(ctx context.Context, clientID, thumbprint, remote string) (*Client, error) {
	key := clientID + "|" + remote
	now := s.cfg.Now()
	if !s.limiter.allow(key, now) {
		return nil, ErrSlowDown
	}
	if clientID != "" {
		n, scope, keys, err := s.cfg.NHIs.ClientByID(ctx, clientID)
		if apperr.KindOf(err) == apperr.KindUnavailable {
			return nil, AsError(err)
		}
		if err == nil {
			for _, k := range keys.Keys {
				if len(k.Certificates) == 0 {
					continue
				}
				sum := sha256.Sum256(k.Certificates[0].Raw)
				if base64.RawURLEncoding.EncodeToString(sum[:]) == thumbprint {
					return &Client{ID: clientID, NHI: n, Scopes: strings.Fields(scope), CertThumbprint: thumbprint}, nil
				}
			}
		}
	}
	s.limiter.fail(key, now)
	return nil, ErrInvalidClient
}

// CertificateClient is tls_client_auth (RFC 8705 §2.1) with xavyo's own
// CA: the agent plane verified the certificate and mapped it to an active
// NHI, whose client this is.
func (s *Server) CertificateClient(ctx context.Context, nhiID uuid.UUID, thumbprint string) (*Client, error) {
	n, err := s.cfg.NHIs.Lookup(ctx, nhiID)
	if err != nil {
		return nil, clientFailure(err)
	}
	if n.Status != nhi.StatusActive {
		return nil, ErrInvalidClient
	}
	_, scope, _, err := s.cfg.NHIs.ClientByID(ctx, n.ClientID)
	if err != nil {
		return nil, clientFailure(err)
	}
	return &Client{ID: n.ClientID, NHI: n, Scopes: strings.Fields(scope), CertThumbprint: thumbprint}, nil
}

// Authenticate checks client credentials presented by Basic or in the
// form. Failures are counted per client and address and slowed down.
func (s *Server) Authenticate(ctx context.Context, clientID, secret, remote string) (*Client, error) {
	key := clientID + "|" + remote
	if !s.limiter.allow(key, s.cfg.Now()) {
		return nil, ErrSlowDown
	}
	if clientID == "" || secret == "" {
		s.limiter.fail(key, s.cfg.Now())
		return nil, ErrInvalidClient
	}
	n, scope, err := s.cfg.NHIs.AuthenticateClient(ctx, clientID, secret)
	if err != nil {
		if apperr.KindOf(err) == apperr.KindUnavailable {
			return nil, AsError(err)
		}
		s.limiter.fail(key, s.cfg.Now())
		return nil, ErrInvalidClient
	}
	return &Client{ID: clientID, NHI: n, Scopes: strings.Fields(scope)}, nil
}

// TokenResponse is RFC 6749 §5.1 plus RFC 8693's issued_token_type.
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int    `json:"expires_in"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	Scope           string `json:"scope,omitempty"`
	IDToken         string `json:"id_token,omitempty"`
}

// Resources checks RFC 8707 resource indicators: each must be a resource
// of this tenant (its admin API, its MCP gateway endpoints, its A2A
// directory and agent endpoints); none means the tenant's MCP gateway
// endpoint.
func (s *Server) Resources(ctx context.Context, slug string, requested []string) ([]string, *Error) {
	if len(requested) == 0 {
		return []string{s.cfg.AgentURL + "/t/" + slug + "/mcp"}, nil
	}
	if len(requested) > 10 {
		return nil, oerr(400, "invalid_target", "at most 10 resources")
	}
	mcp := s.cfg.AgentURL + "/t/" + slug + "/mcp"
	a2a := s.cfg.AgentURL + "/t/" + slug + "/a2a/agents/"
	for _, r := range requested {
		u, err := url.Parse(r)
		if err != nil || u.Fragment != "" || u.RawQuery != "" {
			return nil, oerr(400, "invalid_target", "a resource is an absolute URL without query or fragment")
		}
		switch {
		case r == s.cfg.AdminURL+"/api/v1", r == mcp, r == strings.TrimSuffix(a2a, "/"): // the last: the A2A directory
		case strings.HasPrefix(r, mcp+"/"), strings.HasPrefix(r, a2a):
			name := strings.TrimPrefix(strings.TrimPrefix(r, mcp+"/"), a2a)
			kind := nhi.KindToolServer
			if strings.HasPrefix(r, a2a) {
				kind = nhi.KindAgent
			}
			ok, err := s.cfg.NHIs.Serves(ctx, kind, name)
			if err != nil {
				return nil, AsError(err)
			}
			if !ok {
				return nil, oerr(400, "invalid_target", "unknown resource "+r)
			}
		default:
			return nil, oerr(400, "invalid_target", "not a resource of this issuer: "+r)
		}
	}
	return dedupe(requested), nil
}

func dedupe(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// intersect keeps the requested scopes allowed by every list; no request
// means everything allowed.
func intersect(requested []string, allowed ...[]string) []string {
	out := requested
	if len(out) == 0 {
		out = allowed[0]
	}
	var keep []string
	for _, sc := range out {
		ok := true
		for _, a := range allowed {
			if !slices.Contains(a, sc) {
				ok = false
				break
			}
		}
		if ok && !slices.Contains(keep, sc) {
			keep = append(keep, sc)
		}
	}
	return keep
}

// ClientCredentials issues a token to the client's NHI itself.
func (s *Server) ClientCredentials(ctx context.Context, slug string, c *Client, scope []string, resources []string) (*TokenResponse, error) {
	auds, e := s.Resources(ctx, slug, resources)
	if e != nil {
		return nil, e
	}
	granted := intersect(scope, c.Scopes)
	if len(scope) > 0 && len(granted) != len(dedupe(scope)) {
		return nil, oerr(400, "invalid_scope", "the client may not ask for "+strings.Join(scope, " "))
	}
	tid, _ := store.TenantFrom(ctx)
	raw, err := s.cfg.Tokens.Mint(ctx, token.Claims{
		Claims:   jwt.Claims{Subject: c.NHI.ID.String(), Audience: jwt.Audience(auds), Expiry: jwt.NewNumericDate(s.cfg.Now().Add(s.cfg.AccessTTL))},
		TenantID: tid, Scope: strings.Join(granted, " "), ClientID: c.ID, SubjectKind: string(principal.KindNHI), NHIKind: c.NHI.Kind,
		Cnf: c.cnf(),
	})
	if err != nil {
		return nil, err
	}
	s.cfg.NHIs.Used(ctx, c.NHI.ID)
	return &TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds()), Scope: strings.Join(granted, " ")}, nil
}

// userScopes are the coarse scopes a user may delegate (rights are
// entitlements, checked at call time).
var userScopes = []string{"mcp", "a2a", "openid", "profile", "email", "offline_access"}

// Exchange is RFC 8693: the client (an agent) presents a user's token and
// gets one with sub = the user and act = the agent, nested when the
// subject token already carries an act chain.
func (s *Server) Exchange(ctx context.Context, slug string, c *Client, subjectToken, subjectType, actorToken, actorType string,
	scope, resources, audiences []string) (*TokenResponse, error) {
	if subjectToken == "" || (subjectType != TokenTypeAccess && subjectType != TokenTypeJWT) {
		return nil, oerr(400, "invalid_request", "subject_token and a subject_token_type of access_token or jwt are required")
	}
	tid, _ := store.TenantFrom(ctx)
	sub, err := s.cfg.Tokens.Verify(ctx, subjectToken, token.Expect{Tenant: tid, AnyHolder: true})
	if err != nil {
		return nil, oerr(400, "invalid_grant", "the subject token is not valid here")
	}
	actorID := c.NHI.ID.String()
	if actorToken != "" {
		if actorType != TokenTypeAccess && actorType != TokenTypeJWT {
			return nil, oerr(400, "invalid_request", "actor_token_type must be access_token or jwt")
		}
		act, err := s.cfg.Tokens.Verify(ctx, actorToken, token.Expect{Tenant: tid, AnyHolder: true})
		if err != nil || act.Subject != c.NHI.ID.String() {
			return nil, oerr(400, "invalid_grant", "the actor token must be the authenticated client's own")
		}
	}
	subjectScopes := strings.Fields(sub.Scope)
	if sub.SubjectKind == string(principal.KindUser) || sub.SubjectKind == "" {
		subjectScopes = append(subjectScopes, userScopes...)
	}
	granted := intersect(scope, c.Scopes, subjectScopes)
	if len(scope) > 0 && len(granted) != len(dedupe(scope)) {
		return nil, oerr(400, "invalid_scope", "the requested scope exceeds what the subject or the actor holds")
	}
	auds, e := s.Resources(ctx, slug, append(resources, audiences...))
	if e != nil {
		return nil, e
	}
	act := &token.Actor{Subject: actorID, ClientID: c.ID, Kind: string(principal.KindNHI), Act: sub.Act}
	exp := s.cfg.Now().Add(s.cfg.AccessTTL)
	if sub.Expiry != nil && sub.Expiry.Time().Before(exp) {
		exp = sub.Expiry.Time() // never outlive the subject's own token
	}
	raw, err := s.cfg.Tokens.Mint(ctx, token.Claims{
		Claims:   jwt.Claims{Subject: sub.Subject, Audience: jwt.Audience(auds), Expiry: jwt.NewNumericDate(exp)},
		TenantID: tid, Scope: strings.Join(granted, " "), ClientID: c.ID, SubjectKind: sub.SubjectKind, NHIKind: sub.NHIKind, Act: act,
		SessionID: sub.SessionID, Cnf: c.cnf(),
	})
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: raw, IssuedTokenType: TokenTypeAccess, TokenType: "Bearer", ExpiresIn: int(time.Until(exp).Seconds()),
		Scope: strings.Join(granted, " ")}, nil
}

// IdentityGrant is what an accepted ID-JAG grants.
type IdentityGrant struct {
	User     uuid.UUID
	Scope    []string
	Resource string
	AMR      []string
	AuthTime time.Time
}

// RedeemIDJAG is the jwt-bearer grant with an identity assertion
// authorization grant (ID-JAG) from an enterprise IdP the tenant trusts:
// an authenticated client of the tenant presents it, and gets an access
// token for the person it asserts, for a resource of the tenant, with
// the scopes both the grant and the request name (a person's scopes).
func (s *Server) RedeemIDJAG(ctx context.Context, slug string, rp RelyingParty, assertion string, scope, resources []string) (*TokenResponse, error) {
	if s.cfg.RedeemIDJAG == nil {
		return nil, oerr(400, "unsupported_grant_type", "identity assertion grants are not accepted here")
	}
	app, err := s.appClient(ctx, rp.ClientID)
	if err != nil {
		return nil, clientFailure(err)
	}
	if !app.Confidential() || !rp.Authenticated {
		return nil, ErrInvalidClient
	}
	g, err := s.cfg.RedeemIDJAG(ctx, assertion, s.Issuer(slug), rp.ClientID)
	switch k := apperr.KindOf(err); {
	case err == nil:
	case k == apperr.KindUnavailable || k == apperr.KindInternal:
		return nil, err
	default:
		return nil, oerr(400, "invalid_grant", apperr.PublicMessage(err))
	}
	if len(scope) == 0 {
		scope = g.Scope
	}
	granted := intersect(scope, g.Scope, userScopes)
	if len(granted) == 0 || len(granted) != len(dedupe(scope)) {
		return nil, oerr(400, "invalid_scope", "the requested scope exceeds what the identity assertion grants")
	}
	if len(resources) == 0 && g.Resource != "" {
		resources = []string{g.Resource}
	}
	if g.Resource != "" && !slices.Contains(resources, g.Resource) {
		return nil, oerr(400, "invalid_target", "the resource is not the one the identity assertion names")
	}
	auds, e := s.Resources(ctx, slug, resources)
	if e != nil {
		return nil, e
	}
	return s.userToken(ctx, g.User.String(), rp.ClientID, strings.Join(granted, " "), auds, "", uuid.Nil, rp.cnf(app), append([]string{"fed"}, g.AMR...), g.AuthTime)
}

// Introspection is RFC 7662's response.
type Introspection struct {
	Active    bool                `json:"active"`
	Scope     string              `json:"scope,omitempty"`
	ClientID  string              `json:"client_id,omitempty"`
	Subject   string              `json:"sub,omitempty"`
	Audience  []string            `json:"aud,omitempty"`
	Issuer    string              `json:"iss,omitempty"`
	Expiry    int64               `json:"exp,omitempty"`
	IssuedAt  int64               `json:"iat,omitempty"`
	JTI       string              `json:"jti,omitempty"`
	TokenType string              `json:"token_type,omitempty"`
	Act       *token.Actor        `json:"act,omitempty"`
	Cnf       *token.Confirmation `json:"cnf,omitempty"`
}

// Introspect describes a token of this tenant to an authenticated client.
func (s *Server) Introspect(ctx context.Context, raw string) *Introspection {
	tid, _ := store.TenantFrom(ctx)
	c, err := s.cfg.Tokens.Verify(ctx, raw, token.Expect{Tenant: tid, AnyHolder: true})
	if err != nil {
		return &Introspection{Active: false}
	}
	out := &Introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, Subject: c.Subject, Audience: c.Audience, Issuer: c.Issuer,
		JTI: c.ID, TokenType: "Bearer", Act: c.Act, Cnf: c.Cnf}
	if c.Expiry != nil {
		out.Expiry = c.Expiry.Time().Unix()
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time().Unix()
	}
	return out
}

// Revoke is RFC 7009: access tokens by jti, refresh tokens by family.
// Tokens of other clients, unknown tokens and garbage are ignored.
func (s *Server) Revoke(ctx context.Context, c *Client, raw, hint string) error {
	tid, _ := store.TenantFrom(ctx)
	if strings.HasPrefix(raw, token.RefreshPrefix) {
		return s.cfg.Tokens.RevokeRefresh(ctx, raw, c.ID)
	}
	cl, err := s.cfg.Tokens.Verify(ctx, raw, token.Expect{Tenant: tid, AnyHolder: true})
	if err != nil || cl.ClientID != c.ID {
		return nil
	}
	return s.cfg.Tokens.Revoke(ctx, tid, "jti", cl.ID)
}

// limiter slows down client-secret guessing, per replica.
type limiter struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	hits   map[string]*bucket
}

type bucket struct {
	start time.Time
	n     int
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.hits[key]
	return b == nil || now.Sub(b.start) > l.window || b.n < l.max
}

func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hits) > 100_000 {
		clear(l.hits)
	}
	b := l.hits[key]
	if b == nil || now.Sub(b.start) > l.window {
		l.hits[key] = &bucket{start: now, n: 1}
		return
	}
	b.n++
}
