package governance

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// ApprovedDefinitionHash is the definition hash an approved tool
// entitlement of the tenant in ctx pins ("" when it is not approved, or
// not a tool): the gateway pins a tool's latest definition when it
// matches.
func (s *Service) ApprovedDefinitionHash(ctx context.Context, entitlement uuid.UUID) (string, error) {
	return optional[string](ctx, s.DB, `SELECT COALESCE(definition_hash, '') FROM entitlements WHERE tenant_id = $1 AND id = $2
		AND approval_state = 'approved'`, entitlement)
}

// AgentCallEntitlement is the a2a_call entitlement of an agent's
// application in the tenant in ctx (uuid.Nil when it has none yet).
func (s *Service) AgentCallEntitlement(ctx context.Context, agent uuid.UUID) (uuid.UUID, error) {
	return optional[uuid.UUID](ctx, s.DB, `SELECT e.id FROM entitlements e JOIN applications a ON a.tenant_id = e.tenant_id AND a.id = e.application_id
		WHERE e.tenant_id = $1 AND a.nhi_id = $2 AND e.kind = 'a2a_call'`, agent)
}

// ApprovedCallAgent is the agent whose a2a_call entitlement is
// entitlement, when that entitlement is approved (uuid.Nil otherwise).
func (s *Service) ApprovedCallAgent(ctx context.Context, entitlement uuid.UUID) (uuid.UUID, error) {
	return optional[uuid.UUID](ctx, s.DB, `SELECT a.nhi_id FROM entitlements e JOIN applications a ON a.tenant_id = e.tenant_id AND a.id = e.application_id
		WHERE e.tenant_id = $1 AND e.id = $2 AND e.kind = 'a2a_call' AND e.approval_state = 'approved' AND a.nhi_id IS NOT NULL`, entitlement)
}

// optional reads one value of the tenant in ctx with a query on the
// tenant and one id; the zero value when there is no row.
func optional[T any](ctx context.Context, db *store.DB, q string, id uuid.UUID) (T, error) {
	var v T
	err := db.InTenantRead(ctx, func(tx *store.Tx) error {
		err := tx.QueryRow(ctx, q, tx.TenantID(), id).Scan(&v)
		if store.NoRows(err) {
			return nil
		}
		return err
	})
	return v, err
}
