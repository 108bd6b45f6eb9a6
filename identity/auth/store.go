package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Sessions is the store of users' sign-in sessions (the sessions table).
// Ending a session kills its tokens; the directory ends a user's sessions
// through it in the transaction that disables, locks or deletes the user.
type Sessions struct {
	// Tokens revokes a session's tokens (required).
	Tokens *token.Service
	// Now is the clock (default store.Now).
	Now func() time.Time
}

// NewSessions returns the session store.
func NewSessions(tokens *token.Service) (*Sessions, error) {
	if tokens == nil {
		return nil, errors.New("auth: sessions need the token service")
	}
	return &Sessions{Tokens: tokens}, nil
}

func (ss *Sessions) now() time.Time {
	if ss.Now != nil {
		return ss.Now().UTC().Truncate(time.Microsecond)
	}
	return store.Now()
}

// EndTx ends a session and kills its tokens; an ended one is left as is.
func (ss *Sessions) EndTx(ctx context.Context, tx *store.Tx, sid uuid.UUID, reason string) error {
	r, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE tenant_id = $3 AND id = $4 AND revoked_at IS NULL`,
		ss.now(), reason, tx.TenantID(), sid)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return nil
	}
	if err := ss.Tokens.RevokeSessionInTx(ctx, tx, tx.TenantID(), sid); err != nil {
		return err
	}
	return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: SessionEvent, ID: sid.String(), Version: 2}, map[string]string{"revoked": reason})
}

// EndUserTx ends every live session of a user.
func (ss *Sessions) EndUserTx(ctx context.Context, tx *store.Tx, user uuid.UUID, reason string) error {
	ids, err := store.Collect(ctx, tx, store.ScanUUID, `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL`, tx.TenantID(), user)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := ss.EndTx(ctx, tx, id, reason); err != nil {
			return err
		}
	}
	return nil
}

// liveTx lists a user's live sessions, newest first.
func (ss *Sessions) liveTx(ctx context.Context, tx *store.Tx, user uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3
		ORDER BY created_at DESC`, tx.TenantID(), user, now)
}

// insertTx opens a password session.
func (ss *Sessions) insertTx(ctx context.Context, tx *store.Tx, x *Session, amr string) error {
	_, err := tx.Exec(ctx, `INSERT INTO sessions (tenant_id, id, user_id, device, ip, user_agent, auth_method, created_at, last_seen_at, expires_at, amr)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)`, tx.TenantID(), x.ID, x.UserID, x.Device, x.IP, x.UserAgent, x.AuthMethod, x.CreatedAt,
		x.ExpiresAt, amr)
	return err
}

// amrTx is how and when a session's person authenticated (RFC 8176
// methods; the sign-in's time).
func (ss *Sessions) amrTx(ctx context.Context, tx *store.Tx, sid uuid.UUID) (string, time.Time, error) {
	var amr string
	var authTime, created time.Time
	var at *time.Time
	err := tx.QueryRow(ctx, `SELECT amr, auth_time, created_at FROM sessions WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), sid).Scan(&amr, &at, &created)
	if store.NoRows(err) {
		return "", time.Time{}, nil
	}
	authTime = created
	if at != nil {
		authTime = *at
	}
	return amr, authTime, err
}

// listTx lists a user's sessions, newest first (live ones unless all).
func (ss *Sessions) listTx(ctx context.Context, tx *store.Tx, user uuid.UUID, all bool, now time.Time) ([]*Session, error) {
	rows, err := tx.Query(ctx, `SELECT id, user_id, device, ip, user_agent, auth_method, created_at, last_seen_at, expires_at, revoked_at, revoked_reason
		FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND ($3 OR (revoked_at IS NULL AND expires_at > $4)) ORDER BY created_at DESC LIMIT 500`,
		tx.TenantID(), user, all, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Session{}
	for rows.Next() {
		var x Session
		if err := rows.Scan(&x.ID, &x.UserID, &x.Device, &x.IP, &x.UserAgent, &x.AuthMethod, &x.CreatedAt, &x.LastSeenAt, &x.ExpiresAt,
			&x.RevokedAt, &x.RevokedReason); err != nil {
			return nil, err
		}
		out = append(out, &x)
	}
	return out, rows.Err()
}

// ownerTx returns a session's user and when it ended (store.NoRows when
// there is no such session).
func (ss *Sessions) ownerTx(ctx context.Context, tx *store.Tx, sid uuid.UUID) (user uuid.UUID, revoked *time.Time, err error) {
	err = tx.QueryRow(ctx, `SELECT user_id, revoked_at FROM sessions WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), sid).Scan(&user, &revoked)
	return user, revoked, err
}

// touchTx locks a session, hands its state to live, and when live accepts
// it records the use at now.
func (ss *Sessions) touchTx(ctx context.Context, tx *store.Tx, sid uuid.UUID, now time.Time, live func(revoked *time.Time, lastSeen, expires time.Time) bool) (bool, error) {
	var revoked *time.Time
	var lastSeen, expires time.Time
	if err := tx.QueryRow(ctx, `SELECT revoked_at, last_seen_at, expires_at FROM sessions WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
		tx.TenantID(), sid).Scan(&revoked, &lastSeen, &expires); err != nil {
		if store.NoRows(err) {
			return false, nil
		}
		return false, err
	}
	if !live(revoked, lastSeen, expires) {
		return false, nil
	}
	err := ss.seenTx(ctx, tx, sid, now)
	return err == nil, err
}

// insertBrowserTx opens an SSO session (a session with a cookie secret).
func (ss *Sessions) insertBrowserTx(ctx context.Context, tx *store.Tx, x *Session, ssoHash string, authTime time.Time, amr string) error {
	_, err := tx.Exec(ctx, `INSERT INTO sessions (tenant_id, id, user_id, device, ip, user_agent, auth_method, created_at, last_seen_at, expires_at, sso_hash, auth_time, amr)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12)`, tx.TenantID(), x.ID, x.UserID, x.Device, x.IP, x.UserAgent, x.AuthMethod,
		x.CreatedAt, x.ExpiresAt, ssoHash, authTime, amr)
	return err
}

// browserRow is what an SSO session's cookie is checked against.
type browserRow struct {
	user                        uuid.UUID
	hash, amr                   string
	authTime, lastSeen, expires time.Time
	revoked                     *time.Time
}

// browserTx reads an SSO session, locked (nil when there is none, or it
// is not an SSO session).
func (ss *Sessions) browserTx(ctx context.Context, tx *store.Tx, sid uuid.UUID) (*browserRow, error) {
	var r browserRow
	var hash *string
	var authTime *time.Time
	err := tx.QueryRow(ctx, `SELECT user_id, sso_hash, amr, auth_time, last_seen_at, expires_at, revoked_at FROM sessions
		WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), sid).Scan(&r.user, &hash, &r.amr, &authTime, &r.lastSeen, &r.expires, &r.revoked)
	if store.NoRows(err) || (err == nil && (hash == nil || authTime == nil)) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.hash, r.authTime = *hash, *authTime
	return &r, nil
}

// seenTx records a session's use.
func (ss *Sessions) seenTx(ctx context.Context, tx *store.Tx, sid uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tx.TenantID(), sid)
	return err
}

// insertTransactionTx records an auth transaction under the SHA-256 of
// its id, dropping the tenant's expired ones on the way.
func insertTransactionTx(ctx context.Context, tx *store.Tx, hash string, x *Transaction, now time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM auth_transactions WHERE tenant_id = $1 AND expires_at < $2`, tx.TenantID(), now); err != nil {
		return err
	}
	var session *uuid.UUID
	if x.SessionID != uuid.Nil {
		session = &x.SessionID
	}
	_, err := tx.Exec(ctx, `INSERT INTO auth_transactions (tenant_id, id_hash, purpose, request, session_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, tx.TenantID(), hash, x.Purpose, x.Request, session, now, x.ExpiresAt)
	return err
}

// transactionTx reads an auth transaction (nil: none).
func transactionTx(ctx context.Context, tx *store.Tx, hash string) (*Transaction, error) {
	var x Transaction
	var session, pending *uuid.UUID
	var amr string
	err := tx.QueryRow(ctx, `SELECT purpose, request, session_id, expires_at, pending_user, pending_hash, pending_amr FROM auth_transactions
		WHERE tenant_id = $1 AND id_hash = $2`, tx.TenantID(), hash).Scan(&x.Purpose, &x.Request, &session, &x.ExpiresAt, &pending, &x.pendingHash, &amr)
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if session != nil {
		x.SessionID = *session
	}
	if pending != nil {
		x.PendingUser = *pending
	}
	x.PendingAMR = strings.Fields(amr)
	return &x, nil
}

// setTransactionPendingTx records the person owing a second factor on a
// live transaction, and reports whether there was one.
func setTransactionPendingTx(ctx context.Context, tx *store.Tx, hash string, user uuid.UUID, secretHash string, amr []string, now time.Time) (bool, error) {
	r, err := tx.Exec(ctx, `UPDATE auth_transactions SET pending_user = $1, pending_hash = $2, pending_amr = $6 WHERE tenant_id = $3 AND id_hash = $4
		AND expires_at > $5`, user, secretHash, tx.TenantID(), hash, now, strings.Join(amr, " "))
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// setTransactionSessionTx records the session of a live transaction and
// reports whether there was one.
func setTransactionSessionTx(ctx context.Context, tx *store.Tx, hash string, session uuid.UUID, now time.Time) (bool, error) {
	r, err := tx.Exec(ctx, `UPDATE auth_transactions SET session_id = $1, pending_user = NULL, pending_hash = '', pending_amr = '' WHERE tenant_id = $2 AND id_hash = $3
		AND expires_at > $4`,
		session, tx.TenantID(), hash, now)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// deleteTransactionTx ends an auth transaction.
func deleteTransactionTx(ctx context.Context, tx *store.Tx, hash string) error {
	_, err := tx.Exec(ctx, `DELETE FROM auth_transactions WHERE tenant_id = $1 AND id_hash = $2`, tx.TenantID(), hash)
	return err
}

// devicesTx counts a user's sessions, and those opened with this user
// agent.
func (ss *Sessions) devicesTx(ctx context.Context, tx *store.Tx, user uuid.UUID, userAgent string) (all, same int, err error) {
	err = tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN user_agent = $3 THEN 1 ELSE 0 END), 0) FROM sessions
		WHERE tenant_id = $1 AND user_id = $2`, tx.TenantID(), user, userAgent).Scan(&all, &same)
	return all, same, err
}
