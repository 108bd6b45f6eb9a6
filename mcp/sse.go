package mcp

import (
	"net/http"
	"sync"
)

// sseWriter answers a request as a stream of server-sent events: progress
// notifications, then the response.
type sseWriter struct {
	w      http.ResponseWriter
	mu     sync.Mutex
	open   bool
	closed bool
}

// final writes the last event; later events are dropped.
func (s *sseWriter) final(data []byte) {
	s.event(data)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *sseWriter) event(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if !s.open {
		s.w.Header().Set("Content-Type", "text/event-stream")
		s.w.Header().Set("Cache-Control", "no-cache")
		s.w.WriteHeader(http.StatusOK)
		s.open = true
	}
	_, _ = s.w.Write([]byte("event: message\ndata: "))
	_, _ = s.w.Write(data)
	_, _ = s.w.Write([]byte("\n\n"))
	_ = http.NewResponseController(s.w).Flush()
}
