// Package token is xavyo's one token service (docs/design/0000-architecture.md §11): per-tenant
// signing keys (ES256, RS256 for compatibility) sealed under the KEK and
// rotated with overlap; access-token minting with iss =
// {admin.public_url}/t/{slug}; verification with a verified-token cache;
// revocation by jti and by session; refresh-token families with rotation
// and reuse detection.
package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
)

// Tenants resolves tenant IDs and slugs (the issuer path uses the slug).
type Tenants interface {
	SlugOf(ctx context.Context, id uuid.UUID) (string, error)
}

// Config configures the service.
type Config struct {
	DB      *store.DB
	Sealer  *seal.Sealer
	Tenants Tenants
	// IssuerBase is admin.public_url; a tenant's issuer is IssuerBase/t/{slug}.
	IssuerBase string
	Logger     *slog.Logger
	// RotateEvery is the age at which the active key is replaced (default 30 days).
	RotateEvery time.Duration
	// Overlap is how long a replaced key keeps verifying (default 48h; must
	// exceed every token lifetime).
	Overlap time.Duration
	// RotationCheck is how often the rotation worker looks (default 1h).
	RotationCheck time.Duration
	// Leeway tolerates clock skew on exp/nbf/iat (default 30s).
	Leeway time.Duration
	// CacheSize bounds the verified-token cache (default 100k entries).
	CacheSize int
	// DPoPNonces, when set, are the server nonces DPoP proofs must carry.
	DPoPNonces *dpop.Nonces
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CheckAndSetDefaults validates and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DB == nil || c.Sealer == nil || c.Tenants == nil || c.IssuerBase == "" {
		return errors.New("token: DB, Sealer, Tenants and IssuerBase are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RotateEvery <= 0 {
		c.RotateEvery = 30 * 24 * time.Hour
	}
	if c.Overlap <= 0 {
		c.Overlap = 48 * time.Hour
	}
	if c.RotationCheck <= 0 {
		c.RotationCheck = time.Hour
	}
	if c.Leeway <= 0 {
		c.Leeway = 30 * time.Second
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Actor is one link of the `act` claim (RFC 8693), nested for chains.
type Actor struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id,omitempty"`
	Kind     string `json:"sub_kind,omitempty"`
	Act      *Actor `json:"act,omitempty"`
}

// Confirmation is the `cnf` claim: a certificate (RFC 8705) or a DPoP
// key (RFC 9449) the token is bound to.
type Confirmation struct {
	X5tS256 string `json:"x5t#S256,omitempty"`
	JKT     string `json:"jkt,omitempty"`
}

type dpopKey struct{}

// WithDPoPKey marks ctx as a request that proved a DPoP key (its
// thumbprint): access tokens minted in it are bound to that key, and so
// are new refresh families.
func WithDPoPKey(ctx context.Context, jkt string) context.Context {
	return context.WithValue(ctx, dpopKey{}, jkt)
}

// DPoPKey is the DPoP key ctx's request proved ("" : none).
func DPoPKey(ctx context.Context) string {
	s, _ := ctx.Value(dpopKey{}).(string)
	return s
}

// Claims are the claims of xavyo access tokens.
type Claims struct {
	jwt.Claims
	TenantID  uuid.UUID     `json:"tid"`
	Scope     string        `json:"scope,omitempty"`
	Act       *Actor        `json:"act,omitempty"`
	Cnf       *Confirmation `json:"cnf,omitempty"`
	SessionID string        `json:"sid,omitempty"`
	// Family is the refresh family an access token was issued from (an
	// authorization code's or a refresh's): revoking the family revokes
	// it too.
	Family      string   `json:"fam,omitempty"`
	ClientID    string   `json:"client_id,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	AMR         []string `json:"amr,omitempty"`
	SubjectKind string   `json:"sub_kind,omitempty"`
	NHIKind     string   `json:"nhi_kind,omitempty"`
	// ID token claims (OpenID Connect Core §2).
	Nonce    string `json:"nonce,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
	// ACR is the authentication context class of a person's sign-in
	// (urn:xavyo:acr:pwd, …).
	ACR   string `json:"acr,omitempty"`
	Email string `json:"email,omitempty"`
}

// Service is the token service.
type Service struct {
	cfg Config

	mu     sync.RWMutex
	active map[uuid.UUID]*keyEntry
	keys   map[string]*keyEntry
	// jwks is each tenant's key set as last read: served while the store
	// cannot be read (relying parties keep verifying).
	jwks   map[uuid.UUID]*jose.JSONWebKeySet
	misses map[string]time.Time

	cmu   sync.RWMutex
	cache map[[32]byte]*Claims

	rmu     sync.RWMutex
	revoked map[revocationKey]time.Time
	// reload asks RunRevocationReloads to read the revocations again (after
	// a lost change feed: revocations made elsewhere may have been missed).
	reload chan struct{}

	// proofs counts DPoP proofs recorded (every 256th prunes the old).
	proofs atomic.Uint64
}

type revocationKey struct {
	tenant uuid.UUID
	kind   string
	value  string
}

// New returns the service. Call Watch to follow other replicas' changes.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	cfg.IssuerBase = strings.TrimSuffix(cfg.IssuerBase, "/")
	return &Service{cfg: cfg, active: map[uuid.UUID]*keyEntry{}, keys: map[string]*keyEntry{}, misses: map[string]time.Time{}, jwks: map[uuid.UUID]*jose.JSONWebKeySet{},
		cache: map[[32]byte]*Claims{}, revoked: map[revocationKey]time.Time{}, reload: make(chan struct{}, 1)}, nil
}

// Issuer returns the issuer URL of a tenant slug.
func (s *Service) Issuer(slug string) string { return s.cfg.IssuerBase + "/t/" + slug }

// AdminAudience is the audience of admin API tokens.
func (s *Service) AdminAudience() string { return s.cfg.IssuerBase + "/api/v1" }

// Mint signs an access token (typ at+jwt, RFC 9068) for c.TenantID. It
// fills iss, iat, nbf and jti; c must carry sub, aud and exp.
func (s *Service) Mint(ctx context.Context, c Claims) (string, error) {
	return s.mint(ctx, c, false)
}

// MintIDToken signs an OpenID Connect ID token (typ JWT) as Mint does.
func (s *Service) MintIDToken(ctx context.Context, c Claims) (string, error) {
	return s.mint(ctx, c, true)
}

// MintIDJAG signs an identity assertion authorization grant (typ
// oauth-id-jag+jwt) as Mint does, with extra claims beside c's (the
// resource, the person's address).
func (s *Service) MintIDJAG(ctx context.Context, c Claims, extra map[string]any) (string, error) {
	k, err := s.stamp(ctx, &c)
	if err != nil {
		return "", err
	}
	signer, err := newSigner(k.alg, k.kid, k.priv, "oauth-id-jag+jwt")
	if err != nil {
		return "", err
	}
	c.NotBefore = nil
	return jwt.Signed(signer).Claims(c).Claims(extra).Serialize()
}

// stamp checks c's required claims and fills iss, iat, nbf and jti; it
// returns the tenant's signing key.
func (s *Service) stamp(ctx context.Context, c *Claims) (*keyEntry, error) {
	if c.TenantID == uuid.Nil || c.Subject == "" || len(c.Audience) == 0 || c.Expiry == nil {
		return nil, errors.New("token: tid, sub, aud and exp are required")
	}
	slug, err := s.cfg.Tenants.SlugOf(ctx, c.TenantID)
	if err != nil {
		return nil, err
	}
	k, err := s.activeKey(ctx, c.TenantID)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	c.Issuer = s.Issuer(slug)
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	if c.ID == "" {
		c.ID = uuid.Must(uuid.NewV7()).String()
	}
	return k, nil
}

// TenantIssuer is the issuer URL of a tenant's tokens.
func (s *Service) TenantIssuer(ctx context.Context, tenant uuid.UUID) (string, error) {
	slug, err := s.cfg.Tenants.SlugOf(ctx, tenant)
	if err != nil {
		return "", err
	}
	return s.Issuer(slug), nil
}

func (s *Service) mint(ctx context.Context, c Claims, idToken bool) (string, error) {
	k, err := s.stamp(ctx, &c)
	if err != nil {
		return "", err
	}
	if idToken {
		return jwt.Signed(k.signer).Claims(c).Serialize()
	}
	if jkt := DPoPKey(ctx); jkt != "" {
		cnf := Confirmation{JKT: jkt}
		if c.Cnf != nil {
			cnf.X5tS256 = c.Cnf.X5tS256
		}
		c.Cnf = &cnf
	}
	return jwt.Signed(k.atSigner).Claims(c).Serialize()
}

// Expect is what a verifier requires of a token.
type Expect struct {
	// Audience must be one of the token's audiences.
	Audience string
	// Tenant, when set, must be the token's tenant.
	Tenant uuid.UUID
	// CertThumbprint is the x5t#S256 of the client certificate the request
	// came with, if any: a certificate-bound token (cnf) is accepted only
	// with its certificate (RFC 8705 §3).
	CertThumbprint string
	// DPoPKey is the thumbprint of the DPoP key the request proved, if
	// any: a DPoP-bound token (cnf.jkt) is accepted only with a proof of
	// its key, and a proof comes only with a token bound to it (RFC 9449
	// §7).
	DPoPKey string
	// AnyHolder skips the binding check: for the authorization server's
	// own uses (introspection, revocation, exchange subject tokens).
	AnyHolder bool
}

// ErrDPoPBound answers a DPoP-bound token presented as a bearer token
// (or with a proof of another key).
var ErrDPoPBound = apperr.New(apperr.KindUnauthenticated, "the token is bound to a DPoP key: present it with a DPoP proof of that key")

var errInvalid = apperr.New(apperr.KindUnauthenticated, "invalid token")

// Verify checks a token's signature, issuer, audience, times and
// revocation, and returns its claims. Tokens verified before are served
// from a cache keyed by their hash (revocation and expiry still checked).
func (s *Service) Verify(ctx context.Context, raw string, want Expect) (*Claims, error) {
	if len(raw) > 16<<10 {
		return nil, errInvalid
	}
	h := sha256.Sum256([]byte(raw))
	s.cmu.RLock()
	c, hit := s.cache[h]
	s.cmu.RUnlock()
	if !hit {
		var err error
		if c, err = s.verify(ctx, raw); err != nil {
			return nil, err
		}
		s.cmu.Lock()
		if len(s.cache) >= s.cfg.CacheSize {
			clear(s.cache)
		}
		s.cache[h] = c
		s.cmu.Unlock()
	}
	now := s.cfg.Now()
	if c.Expiry.Time().Add(s.cfg.Leeway).Before(now) {
		return nil, apperr.New(apperr.KindUnauthenticated, "token expired")
	}
	if want.Tenant != uuid.Nil && c.TenantID != want.Tenant {
		return nil, apperr.New(apperr.KindUnauthenticated, "token issued for another tenant")
	}
	if want.Audience != "" && !slices.Contains(c.Audience, want.Audience) {
		return nil, apperr.New(apperr.KindUnauthenticated, "token not issued for this audience")
	}
	if s.isRevoked(c.TenantID, "jti", c.ID) || (c.SessionID != "" && s.isRevoked(c.TenantID, "sid", c.SessionID)) ||
		(c.Family != "" && s.isRevoked(c.TenantID, "fam", c.Family)) || (c.ClientID != "" && s.isRevoked(c.TenantID, "client", c.ClientID)) {
		return nil, apperr.New(apperr.KindUnauthenticated, "token revoked")
	}
	if !want.AnyHolder && c.Cnf != nil && c.Cnf.X5tS256 != "" && c.Cnf.X5tS256 != want.CertThumbprint {
		return nil, apperr.New(apperr.KindUnauthenticated, "certificate-bound token presented without its certificate")
	}
	if !want.AnyHolder {
		bound := ""
		if c.Cnf != nil {
			bound = c.Cnf.JKT
		}
		switch {
		case bound != "" && bound != want.DPoPKey:
			return nil, ErrDPoPBound
		case bound == "" && want.DPoPKey != "":
			return nil, apperr.New(apperr.KindUnauthenticated, "a DPoP proof came with a token not bound to its key")
		}
	}
	return c, nil
}

// ErrUseNonce answers a DPoP proof without a current server nonce where
// one is required: the client retries with the nonce of DPoPNonce.
var ErrUseNonce = apperr.New(apperr.KindUnauthenticated, "a DPoP proof must carry the server's nonce (DPoP-Nonce)")

// DPoPNonce is a fresh server nonce ("" : nonces are not required).
func (s *Service) DPoPNonce() string {
	if s.cfg.DPoPNonces == nil {
		return ""
	}
	return s.cfg.DPoPNonces.Issue(s.cfg.Now())
}

// CheckProof checks the DPoP proof of a request to tenant (method and
// URL; accessToken "" at the token endpoint), its nonce when required,
// and records it (a replay anywhere is refused).
func (s *Service) CheckProof(ctx context.Context, tenant uuid.UUID, raw, method, target, accessToken string) (*dpop.Proof, error) {
	now := s.cfg.Now()
	p, err := dpop.Check(raw, method, target, accessToken, now)
	if err != nil {
		return nil, err
	}
	if s.cfg.DPoPNonces != nil && !s.cfg.DPoPNonces.Valid(p.Nonce, now) {
		return nil, ErrUseNonce
	}
	if err := s.UseProof(ctx, tenant, p.JKT, p.JTI, p.Until); err != nil {
		return nil, err
	}
	return p, nil
}

// ErrProofReplayed answers a DPoP proof presented again.
var ErrProofReplayed = apperr.New(apperr.KindUnauthenticated, "invalid DPoP proof: it was used before")

// UseProof records a DPoP proof of tenant's (key thumbprint and jti)
// until it expires; ErrProofReplayed: it was recorded before, here or on
// another replica.
func (s *Service) UseProof(ctx context.Context, tenant uuid.UUID, jkt, jti string, until time.Time) error {
	sum := sha256.Sum256([]byte(jkt + "|" + jti))
	now := s.cfg.Now().UTC()
	prune := s.proofs.Add(1)%256 == 1
	var fresh bool
	// A record that survives a crash of this process (not of the machine):
	// the price of one per gateway call.
	err := s.cfg.DB.InTenantTxRelaxed(store.WithTenant(ctx, tenant), func(tx *store.Tx) error {
		var err error
		fresh, err = useProofTx(ctx, tx, hex.EncodeToString(sum[:]), until.UTC(), now, prune)
		return err
	})
	if err != nil {
		return err
	}
	if !fresh {
		return ErrProofReplayed
	}
	return nil
}

// IDTokenHint returns the claims of an ID token this server issued in
// tenant to a person, expired or not (OpenID Connect's id_token_hint):
// its signature, issuer and tenant are checked, not its expiry nor its
// revocation.
func (s *Service) IDTokenHint(ctx context.Context, raw string, tenant uuid.UUID) (*Claims, error) {
	if len(raw) > 16<<10 {
		return nil, errInvalid
	}
	c, err := s.verifyAt(ctx, raw, true)
	if err != nil {
		return nil, err
	}
	if c.TenantID != tenant || c.AuthTime == 0 {
		return nil, errInvalid // another tenant's, or not an ID token of a person
	}
	return c, nil
}

// verify does the uncached work: parse, find the key, check signature and
// registered claims.
func (s *Service) verify(ctx context.Context, raw string) (*Claims, error) {
	return s.verifyAt(ctx, raw, false)
}

// verifyAt is verify; anyExpiry accepts an expired token.
func (s *Service) verifyAt(ctx context.Context, raw string, anyExpiry bool) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, errInvalid
	}
	hdr := tok.Headers[0]
	if hdr.KeyID == "" || (hdr.ExtraHeaders["typ"] != nil && !strings.EqualFold(asString(hdr.ExtraHeaders["typ"]), "JWT") &&
		!strings.EqualFold(asString(hdr.ExtraHeaders["typ"]), "at+jwt")) {
		return nil, errInvalid
	}
	k, err := s.verifyingKey(ctx, hdr.KeyID)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "cannot verify tokens now")
	}
	if k == nil || k.alg != hdr.Algorithm || !k.verifies(s.cfg.Now()) {
		return nil, apperr.New(apperr.KindUnauthenticated, "token signed with an unknown key")
	}
	var c Claims
	if err := tok.Claims(k.public, &c); err != nil {
		return nil, errInvalid
	}
	if c.TenantID != k.tenant {
		return nil, errInvalid // a tenant's key only vouches for its own tenant
	}
	slug, err := s.cfg.Tenants.SlugOf(ctx, c.TenantID)
	if err != nil {
		return nil, apperr.New(apperr.KindUnauthenticated, "token of an unknown tenant")
	}
	if c.Expiry == nil || c.Subject == "" || c.ID == "" {
		return nil, errInvalid
	}
	at := s.cfg.Now()
	if anyExpiry && c.Expiry.Time().Before(at) {
		at = c.Expiry.Time().Add(-time.Second)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: s.Issuer(slug), Time: at}, s.cfg.Leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, apperr.New(apperr.KindUnauthenticated, "token expired")
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return nil, apperr.New(apperr.KindUnauthenticated, "token not valid yet")
		}
		return nil, errInvalid
	}
	return &c, nil
}

func asString(v any) string { s, _ := v.(string); return s }

// Principal maps verified claims to the request principal.
func Principal(c *Claims) *principal.Principal {
	p := &principal.Principal{
		TenantID: c.TenantID, SubjectID: c.Subject, ClientID: c.ClientID, TokenID: c.ID,
		AdminRoles: c.Roles, AuthMethod: MethodOf(c), NHIKind: c.NHIKind,
	}
	if c.Scope != "" {
		p.Scopes = strings.Fields(c.Scope)
	}
	switch c.SubjectKind {
	case string(principal.KindNHI):
		p.Kind = principal.KindNHI
	default:
		p.Kind = principal.KindUser
	}
	if c.Cnf != nil {
		p.CertThumbprint, p.DPoPKey = c.Cnf.X5tS256, c.Cnf.JKT
	}
	p.AMR = c.AMR
	if c.AuthTime != 0 {
		p.AuthTime = time.Unix(c.AuthTime, 0)
	}
	for a := c.Act; a != nil; a = a.Act {
		p.Actors = append(p.Actors, principal.Actor{SubjectID: a.Subject, ClientID: a.ClientID, Kind: principal.Kind(a.Kind)})
	}
	return p
}

// MethodOf tells how a token's subject authenticated: token exchange for
// delegated tokens, mTLS for certificate-bound NHI tokens, a client secret
// (or assertion) for other NHI tokens, and for people MFA when the token's
// amr says so, else a password.
func MethodOf(c *Claims) principal.AuthMethod {
	switch {
	case c.Act != nil:
		return principal.MethodTokenExchange
	case c.SubjectKind == string(principal.KindNHI) && c.Cnf != nil:
		return principal.MethodMTLS
	case c.SubjectKind == string(principal.KindNHI):
		return principal.MethodClientSecret
	case slices.Contains(c.AMR, "mfa"), slices.Contains(c.AMR, "otp"), slices.Contains(c.AMR, "hwk"):
		return principal.MethodMFA
	default:
		return principal.MethodPassword
	}
}

// RunRevocationReloads reads the revocation list again each time the
// change feed was lost (Watch asks), retrying until it succeeds: the feed
// is lost when the database is, so the first attempts often fail.
func (s *Service) RunRevocationReloads(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.reload:
		}
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			err := s.LoadRevocations(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			s.cfg.Logger.Warn("revocations not reloaded; retrying", "error", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// Resync is what a lost change feed calls for: every cache is dropped and
// the revocation list is read again (by RunRevocationReloads), since
// changes made by other replicas may have been missed.
func (s *Service) Resync() {
	s.mu.Lock()
	clear(s.active)
	clear(s.keys)
	clear(s.misses)
	s.mu.Unlock()
	s.cmu.Lock()
	clear(s.cache)
	s.cmu.Unlock()
	select {
	case s.reload <- struct{}{}:
	default: // one is pending already
	}
}

// Watch follows change events so that key rotations and revocations made
// by other replicas take effect here; a Resync drops every cache.
func (s *Service) Watch(bus *events.Bus) (stop func()) {
	return bus.Subscribe(func(m events.Message) {
		switch {
		case m.Resync:
			s.Resync()
		case m.Change.Kind == KeyEventKind:
			s.dropTenantKeys(m.Change.TenantID)
		case m.Change.Kind == RevocationEventKind:
			kind, value, ok := strings.Cut(m.Change.ID, ":")
			if ok {
				s.markRevoked(m.Change.TenantID, kind, value, time.Now().Add(maxAccessLifetime+s.cfg.Leeway))
			}
		}
	})
}

// LogoutEvent is the events member of an OpenID Connect Back-Channel
// Logout token.
const LogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// MintLogoutToken signs a Back-Channel Logout token (typ logout+jwt) of
// tenant for a relying party: the person (sub) and the SSO session (sid)
// that ended; it lives two minutes.
func (s *Service) MintLogoutToken(ctx context.Context, tenant uuid.UUID, clientID, subject, sid string) (string, error) {
	slug, err := s.cfg.Tenants.SlugOf(ctx, tenant)
	if err != nil {
		return "", err
	}
	k, err := s.activeKey(ctx, tenant)
	if err != nil {
		return "", err
	}
	signer, err := newSigner(k.alg, k.kid, k.priv, "logout+jwt")
	if err != nil {
		return "", err
	}
	now := s.cfg.Now()
	claims := map[string]any{
		"iss": s.Issuer(slug), "aud": clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": uuid.Must(uuid.NewV7()).String(), "sub": subject, "sid": sid, "tid": tenant.String(),
		"events": map[string]any{LogoutEvent: map[string]any{}},
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}
