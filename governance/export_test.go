package governance

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/events"
)

// ChangedWith hands the engine messages as its bus would, records included.
func (e *Engine) ChangedWith(ctx context.Context, tenant uuid.UUID, ms []events.Message) {
	e.changed(ctx, tenant, ms)
}
