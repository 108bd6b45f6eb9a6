package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// The OAuth 2.0 Device Authorization Grant (RFC 8628), for CLIs and
// agents a person starts on a device without a browser: the device gets a
// device code (it polls the token endpoint) and a user code (the person
// types it on /t/{slug}/device, signed in, and allows or denies). The
// tokens are the person's, in the SSO session they approved from.

// GrantDeviceCode is RFC 8628's grant type.
const GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

const (
	deviceLifetime = 10 * time.Minute
	deviceInterval = 5 // seconds between polls
	// userCodeAlphabet has no vowels (no words) and no look-alikes.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
)

// DeviceAuthorization is RFC 8628 §3.2's answer.
type DeviceAuthorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// DeviceRequest is a pending device authorization, as the person sees it.
type DeviceRequest struct {
	UserCode   string
	ClientID   string
	ClientName string
	FirstParty bool
	// Agent: the request is an agent's (an NHI), to act for the person.
	Agent bool
	Scope []string
}

// NormalizeUserCode reads a user code as people type it: any case, with
// or without the dash or spaces.
func NormalizeUserCode(s string) string {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(s) != 8 || strings.Trim(s, userCodeAlphabet) != "" {
		return ""
	}
	return s
}

func formatUserCode(c string) string { return c[:4] + "-" + c[4:] }

// StartDevice is the device authorization endpoint: a relying party
// (authenticated when it is confidential) asks for a person's
// authorization of scope on resources.
func (s *Server) StartDevice(ctx context.Context, slug string, rp RelyingParty, scope, resources []string) (*DeviceAuthorization, error) {
	clientID, allowed, err := s.deviceClient(ctx, rp)
	if err != nil {
		return nil, err
	}
	granted := intersect(scope, allowed)
	if len(granted) != len(dedupe(scope)) {
		return nil, oerr(400, "invalid_scope", "the client may not ask for that scope")
	}
	if _, e := s.Resources(ctx, slug, resources); e != nil {
		return nil, e
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	deviceCode := base64.RawURLEncoding.EncodeToString(b)
	var userCode []byte
	for range 8 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(userCodeAlphabet))))
		if err != nil {
			return nil, err
		}
		userCode = append(userCode, userCodeAlphabet[n.Int64()])
	}
	now := store.Now()
	res, _ := json.Marshal(resources)
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return insertDeviceTx(ctx, tx, digest(deviceCode), string(userCode), clientID, strings.Join(granted, " "), string(res), now, now.Add(deviceLifetime))
	})
	if err != nil {
		return nil, err
	}
	verify := s.Issuer(slug) + "/device"
	return &DeviceAuthorization{DeviceCode: deviceCode, UserCode: formatUserCode(string(userCode)), VerificationURI: verify,
		VerificationURIComplete: verify + "?user_code=" + formatUserCode(string(userCode)), ExpiresIn: int(deviceLifetime.Seconds()),
		Interval: deviceInterval}, nil
}

// deviceClient is the client of a device grant and the scopes it may ask
// for: a relying party (authenticated when confidential), or an agent
// acting for the person, limited to what both an agent and a person hold.
func (s *Server) deviceClient(ctx context.Context, rp RelyingParty) (string, []string, error) {
	if rp.Agent != nil {
		return rp.Agent.ID, intersect(rp.Agent.Scopes, userScopes), nil
	}
	app, err := s.appClient(ctx, rp.ClientID)
	if err != nil {
		return "", nil, clientFailure(err)
	}
	if app.Confidential() && !rp.Authenticated {
		return "", nil, ErrInvalidClient
	}
	return app.ClientID, strings.Fields(app.Scope), nil
}

// ErrNoSuchUserCode is the one answer to a user code that names no
// pending request (unknown, expired, decided).
var ErrNoSuchUserCode = apperr.New(apperr.KindNotFound, "that code is not valid; check it on your device")

// DeviceByUserCode returns the pending request a user code names. Wrong
// guesses are counted per address and slowed down.
func (s *Server) DeviceByUserCode(ctx context.Context, userCode, remote string) (*DeviceRequest, error) {
	key := "device|" + remote
	if !s.limiter.allow(key, s.cfg.Now()) {
		return nil, apperr.New(apperr.KindRateLimited, "too many attempts; wait a minute")
	}
	code := NormalizeUserCode(userCode)
	var d *deviceRow
	if code != "" {
		err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
			var err error
			d, err = deviceByUserCodeTx(ctx, tx, code)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if d == nil || d.status != "pending" || !store.Now().Before(d.expires) {
		s.limiter.fail(key, s.cfg.Now())
		return nil, ErrNoSuchUserCode
	}
	out := &DeviceRequest{UserCode: formatUserCode(code), ClientID: d.clientID, Scope: strings.Fields(d.scope)}
	if app, err := s.appClient(ctx, d.clientID); err == nil {
		out.ClientName, out.FirstParty = app.Name, app.FirstParty
		return out, nil
	}
	n, _, _, err := s.cfg.NHIs.ClientByID(ctx, d.clientID)
	if err != nil {
		return nil, ErrNoSuchUserCode
	}
	out.ClientName, out.Agent = n.Name, true
	return out, nil
}

// DecideDevice records a signed-in person's answer to a pending request.
func (s *Server) DecideDevice(ctx context.Context, userCode string, user uuid.UUID, in SignIn, allow bool) error {
	code := NormalizeUserCode(userCode)
	status := "denied"
	if allow {
		status = "approved"
	}
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := decideDeviceTx(ctx, tx, code, status, user, in, store.Now())
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoSuchUserCode
		}
		return nil
	})
}

// RedeemDevice is the device_code grant: the device polls until the
// person decides (authorization_pending; slow_down when it polls faster
// than its interval, which grows by 5 s), then gets the person's tokens
// once; expired_token and access_denied end the wait.
func (s *Server) RedeemDevice(ctx context.Context, slug string, rp RelyingParty, deviceCode string) (*TokenResponse, error) {
	clientID, _, err := s.deviceClient(ctx, rp)
	if err != nil {
		return nil, err
	}
	var (
		d            *deviceRow
		auds         []string
		refresh, sid string
		family       uuid.UUID
		answer       *Error
	)
	invalid := oerr(400, "invalid_grant", "the device code is invalid, used, or not yours")
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		answer = nil
		var err error
		if d, err = lockDeviceTx(ctx, tx, digest(deviceCode)); err != nil || d == nil {
			if err == nil {
				answer = invalid
			}
			return err
		}
		now := store.Now()
		switch {
		case d.clientID != clientID || d.status == "used":
			answer = invalid
			return nil
		case !now.Before(d.expires):
			answer = oerr(400, "expired_token", "the device code expired; start again")
			return nil
		case d.polled != nil && now.Sub(*d.polled) < time.Duration(d.interval)*time.Second:
			answer = oerr(400, "slow_down", "poll less often")
			return pollDeviceTx(ctx, tx, d.hash, now, d.interval+5)
		}
		if err := pollDeviceTx(ctx, tx, d.hash, now, d.interval); err != nil {
			return err
		}
		switch d.status {
		case "pending":
			answer = oerr(400, "authorization_pending", "the person has not decided yet")
			return nil
		case "denied":
			answer = oerr(400, "access_denied", "the person denied the request")
			return nil
		}
		var res []string
		_ = json.Unmarshal([]byte(d.resources), &res)
		var e error
		if auds, refresh, family, sid, e = s.grantTx(ctx, tx, slug, *d.user, clientID, d.scope, res, d.session); e != nil {
			return e
		}
		return useDeviceTx(ctx, tx, d.hash)
	})
	if err != nil {
		return nil, AsError(err)
	}
	if answer != nil {
		return nil, answer
	}
	authTime := d.created
	if d.authTime != nil {
		authTime = *d.authTime
	}
	if rp.Agent != nil {
		return s.agentForPerson(ctx, rp.Agent, *d.user, d.scope, auds, family, sid)
	}
	app, err := s.appClient(ctx, clientID)
	if err != nil {
		return nil, clientFailure(err)
	}
	return s.personTokens(ctx, *d.user, app, rp.cnf(app), d.scope, auds, refresh, family, "", authTime, strings.Fields(d.amr), sid)
}

// agentForPerson mints the token of an agent a person allowed on the
// device page: sub = the person, act = the agent (as token exchange
// does), bound to the agent's certificate when it authenticated with one.
// No refresh token: the agent asks again. The token belongs to a refresh
// family of the person's SSO session, so ending the session ends it.
func (s *Server) agentForPerson(ctx context.Context, agent *Client, user uuid.UUID, scope string, auds []string, family uuid.UUID,
	sid string) (*TokenResponse, error) {
	tid, _ := store.TenantFrom(ctx)
	raw, err := s.cfg.Tokens.Mint(ctx, token.Claims{
		Claims:   jwt.Claims{Subject: user.String(), Audience: jwt.Audience(auds), Expiry: jwt.NewNumericDate(s.cfg.Now().Add(s.cfg.AccessTTL))},
		TenantID: tid, Scope: scope, ClientID: agent.ID, SubjectKind: string(principal.KindUser), Family: family.String(), SessionID: sid,
		Act: &token.Actor{Subject: agent.NHI.ID.String(), ClientID: agent.ID, Kind: string(principal.KindNHI)}, Cnf: agent.cnf(),
	})
	if err != nil {
		return nil, err
	}
	s.cfg.NHIs.Used(ctx, agent.NHI.ID)
	return &TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds()), Scope: scope}, nil
}

// IsAgentClient reports whether clientID is an agent's (an NHI's) client
// in the tenant of ctx.
func (s *Server) IsAgentClient(ctx context.Context, clientID string) bool {
	if clientID == "" {
		return false
	}
	_, _, _, err := s.cfg.NHIs.ClientByID(ctx, clientID)
	return err == nil
}
