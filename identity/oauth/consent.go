package oauth

import (
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
)

// Consent: a relying party that is not the organization's own (first
// party, flagged by admins) gets a person's code only once the person has
// allowed it the scopes it asks for. Consents are remembered per person
// and client (the union of what was allowed) and can be withdrawn, which
// ends the tokens the client holds for the person.

// NeedsConsent reports whether the person must be asked before the
// client gets a code: always when the client asks (prompt=consent); never
// for a first-party client; otherwise unless an earlier consent covers
// every scope asked.
func (s *Server) NeedsConsent(ctx context.Context, req *AuthorizeRequest, user uuid.UUID) (bool, error) {
	if req.Prompted("consent") {
		return true, nil
	}
	if req.FirstParty {
		return false, nil
	}
	var granted string
	var ok bool
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		granted, ok, err = consentScopeTx(ctx, tx, user, req.ClientID)
		return err
	})
	if err != nil || !ok {
		return true, err
	}
	have := strings.Fields(granted)
	for _, sc := range req.Scope {
		if !slices.Contains(have, sc) {
			return true, nil
		}
	}
	return false, nil
}

// Consent records that the person allows the client the request's scopes,
// added to what they allowed it before.
func (s *Server) Consent(ctx context.Context, req *AuthorizeRequest, user uuid.UUID) error {
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		granted, _, err := consentScopeTx(ctx, tx, user, req.ClientID)
		if err != nil {
			return err
		}
		all := dedupe(append(strings.Fields(granted), req.Scope...))
		slices.Sort(all)
		if err := putConsentTx(ctx, tx, user, req.ClientID, strings.Join(all, " "), store.Now()); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.consent.grant", "oauth_client", req.ClientID,
			map[string]any{"user_id": user, "scope": all})
	})
}

// Consents lists what a person allowed relying parties.
func (s *Server) Consents(ctx context.Context, user uuid.UUID) ([]Consent, error) {
	var out []Consent
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listConsentsTx(ctx, tx, user)
		return err
	})
	return out, err
}

// RevokeConsent withdraws a person's consent to a client and ends the
// tokens the client holds for them.
func (s *Server) RevokeConsent(ctx context.Context, user, id uuid.UUID) error {
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		clientID, err := deleteConsentTx(ctx, tx, user, id)
		if err != nil {
			return err
		}
		if clientID == "" {
			return apperr.New(apperr.KindNotFound, "no such consent")
		}
		if err := s.cfg.Tokens.RevokeGrantInTx(ctx, tx, tx.TenantID(), user.String(), clientID); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "oauth.consent.revoke", "oauth_client", clientID, map[string]any{"user_id": user})
	})
}
