package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// OpenID Connect Back-Channel Logout 1.0: when a person's SSO session
// ends (they sign out, an admin or the person ends it, a limit or a
// password change does), every relying party the session signed them in
// to that registered a backchannel_logout_uri gets a logout token by POST.
// It runs from the durable outbox (the session's change event), so a
// relying party that is down gets it again later; delivery is at least
// once (a relying party may see a token twice).

// SessionEvent is the change-event kind of sessions (identity/auth).
const SessionEvent = "session"

// OnSessionEvent sends the logout tokens of an ended SSO session.
func (s *Server) OnSessionEvent(ctx context.Context, e events.Event) error {
	if e.Kind != SessionEvent {
		return nil
	}
	sid, err := uuid.Parse(e.SubjectID)
	if err != nil {
		return nil // not a session of ours: nothing to tell anyone
	}
	ctx = store.WithTenant(ctx, e.TenantID)
	clients, err := s.sessionClients(ctx, sid)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range clients {
		app, err := s.appClient(ctx, c.clientID)
		if err != nil || app.BackchannelLogoutURI == "" {
			continue // gone, or does not listen
		}
		if err := s.sendLogout(ctx, e.TenantID, app, c.user, sid); err != nil {
			errs = append(errs, fmt.Errorf("back-channel logout to %s: %w", app.ClientID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) sendLogout(ctx context.Context, tenant uuid.UUID, app *AppClient, user, sid uuid.UUID) error {
	raw, err := s.cfg.Tokens.MintLogoutToken(ctx, tenant, app.ClientID, s.subjectOf(app, tenant, user), sid.String())
	if err != nil {
		return err
	}
	if s.cfg.Fetch == nil {
		return errors.New("no egress client")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.BackchannelLogoutURI, strings.NewReader(url.Values{"logout_token": {raw}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.cfg.Fetch.Do(req) //nolint:gosec // G704: the client's registered URI, through the egress client
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the relying party answered %d", resp.StatusCode)
	}
	return nil
}

// FrontchannelLogouts lists the front-channel logout URIs (OpenID Connect
// Front-Channel Logout 1.0) of the relying parties SSO session sid signed
// a person in to, each with iss and sid where the client asked for them:
// the sign-out page loads each in a hidden frame.
func (s *Server) FrontchannelLogouts(ctx context.Context, slug string, sid uuid.UUID) ([]string, error) {
	clients, err := s.sessionClients(ctx, sid)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range clients {
		app, err := s.appClient(ctx, c.clientID)
		if err != nil || app.FrontchannelLogoutURI == "" || seen[app.ClientID] {
			continue
		}
		seen[app.ClientID] = true
		u, err := url.Parse(app.FrontchannelLogoutURI)
		if err != nil {
			continue
		}
		if app.FrontchannelLogoutSessionRequired {
			q := u.Query()
			q.Set("iss", s.Issuer(slug))
			q.Set("sid", sid.String())
			u.RawQuery = q.Encode()
		}
		out = append(out, u.String())
	}
	return out, nil
}

// sessionClients lists the relying parties an SSO session signed a
// person in to.
func (s *Server) sessionClients(ctx context.Context, sid uuid.UUID) ([]sessionClient, error) {
	var clients []sessionClient
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		clients, err = sessionClientsTx(ctx, tx, sid)
		return err
	})
	return clients, err
}
