package auth

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// SessionEvent is the change-event kind of sessions.
const SessionEvent = "session"

// Session is one login of a user.
type Session struct {
	ID            uuid.UUID  `json:"id"`
	UserID        uuid.UUID  `json:"user_id"`
	Device        string     `json:"device"`
	IP            string     `json:"ip"`
	UserAgent     string     `json:"user_agent"`
	AuthMethod    string     `json:"auth_method"`
	CreatedAt     time.Time  `json:"created_at"`
	LastSeenAt    time.Time  `json:"last_seen_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedReason *string    `json:"revoked_reason,omitempty"`
	Current       bool       `json:"current"`
}

// Sessions lists a user's sessions, newest first (live ones unless all).
func (s *Service) Sessions(ctx context.Context, user uuid.UUID, all bool) ([]*Session, error) {
	var out []*Session
	cur := ""
	if p := principal.From(ctx); p != nil {
		cur = p.SessionID
	}
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		if u, err := s.Directory.FindUserTx(ctx, tx, user); err != nil || u == nil {
			if err == nil {
				err = apperr.NotFound("user")
			}
			return err
		}
		var err error
		if out, err = s.SessionStore.listTx(ctx, tx, user, all, s.now()); err != nil {
			return err
		}
		for _, x := range out {
			x.Current = x.ID.String() == cur
		}
		return nil
	})
	return out, err
}

// RevokeSession ends a session; owner, when not nil, must own it (the
// self-service path).
func (s *Service) RevokeSession(ctx context.Context, sid uuid.UUID, owner *uuid.UUID) error {
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return store.ErrNoTenant
	}
	var user uuid.UUID
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		user, _, err = s.SessionStore.ownerTx(ctx, tx, sid)
		if store.NoRows(err) || (err == nil && owner != nil && user != *owner) {
			return apperr.NotFound("session")
		}
		if err != nil {
			return err
		}
		reason := "revoked by admin"
		if owner != nil {
			reason = "revoked by owner"
		}
		return s.SessionStore.EndTx(ctx, tx, sid, reason)
	})
	if err != nil {
		return err
	}
	s.audit(ctx, tid, "session.revoke", audit.OutcomeSuccess, user.String(), map[string]string{"session_id": sid.String()})
	return nil
}
