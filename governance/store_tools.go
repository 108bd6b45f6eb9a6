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
