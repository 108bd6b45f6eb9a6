package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"

	"github.com/xavyo/xavyo/gateway"

	"github.com/google/uuid"
)

// subscriptions are the resource subscriptions of this replica's sessions:
// the gateway subscribes once per tool server and URI on its upstream
// session, and sends each notifications/resources/updated to the event
// streams of the sessions subscribed to that URI.
type subscriptions struct {
	mu  sync.Mutex
	by  map[subKey]map[sessionRef]struct{}
	ofS map[sessionRef]map[subKey]struct{}
}

type subKey struct {
	server uuid.UUID
	uri    string
}

type sessionRef struct {
	tenant uuid.UUID
	hash   string
}

// add records a subscription; true when it is the tool server's first for
// the URI (the gateway subscribes upstream).
func (s *subscriptions) add(k subKey, r sessionRef) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by, s.ofS = map[subKey]map[sessionRef]struct{}{}, map[sessionRef]map[subKey]struct{}{}
	}
	first := len(s.by[k]) == 0
	if s.by[k] == nil {
		s.by[k] = map[sessionRef]struct{}{}
	}
	s.by[k][r] = struct{}{}
	if s.ofS[r] == nil {
		s.ofS[r] = map[subKey]struct{}{}
	}
	s.ofS[r][k] = struct{}{}
	return first
}

// remove drops a subscription; true when no session of this replica is
// subscribed to the URI any more (the gateway unsubscribes upstream).
func (s *subscriptions) remove(k subKey, r sessionRef) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.by[k][r]; !ok {
		return false
	}
	delete(s.by[k], r)
	delete(s.ofS[r], k)
	if len(s.ofS[r]) == 0 {
		delete(s.ofS, r)
	}
	if len(s.by[k]) == 0 {
		delete(s.by, k)
		return true
	}
	return false
}

// dropSession forgets an ended session's subscriptions.
func (s *subscriptions) dropSession(r sessionRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.ofS[r] {
		delete(s.by[k], r)
		if len(s.by[k]) == 0 {
			delete(s.by, k)
		}
	}
	delete(s.ofS, r)
}

// uris lists the URIs of a tool server that sessions here subscribe to.
func (s *subscriptions) uris(server uuid.UUID) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.by {
		if k.server == server {
			out = append(out, k.uri)
		}
	}
	slices.Sort(out)
	return out
}

func (s *subscriptions) subscribers(k subKey) []sessionRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sessionRef, 0, len(s.by[k]))
	for r := range s.by[k] {
		out = append(out, r)
	}
	return out
}

// subscribe answers resources/subscribe and resources/unsubscribe on a
// tool server's endpoint (the aggregate endpoint does not offer them).
func (g *Gateway) subscribe(ctx context.Context, w http.ResponseWriter, ep *endpoint, p *gateway.Caller, s *session, m *message) {
	var in struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(m.Params, &in) != nil || in.URI == "" {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: m.Method + " needs a uri"}))
		return
	}
	if ep.server == "" {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeNoMethod, Message: "subscribe on a tool server's own endpoint"}))
		return
	}
	servers := g.permittedServers(ctx, ep, p)
	if len(servers) == 0 {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeDenied, Message: "no access to this tool server"}))
		return
	}
	k, r := subKey{server: servers[0].id, uri: in.URI}, sessionRef{tenant: s.tenant, hash: s.hash}
	upstreamToo := false
	if m.Method == "resources/subscribe" {
		upstreamToo = g.subs.add(k, r)
	} else {
		upstreamToo = g.subs.remove(k, r)
	}
	if up, err := g.upstreamByID(ctx, servers[0].id); err == nil && up.sessionless.Load() {
		// The stateless era subscribes on the listen stream.
		if upstreamToo {
			up.listenStateless(g.subs.uris(servers[0].id))
		}
		upstreamToo = false
	}
	if !upstreamToo {
		writeJSON(w, http.StatusOK, resultBody(m.ID, []byte("{}")))
		return
	}
	res, err := g.forward(ctx, servers[0], m.Method, m.Params)
	if m.Method == "resources/subscribe" && (err != nil || res.Error != nil) {
		g.subs.remove(k, r)
	}
	writeJSON(w, http.StatusOK, answer(m.ID, res, err))
}

// resourceUpdated sends a tool server's resources/updated notification to
// the sessions subscribed to its URI.
func (g *Gateway) resourceUpdated(server uuid.UUID, params json.RawMessage) {
	var in struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(params, &in) != nil {
		return
	}
	body := notificationBody("notifications/resources/updated", params)
	for _, r := range g.subs.subscribers(subKey{server: server, uri: in.URI}) {
		g.streams.send(r, body)
	}
}
