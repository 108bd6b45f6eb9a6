package federation

// Identity assertion authorization grants (ID-JAG,
// draft-ietf-oauth-identity-assertion-authz-grant): an enterprise IdP the
// tenant trusts (a provider with id_jag) tells the tenant's authorization
// server, in a JWT of type oauth-id-jag+jwt, that one of its people may
// get a token here for one of the tenant's clients. The grant is checked
// like an ID token (the provider's keys and algorithms, iss, exp) and
// more: aud is this authorization server, client_id the client that
// presents it, jti used once; the person is found (or created just in
// time) as at a federated sign-in.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
)

// TypeIDJAG is the JWT type of an ID-JAG.
const TypeIDJAG = "oauth-id-jag+jwt"

// IsIDJAG reports whether a compact JWT says it is an ID-JAG (its header's
// typ); nothing is verified.
func IsIDJAG(raw string) bool {
	h, _, ok := strings.Cut(raw, ".")
	if !ok || len(h) > 4096 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return false
	}
	var hdr struct {
		Typ string `json:"typ"`
	}
	return json.Unmarshal(b, &hdr) == nil && strings.EqualFold(hdr.Typ, TypeIDJAG)
}

// Grant is what an accepted ID-JAG grants.
type Grant struct {
	User     uuid.UUID
	Provider string
	Scope    []string
	Resource string
	AMR      []string
	AuthTime time.Time
}

// ErrIDJAG answers an ID-JAG that is not accepted here.
func idjagRefused(why string) error {
	return apperr.New(apperr.KindPermissionDenied, "the identity assertion grant was refused: %s", why)
}

// RedeemIDJAG checks an ID-JAG presented by clientID to the authorization
// server whose issuer is audience, and finds the person it asserts.
func (s *Service) RedeemIDJAG(ctx context.Context, raw, audience, clientID string) (*Grant, error) {
	if len(raw) > 16<<10 || strings.Count(raw, ".") != 2 || !IsIDJAG(raw) {
		return nil, idjagRefused("not an ID-JAG (typ " + TypeIDJAG + ")")
	}
	_, body, _ := strings.Cut(raw, ".")
	body, _, _ = strings.Cut(body, ".")
	b, err := base64.RawURLEncoding.DecodeString(body)
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err != nil || json.Unmarshal(b, &unverified) != nil || unverified.Issuer == "" {
		return nil, idjagRefused("no issuer")
	}
	ps, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var p *Provider
	for _, c := range ps {
		if c.Enabled && c.IDJAG && c.Kind == KindOIDC && c.Issuer == unverified.Issuer {
			p = c
		}
	}
	if p == nil {
		return nil, idjagRefused("its issuer is not a trusted identity provider of this tenant")
	}
	up, err := s.upstreamOf(ctx, p)
	if err != nil {
		return nil, err
	}
	v := oidc.NewVerifier(p.Issuer, up.keys, &oidc.Config{ClientID: audience, SupportedSigningAlgs: p.Algorithms, Now: s.now})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, idjagRefused(err.Error())
	}
	var c struct {
		ClientID string `json:"client_id"`
		JTI      string `json:"jti"`
		Scope    string `json:"scope"`
		Resource string `json:"resource"`
		AuthTime int64  `json:"auth_time"`
	}
	claims := map[string]any{}
	if tok.Claims(&c) != nil || tok.Claims(&claims) != nil {
		return nil, idjagRefused("unreadable claims")
	}
	switch {
	case c.ClientID == "" || c.ClientID != clientID:
		return nil, idjagRefused("it was issued for another client")
	case c.JTI == "" || len(c.JTI) > 256:
		return nil, idjagRefused("no jti")
	case tok.IssuedAt.After(s.now().Add(time.Minute)):
		return nil, idjagRefused("issued in the future")
	case tok.Subject == "" || len(tok.Subject) > 255:
		return nil, idjagRefused("no subject")
	}
	if err := s.Replay(ctx, "id-jag:"+p.Issuer+"|"+c.JTI, tok.Expiry); err != nil {
		if apperr.KindOf(err) == apperr.KindAlreadyExists {
			return nil, idjagRefused("it was used before")
		}
		return nil, err
	}
	id := &Identity{Subject: tok.Subject, Claims: claims, AMR: list(claims["amr"]), ACR: str(claims["acr"])}
	out, err := s.SignIn(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if out.LinkTo != nil {
		return nil, idjagRefused("an account with this address exists here: its owner links it by signing in through " + p.Name + " once")
	}
	g := &Grant{User: out.User.ID, Provider: p.Key, Scope: strings.Fields(c.Scope), Resource: c.Resource, AMR: slices.Clone(id.AMR)}
	if c.AuthTime > 0 {
		g.AuthTime = time.Unix(c.AuthTime, 0)
	}
	s.record(ctx, p, "federation.id_jag", out.User.ID, id, nil)
	return g, nil
}
