package mcp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/xavyo/xavyo/internal/apperr"
)

// A stateless-era client takes no requests on a stream; a session-era tool
// server asks its client for input (sampling, elicitation, roots) in the
// middle of a call. The gateway bridges the two: the tool server's call
// stays open on this replica ("parked"), the client gets an input_required
// result whose requestState names the parked call, and its retry — decided
// and audited like any call — hands the responses to the waiting tool
// server and waits on.

// parkedPrefix marks the request states of parked calls.
const parkedPrefix = "xvp."

type parkedCall struct {
	subject string // the principal that made the call
	tool    string // server/tool
	asks    chan *inputAsk
	done    chan parkedDone
	cancel  context.CancelFunc

	key     string               // the current request state (changes each round)
	pending map[string]*inputAsk // input request key → the tool server's waiting request
}

type inputAsk struct {
	method string
	params json.RawMessage
	reply  chan askReply
}

type askReply struct {
	result json.RawMessage
	err    *rpcError
}

type parkedDone struct {
	res *callResult
	err error
}

type parkedCalls struct {
	mu sync.Mutex
	m  map[string]*parkedCall
}

func (pc *parkedCalls) put(key string, c *parkedCall) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.m == nil {
		pc.m = map[string]*parkedCall{}
	}
	delete(pc.m, c.key)
	c.key = key
	pc.m[key] = c
}

// take removes and returns the parked call of a request state, if it is
// the subject's call of that tool (another's stays parked).
func (pc *parkedCalls) take(key, subject, tool string) *parkedCall {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	c := pc.m[key]
	if c == nil || c.subject != subject || c.tool != tool {
		return nil
	}
	delete(pc.m, key)
	return c
}

func (pc *parkedCalls) drop(c *parkedCall) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.m[c.key] == c {
		delete(pc.m, c.key)
	}
}

// callParking serves a stateless client's call of a session-era tool
// server: a new call, or the retry of a parked one (its requestState). The
// answer goes out on out (an event stream if a wait for approval opened
// one).
func (g *Gateway) callParking(ctx context.Context, out *sseWriter, ep *endpoint, p *gateway.Caller, m *message, a *admitted, up *upstream, params json.RawMessage) {
	subject := string(p.Kind) + "/" + p.SubjectID
	tool := a.t.server.slug + "/" + a.t.name
	var c *parkedCall
	if strings.HasPrefix(a.requestState, parkedPrefix) {
		if c = g.parked.take(a.requestState, subject, tool); c == nil {
			_ = a.receipt.Wait(context.WithoutCancel(ctx))
			g.finish(ctx, a.receipt.ID, a.entry, a.t, a.start, "rpc_error", p)
			out.finish(errorBody(m.ID, rpcError{Code: codeInvalidParams,
				Message: "requestState names no call waiting for input here: it ended, timed out, or waits on another replica; call again without it"}))
			return
		}
		var responses map[string]json.RawMessage
		_ = json.Unmarshal(a.inputResponses, &responses)
		for key, ask := range c.pending {
			if r, ok := responses[key]; ok {
				ask.reply <- askReply{result: r}
			} else {
				ask.reply <- askReply{err: &rpcError{Code: codeInvalidParams, Message: "the client did not answer " + ask.method}}
			}
		}
		c.pending = nil
	} else {
		c = &parkedCall{subject: subject, tool: tool, asks: make(chan *inputAsk), done: make(chan parkedDone, 1)}
		// The tool server's call outlives this request: it waits for the
		// client's retries, within the tool server's timeout.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c.cancel = cancel
		rl := &relay{request: func(rctx context.Context, method string, params json.RawMessage) (json.RawMessage, *rpcError) {
			ask := &inputAsk{method: method, params: params, reply: make(chan askReply, 1)}
			select {
			case c.asks <- ask:
			case <-rctx.Done():
				return nil, &rpcError{Code: codeInternal, Message: "the call ended"}
			}
			select {
			case r := <-ask.reply:
				return r.result, r.err
			case <-rctx.Done():
				return nil, &rpcError{Code: codeInternal, Message: "the client did not answer " + method + " in time"}
			}
		}}
		go func() {
			res, err := up.call(cctx, "tools/call", params, rl)
			c.done <- parkedDone{res: res, err: err}
			g.parked.drop(c)
			cancel()
		}()
	}
	if err := a.receipt.Wait(context.WithoutCancel(ctx)); err != nil {
		c.cancel()
		out.finish(errorBody(m.ID, rpcError{Code: codeInternal, Message: "the call could not be audited"}))
		return
	}
	select {
	case d := <-c.done:
		status, body := "ok", []byte(nil)
		switch {
		case d.err != nil:
			status = "unavailable"
			if errors.Is(d.err, errUpstreamTimeout) {
				status = "timeout"
			}
			body = errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server failed: " + apperr.PublicMessage(d.err),
				Data: map[string]string{"audit_id": a.receipt.ID.String()}})
		case d.res.Error != nil:
			status, body = "rpc_error", answer(m.ID, d.res, nil)
		default:
			if isToolError(d.res.Result) {
				status = "tool_error"
			}
			body = resultBody(m.ID, completeResult(d.res.Result, false))
		}
		g.finish(ctx, a.receipt.ID, a.entry, a.t, a.start, status, p)
		out.finish(body)
	case ask := <-c.asks:
		// Requests the tool server sends together go out in one round.
		c.pending = map[string]*inputAsk{"input-1": ask}
		for more := true; more; {
			select {
			case next := <-c.asks:
				c.pending["input-"+strconv.Itoa(len(c.pending)+1)] = next
			case <-time.After(20 * time.Millisecond):
				more = false
			}
		}
		requests := map[string]any{}
		for k, ask := range c.pending {
			requests[k] = map[string]any{"method": ask.method, "params": ask.params}
		}
		var nonce [24]byte
		_, _ = rand.Read(nonce[:])
		key := parkedPrefix + base64.RawURLEncoding.EncodeToString(nonce[:])
		g.parked.put(key, c)
		res, _ := json.Marshal(map[string]any{"resultType": "input_required", "inputRequests": requests, "requestState": key})
		g.finish(ctx, a.receipt.ID, a.entry, a.t, a.start, "input_required", p)
		out.finish(resultBody(m.ID, res))
	case <-ctx.Done():
		// The client left: so does the call.
		c.cancel()
		g.finish(ctx, a.receipt.ID, a.entry, a.t, a.start, "cancelled", p)
	}
}
