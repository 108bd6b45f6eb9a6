// Package directory holds a tenant's people: users (with custom
// attributes validated against per-tenant definitions and admin roles),
// and groups (a hierarchy without cycles) with their members. Every change
// writes a change event in its transaction and an audit record.
package directory

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
)

// Event kinds.
const (
	UserEvent = "user"
	// UserActivityEvent is a user's change that cannot alter access
	// (profile text, password): decision snapshots ignore it.
	UserActivityEvent = "user.activity"
	GroupEvent        = "group"
	MembershipEvent   = "group_membership"
	AttrDefEvent      = "attribute_definition"
)

// Auditor is what the directory needs of the audit log.
type Auditor = audit.Recorder

// Policies gives a tenant's policies.
type Policies interface {
	Policies(ctx context.Context, id uuid.UUID) (tenant.Policies, int64, error)
}

// Service manages users and groups of the tenant in the request context.
type Service struct {
	DB       *store.DB
	Hasher   *password.Hasher
	Policies Policies
	Audit    Auditor
	// Sessions ends a user's sessions in the transaction that disables,
	// locks or deletes them (nil: the users have no sessions to end).
	Sessions SessionEnder
	// Operators tells the platform operators' tenant (nil: none).
	Operators Operators
}

// SessionEnder ends every live session of a user, in the caller's
// transaction.
type SessionEnder interface {
	EndUserTx(ctx context.Context, tx *store.Tx, user uuid.UUID, reason string) error
}

// Operators tells whether a tenant is the platform operators' one.
type Operators interface {
	IsOperator(ctx context.Context, id uuid.UUID) bool
}

func tenantOf(ctx context.Context) (uuid.UUID, error) {
	id, ok := store.TenantFrom(ctx)
	if !ok {
		return uuid.Nil, store.ErrNoTenant
	}
	return id, nil
}

// auditTx records a change in the transaction that makes it.
func (s *Service) auditTx(ctx context.Context, tx *store.Tx, action, kind, id string, details any) error {
	return audit.RecordChangeTx(ctx, tx, s.Audit, action, kind, id, details)
}

// prefixMatch is a portable "starts with" on a lowered column.
const prefixMatch = `substr(%s, 1, length($%d)) = $%d`
