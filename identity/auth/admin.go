package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/apikey"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Users reads a user's current status and admin roles (NotFound when
// there is no such user in the tenant of ctx).
type Users interface {
	UserState(ctx context.Context, id uuid.UUID) (status string, roles []string, err error)
}

// NHIs reads an NHI's current status (NotFound likewise).
type NHIs interface {
	State(ctx context.Context, id uuid.UUID) (status string, err error)
}

// Operators tells whether a tenant is the platform operators' one.
type Operators interface {
	IsOperator(ctx context.Context, id uuid.UUID) bool
}

// AuthenticatorConfig configures an Authenticator.
type AuthenticatorConfig struct {
	Tokens    *token.Service
	Users     Users
	NHIs      NHIs
	Operators Operators
	// CacheSize bounds the subjects remembered (default 100,000).
	CacheSize int
	// Keys checks API keys (nil: none are accepted).
	Keys *apikey.Service
}

// CheckAndSetDefaults validates and fills defaults.
func (c *AuthenticatorConfig) CheckAndSetDefaults() error {
	if c.Tokens == nil || c.Users == nil || c.NHIs == nil || c.Operators == nil {
		return errors.New("auth: Tokens, Users, NHIs and Operators are required")
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 100_000
	}
	return nil
}

// Authenticator verifies admin-plane bearer tokens (JWTs minted here).
// Admin rights come from the subject's current roles, never from roles
// frozen in a token: a demotion counts at the next request, a promotion
// too. A token's subject must exist and be active. super_admin is held
// only by users of the operators' tenant. Subjects' states are cached
// and dropped by their change events.
type Authenticator struct {
	cfg AuthenticatorConfig

	mu    sync.RWMutex
	state map[subjectKey]subjectState
	// gen counts invalidations: a state read before one is not kept.
	gen uint64
}

type subjectKey struct {
	tenant  uuid.UUID
	kind    principal.Kind
	subject uuid.UUID
}

type subjectState struct {
	active bool
	roles  []string
}

// NewAuthenticator returns an Authenticator.
func NewAuthenticator(cfg AuthenticatorConfig) (*Authenticator, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &Authenticator{cfg: cfg, state: map[subjectKey]subjectState{}}, nil
}

// Watch drops cached subjects when users, NHIs or tenants change anywhere
// (every replica hears of it), and everything on a resync.
func (a *Authenticator) Watch(bus *events.Bus) (stop func()) {
	return bus.Subscribe(func(m events.Message) {
		switch {
		case m.Resync:
			a.forget(func(subjectKey) bool { return true })
		case m.Change.Kind == directory.UserEvent, m.Change.Kind == nhi.EventKind:
			id, err := uuid.Parse(m.Change.ID)
			if err != nil {
				a.forget(func(k subjectKey) bool { return k.tenant == m.Change.TenantID })
				return
			}
			a.forget(func(k subjectKey) bool { return k.tenant == m.Change.TenantID && k.subject == id })
		}
	})
}

func (a *Authenticator) forget(match func(subjectKey) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	for k := range a.state {
		if match(k) {
			delete(a.state, k)
		}
	}
}

var errInactiveSubject = apperr.New(apperr.KindUnauthenticated, "the token's subject does not exist or is not active")

// Authenticate implements the admin plane's authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, scheme, raw string) (*principal.Principal, error) {
	if strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(raw, apikey.Prefix) && a.cfg.Keys != nil {
		return a.apiKey(ctx, raw)
	}
	if !strings.EqualFold(scheme, "Bearer") || strings.Count(raw, ".") != 2 {
		return nil, nil
	}
	c, err := a.cfg.Tokens.Verify(ctx, raw, token.Expect{Audience: a.cfg.Tokens.AdminAudience()})
	if err != nil {
		return nil, err
	}
	p := token.Principal(c)
	p.SessionID = c.SessionID
	id, err := uuid.Parse(p.SubjectID)
	if err != nil {
		return nil, errInactiveSubject
	}
	st, err := a.subject(ctx, subjectKey{tenant: p.TenantID, kind: p.Kind, subject: id})
	if err != nil {
		return nil, err
	}
	if !st.active {
		return nil, errInactiveSubject
	}
	// A user's own sign-in token (no client, no delegation) holds the
	// user's roles as they are now; any other token holds none that the
	// subject does not hold now too.
	roles := st.roles
	if p.Kind != principal.KindUser || c.ClientID != "" || c.Act != nil || c.SessionID == "" || p.Restricted() {
		roles = slices.DeleteFunc(slices.Clone(p.AdminRoles), func(r string) bool { return !slices.Contains(st.roles, r) })
	}
	if slices.Contains(roles, principal.RoleSuperAdmin) && !a.cfg.Operators.IsOperator(ctx, p.TenantID) {
		roles = slices.DeleteFunc(roles, func(r string) bool { return r == principal.RoleSuperAdmin })
	}
	p.AdminRoles = roles
	return p, nil
}

// apiKey authenticates an API key: its owner must be active, and its
// rights are its scopes within the owner's current roles (scim aside).
func (a *Authenticator) apiKey(ctx context.Context, raw string) (*principal.Principal, error) {
	k, tenant, err := a.cfg.Keys.Check(ctx, raw, reqid.ClientIP(ctx))
	if err != nil {
		return nil, err
	}
	kind := principal.Kind(k.OwnerKind)
	st, err := a.subject(ctx, subjectKey{tenant: tenant, kind: kind, subject: k.OwnerID})
	if err != nil {
		return nil, err
	}
	if !st.active {
		return nil, errInactiveSubject
	}
	p := &principal.Principal{TenantID: tenant, Kind: kind, SubjectID: k.OwnerID.String(), AuthMethod: principal.MethodAPIKey, ClientID: k.Prefix}
	for _, sc := range k.Scopes {
		switch {
		case sc == apikey.ScopeSCIM:
			p.Scopes = append(p.Scopes, sc)
		case slices.Contains(st.roles, sc):
			p.AdminRoles = append(p.AdminRoles, sc)
		}
	}
	return p, nil
}

// subject returns a subject's current state, cached.
func (a *Authenticator) subject(ctx context.Context, k subjectKey) (subjectState, error) {
	a.mu.RLock()
	st, ok := a.state[k]
	gen := a.gen
	a.mu.RUnlock()
	if ok {
		return st, nil
	}
	tctx := store.WithTenant(ctx, k.tenant)
	var status string
	var err error
	switch k.kind {
	case principal.KindUser:
		status, st.roles, err = a.cfg.Users.UserState(tctx, k.subject)
		st.active = status == directory.StatusActive
	case principal.KindNHI:
		status, err = a.cfg.NHIs.State(tctx, k.subject)
		st.active = status == nhi.StatusActive
	}
	switch {
	case apperr.KindOf(err) == apperr.KindNotFound:
		st = subjectState{}
	case err != nil:
		return subjectState{}, apperr.Wrap(err, apperr.KindUnavailable, "cannot check the token's subject now")
	}
	a.mu.Lock()
	if a.gen == gen {
		if len(a.state) >= a.cfg.CacheSize {
			clear(a.state)
		}
		a.state[k] = st
	}
	a.mu.Unlock()
	return st, nil
}
