package governance

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// People is what governance reads of the directory, inside its own
// transactions (identity/directory implements it).
type People interface {
	// StatusTx is a user's status (apperr not found: no such user).
	StatusTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (string, error)
	ManagerOfTx(ctx context.Context, tx *store.Tx, user uuid.UUID) (*uuid.UUID, error)
	LockUserTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error
	LockGroupTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error
	ActiveMembersTx(ctx context.Context, tx *store.Tx, group uuid.UUID) ([]uuid.UUID, error)
	AdminsTx(ctx context.Context, tx *store.Tx) (map[uuid.UUID][]string, error)
	GroupsAboveTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]uuid.UUID, error)
	MembersBelowTx(ctx context.Context, tx *store.Tx, group uuid.UUID) ([]uuid.UUID, error)
	EachUserTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, status string)) error
	EachGroupTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, name string, parent *uuid.UUID)) error
	EachMembershipTx(ctx context.Context, tx *store.Tx, fn func(user, group uuid.UUID)) error
}

// Agents is what governance reads of NHIs, inside its own transactions
// (identity/nhi implements it).
type Agents interface {
	OwnersTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (owner, backup *uuid.UUID, err error)
	LockTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error
	ManagesTx(ctx context.Context, tx *store.Tx, id, user uuid.UUID) (bool, error)
	EachTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, status string, risk int)) error
}

// Tenants tells whether a tenant is active: scheduled scans skip the
// others.
type Tenants interface {
	ActiveTenant(ctx context.Context, id uuid.UUID) error
}

var errNoDirectory = errors.New("governance: People and Agents are required")
