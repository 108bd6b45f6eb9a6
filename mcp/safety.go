package mcp

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// holdProgress tells a waiting client, every 5 s, that its call waits for
// an approval.
func (g *Gateway) holdProgress(ctx context.Context, stream *sseWriter, token json.RawMessage, id uuid.UUID) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/progress", "params": map[string]any{
			"progressToken": token, "progress": n, "message": "waiting for approval " + id.String()}})
		if !stream.event(msg) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
