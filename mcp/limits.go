package mcp

import (
	"net/http"
	"sync"

	"github.com/xavyo/xavyo/gateway"

	"github.com/google/uuid"
)

// connLimit bounds the long-lived connections (event streams, WebSocket
// and legacy SSE connections) one principal holds open on this replica.
type connLimit struct {
	max  int
	mu   sync.Mutex
	open map[connKey]int
}

type connKey struct {
	tenant  uuid.UUID
	subject string
}

// acquire takes one connection for p; false when p holds max already.
func (l *connLimit) acquire(tenant uuid.UUID, p *gateway.Caller) (release func(), ok bool) {
	k := connKey{tenant: tenant, subject: string(p.Kind) + "/" + p.SubjectID}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k] >= l.max {
		return nil, false
	}
	if l.open == nil {
		l.open = map[connKey]int{}
	}
	l.open[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.open[k]--; l.open[k] <= 0 {
				delete(l.open, k)
			}
		})
	}, true
}

// tooManyConns answers a principal over its connection limit.
func tooManyConns(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "10")
	writeJSON(w, http.StatusTooManyRequests, errorBody(nil, rpcError{Code: codeInvalidRequest,
		Message: "too many open streams for this principal on this gateway; close some first"}))
}
