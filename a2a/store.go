package a2a

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The A2A package's store: statements on its own tables (a2a_cards,
// a2a_push_relays, a2a_tasks) move here from the files that still hold
// them (see .golangci.yml).

// pinnedCards reads the cards pinned for the tenant's agents.
func (h *Handlers) pinnedCards(ctx context.Context) (map[uuid.UUID][]byte, error) {
	out := map[uuid.UUID][]byte{}
	err := h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT nhi_id, pinned_card FROM a2a_cards WHERE tenant_id = $1 AND pinned_card <> ''`, tx.TenantID())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			var card []byte
			if err := rows.Scan(&id, &card); err != nil {
				return err
			}
			out[id] = card
		}
		return rows.Err()
	})
	return out, err
}
