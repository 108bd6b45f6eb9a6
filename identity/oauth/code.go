package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// PasswordChecker signs a person in (identity/auth).
type PasswordChecker interface {
	CheckPassword(ctx context.Context, slug, login, password string) (*tenant.Tenant, *directory.User, bool, error)
}

// Grant types of the code flow.
const (
	GrantAuthorizationCode = "authorization_code"
	codeLifetime           = time.Minute
	refreshLifetime        = 30 * 24 * time.Hour
)

// AuthorizeRequest is a validated authorization request.
type AuthorizeRequest struct {
	ClientID   string
	ClientName string
	// FirstParty: the organization's own client (no consent asked).
	FirstParty bool
	// Profile is what the client registered about itself (logo, pages).
	Profile       ClientProfile
	RedirectURI   string
	State         string
	Scope         []string
	Resources     []string
	CodeChallenge string
	Nonce         string
	// Prompt holds the prompt values asked for (OpenID Connect Core
	// §3.1.2.1): none, login, consent, select_account.
	Prompt []string
	// MaxAge is the most seconds since the person authenticated that the
	// client accepts (-1: not asked).
	MaxAge int
	// LoginHint prefills the sign-in page.
	LoginHint string
	// ResponseMode is how the answer travels back: query (the default),
	// fragment or form_post.
	ResponseMode string
	// Hint is a valid id_token_hint (nil without one): the person the
	// client expects to be signed in.
	Hint *Hint
	// ACRValues are the authentication context classes the client asks
	// for (acr_values), most preferred first.
	ACRValues []string
}

// Prompted reports whether the request asked for this prompt value.
func (r *AuthorizeRequest) Prompted(v string) bool { return slices.Contains(r.Prompt, v) }

// SignIn is how the person behind a code authenticated: the SSO session it
// was issued in (uuid.Nil: none), when, and with which methods (RFC 8176).
type SignIn struct {
	SessionID uuid.UUID
	AuthTime  time.Time
	AMR       []string
}

// ClientName returns a relying party's name.
func (s *Server) ClientName(ctx context.Context, clientID string) (string, error) {
	c, err := s.appClient(ctx, clientID)
	if err != nil {
		return "", err
	}
	return c.Name, nil
}

// PostLogoutRedirect reports whether uri is one of the client's
// registered post-logout redirect URIs (exact match).
func (s *Server) PostLogoutRedirect(ctx context.Context, clientID, uri string) bool {
	c, err := s.appClient(ctx, clientID)
	return err == nil && slices.Contains(c.PostLogoutRedirectURIs, uri)
}

// Authentication context classes (DESIGN §12).
const (
	ACRPassword = "urn:xavyo:acr:pwd" //nolint:gosec // G101: an authentication context class, not a credential
	ACRMFA      = "urn:xavyo:acr:mfa"
	// ACRPhishingResistant is a sign-in with a passkey or security key
	// among its factors (WebAuthn: bound to the origin).
	ACRPhishingResistant = "urn:xavyo:acr:phr"
)

// acrOf is the class of a sign-in by its methods (RFC 8176).
func acrOf(amr []string) string {
	switch {
	case slices.Contains(amr, "mfa") && slices.Contains(amr, "hwk"):
		return ACRPhishingResistant
	case slices.Contains(amr, "mfa"):
		return ACRMFA
	}
	return ACRPassword
}

// SatisfiedBy reports whether a sign-in by methods amr meets the class
// the client asks for first in acr_values (a class stronger than the
// sign-in's asks for a new one; one the pages cannot give is asked once
// and the ID token's acr says what was given).
func (r *AuthorizeRequest) SatisfiedBy(amr []string) bool {
	if len(r.ACRValues) == 0 {
		return true
	}
	switch r.ACRValues[0] {
	case ACRMFA:
		return slices.Contains(amr, "mfa")
	case ACRPhishingResistant:
		return slices.Contains(amr, "mfa") && slices.Contains(amr, "hwk")
	}
	return true
}

// RedirectError is an authorization error returned to the client at its
// (verified) redirect URI.
type RedirectError struct{ E *Error }

func (r RedirectError) Error() string { return r.E.Error() }

var verifierRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// ValidateAuthorize checks an authorization request. An unknown client or
// a redirect URI that is not exactly registered is an *Error (shown on a
// page, never redirected to); other problems are RedirectErrors.
func (s *Server) ValidateAuthorize(ctx context.Context, slug string, q func(string) string, multi func(string) []string) (*AuthorizeRequest, error) {
	c, err := s.appClient(ctx, q("client_id"))
	if err != nil {
		desc := "unknown client"
		if IsMetadataDocumentID(q("client_id")) {
			desc = err.Error()
		}
		return nil, oerr(400, "invalid_client", desc)
	}
	redirect := q("redirect_uri")
	if redirect == "" && len(c.RedirectURIs) == 1 {
		redirect = c.RedirectURIs[0]
	}
	if !slices.Contains(c.RedirectURIs, redirect) {
		return nil, oerr(400, "invalid_request", "the redirect_uri is not registered for this client (exact match)")
	}
	req := &AuthorizeRequest{ClientID: c.ClientID, ClientName: c.Name, FirstParty: c.FirstParty, Profile: c.ClientProfile, RedirectURI: redirect, State: q("state"), CodeChallenge: q("code_challenge"),
		Nonce: q("nonce"), Prompt: dedupe(strings.Fields(q("prompt"))), MaxAge: -1, LoginHint: q("login_hint"), ACRValues: strings.Fields(q("acr_values"))}
	if len(req.Nonce) > 256 || len(req.State) > 1024 || len(req.LoginHint) > 320 {
		return req, RedirectError{oerr(400, "invalid_request", "state, nonce or login_hint too long")}
	}
	bad := func(code, desc string) error { return RedirectError{oerr(400, code, desc)} }
	switch rm := q("response_mode"); rm {
	case "", "query", "fragment", "form_post":
		req.ResponseMode = rm
	default:
		return req, bad("invalid_request", "response_mode must be query, fragment or form_post")
	}
	for _, p := range req.Prompt {
		if !slices.Contains([]string{"none", "login", "consent", "select_account"}, p) {
			return req, bad("invalid_request", "unknown prompt value "+strconv.Quote(p))
		}
	}
	if req.Prompted("none") && len(req.Prompt) > 1 {
		return req, bad("invalid_request", "prompt=none cannot be combined with other values")
	}
	if v := q("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return req, bad("invalid_request", "max_age must be a non-negative number of seconds")
		}
		req.MaxAge = n
	}
	if q("response_type") != "code" {
		return req, bad("unsupported_response_type", "only response_type=code")
	}
	switch {
	case req.CodeChallenge == "" && !c.Confidential():
		return req, bad("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
	case req.CodeChallenge == "" && q("code_challenge_method") != "":
		return req, bad("invalid_request", "code_challenge_method without code_challenge")
	case req.CodeChallenge == "":
		// A confidential client may go without PKCE: it authenticates
		// when it redeems the code.
	case q("code_challenge_method") != "S256":
		return req, bad("invalid_request", "code_challenge_method must be S256")
	case !verifierRE.MatchString(req.CodeChallenge):
		return req, bad("invalid_request", "malformed code_challenge")
	}
	req.Scope = intersect(strings.Fields(q("scope")), strings.Fields(c.Scope))
	if q("scope") != "" && len(req.Scope) != len(dedupe(strings.Fields(q("scope")))) {
		return req, bad("invalid_scope", "the client may not ask for that scope")
	}
	if hint := q("id_token_hint"); hint != "" {
		if req.Hint, err = s.IDTokenHint(ctx, hint); err != nil {
			return req, bad("invalid_request", "the id_token_hint is not an ID token of this issuer")
		}
	}
	if _, e := s.Resources(ctx, slug, multi("resource")); e != nil {
		return req, RedirectError{e}
	}
	req.Resources = multi("resource")
	return req, nil
}

// digest is the hex SHA-256 under which random secrets xavyo makes are
// stored (codes, client secrets, registration access tokens).
func digest(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// IssueCode records a single-use code for a signed-in user, with how and
// in which SSO session they signed in.
func (s *Server) IssueCode(ctx context.Context, req *AuthorizeRequest, user uuid.UUID, in SignIn) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	code := base64.RawURLEncoding.EncodeToString(b)
	now := store.Now()
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return insertCode(ctx, tx, digest(code), req, user, in, now, now.Add(codeLifetime))
	})
	return code, err
}

// RelyingParty is the client of a code, refresh or device grant: a public
// client names itself; a confidential one has authenticated, over mTLS
// with a certificate its access tokens may be bound to. Agent, for the
// device grant, is an agent (an NHI's client) acting for the person.
type RelyingParty struct {
	ClientID      string
	Authenticated bool
	// CertThumbprint is the x5t#S256 of the certificate the client
	// authenticated with at the mTLS token endpoint ("" otherwise).
	CertThumbprint string
	Agent          *Client
}

// cnf binds access tokens to the certificate the client authenticated
// with, when it registered for that.
func (rp RelyingParty) cnf(app *AppClient) *token.Confirmation {
	if rp.CertThumbprint == "" || app == nil || !app.CertificateBound {
		return nil
	}
	return &token.Confirmation{X5tS256: rp.CertThumbprint}
}

// ExchangeCode is the authorization_code grant of a relying party: the
// code is single use (a replay revokes what it issued), bound to the
// client, the redirect URI and the PKCE verifier.
//
// authenticated says the client authenticated (a confidential client);
// a confidential client must, and may then redeem a code issued without
// PKCE. A code issued with a code_challenge always needs its verifier.
func (s *Server) ExchangeCode(ctx context.Context, slug string, rp RelyingParty, code, redirect, verifier string) (*TokenResponse, error) {
	clientID, authenticated := rp.ClientID, rp.Authenticated
	if verifier != "" && !verifierRE.MatchString(verifier) {
		return nil, oerr(400, "invalid_grant", "a code_verifier has 43 to 128 characters")
	}
	if verifier == "" && !authenticated {
		return nil, oerr(400, "invalid_grant", "a code_verifier of 43 to 128 characters is required")
	}
	app, err := s.appClient(ctx, clientID)
	if err != nil {
		return nil, clientFailure(err)
	}
	if app.Confidential() && !authenticated {
		return nil, ErrInvalidClient
	}
	tid, _ := store.TenantFrom(ctx)
	var (
		user      uuid.UUID
		scope     string
		resources []string
		family    uuid.UUID
		refresh   string
		nonce     string
		authTime  time.Time
		amr       []string
		sid       string
		reused    bool
	)
	invalid := oerr(400, "invalid_grant", "the code is invalid, expired, used, or not yours")
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		reused = false
		row, err := lockCode(ctx, tx, digest(code))
		if store.NoRows(err) {
			return invalid
		}
		if err != nil {
			return err
		}
		user, scope, nonce, authTime, resources, amr = row.user, row.scope, row.nonce, row.createdAt, row.resources, row.amr
		if row.authTime != nil {
			authTime = *row.authTime
		}
		if row.used != nil {
			reused = true
			if row.family != nil {
				return s.cfg.Tokens.RevokeFamilyInTx(ctx, tx, tid, *row.family)
			}
			return nil
		}
		sum := sha256.Sum256([]byte(verifier))
		pkce := (row.challenge == "" && verifier == "" && authenticated) ||
			(row.challenge != "" && verifier != "" && base64.RawURLEncoding.EncodeToString(sum[:]) == row.challenge)
		if row.clientID != clientID || row.redirectURI != redirect || !store.Now().Before(row.expires) || !pkce {
			return invalid
		}
		var e error
		if resources, refresh, family, sid, e = s.grantTx(ctx, tx, slug, user, clientID, scope, resources, row.session); e != nil {
			return e
		}
		return markCodeUsed(ctx, tx, digest(code), family)
	})
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			return nil, oe
		}
		return nil, err
	}
	if reused {
		return nil, invalid
	}
	return s.personTokens(ctx, user, app, rp.cnf(app), scope, resources, refresh, family, nonce, authTime, amr, sid)
}

// grantTx starts the refresh family of a person's grant to a client, in
// the SSO session it was given in (ending the session ends the tokens):
// it checks the resources and returns them as audiences.
func (s *Server) grantTx(ctx context.Context, tx *store.Tx, slug string, user uuid.UUID, clientID, scope string, resources []string,
	session *uuid.UUID) (auds []string, refresh string, family uuid.UUID, sid string, err error) {
	auds, e := s.Resources(ctx, slug, resources)
	if e != nil {
		return nil, "", uuid.Nil, "", e
	}
	g := &token.RefreshGrant{TenantID: tx.TenantID(), Subject: user.String(), ClientID: clientID, Scope: scope, Audience: auds,
		ExpiresAt: store.Now().Add(refreshLifetime)}
	if session != nil {
		g.SessionID = *session
		sid = session.String()
	}
	if refresh, err = s.cfg.Tokens.NewRefreshInTx(ctx, tx, g); err != nil {
		return nil, "", uuid.Nil, "", err
	}
	return auds, refresh, g.FamilyID, sid, nil
}

// personTokens mints a person's access token for a client and, with the
// openid scope, an ID token (aud = client_id, so it is never accepted as
// an access token by a resource) that says how and when they signed in.
func (s *Server) personTokens(ctx context.Context, user uuid.UUID, app *AppClient, cnf *token.Confirmation, scope string, auds []string, refresh string,
	family uuid.UUID, nonce string, authTime time.Time, amr []string, sid string) (*TokenResponse, error) {
	out, err := s.userToken(ctx, user.String(), app.ClientID, scope, auds, refresh, family, cnf, amr, authTime)
	if err != nil || !slices.Contains(strings.Fields(scope), "openid") {
		return out, err
	}
	tid, _ := store.TenantFrom(ctx)
	out.IDToken, err = s.cfg.Tokens.MintIDToken(ctx, token.Claims{
		Claims: jwt.Claims{Subject: s.subjectOf(app, tid, user), Audience: jwt.Audience{app.ClientID},
			Expiry: jwt.NewNumericDate(s.cfg.Now().Add(s.cfg.AccessTTL))},
		TenantID: tid, Nonce: nonce, AuthTime: authTime.Unix(), SubjectKind: string(principal.KindUser), AMR: amr, ACR: acrOf(amr),
		SessionID: sid,
	})
	return out, err
}

// userToken mints a user's access token for a public client, tied to the
// refresh family it comes from (revoking the family revokes it). It says
// how and when the person signed in (amr, auth_time: step-up reads them);
// a refreshed one says only pwd, with no sign-in time.
func (s *Server) userToken(ctx context.Context, sub, clientID, scope string, auds []string, refresh string, family uuid.UUID,
	cnf *token.Confirmation, amr []string, authTime time.Time) (*TokenResponse, error) {
	tid, _ := store.TenantFrom(ctx)
	if len(amr) == 0 {
		amr = []string{"pwd"}
	}
	var at int64
	if !authTime.IsZero() {
		at = authTime.Unix()
	}
	fam := ""
	if family != uuid.Nil {
		fam = family.String()
	}
	raw, err := s.cfg.Tokens.Mint(ctx, token.Claims{
		Claims:   jwt.Claims{Subject: sub, Audience: jwt.Audience(auds), Expiry: jwt.NewNumericDate(s.cfg.Now().Add(s.cfg.AccessTTL))},
		TenantID: tid, Scope: scope, ClientID: clientID, SubjectKind: string(principal.KindUser), AMR: amr, Family: fam,
		Cnf: cnf, AuthTime: at,
	})
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds()), RefreshToken: refresh, Scope: scope}, nil
}

// RefreshForClient rotates a refresh token issued to a relying party that
// still exists (a deleted client uses the token endpoint no more); a
// confidential one must have authenticated.
func (s *Server) RefreshForClient(ctx context.Context, rp RelyingParty, raw string) (*TokenResponse, error) {
	clientID, authenticated := rp.ClientID, rp.Authenticated
	tid, _ := store.TenantFrom(ctx)
	app, err := s.appClient(ctx, clientID)
	if err != nil {
		return nil, clientFailure(err)
	}
	if app.Confidential() && !authenticated {
		return nil, ErrInvalidClient
	}
	if t, err := token.RefreshTenant(raw); err != nil || t != tid {
		return nil, oerr(400, "invalid_grant", "the refresh token is invalid")
	}
	g, next, err := s.cfg.Tokens.Refresh(ctx, raw)
	if errors.Is(err, token.ErrRefreshKey) {
		return nil, oerr(400, "invalid_grant", apperr.PublicMessage(err))
	}
	if err != nil {
		return nil, oerr(400, "invalid_grant", "the refresh token is invalid, expired, revoked or reused")
	}
	if g.ClientID != clientID {
		return nil, oerr(400, "invalid_grant", "the refresh token was issued to another client")
	}
	return s.userToken(ctx, g.Subject, clientID, g.Scope, g.Audience, next, g.FamilyID, rp.cnf(app), nil, time.Time{})
}
