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

	"github.com/xavyo/xavyo/internal/principal"
)

// The HTTP+SSE transport of revision 2024-11-05, still used by older
// clients, on the same endpoints: a GET that accepts an event stream and
// names no session opens the stream, whose first event ("endpoint") is the
// URL to POST messages to (the endpoint with ?session_id=…). Answers and
// notifications arrive on the stream; each POST is answered 202. The
// stream lives on the replica that opened it; closing it ends the session.

// legacyConn is one open HTTP+SSE stream.
type legacyConn struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	ctx     context.Context
	subject string
	server  string
	session string // the MCP session after initialize
	closed  bool   // no more messages are taken (guarded by mu)
	wg      sync.WaitGroup
}

// take registers one more message in flight, unless the stream ended.
func (c *legacyConn) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

func (c *legacyConn) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	if _, err := c.w.Write([]byte("event: message\ndata: ")); err != nil {
		return err
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	if _, err := c.w.Write([]byte("\n\n")); err != nil {
		return err
	}
	return c.rc.Flush()
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
func (g *Gateway) serveLegacyStream(w http.ResponseWriter, r *http.Request, ep *endpoint, p *principal.Principal, exp time.Time) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &legacyConn{w: w, rc: http.NewResponseController(w), ctx: ctx, subject: string(p.Kind) + ":" + p.SubjectID, server: ep.server}
	g.legacy.put(id, c)
	defer func() {
		g.legacy.remove(id)
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		cancel()
		c.wg.Wait()
		c.mu.Lock()
		sid := c.session
		c.mu.Unlock()
		if sid != "" {
			if s, err := g.sessions.get(context.WithoutCancel(ctx), ep.tenant.ID, sid, g.cfg.Now()); err == nil {
				_ = g.sessions.terminate(context.WithoutCancel(ctx), s)
			}
		}
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	c.mu.Lock()
	_, err := w.Write([]byte("event: endpoint\ndata: " + ep.url + "?session_id=" + id + "\n\n"))
	if err == nil {
		err = c.rc.Flush()
	}
	c.mu.Unlock()
	if err != nil {
		return
	}
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	var expired <-chan time.Time
	if !exp.IsZero() {
		t := time.NewTimer(time.Until(exp))
		defer t.Stop()
		expired = t.C
	}
	done := g.streams.doneCh()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-expired:
			return
		case <-ping.C:
			c.mu.Lock()
			_, err := w.Write([]byte(": keep-alive\n\n"))
			if err == nil {
				err = c.rc.Flush()
			}
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// postLegacy takes one message for an HTTP+SSE stream: 202 at once, the
// answer on the stream.
func (g *Gateway) postLegacy(w http.ResponseWriter, r *http.Request, ep *endpoint, p *principal.Principal, id string) {
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
	c.mu.Lock()
	sid := c.session
	c.mu.Unlock()
	req.Header.Del(hdrSession)
	if sid != "" {
		req.Header.Set(hdrSession, sid)
	}
	if !c.take() {
		writeJSON(w, http.StatusNotFound, errorBody(nil, rpcError{Code: codeInvalidRequest, Message: "the SSE stream ended; open a new one"}))
		return
	}
	w.WriteHeader(http.StatusAccepted)
	go func() {
		defer c.wg.Done()
		fw := newFrameWriter(c)
		g.post(fw, req, ep, p)
		defer fw.finish()
		if nid := fw.header.Get(hdrSession); nid != "" {
			c.mu.Lock()
			first := c.session == ""
			c.session = nid
			c.mu.Unlock()
			if first {
				if s, err := g.sessions.get(c.ctx, ep.tenant.ID, nid, g.cfg.Now()); err == nil && c.take() {
					lr := req.Clone(c.ctx)
					lr.Method = http.MethodGet
					lr.Header.Set(hdrSession, nid)
					go func() {
						defer c.wg.Done()
						g.listen(newFrameWriter(c), lr, ep, p, s, time.Time{})
					}()
				}
			}
		}
	}()
}
