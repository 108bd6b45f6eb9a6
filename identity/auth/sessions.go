package auth

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
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

// revokeSessionInTx ends a session and kills its tokens.
func (s *Service) revokeSessionInTx(ctx context.Context, tx *store.Tx, sid uuid.UUID, reason string) error {
	r, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE tenant_id = $3 AND id = $4 AND revoked_at IS NULL`,
		s.now(), reason, tx.TenantID(), sid)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return nil
	}
	if err := s.Tokens.RevokeSessionInTx(ctx, tx, tx.TenantID(), sid); err != nil {
		return err
	}
	return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: SessionEvent, ID: sid.String(), Version: 2}, map[string]string{"revoked": reason})
}

// revokeUserSessionsInTx ends every live session of a user.
func (s *Service) revokeUserSessionsInTx(ctx context.Context, tx *store.Tx, user uuid.UUID, reason string) error {
	rows, err := tx.Query(ctx, `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL`, tx.TenantID(), user)
	if err != nil {
		return err
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := s.revokeSessionInTx(ctx, tx, id, reason); err != nil {
			return err
		}
	}
	return nil
}

// RevokeUserSessionsInTx ends every session of a user (the directory
// calls it when a user is disabled, locked or deleted).
func (s *Service) RevokeUserSessionsInTx(ctx context.Context, tx *store.Tx, user uuid.UUID, reason string) error {
	return s.revokeUserSessionsInTx(ctx, tx, user, reason)
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
		rows, err := tx.Query(ctx, `SELECT id, user_id, device, ip, user_agent, auth_method, created_at, last_seen_at, expires_at, revoked_at, revoked_reason
			FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND ($3 OR (revoked_at IS NULL AND expires_at > $4)) ORDER BY created_at DESC LIMIT 500`,
			tx.TenantID(), user, all, s.now())
		if err != nil {
			return err
		}
		defer rows.Close()
		out = []*Session{}
		for rows.Next() {
			var x Session
			if err := rows.Scan(&x.ID, &x.UserID, &x.Device, &x.IP, &x.UserAgent, &x.AuthMethod, &x.CreatedAt, &x.LastSeenAt, &x.ExpiresAt,
				&x.RevokedAt, &x.RevokedReason); err != nil {
				return err
			}
			x.Current = x.ID.String() == cur
			out = append(out, &x)
		}
		return rows.Err()
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
		var revoked *time.Time
		err := tx.QueryRow(ctx, `SELECT user_id, revoked_at FROM sessions WHERE tenant_id = $1 AND id = $2`, tid, sid).Scan(&user, &revoked)
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
		return s.revokeSessionInTx(ctx, tx, sid, reason)
	})
	if err != nil {
		return err
	}
	s.audit(ctx, tid, "session.revoke", audit.OutcomeSuccess, user.String(), map[string]string{"session_id": sid.String()})
	return nil
}
