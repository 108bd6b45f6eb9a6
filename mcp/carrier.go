package mcp

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/xavyo/xavyo/gateway"
)

// carrier runs one session over a connection-like transport (a WebSocket,
// an HTTP+SSE stream): each message is served by the streamable HTTP code
// with its answer written to the sink; the session opened by initialize
// gets its notifications on the same sink, and ends with the transport.
type carrier struct {
	g    *Gateway
	ep   *endpoint
	sink sink
	ctx  context.Context

	mu      sync.Mutex
	session string // the MCP session after initialize
	closed  bool   // no more messages are taken
	wg      sync.WaitGroup
}

// sessionID is the carried session, "" before initialize.
func (c *carrier) sessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// take registers one more message in flight, unless the carrier ended.
func (c *carrier) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// serve serves one message (req carries it and, once there is one, the
// session) in the background. It reports false once the carrier ended.
// exp bounds the notification stream it may open (zero: none).
func (c *carrier) serve(req *http.Request, p *gateway.Caller, exp time.Time) bool {
	if !c.take() {
		return false
	}
	go func() {
		defer c.wg.Done()
		fw := newFrameWriter(c.sink)
		c.g.post(fw, req, c.ep, p)
		// The session is known before its initialize answer goes out: the
		// client's next message may follow at once.
		defer fw.finish()
		id := fw.header.Get(hdrSession)
		if id == "" {
			return
		}
		c.mu.Lock()
		first := c.session == ""
		c.session = id
		c.mu.Unlock()
		if !first {
			return
		}
		s, err := c.g.sessions.get(c.ctx, c.ep.tenant.ID, id, c.g.cfg.Now())
		if err != nil || !c.take() {
			return
		}
		lr := req.Clone(c.ctx)
		lr.Method = http.MethodGet
		lr.Header.Set(hdrSession, id)
		go func() {
			defer c.wg.Done()
			c.g.listen(newFrameWriter(c.sink), lr, c.ep, p, s, exp, nil)
		}()
	}()
	return true
}

// end takes no more messages, waits for those in flight (their context,
// the carrier's, must be cancelled first) and ends the session.
func (c *carrier) end() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	if id := c.sessionID(); id != "" {
		ctx := context.WithoutCancel(c.ctx)
		if s, err := c.g.sessions.get(ctx, c.ep.tenant.ID, id, c.g.cfg.Now()); err == nil {
			_ = c.g.sessions.terminate(ctx, s)
		}
	}
}
