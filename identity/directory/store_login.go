package directory

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/store"
)

// The sign-in counters of a user, kept by the directory for sign-in.

// RecordFailedLogin counts a failed login of a user in the request's
// tenant and, once pol's threshold is reached, locks the account for
// pol's next lock length (returned; 0 when not locked).
func (s *Service) RecordFailedLogin(ctx context.Context, user uuid.UUID, pol tenant.LockoutPolicy, now time.Time) (time.Duration, error) {
	var lockedFor time.Duration
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var failed, lockouts int
		if err := tx.QueryRow(ctx, `SELECT failed_logins, lockouts FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), user).
			Scan(&failed, &lockouts); err != nil {
			return err
		}
		failed++
		var until *time.Time
		if pol.MaxAttempts > 0 && failed >= pol.MaxAttempts {
			lockouts++
			lockedFor = pol.LockFor(lockouts)
			u := now.Add(lockedFor)
			until, failed = &u, 0
		}
		_, err := tx.Exec(ctx, `UPDATE users SET failed_logins = $1, lockouts = $2, locked_until = COALESCE($3, locked_until)
			WHERE tenant_id = $4 AND id = $5`, failed, lockouts, until, tx.TenantID(), user)
		return err
	})
	return lockedFor, err
}

// RecordLoginTx notes a successful login: the failure count restarts.
func (s *Service) RecordLoginTx(ctx context.Context, tx *store.Tx, user uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE users SET failed_logins = 0, last_login_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tx.TenantID(), user)
	return err
}

// UpgradeHash replaces a user's password hash with one of the same
// password under current parameters (after a verification said it is
// due).
func (s *Service) UpgradeHash(ctx context.Context, user uuid.UUID, hash string) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE tenant_id = $2 AND id = $3`, hash, tx.TenantID(), user)
		return err
	})
}
