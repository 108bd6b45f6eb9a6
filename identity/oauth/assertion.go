package oauth

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/xavyo/xavyo/internal/apperr"
)

// AssertionType is RFC 7523's client assertion type.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLifetime bounds exp - now of a client assertion.
const maxAssertionLifetime = time.Hour

var assertionAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}

// AuthenticateAssertion is private_key_jwt (RFC 7523 §2.2, OIDC Core §9):
// the client signs a JWT with iss = sub = its client_id, aud = the token
// endpoint (or the issuer), a unique jti and a short exp, with a key it
// registered. Replayed assertions are refused (per replica, until exp).
func (s *Server) AuthenticateAssertion(ctx context.Context, assertion, clientID, slug, endpoint, remote string) (*Client, error) {
	var c *Client
	err := s.checkAssertion(ctx, assertion, clientID, slug, endpoint, remote, func(id string) (*jose.JSONWebKeySet, error) {
		n, scope, keys, err := s.cfg.NHIs.ClientByID(ctx, id)
		if err == nil {
			c = &Client{ID: id, NHI: n, Scopes: strings.Fields(scope)}
		}
		return keys, err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AuthenticateAppAssertion is private_key_jwt for a relying party that
// registered that method and its keys.
func (s *Server) AuthenticateAppAssertion(ctx context.Context, assertion, clientID, slug, endpoint, remote string) (*AppClient, error) {
	var app *AppClient
	err := s.checkAssertion(ctx, assertion, clientID, slug, endpoint, remote, func(id string) (*jose.JSONWebKeySet, error) {
		c, keys, err := s.appClientKeys(ctx, id)
		if err != nil {
			return nil, err
		}
		if c.TokenEndpointAuthMethod != "private_key_jwt" {
			return &jose.JSONWebKeySet{}, nil // not this client's method: no key verifies
		}
		app = c
		return keys, nil
	})
	if err != nil {
		return nil, err
	}
	return app, nil
}

// checkAssertion verifies a client assertion against the keys keysOf
// gives for its subject; every failure is ErrInvalidClient, counted per
// client and address.
func (s *Server) checkAssertion(ctx context.Context, assertion, clientID, slug, endpoint, remote string,
	keysOf func(id string) (*jose.JSONWebKeySet, error)) error {
	tok, err := jwt.ParseSigned(assertion, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return ErrInvalidClient
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Subject == "" {
		return ErrInvalidClient
	}
	id := unverified.Subject
	if clientID != "" && clientID != id {
		return ErrInvalidClient
	}
	key := id + "|" + remote
	now := s.cfg.Now()
	if !s.limiter.allow(key, now) {
		return ErrSlowDown
	}
	fail := func() error {
		s.limiter.fail(key, now)
		return ErrInvalidClient
	}
	keys, err := keysOf(id)
	if apperr.KindOf(err) == apperr.KindUnavailable {
		return AsError(err)
	}
	if err != nil || keys == nil || len(keys.Keys) == 0 {
		return fail()
	}
	hdr := tok.Headers[0]
	var claims jwt.Claims
	verified := false
	for _, k := range keys.Keys {
		if hdr.KeyID != "" && k.KeyID != hdr.KeyID {
			continue
		}
		if err := tok.Claims(k.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified || claims.Issuer != id || claims.Subject != id || claims.ID == "" || claims.Expiry == nil {
		return fail()
	}
	issuer := s.Issuer(slug)
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return a == endpoint || a == issuer }) {
		return fail()
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Time: now}, 30*time.Second); err != nil || claims.Expiry.Time().Sub(now) > maxAssertionLifetime {
		return fail()
	}
	if !s.replay.first(id+"|"+claims.ID, claims.Expiry.Time()) {
		return fail()
	}
	return nil
}

// replayCache remembers assertion IDs until they expire.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// first reports whether id is seen for the first time, and remembers it.
func (r *replayCache) first(id string, until time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	if len(r.seen) > 100_000 {
		for k, exp := range r.seen {
			if exp.Before(now) {
				delete(r.seen, k)
			}
		}
	}
	if exp, ok := r.seen[id]; ok && exp.After(now) {
		return false
	}
	r.seen[id] = until
	return true
}
