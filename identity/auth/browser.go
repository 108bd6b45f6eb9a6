package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/store"
)

// BrowserSession is the SSO session of a person signed in on the sign-in
// pages: a row of the session table whose cookie carries its id and a
// secret (the table keeps the secret's SHA-256 only).
type BrowserSession struct {
	ID       uuid.UUID
	UserID   uuid.UUID
	AuthTime time.Time
	// AMR are RFC 8176 authentication method references ("pwd", …).
	AMR []string
}

// OpenBrowserSession opens the SSO session of a person who has just
// authenticated on the pages and returns it with its cookie value. Every
// sign-in opens a new session, with a new id and secret: a session id
// planted in a browser before the sign-in is never promoted. The tenant's
// session policy applies (lifetime, concurrent sessions).
func (s *Service) OpenBrowserSession(ctx context.Context, t *tenant.Tenant, u *directory.User, amr []string, cl Client) (*BrowserSession, string, error) {
	ctx = store.WithTenant(ctx, t.ID)
	pol := tenant.PoliciesOf(t)
	now := s.now()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", err
	}
	bs := &BrowserSession{ID: uuid.Must(uuid.NewV7()), UserID: u.ID, AuthTime: now, AMR: amr}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.endBeyondLimitTx(ctx, tx, u.ID, pol, now); err != nil {
			return err
		}
		if err := s.noteDeviceTx(ctx, tx, u.ID, cl, now); err != nil {
			return err
		}
		x := &Session{ID: bs.ID, UserID: u.ID, Device: "browser", IP: trunc(cl.IP, 64), UserAgent: trunc(cl.UserAgent, 500),
			AuthMethod: "password", CreatedAt: now, ExpiresAt: now.Add(time.Duration(pol.Session.LifetimeHours) * time.Hour)}
		if err := s.SessionStore.insertBrowserTx(ctx, tx, x, hashSecret(secret), now, strings.Join(amr, " ")); err != nil {
			return err
		}
		return s.Directory.RecordLoginTx(ctx, tx, u.ID, now)
	})
	if err != nil {
		return nil, "", err
	}
	return bs, bs.ID.String() + "." + base64.RawURLEncoding.EncodeToString(secret), nil
}

// endBeyondLimitTx ends a user's oldest live sessions so that one more
// stays within the tenant's limit.
func (s *Service) endBeyondLimitTx(ctx context.Context, tx *store.Tx, user uuid.UUID, pol tenant.Policies, now time.Time) error {
	if pol.Session.MaxConcurrent <= 0 {
		return nil
	}
	live, err := s.SessionStore.liveTx(ctx, tx, user, now)
	if err != nil {
		return err
	}
	for i := pol.Session.MaxConcurrent - 1; i < len(live); i++ {
		if err := s.SessionStore.EndTx(ctx, tx, live[i], "session limit"); err != nil {
			return err
		}
	}
	return nil
}

// BrowserSessionOf returns the live SSO session a cookie value names, and
// records its use. It returns nil, and no error, for a value that names
// none: malformed, unknown, a wrong secret, a session ended, expired or
// idle beyond the tenant's policy, or a user who may not sign in now.
func (s *Service) BrowserSessionOf(ctx context.Context, t *tenant.Tenant, cookie string) (*BrowserSession, error) {
	id, enc, ok := strings.Cut(cookie, ".")
	sid, err := uuid.Parse(id)
	if !ok || err != nil || len(enc) != 43 {
		return nil, nil
	}
	secret, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, nil
	}
	ctx = store.WithTenant(ctx, t.ID)
	pol := tenant.PoliciesOf(t)
	now := s.now()
	var bs *BrowserSession
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		bs = nil
		row, err := s.SessionStore.browserTx(ctx, tx, sid)
		if err != nil || row == nil {
			return err
		}
		if row.hash == "" || subtle.ConstantTimeCompare([]byte(row.hash), []byte(hashSecret(secret))) != 1 ||
			!live(pol, row.revoked, row.lastSeen, row.expires, now) {
			return nil
		}
		u, err := s.Directory.FindUserTx(ctx, tx, row.user)
		if err != nil {
			return err
		}
		if !mayUse(u, now) || u.MustChangePassword {
			return nil
		}
		if err := s.SessionStore.seenTx(ctx, tx, sid, now); err != nil {
			return err
		}
		bs = &BrowserSession{ID: sid, UserID: row.user, AuthTime: row.authTime, AMR: strings.Fields(row.amr)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return bs, nil
}

// EndBrowserSession ends an SSO session (a person signing out): its
// tokens end with it.
func (s *Service) EndBrowserSession(ctx context.Context, t *tenant.Tenant, bs *BrowserSession) error {
	return s.endSession(ctx, t.ID, bs.ID, bs.UserID.String())
}

func hashSecret(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}
