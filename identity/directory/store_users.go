package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The users store: the users and password_history tables.

// insertUser writes a new user with its password hash (nil: none).
func insertUser(ctx context.Context, tx *store.Tx, u *User, norm string, hash *string) error {
	roles, _ := json.Marshal(u.AdminRoles)
	_, err := tx.Exec(ctx, `INSERT INTO users (tenant_id, id, email, email_normalized, username, given_name, family_name, display_name, status,
		attributes, admin_roles, password_hash, password_changed_at, must_change_password, created_at, updated_at, version, manager_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, 1, $16)`,
		tx.TenantID(), u.ID, u.Email, norm, u.Username, u.GivenName, u.FamilyName, u.DisplayName, u.Status,
		string(u.Attributes), string(roles), hash, u.PasswordChangedAt, u.MustChangePassword, u.CreatedAt, u.ManagerID)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a user with this email or username already exists")
	}
	return err
}

// updateUser writes a user's profile, status, roles and manager.
func updateUser(ctx context.Context, tx *store.Tx, u *User, norm string) error {
	roles, _ := json.Marshal(u.AdminRoles)
	_, err := tx.Exec(ctx, `UPDATE users SET email = $1, email_normalized = $2, username = $3, given_name = $4, family_name = $5,
		display_name = $6, status = $7, attributes = $8, admin_roles = $9, locked_until = $10, updated_at = $11, version = $12, manager_id = $15
		WHERE tenant_id = $13 AND id = $14`, u.Email, norm, u.Username, u.GivenName, u.FamilyName, u.DisplayName, u.Status,
		string(u.Attributes), string(roles), u.LockedUntil, u.UpdatedAt, u.Version, tx.TenantID(), u.ID, u.ManagerID)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a user with this email or username already exists")
	}
	return err
}

// deleteUser removes a user (memberships and history go with it, and
// its external identities).
func deleteUser(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM user_links WHERE tenant_id = $1 AND user_id = $2`, tx.TenantID(), id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM users WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

// managerOf is a user's manager (store.NoRows when there is no such user).
func managerOf(ctx context.Context, tx *store.Tx, id uuid.UUID) (*uuid.UUID, error) {
	var m *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT manager_id FROM users WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&m)
	return m, err
}

// userByLogin finds a user by email or username (store.NoRows: none).
func userByLogin(ctx context.Context, tx *store.Tx, login string) (*User, error) {
	return scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND (email_normalized = $2 OR username = $3)`,
		tx.TenantID(), strings.ToLower(login), login))
}

// setPasswordHash writes a new password (u carries the new version,
// times and must-change flag) and restarts the failure count.
func setPasswordHash(ctx context.Context, tx *store.Tx, u *User, hash string) error {
	_, err := tx.Exec(ctx, `UPDATE users SET password_hash = $1, password_changed_at = $2, must_change_password = $3,
		failed_logins = 0, updated_at = $2, version = $4 WHERE tenant_id = $5 AND id = $6`, hash, u.UpdatedAt, u.MustChangePassword, u.Version, tx.TenantID(), u.ID)
	return err
}

// unlockUser writes a cleared lockout (u carries the new status and version).
func unlockUser(ctx context.Context, tx *store.Tx, u *User) error {
	_, err := tx.Exec(ctx, `UPDATE users SET status = $1, locked_until = NULL, failed_logins = 0, updated_at = $2, version = $3
		WHERE tenant_id = $4 AND id = $5`, u.Status, u.UpdatedAt, u.Version, tx.TenantID(), u.ID)
	return err
}

// recentHashes are a user's last n password hashes, newest first.
func recentHashes(ctx context.Context, tx *store.Tx, user uuid.UUID, n int) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT hash FROM password_history WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT $3`,
		tx.TenantID(), user, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// trimHistory keeps a user's newest keep password hashes.
func trimHistory(ctx context.Context, tx *store.Tx, user uuid.UUID, keep int) error {
	_, err := tx.Exec(ctx, `DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2 AND id NOT IN
		(SELECT id FROM password_history WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT $3)`,
		tx.TenantID(), user, keep)
	return err
}

func addHistory(ctx context.Context, tx *store.Tx, user uuid.UUID, hash string) error {
	_, err := tx.Exec(ctx, `INSERT INTO password_history (tenant_id, user_id, id, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		tx.TenantID(), user, uuid.Must(uuid.NewV7()), hash, store.Now())
	return err
}

func getUser(ctx context.Context, tx *store.Tx, id uuid.UUID, lock bool) (*User, error) {
	return rowByID(ctx, tx, "user", `SELECT `+userCols+` FROM users`, id, lock, scanUser)
}

// rowByID reads one record of the tenant in tx by its id (sel selects
// from the table, without a WHERE), locked for update when lock is set:
// apperr not found, naming what, when there is none.
func rowByID[T any](ctx context.Context, tx *store.Tx, what, sel string, id uuid.UUID, lock bool, scan func(interface{ Scan(...any) error }) (*T, error)) (*T, error) {
	q := sel + ` WHERE tenant_id = $1 AND id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	v, err := scan(tx.QueryRow(ctx, q, tx.TenantID(), id))
	if store.NoRows(err) {
		return nil, apperr.NotFound(what)
	}
	return v, err
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

var sortColumns = map[UserSort]string{
	SortCreated: "u.created_at", SortEmail: "u.email_normalized", SortUsername: "COALESCE(u.username, '')", SortDisplayName: "u.display_name",
}

// listUsers reads a page of users (one more than o.Limit, to tell
// whether another page follows) sorted by column col.
func listUsers(ctx context.Context, tx *store.Tx, o ListUsersOptions, col string) ([]*User, error) {
	args := []any{uuid.Nil} // $1: the tenant, set inside the transaction
	arg := func(v any) int { args = append(args, v); return len(args) }
	where := []string{"u.tenant_id = $1"}
	if o.Status != "" {
		where = append(where, fmt.Sprintf("u.status = $%d", arg(o.Status)))
	}
	if o.Email != "" {
		where = append(where, fmt.Sprintf("u.email_normalized = $%d", arg(strings.ToLower(strings.TrimSpace(o.Email)))))
	}
	if o.Query != "" {
		q := strings.ToLower(o.Query)
		n := arg(q)
		where = append(where, fmt.Sprintf("(%s OR %s OR %s)", fmt.Sprintf(prefixMatch, "u.email_normalized", n, n),
			fmt.Sprintf(prefixMatch, "lower(COALESCE(u.username, ''))", n, n), fmt.Sprintf(prefixMatch, "lower(u.display_name)", n, n)))
	}
	if o.GroupID != uuid.Nil {
		where = append(where, fmt.Sprintf("EXISTS (SELECT 1 FROM group_members m WHERE m.tenant_id = u.tenant_id AND m.user_id = u.id AND m.group_id = $%d)", arg(o.GroupID)))
	}
	cmp, dir := ">", "ASC"
	if o.Desc {
		cmp, dir = "<", "DESC"
	}
	ucol := col
	if o.After != nil {
		var v any = o.After.Value
		if o.Sort == SortCreated {
			t, err := time.Parse(time.RFC3339Nano, o.After.Value)
			if err != nil {
				return nil, apperr.Invalid("cursor", "malformed cursor")
			}
			v = t.UTC()
		}
		a, b := arg(v), arg(o.After.ID)
		where = append(where, fmt.Sprintf("(%s %s $%d OR (%s = $%d AND u.id %s $%d))", ucol, cmp, a, ucol, a, cmp, b))
	}
	limitArg := arg(o.Limit + 1)
	q := `SELECT ` + prefixCols("u.", userCols) + ` FROM users u WHERE ` + strings.Join(where, " AND ") +
		fmt.Sprintf(` ORDER BY %s %s, u.id %s LIMIT $%d`, ucol, dir, dir, limitArg)
	args[0] = tx.TenantID()
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// StatusTx is a user's status, read in the caller's transaction
// (apperr not found when the tenant has no such user): NHIs check their
// owners with it.
func (s *Service) StatusTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (string, error) {
	var status string
	err := tx.QueryRow(ctx, `SELECT status FROM users WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&status)
	if store.NoRows(err) {
		return "", apperr.NotFound("user")
	}
	return status, err
}

// ActiveAmongTx tells which of ids are active users of the tenant, in the
// caller's transaction (NHI reports find orphaned NHIs with it).
func (s *Service) ActiveAmongTx(ctx context.Context, tx *store.Tx, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := map[uuid.UUID]bool{}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		args := []any{tx.TenantID()}
		marks := make([]string, len(batch))
		for i, id := range batch {
			args = append(args, id)
			marks[i] = fmt.Sprintf("$%d", i+2)
		}
		active, err := store.Collect(ctx, tx, store.ScanUUID, `SELECT id FROM users WHERE tenant_id = $1 AND status = 'active' AND id IN (`+
			strings.Join(marks, ", ")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for _, id := range active {
			out[id] = true
		}
	}
	return out, nil
}
