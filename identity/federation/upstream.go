package federation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/store"
)

// AttemptLifetime is how long a person has at the upstream provider.
const AttemptLifetime = 10 * time.Minute

// discoveryLifetime is how long a provider's discovery document is kept.
const discoveryLifetime = time.Hour

// Identity is what an upstream provider says of a person it signed in.
type Identity struct {
	// Subject is the person's stable id there.
	Subject string
	// Claims are the ID token's (and userinfo's, or GitHub's user API's).
	Claims map[string]any
	// AMR and ACR are the upstream's, when it sent them.
	AMR []string
	ACR string
}

// attempt is a sign-in sent upstream, sealed in its row.
type attempt struct {
	Tx       string `json:"tx,omitempty"`
	Nonce    string `json:"n,omitempty"`
	Verifier string `json:"v,omitempty"`
	// Browser is the SHA-256 of the browser's binding secret ("" : a
	// logout, answered without the browser's cookies).
	Browser string `json:"b,omitempty"`
	// Request is the id of a SAML request sent (the answer's InResponseTo).
	Request string `json:"r,omitempty"`
	// Resume is where a sign-out goes on once the provider answered.
	Resume string `json:"u,omitempty"`
}

// upstream is a provider's discovered endpoints and ID token verifier.
type upstream struct {
	endpoint oauth2.Endpoint
	oidc     *oidc.Provider
	verifier *oidc.IDTokenVerifier
	// keys is the provider's key set (ID-JAGs are verified with it).
	keys oidc.KeySet
	// template is a multi-tenant Microsoft issuer with {tenantid}.
	template string
	at       time.Time
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func isSealed(v string) bool { return strings.HasPrefix(v, "sealed:") }

// microsoftTemplate is the issuer template of a multi-tenant Entra ID
// issuer (…/organizations/v2.0, …/common/v2.0): its ID tokens' iss names
// the person's own Entra tenant. "" for a single-tenant issuer.
func microsoftTemplate(issuer string) string {
	for _, seg := range []string{"/organizations/", "/common/", "/consumers/"} {
		if before, after, ok := strings.Cut(issuer, seg); ok {
			return before + "/{tenantid}/" + after
		}
	}
	return ""
}

// clientContext carries the egress client for go-oidc and x/oauth2.
func (s *Service) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, s.Client)
}

// upstreamOf discovers an OIDC provider (kept an hour per version) or
// returns GitHub's endpoints.
func (s *Service) upstreamOf(ctx context.Context, p *Provider) (*upstream, error) {
	key := p.ID.String() + "/" + strconv.FormatInt(p.Version, 10)
	if v, ok := s.discovered.Load(key); ok && time.Since(v.(*upstream).at) < discoveryLifetime {
		return v.(*upstream), nil
	}
	up := &upstream{at: time.Now()}
	if p.Kind == KindGitHub {
		up.endpoint = oauth2.Endpoint{AuthURL: p.BaseURL + "/login/oauth/authorize", TokenURL: p.BaseURL + "/login/oauth/access_token"}
	} else {
		// Discovery and the key set outlive the request: their context
		// carries only the client.
		dctx := s.clientContext(context.Background())
		if p.Preset == PresetMicrosoft {
			up.template = microsoftTemplate(p.Issuer)
			if up.template != "" {
				dctx = oidc.InsecureIssuerURLContext(dctx, up.template)
			}
		}
		ctx, cancel := context.WithTimeout(dctx, 10*time.Second)
		defer cancel()
		op, err := oidc.NewProvider(ctx, p.Issuer)
		if err != nil {
			return nil, apperr.New(apperr.KindUnavailable, "the identity provider's discovery failed: %v", egressError(err))
		}
		up.oidc, up.endpoint = op, op.Endpoint()
		var meta struct {
			JWKS string `json:"jwks_uri"`
		}
		if err := op.Claims(&meta); err != nil || meta.JWKS == "" {
			return nil, apperr.New(apperr.KindUnavailable, "the identity provider's discovery document has no jwks_uri")
		}
		up.keys = oidc.NewRemoteKeySet(dctx, meta.JWKS)
		up.verifier = oidc.NewVerifier(p.Issuer, up.keys, &oidc.Config{ClientID: p.ClientID, SupportedSigningAlgs: p.Algorithms,
			SkipIssuerCheck: up.template != "", Now: s.now})
	}
	switch p.AuthMethod {
	case "client_secret_post":
		up.endpoint.AuthStyle = oauth2.AuthStyleInParams
	default:
		up.endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	s.discovered.Store(key, up)
	return up, nil
}

func egressError(err error) string {
	if e := egress.Unreachable("the identity provider", err); e != nil {
		return apperr.PublicMessage(e)
	}
	return err.Error()
}

func (s *Service) config(ctx context.Context, p *Provider, up *upstream, redirectURI string) (*oauth2.Config, error) {
	secret, err := s.clientSecret(ctx, p)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{ClientID: p.ClientID, ClientSecret: secret, Endpoint: up.endpoint, RedirectURL: redirectURI, Scopes: p.Scopes}, nil
}

func attemptAAD(tenant, provider uuid.UUID, stateHash string) []byte {
	return []byte("federation-attempt|" + tenant.String() + "|" + provider.String() + "|" + stateHash)
}

// Begin sends a sign-in upstream: it records the attempt (for the auth
// transaction tx, "" for none, in the browser whose binding secret is
// browser) and returns the provider's authorization URL.
func (s *Service) Begin(ctx context.Context, p *Provider, tx, browser, redirectURI, loginHint string) (string, error) {
	if !p.Enabled {
		return "", apperr.NotFound("identity provider")
	}
	up, err := s.upstreamOf(ctx, p)
	if err != nil {
		return "", err
	}
	cfg, err := s.config(ctx, p, up, redirectURI)
	if err != nil {
		return "", err
	}
	a := attempt{Tx: tx, Verifier: oauth2.GenerateVerifier(), Browser: digest(browser)}
	state := random(32)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.Verifier)}
	if p.Kind == KindOIDC {
		a.Nonce = random(24)
		opts = append(opts, oidc.Nonce(a.Nonce))
		if p.Preset == PresetApple {
			opts = append(opts, oauth2.SetAuthURLParam("response_mode", "form_post"))
		}
		if loginHint != "" && len(loginHint) <= 254 {
			opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
		}
	} else if loginHint != "" && len(loginHint) <= 254 {
		opts = append(opts, oauth2.SetAuthURLParam("login", loginHint))
	}
	if err := s.saveAttempt(ctx, p, state, a); err != nil {
		return "", err
	}
	return cfg.AuthCodeURL(state, opts...), nil
}

// saveAttempt records a sign-in sent upstream under its state.
func (s *Service) saveAttempt(ctx context.Context, p *Provider, state string, a attempt) error {
	tid, _ := store.TenantFrom(ctx)
	raw, _ := json.Marshal(a)
	now := s.now()
	sealed := base64.StdEncoding.EncodeToString(s.Sealer.Seal(raw, attemptAAD(tid, p.ID, digest(state))))
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return insertAttemptTx(ctx, tx, digest(state), p.ID, sealed, now.Add(AttemptLifetime), now)
	})
}

// takeAttempt uses up the attempt state names, in the browser whose
// binding secret is browser ("" : any, for returns that come without the
// browser: a logout answer).
func (s *Service) takeAttempt(ctx context.Context, p *Provider, state, browser string) (*attempt, error) {
	if state == "" || len(state) > 100 {
		return nil, ErrAttempt
	}
	tid, _ := store.TenantFrom(ctx)
	var sealed string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		sealed, err = takeAttemptTx(ctx, tx, digest(state), p.ID, s.now())
		return err
	})
	if err != nil {
		return nil, err
	}
	if sealed == "" {
		return nil, ErrAttempt
	}
	ct, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, ErrAttempt
	}
	raw, err := s.Sealer.Open(ct, attemptAAD(tid, p.ID, digest(state)))
	if err != nil {
		return nil, ErrAttempt
	}
	var a attempt
	if json.Unmarshal(raw, &a) != nil || (a.Browser != "" && subtle.ConstantTimeCompare([]byte(a.Browser), []byte(digest(browser))) != 1) {
		return nil, ErrAttempt
	}
	return &a, nil
}

// ErrAttempt answers a return from upstream that matches no sign-in
// this browser started: unknown, expired, already used, another
// provider's or another browser's.
var ErrAttempt = apperr.New(apperr.KindUnauthenticated, "this sign-in has expired or was not started in this browser; start again")

// Finish completes a sign-in back from upstream: the attempt its state
// names is used up (once, in the browser that started it), the code
// exchanged with its PKCE verifier, and the answer verified. It returns
// the identity and the auth transaction the sign-in is for ("" : none).
func (s *Service) Finish(ctx context.Context, p *Provider, state, code, browser, redirectURI string, extra url.Values) (*Identity, string, error) {
	if state == "" || len(state) > 100 || code == "" || len(code) > 4096 {
		return nil, "", ErrAttempt
	}
	a, err := s.takeAttempt(ctx, p, state, browser)
	if err != nil {
		return nil, "", err
	}
	up, err := s.upstreamOf(ctx, p)
	if err != nil {
		return nil, "", err
	}
	cfg, err := s.config(ctx, p, up, redirectURI)
	if err != nil {
		return nil, "", err
	}
	xctx, cancel := context.WithTimeout(s.clientContext(ctx), 15*time.Second)
	defer cancel()
	tok, err := cfg.Exchange(xctx, code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		return nil, "", refused("the code was not accepted: " + exchangeError(err))
	}
	var id *Identity
	if p.Kind == KindGitHub {
		id, err = s.github(xctx, p, tok)
	} else {
		id, err = s.verifyOIDC(xctx, p, up, tok, a.Nonce)
	}
	if err != nil {
		return nil, "", err
	}
	if p.Preset == PresetApple {
		appleUser(extra.Get("user"), id.Claims)
	}
	return id, a.Tx, nil
}

// refused is an upstream answer xavyo does not accept.
func refused(why string) error {
	return apperr.New(apperr.KindUnauthenticated, "the identity provider's answer was refused: %s", why)
}

func exchangeError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		return re.ErrorCode
	}
	return egressError(err)
}

// verifyOIDC verifies an ID token (signature with the provider's keys
// and an accepted algorithm, issuer, audience, expiry: go-oidc; nonce,
// azp, at_hash, issue time and the presets' claims: here) and gathers
// its claims.
func (s *Service) verifyOIDC(ctx context.Context, p *Provider, up *upstream, tok *oauth2.Token, nonce string) (*Identity, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refused("no ID token")
	}
	idt, err := up.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, refused(err.Error())
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, refused("unreadable claims")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 || nonce == "" {
		return nil, refused("the nonce does not match this sign-in")
	}
	azp, _ := claims["azp"].(string)
	if (len(idt.Audience) > 1 && azp == "") || (azp != "" && azp != p.ClientID) {
		return nil, refused("the token was issued to another client (azp)")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, refused("at_hash does not match the access token")
		}
	}
	if idt.IssuedAt.After(s.now().Add(5 * time.Minute)) {
		return nil, refused("issued in the future")
	}
	if idt.Subject == "" || len(idt.Subject) > 255 {
		return nil, refused("no subject")
	}
	id := &Identity{Subject: idt.Subject, Claims: claims, ACR: str(claims["acr"]), AMR: list(claims["amr"])}
	switch p.Preset {
	case PresetMicrosoft:
		tid, oid := str(claims["tid"]), str(claims["oid"])
		if up.template != "" {
			if tid == "" || idt.Issuer != strings.ReplaceAll(up.template, "{tenantid}", tid) {
				return nil, refused("the issuer is not the Entra tenant's (iss and tid)")
			}
			if !slices.Contains(p.AllowedTenants, tid) {
				return nil, refused("Entra tenant " + tid + " is not accepted here")
			}
		}
		if oid != "" && tid != "" {
			// The object id is the person's in their tenant, for every
			// application (sub differs per application).
			id.Subject = tid + ":" + oid
		}
	case PresetGoogle:
		if len(p.HostedDomains) > 0 && !slices.Contains(p.HostedDomains, strings.ToLower(str(claims["hd"]))) {
			return nil, refused("the Google account is not of an accepted Workspace domain (hd)")
		}
	}
	if p.Userinfo && up.oidc.UserInfoEndpoint() != "" {
		ui, err := up.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, refused("userinfo: " + egressError(err))
		}
		if ui.Subject != idt.Subject {
			return nil, refused("userinfo is of another subject")
		}
		more := map[string]any{}
		if err := ui.Claims(&more); err == nil {
			for k, v := range more {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	return id, nil
}

// github reads the person GitHub signed in (its REST API: /user and
// /user/emails; GitHub has no ID token).
func (s *Service) github(ctx context.Context, p *Provider, tok *oauth2.Token) (*Identity, error) {
	api := "https://api.github.com"
	if p.BaseURL != "https://github.com" {
		api = p.BaseURL + "/api/v3" // GitHub Enterprise Server
	}
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := s.getJSON(ctx, api+"/user", tok, &user); err != nil {
		return nil, err
	}
	if user.ID <= 0 {
		return nil, refused("GitHub's user has no id")
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	claims := map[string]any{"sub": strconv.FormatInt(user.ID, 10), "login": user.Login, "name": user.Name, "preferred_username": user.Login}
	if err := s.getJSON(ctx, api+"/user/emails", tok, &emails); err == nil {
		for _, e := range emails {
			if e.Primary {
				claims["email"], claims["email_verified"] = e.Email, e.Verified
			}
		}
	} else if user.Email != "" {
		claims["email"] = user.Email // the public address: not known to be verified
	}
	return &Identity{Subject: strconv.FormatInt(user.ID, 10), Claims: claims}, nil
}

func (s *Service) getJSON(ctx context.Context, u string, tok *oauth2.Token, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return refused("bad API URL")
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := s.Client.Do(req)
	if err != nil {
		return refused(egressError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return refused(fmt.Sprintf("%s answered %d", (&url.URL{Path: req.URL.Path}).String(), resp.StatusCode))
	}
	if err := json.Unmarshal(body, into); err != nil {
		return refused("unreadable API answer")
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// list reads a claim that is a string or a list of strings.
func list(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// NewBrowserSecret is a new secret binding sign-ins to a browser.
func NewBrowserSecret() string { return random(32) }
