package mcp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/gorilla/websocket"

	"github.com/xavyo/xavyo/internal/principal"
)

// WebSocket toward clients: one JSON-RPC message per text frame, the
// subprotocol "mcp", the same endpoints, authentication, session rules and
// decisions as streamable HTTP. Each frame is served by the streamable
// HTTP code through an adapter; the connection is the session's only
// transport, and server notifications (list_changed) arrive as frames.

// An idle connection holds no buffer of its own: frames are read through
// the HTTP server's reader (ReadBufferSize 0), and a write buffer is
// taken from a pool only while a message is written.
var upgrader = websocket.Upgrader{
	WriteBufferSize: 16 << 10,
	WriteBufferPool: &sync.Pool{},
	Subprotocols:    []string{"mcp"},
	// The agent plane has already refused Origins not allowed.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsConn serializes writes to one WebSocket.
type wsConn struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

func (c *wsConn) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *wsConn) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = c.conn.Close()
}

// sink receives whole JSON-RPC messages: WebSocket frames, or events of a
// legacy SSE stream.
type sink interface {
	send(b []byte) error
}

// frameWriter turns one streamable HTTP answer into messages for a sink:
// a JSON body is one message; each event of an event stream is one.
type frameWriter struct {
	ws     sink
	header http.Header
	status int
	sse    bool
	buf    bytes.Buffer
}

func newFrameWriter(ws sink) *frameWriter {
	return &frameWriter{ws: ws, header: http.Header{}, status: http.StatusOK}
}

func (f *frameWriter) Header() http.Header { return f.header }

func (f *frameWriter) WriteHeader(code int) {
	f.status = code
	f.sse = strings.HasPrefix(f.header.Get("Content-Type"), "text/event-stream")
}

func (f *frameWriter) Write(b []byte) (int, error) {
	f.buf.Write(b)
	if f.sse {
		f.Flush()
	}
	return len(b), nil
}

// Flush sends the complete events buffered so far.
func (f *frameWriter) Flush() {
	if !f.sse {
		return
	}
	for {
		i := bytes.Index(f.buf.Bytes(), []byte("\n\n"))
		if i < 0 {
			return
		}
		ev := string(f.buf.Next(i + 2))
		var data []string
		for _, line := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(d, " "))
			}
		}
		if len(data) > 0 {
			_ = f.ws.send([]byte(strings.Join(data, "\n")))
		}
	}
}

// finish sends a JSON body (202/204 answers have none).
func (f *frameWriter) finish() {
	if !f.sse && f.buf.Len() > 0 {
		_ = f.ws.send(f.buf.Bytes())
	}
}

// isWebSocket reports a WebSocket upgrade request.
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// serveWebSocket runs one WebSocket connection of an authenticated
// principal. Every message is authenticated again (a revoked token or
// certificate, an expired token, fail the next message and close).
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, exp time.Time) {
	release, ok := g.conns.acquire(ep.tenant.ID, p)
	if !ok {
		tooManyConns(w)
		return
	}
	defer release()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	conn.SetReadLimit(g.cfg.MaxMessageBytes)
	ws := &wsConn{conn: conn}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if !exp.IsZero() {
		t := time.AfterFunc(time.Until(exp), func() { ws.close(websocket.ClosePolicyViolation, "token expired"); cancel() })
		defer t.Stop()
	}
	c := &carrier{g: g, ep: ep, sink: ws, ctx: ctx}
	defer func() {
		cancel()
		c.end() // the connection was the session's transport
		_ = conn.Close()
	}()
	msgCtx := ctx
	if p.DPoPKey != "" {
		// The upgrade proved the token's DPoP key; messages carry no proofs.
		msgCtx = gateway.WithProvenKey(ctx, p.DPoPKey)
	}
	request := func(body []byte) *http.Request {
		// A copy of the upgrade request carries each message (never sent anywhere).
		req := r.Clone(msgCtx)
		req.Method, req.Body, req.ContentLength = http.MethodPost, io.NopCloser(bytes.NewReader(body)), int64(len(body))
		req.Header = http.Header{}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if a := r.Header.Get("Authorization"); a != "" {
			req.Header.Set("Authorization", a)
		}
		if id := c.sessionID(); id != "" {
			req.Header.Set(hdrSession, id)
		}
		return req
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		req := request(data)
		// Authenticate again: tokens and certificates are checked per message.
		fw := newFrameWriter(ws)
		cur, ok := g.authenticate(fw, req, ep)
		if ok && g.cfg.Certs != nil && req.TLS != nil && len(req.TLS.PeerCertificates) > 0 && cur.AuthMethod == principal.MethodMTLS {
			if cp, err := g.cfg.Certs.Authenticate(ctx, req.TLS.PeerCertificates[0]); err != nil || cp == nil {
				ok = false
			}
		}
		if !ok || cur.SubjectID != p.SubjectID {
			fw.finish()
			ws.close(websocket.ClosePolicyViolation, "authentication failed")
			return
		}
		if !c.serve(req, cur, exp) {
			return
		}
	}
}
