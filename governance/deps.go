package governance

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
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
	GroupExistsTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error)
	ActiveMembersTx(ctx context.Context, tx *store.Tx, group uuid.UUID) ([]uuid.UUID, error)
	AdminsTx(ctx context.Context, tx *store.Tx) (map[uuid.UUID][]string, error)
	GroupsAboveTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]uuid.UUID, error)
	MembersBelowTx(ctx context.Context, tx *store.Tx, group uuid.UUID) ([]uuid.UUID, error)
	EachUserTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, status string)) error
	EachGroupTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, name string, parent *uuid.UUID)) error
	EachMembershipTx(ctx context.Context, tx *store.Tx, fn func(user, group uuid.UUID)) error
	// GroupsOfTx is a user's direct groups; GroupTx a group's name and
	// parent (apperr not found: no such group). Deltas read them.
	GroupsOfTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]uuid.UUID, error)
	GroupTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (name string, parent *uuid.UUID, err error)
}

// Agents is what governance reads of NHIs, inside its own transactions
// (identity/nhi implements it).
type Agents interface {
	OwnersTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (owner, backup *uuid.UUID, err error)
	LockTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error
	ExistsTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error)
	ManagesTx(ctx context.Context, tx *store.Tx, id, user uuid.UUID) (bool, error)
	EachTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, status string, risk int)) error
	// StateTx is an NHI's status and risk score (apperr not found: no such NHI).
	StateTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (status string, risk int, err error)
}

// Tenants tells whether a tenant is active: scheduled scans skip the
// others.
type Tenants interface {
	ActiveTenant(ctx context.Context, id uuid.UUID) error
}

var errNoDirectory = errors.New("governance: People and Agents are required")

// subjectExists tells whether the tenant has a user, group or NHI.
func (s *Service) subjectExists(ctx context.Context, tx *store.Tx, typ string, id uuid.UUID) (bool, error) {
	if s.People == nil || s.Agents == nil {
		return false, errNoDirectory
	}
	switch typ {
	case SubjectUser:
		_, err := s.People.StatusTx(ctx, tx, id)
		if apperr.KindOf(err) == apperr.KindNotFound {
			return false, nil
		}
		return err == nil, err
	case SubjectGroup:
		return s.People.GroupExistsTx(ctx, tx, id)
	case SubjectNHI:
		return s.Agents.ExistsTx(ctx, tx, id)
	}
	return false, nil
}

// userExists requires id, when given, to be a user of the tenant.
func (s *Service) userExists(ctx context.Context, tx *store.Tx, field string, id *uuid.UUID) error {
	if id == nil {
		return nil
	}
	ok, err := s.subjectExists(ctx, tx, SubjectUser, *id)
	if err == nil && !ok {
		err = apperr.Invalid(field, "no such user in this tenant")
	}
	return err
}
