package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// Pairwise subjects (OpenID Connect Core §8.1): a client registered with
// subject_type pairwise knows each person by a subject of its own sector
// (the host its redirect URIs share, fixed at registration), in ID tokens,
// userinfo and logout tokens. Two clients of different sectors cannot
// correlate people by subject. Access tokens keep the person's own
// subject: they are for xavyo's resources, never read by the client.
//
// The subject is HMAC-SHA256(key, tenant ‖ sector ‖ user), the key
// derived from the KEK: stable across restarts and replicas.

// subjectOf is the subject client c knows user by.
func (s *Server) subjectOf(c *AppClient, tenant, user uuid.UUID) string {
	if c == nil || c.SubjectType != "pairwise" {
		return user.String()
	}
	m := hmac.New(sha256.New, s.cfg.PairwiseKey)
	m.Write(tenant[:])
	m.Write([]byte(c.sector))
	m.Write([]byte{0})
	m.Write(user[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// SubjectFor is the subject the relying party clientID knows the person
// by, in the tenant of ctx: their id, or a pairwise subject. A client
// that is gone (or no relying party) gets the person's id.
func (s *Server) SubjectFor(ctx context.Context, clientID string, user uuid.UUID) (string, error) {
	tid, _ := store.TenantFrom(ctx)
	if clientID == "" {
		return user.String(), nil
	}
	c, err := s.appClient(ctx, clientID)
	if store.NoRows(err) {
		return user.String(), nil
	}
	if err != nil {
		return "", err
	}
	return s.subjectOf(c, tid, user), nil
}

// Hint is a checked id_token_hint: the subject it names, as the client it
// was issued to knows the person.
type Hint struct {
	Subject  string
	ClientID string
	names    func(user uuid.UUID) bool
}

// Names reports whether the hint names this person.
func (h *Hint) Names(user uuid.UUID) bool { return h != nil && h.names(user) }

// IDTokenHint checks an id_token_hint of the tenant of ctx (expired ones
// accepted: its signature, issuer and tenant are checked).
func (s *Server) IDTokenHint(ctx context.Context, raw string) (*Hint, error) {
	tid, _ := store.TenantFrom(ctx)
	c, err := s.cfg.Tokens.IDTokenHint(ctx, raw, tid)
	if err != nil {
		return nil, err
	}
	h := &Hint{Subject: c.Subject}
	if len(c.Audience) > 0 {
		h.ClientID = c.Audience[0]
	}
	var app *AppClient
	if h.ClientID != "" {
		if app, err = s.appClient(ctx, h.ClientID); err != nil && !store.NoRows(err) {
			return nil, err
		}
	}
	h.names = func(user uuid.UUID) bool { return s.subjectOf(app, tid, user) == h.Subject }
	return h, nil
}
