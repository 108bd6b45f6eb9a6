package directory

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// What other domains (governance) read of people and groups, inside their
// own transactions: a decision snapshot, an approval's approvers and a
// separation-of-duties check see the directory as of their transaction.

// ManagerOfTx is a user's manager (nil: none, or no such user).
func (s *Service) ManagerOfTx(ctx context.Context, tx *store.Tx, user uuid.UUID) (*uuid.UUID, error) {
	m, err := managerOf(ctx, tx, user)
	if store.NoRows(err) {
		return nil, nil
	}
	return m, err
}

// LockUserTx locks a user's row until tx ends (apperr not found when the
// tenant has no such user): assignments to one user are checked one
// after the other.
func (s *Service) LockUserTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	return lockRow(ctx, tx, `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, "user", id)
}

// LockGroupTx locks a group's row until tx ends (apperr not found when
// the tenant has no such group).
func (s *Service) LockGroupTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	return lockRow(ctx, tx, `SELECT 1 FROM groups WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, "group", id)
}

func lockRow(ctx context.Context, tx *store.Tx, q, what string, id uuid.UUID) error {
	var one int
	err := tx.QueryRow(ctx, q, tx.TenantID(), id).Scan(&one)
	if store.NoRows(err) {
		return apperr.NotFound(what)
	}
	return err
}

// ActiveMembersTx lists the active users directly in a group.
func (s *Service) ActiveMembersTx(ctx context.Context, tx *store.Tx, group uuid.UUID) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT m.user_id FROM group_members m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id
		WHERE m.tenant_id = $1 AND m.group_id = $2 AND u.status = 'active'`, tx.TenantID(), group)
}

// AdminsTx lists the active users that hold admin roles, with the roles.
func (s *Service) AdminsTx(ctx context.Context, tx *store.Tx) (map[uuid.UUID][]string, error) {
	rows, err := tx.Query(ctx, `SELECT id, admin_roles FROM users WHERE tenant_id = $1 AND status = 'active' AND admin_roles <> '[]'`, tx.TenantID())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uuid.UUID][]string{}
	for rows.Next() {
		var id uuid.UUID
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		var roles []string
		_ = json.Unmarshal(raw, &roles)
		out[id] = roles
	}
	return out, rows.Err()
}

// GroupsAboveTx lists the groups a user is in, directly or through the
// groups above them.
func (s *Service) GroupsAboveTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `WITH RECURSIVE g(id) AS (
			SELECT group_id FROM group_members WHERE tenant_id = $1 AND user_id = $2
			UNION SELECT p.parent_id FROM groups p JOIN g ON p.id = g.id WHERE p.tenant_id = $1 AND p.parent_id IS NOT NULL)
		SELECT id FROM g`, tx.TenantID(), user)
}

// MembersBelowTx lists the users of a group and of the groups under it.
func (s *Service) MembersBelowTx(ctx context.Context, tx *store.Tx, group uuid.UUID) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `WITH RECURSIVE d(id) AS (
			SELECT id FROM groups WHERE tenant_id = $1 AND id = $2
			UNION SELECT c.id FROM groups c JOIN d ON c.parent_id = d.id WHERE c.tenant_id = $1)
		SELECT DISTINCT m.user_id FROM group_members m JOIN d ON m.group_id = d.id WHERE m.tenant_id = $1 ORDER BY m.user_id`, tx.TenantID(), group)
}

// EachUserTx calls fn with every user's status.
func (s *Service) EachUserTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, status string)) error {
	return store.Each(ctx, tx, func(r store.Scanner) error {
		var id uuid.UUID
		var status string
		if err := r.Scan(&id, &status); err != nil {
			return err
		}
		fn(id, status)
		return nil
	}, `SELECT id, status FROM users WHERE tenant_id = $1`, tx.TenantID())
}

// EachGroupTx calls fn with every group's name and parent.
func (s *Service) EachGroupTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, name string, parent *uuid.UUID)) error {
	return store.Each(ctx, tx, func(r store.Scanner) error {
		var id uuid.UUID
		var name string
		var parent *uuid.UUID
		if err := r.Scan(&id, &name, &parent); err != nil {
			return err
		}
		fn(id, name, parent)
		return nil
	}, `SELECT id, name, parent_id FROM groups WHERE tenant_id = $1`, tx.TenantID())
}

// EachMembershipTx calls fn with every direct membership.
func (s *Service) EachMembershipTx(ctx context.Context, tx *store.Tx, fn func(user, group uuid.UUID)) error {
	return store.Each(ctx, tx, func(r store.Scanner) error {
		var user, group uuid.UUID
		if err := r.Scan(&user, &group); err != nil {
			return err
		}
		fn(user, group)
		return nil
	}, `SELECT user_id, group_id FROM group_members WHERE tenant_id = $1 ORDER BY user_id, group_id`, tx.TenantID())
}

// GroupsOfTx lists a user's direct groups, in the order EachMembershipTx
// gives them.
func (s *Service) GroupsOfTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]uuid.UUID, error) {
	return store.Collect(ctx, tx, store.ScanUUID, `SELECT group_id FROM group_members WHERE tenant_id = $1 AND user_id = $2 ORDER BY group_id`,
		tx.TenantID(), user)
}

// GroupTx is a group's name and parent (apperr not found: no such group).
func (s *Service) GroupTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (name string, parent *uuid.UUID, err error) {
	err = tx.QueryRow(ctx, `SELECT name, parent_id FROM groups WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&name, &parent)
	if store.NoRows(err) {
		return "", nil, apperr.NotFound("group")
	}
	return name, parent, err
}

// GroupExistsTx tells whether the tenant has a group.
func (s *Service) GroupExistsTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&n)
	return n > 0, err
}
