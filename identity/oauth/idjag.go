package oauth

// xavyo as the enterprise IdP of Enterprise-Managed Authorization: a
// client of the tenant exchanges a person's ID token for an identity
// assertion authorization grant (ID-JAG,
// draft-ietf-oauth-identity-assertion-authz-grant) to present at another
// organization's authorization server — only for a resource server the
// tenant registered, and only when governance lets the person reach it
// (its entitlement, decided like any other).

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Token types of ID-JAG exchanges.
//
//nolint:gosec // G101: token type URNs, not credentials
const (
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeIDJAG   = "urn:ietf:params:oauth:token-type:id-jag"
)

// IDJAGLifetime is how long an ID-JAG may be presented.
const IDJAGLifetime = 5 * time.Minute

// ResourceServer is another organization's authorization server the
// tenant's people may reach with an ID-JAG.
type ResourceServer struct {
	ID     uuid.UUID `json:"id"`
	Key    string    `json:"key" doc:"stable, unique in the tenant"`
	Name   string    `json:"name"`
	Issuer string    `json:"issuer" doc:"the authorization server's issuer: the audience of the ID-JAGs made for it"`
	ResourceServerSettings
	EntitlementID uuid.UUID `json:"entitlement_id" doc:"only people holding this entitlement get ID-JAGs for it"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	Version       int64     `json:"version"`
}

// ResourceServerSettings are a resource server's settings, kept as JSON.
type ResourceServerSettings struct {
	Resources []string `json:"resources,omitempty" doc:"the resources (RFC 8707) an ID-JAG may name there (empty: any)"`
	Scopes    []string `json:"scopes" doc:"the scopes an ID-JAG may carry"`
	// Clients maps this tenant's client ids to the ids those clients have
	// at the authorization server (absent: the same id).
	Clients map[string]string `json:"clients,omitempty" doc:"this tenant's client id → its client id at the authorization server (default the same)"`
}

// ResourceServerInput registers a resource server.
type ResourceServerInput struct {
	Key           string            `json:"key" doc:"a-z, 0-9 and . _ -"`
	Name          string            `json:"name,omitempty"`
	Issuer        string            `json:"issuer"`
	Resources     []string          `json:"resources,omitempty"`
	Scopes        []string          `json:"scopes"`
	Clients       map[string]string `json:"clients,omitempty"`
	EntitlementID *uuid.UUID        `json:"entitlement_id"`
}

var rsKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func absURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || len(raw) > 1024 {
		return apperr.Invalid(field, "absolute http(s) URLs without fragment")
	}
	return nil
}

// CreateResourceServer registers a resource server.
func (s *Server) CreateResourceServer(ctx context.Context, in ResourceServerInput) (*ResourceServer, error) {
	if !rsKeyRE.MatchString(in.Key) {
		return nil, apperr.Invalid("key", "1 to 63 characters of a-z, 0-9 and . _ -")
	}
	if err := absURL("issuer", in.Issuer); err != nil {
		return nil, err
	}
	for _, r := range in.Resources {
		if err := absURL("resources", r); err != nil {
			return nil, err
		}
	}
	if len(in.Scopes) == 0 || len(in.Scopes) > 50 || len(in.Resources) > 50 || len(in.Clients) > 200 {
		return nil, apperr.Invalid("scopes", "1 to 50 scopes, at most 50 resources and 200 clients")
	}
	for _, sc := range in.Scopes {
		if sc == "" || len(sc) > 200 || strings.ContainsAny(sc, " \"\\") {
			return nil, apperr.Invalid("scopes", "scope tokens without spaces or quotes")
		}
	}
	if in.EntitlementID == nil || s.cfg.Entitlements == nil {
		return nil, apperr.Invalid("entitlement_id", "the entitlement that allows a person to reach it is required")
	}
	if err := s.cfg.Entitlements(ctx, *in.EntitlementID); err != nil {
		return nil, err
	}
	name := in.Name
	if name == "" {
		name = in.Key
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	rs := &ResourceServer{ID: uuid.Must(uuid.NewV7()), Key: in.Key, Name: name, Issuer: in.Issuer, EntitlementID: *in.EntitlementID,
		ResourceServerSettings: ResourceServerSettings{Resources: in.Resources, Scopes: in.Scopes, Clients: in.Clients},
		CreatedAt:              now, UpdatedAt: now, Version: 1}
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		settings, _ := json.Marshal(rs.ResourceServerSettings)
		if err := insertResourceServerTx(ctx, tx, rs, string(settings)); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.resource_server.create", "resource_server", rs.ID.String(),
			map[string]string{"key": rs.Key, "issuer": rs.Issuer})
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// ResourceServers lists the tenant's resource servers by key.
func (s *Server) ResourceServers(ctx context.Context) ([]*ResourceServer, error) {
	var out []*ResourceServer
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = resourceServersTx(ctx, tx, "")
		return err
	})
	return out, err
}

// DeleteResourceServer removes a resource server.
func (s *Server) DeleteResourceServer(ctx context.Context, id uuid.UUID) error {
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := deleteResourceServerTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("resource server")
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.resource_server.delete", "resource_server", id.String(), nil)
	})
}

// IssueIDJAG is the token exchange of an ID token for an ID-JAG: the
// client the ID token was issued to (confidential, authenticated) asks
// for one to present at the authorization server audience names.
func (s *Server) IssueIDJAG(ctx context.Context, slug string, rp RelyingParty, subjectToken, subjectType, audience string, resources, scope []string) (*TokenResponse, error) {
	if subjectType != TokenTypeIDToken || subjectToken == "" || audience == "" {
		return nil, oerr(400, "invalid_request", "an ID-JAG is made from an ID token (subject_token_type id_token) for an audience")
	}
	app, err := s.appClient(ctx, rp.ClientID)
	if err != nil {
		return nil, clientFailure(err)
	}
	if !app.Confidential() || !rp.Authenticated {
		return nil, ErrInvalidClient
	}
	tid, _ := store.TenantFrom(ctx)
	id, err := s.cfg.Tokens.IDTokenHint(ctx, subjectToken, tid)
	if err != nil || id.Expiry == nil || !s.cfg.Now().Before(id.Expiry.Time()) || !slices.Contains(id.Audience, rp.ClientID) {
		return nil, oerr(400, "invalid_grant", "the subject token is not a live ID token issued here to this client")
	}
	user, err := uuid.Parse(id.Subject)
	if err != nil {
		return nil, oerr(400, "invalid_grant", "the ID token's subject is not a person of this tenant")
	}
	return s.issueIDJAG(ctx, idjagRequest{user: user, clientID: rp.ClientID, audience: audience, resources: resources, scope: scope,
		authTime: id.AuthTime, amr: id.AMR})
}

// IssueIDJAGForAgent is the token exchange of a person's access token
// for an ID-JAG by an agent acting for them: the grant names the person,
// with the agent as actor (act), and is issued only when both hold the
// resource server's entitlement.
func (s *Server) IssueIDJAGForAgent(ctx context.Context, c *Client, subjectToken, subjectType, audience string, resources, scope []string) (*TokenResponse, error) {
	if (subjectType != TokenTypeAccess && subjectType != TokenTypeJWT) || subjectToken == "" || audience == "" {
		return nil, oerr(400, "invalid_request", "an agent's ID-JAG is made from the person's access token for an audience")
	}
	tid, _ := store.TenantFrom(ctx)
	sub, err := s.cfg.Tokens.Verify(ctx, subjectToken, token.Expect{Tenant: tid, AnyHolder: true})
	if err != nil || (sub.SubjectKind != "" && sub.SubjectKind != string(principal.KindUser)) {
		return nil, oerr(400, "invalid_grant", "the subject token is not a live token of a person of this tenant")
	}
	user, err := uuid.Parse(sub.Subject)
	if err != nil {
		return nil, oerr(400, "invalid_grant", "the subject token is not a live token of a person of this tenant")
	}
	return s.issueIDJAG(ctx, idjagRequest{user: user, agent: c, clientID: c.ID, audience: audience, resources: resources, scope: scope,
		authTime: sub.AuthTime, amr: sub.AMR})
}

// idjagRequest is an ID-JAG to issue: for a person, by a client, with an
// agent acting for the person when it is one.
type idjagRequest struct {
	user      uuid.UUID
	agent     *Client
	clientID  string
	audience  string
	resources []string
	scope     []string
	authTime  int64
	amr       []string
}

func (s *Server) issueIDJAG(ctx context.Context, in idjagRequest) (*TokenResponse, error) {
	tid, _ := store.TenantFrom(ctx)
	var rs *ResourceServer
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		list, err := resourceServersTx(ctx, tx, in.audience)
		if len(list) > 0 {
			rs = list[0]
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if rs == nil {
		return nil, oerr(400, "invalid_target", "the audience is not a resource server this organization registered")
	}
	resource := ""
	switch {
	case len(in.resources) > 1:
		return nil, oerr(400, "invalid_target", "one resource per ID-JAG")
	case len(in.resources) == 1:
		resource = in.resources[0]
		if len(rs.Resources) > 0 && !slices.Contains(rs.Resources, resource) {
			return nil, oerr(400, "invalid_target", "the resource is not one of the resource server's")
		}
	}
	scope := in.scope
	if len(scope) == 0 {
		scope = rs.Scopes
	}
	granted := intersect(scope, rs.Scopes)
	if len(granted) != len(dedupe(scope)) {
		return nil, oerr(400, "invalid_scope", "the requested scope exceeds what the resource server is registered for")
	}
	if s.cfg.Access == nil {
		return nil, oerr(400, "invalid_grant", "ID-JAGs are not issued here")
	}
	agent := uuid.Nil
	if in.agent != nil {
		agent = in.agent.NHI.ID
	}
	allowed, err := s.cfg.Access(ctx, tid, in.user, agent, rs.EntitlementID)
	if err != nil {
		return nil, err
	}
	details := map[string]any{"client_id": in.clientID, "audience": rs.Issuer, "resource": resource, "scope": granted}
	if in.agent != nil {
		details["actor"] = agent.String()
	}
	rec := audit.Entry{TenantID: tid, Action: "oauth.id_jag.issue", ActorKind: "user", ActorID: in.user.String(), TargetKind: "resource_server",
		TargetID: rs.ID.String(), Details: details}
	if !allowed {
		rec.Outcome = audit.OutcomeDenied
		_ = s.cfg.Audit.AppendSync(ctx, rec)
		return nil, oerr(400, "access_denied", "this person (or the agent acting for them) may not reach that resource server")
	}
	theirs := in.clientID
	if c, ok := rs.Clients[in.clientID]; ok && c != "" {
		theirs = c
	}
	extra := map[string]any{}
	if resource != "" {
		extra["resource"] = resource
	}
	if s.cfg.Email != nil {
		if email, err := s.cfg.Email(ctx, in.user); err == nil && email != "" {
			extra["email"] = email // for the authorization server to create the person just in time
		}
	}
	c := token.Claims{Claims: jwt.Claims{Subject: in.user.String(), Audience: jwt.Audience{rs.Issuer},
		Expiry: jwt.NewNumericDate(s.cfg.Now().Add(IDJAGLifetime))}, TenantID: tid, ClientID: theirs, Scope: strings.Join(granted, " "),
		AuthTime: in.authTime, AMR: in.amr}
	if in.agent != nil {
		c.Act = &token.Actor{Subject: agent.String(), ClientID: in.agent.ID, Kind: string(principal.KindNHI)}
	}
	raw, err := s.cfg.Tokens.MintIDJAG(ctx, c, extra)
	if err != nil {
		return nil, err
	}
	rec.Outcome = audit.OutcomeSuccess
	if err := s.cfg.Audit.AppendSync(ctx, rec); err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: raw, IssuedTokenType: TokenTypeIDJAG, TokenType: "N_A", ExpiresIn: int(IDJAGLifetime.Seconds()),
		Scope: strings.Join(granted, " ")}, nil
}
