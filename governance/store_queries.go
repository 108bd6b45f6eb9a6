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
	var hash string
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		err := tx.QueryRow(ctx, `SELECT COALESCE(definition_hash, '') FROM entitlements WHERE tenant_id = $1 AND id = $2 AND approval_state = 'approved'`,
			tx.TenantID(), entitlement).Scan(&hash)
		if store.NoRows(err) {
			return nil
		}
		return err
	})
	return hash, err
}

// AgentCallEntitlement is the a2a_call entitlement of an agent's
// application in the tenant in ctx (uuid.Nil when it has none yet).
func (s *Service) AgentCallEntitlement(ctx context.Context, agent uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		err := tx.QueryRow(ctx, `SELECT e.id FROM entitlements e JOIN applications a ON a.tenant_id = e.tenant_id AND a.id = e.application_id
			WHERE e.tenant_id = $1 AND a.nhi_id = $2 AND e.kind = 'a2a_call'`, tx.TenantID(), agent).Scan(&id)
		if store.NoRows(err) {
			return nil
		}
		return err
	})
	return id, err
}

// ApprovedCallAgent is the agent whose a2a_call entitlement is
// entitlement, when that entitlement is approved (uuid.Nil otherwise).
func (s *Service) ApprovedCallAgent(ctx context.Context, entitlement uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		err := tx.QueryRow(ctx, `SELECT a.nhi_id FROM entitlements e JOIN applications a ON a.tenant_id = e.tenant_id AND a.id = e.application_id
			WHERE e.tenant_id = $1 AND e.id = $2 AND e.kind = 'a2a_call' AND e.approval_state = 'approved' AND a.nhi_id IS NOT NULL`,
			tx.TenantID(), entitlement).Scan(&id)
		if store.NoRows(err) {
			return nil
		}
		return err
	})
	return id, err
}
