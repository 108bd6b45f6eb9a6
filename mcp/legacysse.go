package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/xavyo/xavyo/gateway"
)

// The HTTP+SSE transport of revision 2024-11-05, still used by older
// clients, on the same endpoints: a GET that accepts an event stream and
// names no session opens the stream, whose first event ("endpoint") is the
// URL to POST messages to (the endpoint with ?session_id=…). Answers and
// notifications arrive on the stream; each POST is answered 202. The
// stream lives on the replica that opened it; closing it ends the session.

// legacyConn is one open HTTP+SSE stream: the sink of its carrier.
type legacyConn struct {
	*carrier
	mu      sync.Mutex // serializes writes to the stream
	w       http.ResponseWriter
	rc      *http.ResponseController
	subject string
	server  string
}

func (c *legacyConn) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	return writeEvent(c.w, c.rc, "message", b)
}

// legacyConns are this replica's open HTTP+SSE streams by id.
type legacyConns struct {
	mu sync.Mutex
	m  map[string]*legacyConn
}

func (l *legacyConns) put(id string, c *legacyConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*legacyConn{}
	}
	l.m[id] = c
}

func (l *legacyConns) get(id string) *legacyConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

func (l *legacyConns) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, id)
}

// serveLegacyStream opens an HTTP+SSE stream.
func (g *Gateway) serveLegacyStream(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, exp time.Time) {
	release, ok := g.conns.acquire(ep.tenant.ID, p)
	if !ok {
		tooManyConns(w)
		return
	}
	defer release()
	var b [24]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &legacyConn{w: w, subject: string(p.Kind) + ":" + p.SubjectID, server: ep.server}
	c.carrier = &carrier{g: g, ep: ep, sink: c, ctx: ctx}
	g.legacy.put(id, c)
	defer func() {
		g.legacy.remove(id)
		cancel()
		c.end() // closing the stream ends the session
	}()
	c.mu.Lock()
	c.rc = openEventStream(w)
	err := writeEvent(w, c.rc, "endpoint", []byte(ep.url+"?session_id="+id))
	c.mu.Unlock()
	if err != nil {
		return
	}
	clock := newStreamClock(exp)
	defer clock.stop()
	done := g.streams.doneCh()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-clock.expired:
			return
		case <-clock.ping.C:
			c.mu.Lock()
			err := writeKeepAlive(w, c.rc)
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// postLegacy takes one message for an HTTP+SSE stream: 202 at once, the
// answer on the stream.
func (g *Gateway) postLegacy(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, id string) {
	c := g.legacy.get(id)
	if c == nil || c.subject != string(p.Kind)+":"+p.SubjectID || c.server != ep.server {
		writeJSON(w, http.StatusNotFound, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "no such SSE session on this server; open a new stream"}))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxMessageBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "message too large"}))
		return
	}
	// A copy of the request carries the message on the stream's context.
	req := r.Clone(c.ctx)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	req.Header.Del(hdrSession)
	if sid := c.sessionID(); sid != "" {
		req.Header.Set(hdrSession, sid)
	}
	if !c.serve(req, p, time.Time{}) {
		writeJSON(w, http.StatusNotFound, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "the SSE stream ended; open a new one"}))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
