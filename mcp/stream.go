package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/google/uuid"
)

// streams are the open server-to-client event streams (GET) of this
// replica, by tenant: each is told when the tenant's catalog or access
// changed, and sends notifications/tools/list_changed when its own
// principal's tool list did.
type streams struct {
	mu     sync.Mutex
	open   map[uuid.UUID]map[*listener]struct{}
	closed bool
	done   chan struct{}
}

type listener struct {
	session string // the session's hash
	changed chan struct{}
	notes   chan []byte // notifications for this session alone
	ready   atomic.Bool // its first tool list is known
}

func (s *streams) add(tenant uuid.UUID, session string) (*listener, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	if s.open == nil {
		s.open = map[uuid.UUID]map[*listener]struct{}{}
	}
	if s.open[tenant] == nil {
		s.open[tenant] = map[*listener]struct{}{}
	}
	l := &listener{session: session, changed: make(chan struct{}, 1), notes: make(chan []byte, 16)}
	s.open[tenant][l] = struct{}{}
	return l, true
}

func (s *streams) remove(tenant uuid.UUID, l *listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open[tenant], l)
	if len(s.open[tenant]) == 0 {
		delete(s.open, tenant)
	}
}

// changed wakes the streams of a tenant (uuid.Nil: of every tenant).
func (s *streams) changed(tenant uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ls := range s.open {
		if tenant != uuid.Nil && t != tenant {
			continue
		}
		for l := range ls {
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}
}

// send queues a notification on a session's streams here; it is dropped
// when the stream is behind by 16.
func (s *streams) send(r sessionRef, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.open[r.tenant] {
		if l.session != r.hash {
			continue
		}
		select {
		case l.notes <- body:
		default:
		}
	}
}

// doneCh is closed when the gateway drains.
func (s *streams) doneCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// drain ends every stream and refuses new ones.
func (s *streams) drain() {
	ch := s.doneCh()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(ch)
	}
}

// OpenStreams counts this replica's open session event streams (those
// that know their principal's first tool list).
func (g *Gateway) OpenStreams() int {
	g.streams.mu.Lock()
	defer g.streams.mu.Unlock()
	n := 0
	for _, ls := range g.streams.open {
		for l := range ls {
			if l.ready.Load() {
				n++
			}
		}
	}
	return n
}

// Drain ends the open event streams (before the agent plane shuts down:
// they would otherwise hold it until its timeout).
func (g *Gateway) Drain() { g.streams.drain() }

// visible hashes the names of the tools the principal may call now.
func (g *Gateway) visible(ctx context.Context, ep *endpoint, p *gateway.Caller) ([32]byte, error) {
	cat, err := g.catalogs.get(ctx, ep.tenant.ID)
	if err != nil {
		return [32]byte{}, err
	}
	snap, err := g.cfg.Access.Snapshot(ctx, ep.tenant.ID)
	if err != nil {
		return [32]byte{}, err
	}
	cur := *ep
	cur.cat = cat
	h := sha256.New()
	ok := p.Governed
	if ok && (cur.server == "" || cat.bySlug[cur.server] != nil) {
		now := g.cfg.Now()
		for _, t := range cur.tools() {
			if t.server.active && p.May(snap, t.ent, now) {
				h.Write([]byte(cur.clientName(t)))
				h.Write([]byte{0})
			}
		}
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// listen serves a session's GET stream, or (s nil) the stream of a
// stateless-era subscriptions/listen request whose id is sub: keep-alive
// comments, and notifications/tools/list_changed when this principal's
// tools change (on a subscription, acknowledged first and tagged with its
// id).
func (g *Gateway) listen(w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, s *session, exp time.Time, sub json.RawMessage) {
	ctx := r.Context()
	hash := ""
	if s != nil {
		hash = s.hash
	}
	release, ok := g.conns.acquire(ep.tenant.ID, p)
	if !ok {
		tooManyConns(w)
		return
	}
	defer release()
	l, ok := g.streams.add(ep.tenant.ID, hash)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, errorBody(nil, rpcError{Code: codeInternal, Message: "the gateway is shutting down"}))
		return
	}
	defer g.streams.remove(ep.tenant.ID, l)
	last, err := g.visible(ctx, ep, p)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody(nil, rpcError{Code: codeInternal, Message: "the tool catalog is unavailable"}))
		return
	}
	l.ready.Store(true)
	rc := openEventStream(w)
	changed := []byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
	if sub != nil {
		tag := `{"_meta":{"io.modelcontextprotocol/subscriptionId":` + string(sub) + `}`
		changed = []byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":` + tag + `}`)
		ack := `{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{"toolsListChanged":true},` + tag[1:] + `}`
		if writeEvent(w, rc, "message", []byte(ack)) != nil {
			return
		}
	}
	clock := newStreamClock(exp) // the stream ends with the token that opened it
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
			if s != nil {
				if cur, err := g.sessions.get(ctx, ep.tenant.ID, r.Header.Get(hdrSession), g.cfg.Now()); err != nil || cur.hash != s.hash {
					return // the session ended
				}
			}
			if writeKeepAlive(w, rc) != nil {
				return
			}
		case b := <-l.notes:
			if writeEvent(w, rc, "message", b) != nil {
				return
			}
		case <-l.changed:
			// Let every replica's caches see the change first.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			now, err := g.visible(ctx, ep, p)
			if err != nil || now == last {
				continue
			}
			last = now
			if writeEvent(w, rc, "message", changed) != nil {
				return
			}
		}
	}
}
