package mcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/xavyo/xavyo/gateway"
	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/metriclabel"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
)

// visible lists the tools of an endpoint in order, with the names the
// client sees.
func (ep *endpoint) tools() []*toolEntry {
	if ep.server == "" {
		return ep.cat.all
	}
	return ep.cat.bySlug[ep.server].tools
}

// lookup finds a tool by the name the client used.
func (ep *endpoint) lookup(name string) *toolEntry {
	if ep.server == "" {
		t := ep.cat.byPrefixed[name]
		if t == nil || !t.server.active {
			return nil
		}
		return t
	}
	return ep.cat.bySlug[ep.server].byName[name]
}

func (ep *endpoint) clientName(t *toolEntry) string {
	if ep.server == "" {
		return t.server.slug + "__" + t.name
	}
	return t.name
}

// listTools answers tools/list: exactly the tools this principal may call
// now, a page at a time (the cursor is the last name of the page before).
func (g *Gateway) listTools(ctx context.Context, w http.ResponseWriter, ep *endpoint, p *gateway.Caller, m *message, stateless bool) {
	var in struct {
		Cursor string `json:"cursor"`
	}
	if len(m.Params) > 0 && json.Unmarshal(m.Params, &in) != nil {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "invalid params"}))
		return
	}
	after := ""
	if in.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(in.Cursor)
		if err != nil {
			writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "invalid cursor"}))
			return
		}
		after = string(b)
	}
	ok := p.Governed
	snap, err := g.cfg.Access.Snapshot(ctx, ep.tenant.ID)
	if err != nil {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInternal, Message: apperr.PublicMessage(err)}))
		return
	}
	now := g.cfg.Now()
	var b bytes.Buffer
	b.WriteString(`{"tools":[`)
	n, next := 0, ""
	var lastListed *toolEntry
	if ok {
		for _, t := range ep.tools() {
			name := ep.clientName(t)
			if (after != "" && name <= after) || !t.server.active || !p.May(snap, t.ent, now) {
				continue
			}
			if n == g.cfg.PageSize {
				next = base64.RawURLEncoding.EncodeToString([]byte(ep.clientName(lastListed)))
				break
			}
			if n > 0 {
				b.WriteByte(',')
			}
			if ep.server == "" {
				b.Write(t.prefixed)
			} else {
				b.Write(t.def)
			}
			lastListed = t
			n++
		}
	}
	b.WriteByte(']')
	if next != "" {
		b.WriteString(`,"nextCursor":`)
		c, _ := json.Marshal(next)
		b.Write(c)
	}
	if stateless {
		// Per principal: cacheable by this client only.
		b.WriteString(`,"resultType":"complete","ttlMs":0,"cacheScope":"private"`)
	}
	b.WriteByte('}')
	writeJSON(w, http.StatusOK, resultBody(m.ID, b.Bytes()))
}

// callDetails is the audit record of one tools/call decision.
type callDetails struct {
	Decision      string            `json:"decision"`
	Reason        string            `json:"reason"`
	Endpoint      string            `json:"endpoint"`
	Server        string            `json:"server"`
	Tool          string            `json:"tool"`
	EntitlementID *uuid.UUID        `json:"entitlement_id,omitempty"`
	AssignmentID  *uuid.UUID        `json:"assignment_id,omitempty"`
	Actors        []principal.Actor `json:"actors,omitempty"`
	ArgsSHA256    string            `json:"args_sha256"`
	Arguments     map[string]any    `json:"arguments,omitempty" doc:"only when the tenant's mcp.audit_arguments is on; sensitive values redacted"`
	AuthMethod    string            `json:"auth_method"`
	ClientID      string            `json:"client_id,omitempty"`
	Session       string            `json:"session"`
	Code          string            `json:"code,omitempty" doc:"a refusal's reason as a stable code (no_grant, time_window, argument, rate_limit, risk, approval_denied, approval_timeout, schema, …)"`
	ApprovalID    *uuid.UUID        `json:"approval_id,omitempty" doc:"the approval the call was held for"`
}

// resultDetails is the audit record of a forwarded call's outcome.
type resultDetails struct {
	CallID         uuid.UUID `json:"call_id" doc:"the decision record"`
	Server         string    `json:"server"`
	Tool           string    `json:"tool"`
	LatencyMS      float64   `json:"latency_ms"`
	UpstreamStatus string    `json:"upstream_status" doc:"ok, input_required (a round of a multi-round call), tool_error, rpc_error, unavailable, timeout or cancelled"`
}

// Audit actions of the gateway.
const (
	ActionCall   = "mcp.tools.call"
	ActionResult = "mcp.tools.result"
)

// admitted is a tools/call the gateway allowed: its decision record is on
// its way to the audit log.
type admitted struct {
	t      *toolEntry
	args   json.RawMessage
	meta   json.RawMessage
	rounds json.RawMessage // a retried call's inputResponses and requestState, as params members

	inputResponses json.RawMessage
	requestState   string
	entry          audit.Entry
	receipt        *audit.Receipt
	start          time.Time
	// stream carries the answer when a hold may have opened an event
	// stream (progress while waiting for approval).
	stream *sseWriter
}

// admit decides a tools/call inline: the tool, the principal's grant, the
// arguments against the tool's schema. A refusal is audited and answered
// here (false); an admitted call returns once its decision record is
// durable. session tags the record ("" in the stateless era).
//
// A call held for approval waits here; when stream is given and the client
// asked for progress, it hears about the wait on stream, which then
// carries the rest of the answer.
func (g *Gateway) admit(ctx context.Context, w http.ResponseWriter, ep *endpoint, p *gateway.Caller, session string, m *message, stream *sseWriter) (*admitted, bool) {
	out := stream
	if out == nil {
		out = &sseWriter{w: w}
	}
	start := time.Now()
	var in struct {
		Name           string          `json:"name"`
		Arguments      json.RawMessage `json:"arguments"`
		Meta           json.RawMessage `json:"_meta"`
		InputResponses json.RawMessage `json:"inputResponses"`
		RequestState   json.RawMessage `json:"requestState"`
	}
	if err := json.Unmarshal(m.Params, &in); err != nil || in.Name == "" {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "tools/call needs a tool name"}))
		return nil, false
	}
	// A retry of a multi-round call carries the client's input and the
	// tool server's state: both go back to the tool server untouched.
	var rounds []byte
	if len(in.InputResponses) > 0 && string(in.InputResponses) != "null" {
		rounds = append(append(rounds, `,"inputResponses":`...), in.InputResponses...)
	}
	if len(in.RequestState) > 0 && string(in.RequestState) != "null" {
		rounds = append(append(rounds, `,"requestState":`...), in.RequestState...)
	}
	args := in.Arguments
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	// Parsed once: for the schema, the argument hash and the constraints.
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(args))
	obj, isObj := inst.(map[string]any)
	if err != nil || !isObj {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeInvalidParams, Message: "arguments must be a JSON object"}))
		return nil, false
	}
	var argMap map[string]json.RawMessage
	det := callDetails{Endpoint: ep.url, Tool: in.Name, Actors: p.Actors, ArgsSHA256: instHash(obj), AuthMethod: string(p.AuthMethod),
		ClientID: p.ClientID, Session: session}
	if pol := g.cfg.Enforcer.Policy(ep.tenant); pol.AuditArguments {
		det.Arguments = redact(obj, pol.RedactKeys).(map[string]any)
	}
	entry := audit.Entry{TenantID: ep.tenant.ID, Action: ActionCall, TargetKind: "mcp_tool", RequestID: reqid.From(ctx), ProcessDurable: true}.ActorFrom(p.Principal)

	t := ep.lookup(in.Name)
	if t == nil {
		det.Decision, det.Reason, det.Code = governance.Deny, "unknown tool", "unknown_tool"
		g.deny(ctx, out, m, entry, det, codeInvalidParams, "unknown tool: "+in.Name, start)
		return nil, false
	}
	det.Server, det.Tool, det.EntitlementID = t.server.slug, t.name, &t.ent
	entry.TargetID = t.server.slug + "/" + t.name
	snap, err := g.cfg.Access.Snapshot(ctx, ep.tenant.ID)
	if err != nil {
		out.finish(errorBody(m.ID, rpcError{Code: codeInternal, Message: apperr.PublicMessage(err)}))
		return nil, false
	}
	if snap.HasArgumentConstraints() {
		_ = json.Unmarshal(args, &argMap)
	}
	v := g.cfg.Enforcer.Decide(ep.tenant, p, snap, gateway.Ask{Entitlement: t.ent, Arguments: argMap, Decoded: obj})
	det.Decision, det.Reason, det.Code, det.AssignmentID = v.Decision.Decision, v.Reason, v.Code, v.AssignmentID
	if !v.Allowed() && !v.Hold {
		if v.Code == "argument" {
			// Constraints come after the tool's own input schema: its
			// error, if any, is the one to report.
			if sch, err := t.inputSchema(); err == nil {
				if err := sch.Validate(inst); err != nil {
					det.Reason, det.Code = "arguments do not match the tool's input schema", "schema"
					g.deny(ctx, out, m, entry, det, codeInvalidParams, "invalid arguments: "+schemaMessage(err), start)
					return nil, false
				}
			}
		}
		g.deny(ctx, out, m, entry, det, codeDenied, v.Reason, start)
		return nil, false
	}
	sch, err := t.inputSchema()
	if err != nil {
		det.Decision, det.Reason, det.Code = governance.Deny, "the tool's input schema cannot be checked", "schema"
		g.deny(ctx, out, m, entry, det, codeDenied, det.Reason, start)
		return nil, false
	}
	if err := sch.Validate(inst); err != nil {
		det.Decision, det.Reason, det.Code = governance.Deny, "arguments do not match the tool's input schema", "schema"
		g.deny(ctx, out, m, entry, det, codeInvalidParams, "invalid arguments: "+schemaMessage(err), start)
		return nil, false
	}
	if v.Hold {
		pol := g.cfg.Enforcer.Policy(ep.tenant)
		payload := map[string]any{"endpoint": ep.url, "server": t.server.slug, "tool": t.name, "arguments_sha256": det.ArgsSHA256,
			"caller": map[string]any{"kind": p.Kind, "id": p.SubjectID, "client_id": p.ClientID}, "actors": p.Actors}
		if pol.AuditArguments {
			payload["arguments"] = redact(obj, pol.RedactKeys)
		}
		var meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		}
		_ = json.Unmarshal(in.Meta, &meta)
		reuse := v.ReuseMinutes
		if len(rounds) > 0 {
			// A later round of a multi-round call: the approval of its
			// first round (same arguments) covers it.
			reuse = max(reuse, 15)
		}
		hr := gateway.HoldRequest{Kind: governance.KindToolCall, Entitlement: t.ent, Scope: det.ArgsSHA256, ReuseMinutes: reuse, Payload: payload,
			Justification: fmt.Sprintf("tool call %s/%s by %s %s", t.server.slug, t.name, p.Kind, p.SubjectID)}
		if len(meta.ProgressToken) > 0 && stream != nil {
			// While it waits, a client that asked for progress hears of it.
			hr.Waiting = func(ctx context.Context, id uuid.UUID) { g.holdProgress(ctx, stream, meta.ProgressToken, id) }
		}
		o := g.cfg.Enforcer.Hold(ctx, ep.tenant, p, hr)
		if o.Approval != nil {
			det.ApprovalID = &o.Approval.ID
		}
		if o.Reason != "" {
			det.Decision, det.Reason, det.Code = governance.Deny, o.Reason, o.Code
			g.deny(ctx, out, m, entry, det, codeDenied, det.Reason, start)
			return nil, false
		}
		det.Decision, det.Reason, det.Code = governance.Allow, "approved", "approved"
		if o.Reused {
			det.Reason, det.Code = "approved (an approval of identical calls, reused)", "approval_reused"
		}
	}

	entry.Outcome, entry.Details = audit.OutcomeSuccess, det
	g.cfg.Enforcer.Used(ctx, p)
	// No call is forwarded before its decision record is durable: with the
	// audit log unavailable the gateway fails closed, and the tool server
	// never runs a call the log does not show.
	receipt, err := g.cfg.Enforcer.Record(ctx, entry)
	if err != nil {
		out.finish(errorBody(m.ID, rpcError{Code: codeUnavailable, Message: apperr.PublicMessage(err)}))
		return nil, false
	}
	var state string
	_ = json.Unmarshal(in.RequestState, &state)
	return &admitted{t: t, args: args, meta: in.Meta, rounds: rounds, inputResponses: in.InputResponses, requestState: state,
		entry: entry, receipt: receipt, start: start, stream: stream}, true
}

// callTool decides a tools/call of a session inline, audits the decision
// while the upstream call runs, and answers once both are done.
func (g *Gateway) callTool(ctx context.Context, w http.ResponseWriter, r *http.Request, ep *endpoint, p *gateway.Caller, s *session, m *message) {
	tag := ""
	if s.hash != "" {
		tag = s.hash[:16]
	}
	// The answer may stream (progress, relayed requests), from a wait for
	// approval on.
	stream := &sseWriter{w: w}
	a, ok := g.admit(ctx, w, ep, p, tag, m, stream)
	if !ok {
		return
	}
	t, entry, receipt, start := a.t, a.entry, a.receipt, a.start
	up, err := g.upstreamByID(ctx, t.server.id)
	if err != nil {
		_ = receipt.Wait(context.WithoutCancel(ctx))
		g.finish(ctx, receipt.ID, entry, t, start, "unavailable", p)
		stream.finish(errorBody(m.ID, rpcError{Code: codeUnavailable, Message: "the tool server is not reachable: " + apperr.PublicMessage(err),
			Data: map[string]string{"audit_id": receipt.ID.String()}}))
		return
	}
	params, clientTok := forwardParams(t.name, a.args, a.meta, a.rounds)
	if s.stateless() && !up.sessionless.Load() && s.caps.any() {
		// A session-era tool server may ask this client for input (it
		// declared it can give some; else such requests are refused).
		g.callParking(ctx, stream, ep, p, m, a, up, params)
		return
	}
	if s.wantsLogs() {
		up.wantLogs(ctx)
	}
	rl := g.callRelay(s, stream, clientTok)
	if up.sessionless.Load() {
		rl.params = paramHeaders(t.def, a.args)
	}
	res, callErr := up.call(ctx, "tools/call", params, rl)
	// The reply waits for the decision record too: no answered call is
	// missing from the audit log, even after a crash.
	if err := receipt.Wait(context.WithoutCancel(ctx)); err != nil {
		g.cfg.Logger.Error("tool call audit failed", "error", err)
		stream.finish(errorBody(m.ID, rpcError{Code: codeInternal, Message: "the call could not be audited"}))
		return
	}
	var body []byte
	status := "ok"
	switch {
	case callErr != nil:
		status = "unavailable"
		msg := "the tool server failed: " + apperr.PublicMessage(callErr)
		switch {
		case errors.Is(callErr, context.Canceled):
			status, msg = "cancelled", "the call was cancelled"
		case errors.Is(callErr, errUpstreamTimeout):
			status = "timeout"
		}
		body = errorBody(m.ID, rpcError{Code: codeUnavailable, Message: msg, Data: map[string]string{"audit_id": receipt.ID.String()}})
	case res.Error != nil:
		status = "rpc_error"
		body = answer(m.ID, res, nil)
	default:
		if isToolError(res.Result) {
			status = "tool_error"
		} else if s.stateless() && isInputRequired(res.Result) {
			status = "input_required"
		}
		result := res.Result
		if s.stateless() {
			result = completeResult(result, false)
		}
		body = resultBody(m.ID, result)
	}
	g.finish(ctx, receipt.ID, entry, t, start, status, p)
	if status == "cancelled" && r.Context().Err() != nil {
		return // the client is gone
	}
	stream.finish(body)
}

// finish records the outcome of a forwarded call (not waited for: the
// decision record is the durable proof of the call).
func (g *Gateway) finish(ctx context.Context, callID uuid.UUID, e audit.Entry, t *toolEntry, start time.Time, status string, p *gateway.Caller) {
	lat := time.Since(start)
	e.Action = ActionResult
	e.Outcome = audit.OutcomeSuccess
	if status != "ok" && status != "input_required" {
		e.Outcome = audit.OutcomeFailure
	}
	e.Details = resultDetails{CallID: callID, Server: t.server.slug, Tool: t.name, LatencyMS: float64(lat.Microseconds()) / 1000, UpstreamStatus: status}
	g.cfg.Enforcer.Outcome(ctx, e)
	g.cfg.Metrics.observe(e.TenantID, t.server.slug, t.name, "allow", status, lat)
}

// deny audits a refusal, waits until it is durable, and answers with a
// JSON-RPC error that carries the reason and the audit id.
func (g *Gateway) deny(ctx context.Context, out *sseWriter, m *message, e audit.Entry, det callDetails, code int, msg string, start time.Time) {
	e.Outcome, e.Details = audit.OutcomeDenied, det
	if e.TargetID == "" {
		e.TargetID = det.Tool
	}
	rec, err := g.cfg.Enforcer.Record(ctx, e)
	if err != nil {
		out.finish(errorBody(m.ID, rpcError{Code: codeUnavailable, Message: apperr.PublicMessage(err)}))
		return
	}
	// Only catalogued tools are named in metrics: a caller's made-up names
	// would grow the label series without bound.
	server, tool := det.Server, det.Tool
	if det.EntitlementID == nil {
		server, tool = metriclabel.Unknown, metriclabel.Unknown
	}
	g.cfg.Metrics.observe(e.TenantID, server, tool, "deny", "", time.Since(start))
	g.cfg.Metrics.denied(e.TenantID, server, det.Code)
	data := map[string]string{"reason": det.Reason, "audit_id": rec.ID.String()}
	if det.Code != "" {
		data["code"] = det.Code
	}
	if det.ApprovalID != nil {
		data["approval_id"] = det.ApprovalID.String()
	}
	out.finish(errorBody(m.ID, rpcError{Code: code, Message: msg, Data: data}))
}

// forwardParams builds the params sent upstream: the upstream's own tool
// name, the arguments as the client sent them, a retry's rounds, and the
// client's _meta without its progress token (returned apart: the gateway
// sets its own when the client asked for progress).
func forwardParams(name string, args, meta, rounds json.RawMessage) (json.RawMessage, json.RawMessage) {
	var b bytes.Buffer
	b.Grow(len(name) + len(args) + len(meta) + len(rounds) + 40)
	b.WriteString(`{"name":`)
	n, _ := json.Marshal(name)
	b.Write(n)
	b.WriteString(`,"arguments":`)
	b.Write(args)
	b.Write(rounds)
	var tok json.RawMessage
	if len(meta) > 0 && string(meta) != "null" {
		var mm map[string]json.RawMessage
		if json.Unmarshal(meta, &mm) == nil && mm != nil {
			tok = mm["progressToken"]
			delete(mm, "progressToken")
			// The client's protocol keys are of its hop; the gateway speaks
			// for itself upstream.
			for k := range mm {
				if strings.HasPrefix(k, "io.modelcontextprotocol/") {
					delete(mm, k)
				}
			}
			if len(mm) > 0 {
				rest, _ := json.Marshal(mm)
				b.WriteString(`,"_meta":`)
				b.Write(rest)
			}
		}
	}
	b.WriteByte('}')
	return b.Bytes(), tok
}

// instHash is the SHA-256 of the arguments re-encoded with sorted keys
// (numbers as the client wrote them): the args_sha256 of audit records.
func instHash(obj map[string]any) string {
	b, err := json.Marshal(obj)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// isInputRequired reports a result that asks the client for input (a
// round of a multi-round call).
func isInputRequired(result json.RawMessage) bool {
	var r struct {
		ResultType string `json:"resultType"`
	}
	return json.Unmarshal(result, &r) == nil && r.ResultType == "input_required"
}

func isToolError(result json.RawMessage) bool {
	var r struct {
		IsError bool `json:"isError"`
	}
	return json.Unmarshal(result, &r) == nil && r.IsError
}

// schemaMessage is a short, safe description of a validation failure.
func schemaMessage(err error) string {
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		msg := ve.Error()
		if i := strings.IndexByte(msg, '\n'); i > 0 && len(ve.Causes) > 0 {
			msg = strings.TrimSpace(strings.ReplaceAll(msg[i+1:], "\n", "; "))
		}
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return msg
	}
	return "not valid JSON"
}

// passThrough forwards resource, prompt and completion requests to the
// tool servers the principal holds at least one tool of: the endpoint's
// server, or on the aggregate endpoint all of them (see aggregate.go).
func (g *Gateway) passThrough(ctx context.Context, w http.ResponseWriter, ep *endpoint, p *gateway.Caller, m *message) {
	servers := g.permittedServers(ctx, ep, p)
	if ep.server == "" {
		g.aggregate(ctx, w, ep, servers, m)
		return
	}
	if len(servers) == 0 {
		writeJSON(w, http.StatusOK, errorBody(m.ID, rpcError{Code: codeDenied, Message: "no access to this tool server"}))
		return
	}
	res, err := g.forward(ctx, servers[0], m.Method, m.Params)
	writeJSON(w, http.StatusOK, answer(m.ID, res, err))
}

// permittedServers lists the endpoint's active servers of which the
// principal may call at least one tool now.
func (g *Gateway) permittedServers(ctx context.Context, ep *endpoint, p *gateway.Caller) []*serverEntry {
	ok := p.Governed
	snap, err := g.cfg.Access.Snapshot(ctx, ep.tenant.ID)
	if !ok || err != nil {
		return nil
	}
	now := g.cfg.Now()
	var out []*serverEntry
	seen := map[*serverEntry]bool{}
	for _, t := range ep.tools() {
		if seen[t.server] || !t.server.active {
			continue
		}
		if p.May(snap, t.ent, now) {
			seen[t.server] = true
			out = append(out, t.server)
		}
	}
	return out
}

// forward sends one request to a server's upstream.
func (g *Gateway) forward(ctx context.Context, srv *serverEntry, method string, params json.RawMessage) (*callResult, error) {
	up, err := g.upstreamByID(ctx, srv.id)
	if err != nil {
		return nil, err
	}
	return up.call(ctx, method, params, nil)
}

// answer renders an upstream answer (or failure) for the client's id.
func answer(id json.RawMessage, res *callResult, err error) []byte {
	switch {
	case err != nil:
		return errorBody(id, rpcError{Code: codeUnavailable, Message: "the tool server failed: " + apperr.PublicMessage(err)})
	case res.Error != nil:
		b, _ := json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   any             `json:"error"`
		}{"2.0", id, res.Error})
		return b
	default:
		return resultBody(id, res.Result)
	}
}

// alwaysRedacted are argument-name fragments whose values never reach
// the audit log.
var alwaysRedacted = []string{"password", "passwd", "secret", "token", "key", "authorization", "cookie", "credential"}

// redact copies v, replacing the values of sensitive keys (at any depth).
func redact(v any, extra []string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if sensitive(k, extra) {
				out[k] = "[redacted]"
				continue
			}
			out[k] = redact(val, extra)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redact(val, extra)
		}
		return out
	default:
		return v
	}
}

func sensitive(key string, extra []string) bool {
	k := strings.ToLower(key)
	for _, s := range alwaysRedacted {
		if strings.Contains(k, s) {
			return true
		}
	}
	for _, s := range extra {
		if strings.Contains(k, strings.ToLower(s)) {
			return true
		}
	}
	return false
}

// policy returns the tenant's MCP policy, parsed once per tenant version.

// touch records the use of the NHIs behind an allowed call (inactivity
// reports read it), off the request path.
