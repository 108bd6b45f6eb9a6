package mcp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// waiters are the tool server requests relayed to clients, waiting for
// the client's response: session hash + "\x00" + the id the gateway gave
// the request (raw JSON) → the channel the response goes to. They are
// replica-local: the client answers on the stream of the call, which this
// replica serves.
type waiters struct{ m sync.Map }

func waiterKey(s *session, id json.RawMessage) string { return s.hash + "\x00" + string(id) }

// deliver hands a client's response to the relayed request waiting for
// it; false when none waits (unknown id, or the call already ended).
func (ws *waiters) deliver(s *session, m *message) bool {
	v, ok := ws.m.LoadAndDelete(waiterKey(s, m.ID))
	if !ok {
		return false
	}
	v.(chan *message) <- m
	return true
}

// callRelay builds the relay of one call of session s, written to stream:
// progress under the client's own token (when it asked for progress), log
// messages at or above the level the client set, other notifications
// related to the call as they are, and the tool server's requests to the
// client (sampling, elicitation, roots) when the client declared the
// capability, each under an id of the gateway's.
func (g *Gateway) callRelay(s *session, stream *sseWriter, progressTok json.RawMessage) *relay {
	rl := &relay{
		caps: s.capsJSON,
		logs: s.wantsLogs(),
		message: func(method string, params json.RawMessage) {
			if method == "notifications/message" {
				var lm struct {
					Level string `json:"level"`
				}
				if json.Unmarshal(params, &lm) != nil || !s.wantsLog(lm.Level) {
					return
				}
			}
			stream.event(notificationBody(method, params))
		},
	}
	if !s.stateless() {
		// A client of the stateless era takes no requests on a stream: the
		// tool server's input_required results reach it as they are.
		rl.request = func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *rpcError) {
			return g.askClient(ctx, s, stream, method, params)
		}
	}
	if len(progressTok) > 0 && validID(progressTok) {
		rl.progress = func(raw json.RawMessage) {
			var pm map[string]json.RawMessage
			if json.Unmarshal(raw, &pm) != nil {
				return
			}
			pm["progressToken"] = progressTok
			b, _ := json.Marshal(pm)
			stream.event(notificationBody("notifications/progress", b))
		}
	}
	return rl
}

// relayIDs numbers the requests relayed by this replica.
var relayIDs atomic.Int64

// askClient sends a tool server's request to the client on the call's
// stream and waits for the client's response, or for the call's end.
func (g *Gateway) askClient(ctx context.Context, s *session, stream *sseWriter, method string, params json.RawMessage) (json.RawMessage, *rpcError) {
	if !s.caps.allows(method) {
		return nil, &rpcError{Code: codeNoMethod, Message: "the client did not declare the capability " + method + " needs"}
	}
	var nonce [9]byte
	_, _ = rand.Read(nonce[:])
	id, _ := json.Marshal("xv-" + base64.RawURLEncoding.EncodeToString(nonce[:]) + "-" + strconv.FormatInt(relayIDs.Add(1), 10))
	ch := make(chan *message, 1)
	key := waiterKey(s, id)
	g.waiters.m.Store(key, ch)
	defer g.waiters.m.Delete(key)
	req, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", id, method, params})
	if !stream.event(req) {
		return nil, &rpcError{Code: codeInternal, Message: "the call's stream to the client is closed"}
	}
	select {
	case m := <-ch:
		if len(m.Error) > 0 {
			var e rpcError
			if json.Unmarshal(m.Error, &e) != nil || e.Code == 0 {
				e = rpcError{Code: codeInternal, Message: "the client answered with an invalid error"}
			}
			return nil, &e
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, &rpcError{Code: codeInternal, Message: "the client did not answer " + method + " in time"}
	}
}

func notificationBody(method string, params json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", method, params})
	return b
}

// setLogLevel answers logging/setLevel: the session's level, applied by
// the gateway to the log messages of its calls (tool servers are asked
// for every level once a client wants logs; see upstream.wantLogs).
func (g *Gateway) setLogLevel(ctx context.Context, s *session, m *message) []byte {
	var in struct {
		Level string `json:"level"`
	}
	if json.Unmarshal(m.Params, &in) != nil || !slices.Contains(logLevels, in.Level) {
		return errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "level must be one of debug, info, notice, warning, error, critical, alert, emergency"})
	}
	if err := g.sessions.setLogLevel(ctx, s, in.Level); err != nil {
		return errorBody(m.ID, rpcError{Code: codeInternal, Message: "could not store the log level"})
	}
	return resultBody(m.ID, []byte("{}"))
}
