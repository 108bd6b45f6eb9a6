package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
)

// Audit actions of the A2A proxy.
const (
	ActionCall   = "a2a.call"
	ActionResult = "a2a.result"
)

// Minter issues the credentials the gateway presents to target agents.
type Minter interface {
	Mint(ctx context.Context, c token.Claims) (string, error)
}

// Auditor records calls (Append) and changes (AppendSync).
type Auditor interface {
	Append(ctx context.Context, e audit.Entry) (*audit.Receipt, error)
	AppendSync(ctx context.Context, e audit.Entry) error
}

// Methods of A2A v1.0 and, beside them, v0.3 (an empty A2A-Version).
var methods = []string{
	"SendMessage", "SendStreamingMessage", "GetTask", "ListTasks", "CancelTask", "SubscribeToTask",
	"CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig",
	"GetExtendedAgentCard",
	"message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe", "tasks/pushNotificationConfig/set",
	"tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete", "agent/getAuthenticatedExtendedCard",
}

// pushConfigMethods are the methods whose results show push-notification
// configs.
var pushConfigMethods = []string{"CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfig",
	"tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list"}

// streaming are the methods answered with an event stream (no bound but
// the caller's patience); the others must answer within callTimeout.
var streaming = []string{"SendStreamingMessage", "SubscribeToTask", "message/stream", "tasks/resubscribe"}

const callTimeout = 5 * time.Minute

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeTaskNotFound   = -32001 // A2A TaskNotFoundError
	codeUnsupported    = -32004 // A2A UnsupportedOperationError
	codeInternal       = -32603
	// codeForbidden: the caller may not call this agent (HTTP 403).
	codeForbidden = -32000
)

func rpcError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string, data map[string]string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	e := map[string]any{"code": code, "message": msg}
	if data != nil {
		e["data"] = data
	}
	writeJSON(w, status, map[string]any{"jsonrpc": "2.0", "id": id, "error": e})
}

// callDetails is the audit record of one proxied call.
type callDetails struct {
	Agent      string            `json:"agent"`
	Method     string            `json:"method"`
	Version    string            `json:"a2a_version" doc:"the caller's A2A-Version (empty: 0.3)"`
	Decision   string            `json:"decision"`
	Reason     string            `json:"reason"`
	Code       string            `json:"code,omitempty"`
	Actors     []principal.Actor `json:"actors,omitempty"`
	ClientID   string            `json:"client_id,omitempty"`
	Status     int               `json:"upstream_status,omitempty"`
	ApprovalID *uuid.UUID        `json:"approval_id,omitempty"`
	LatencyMS  float64           `json:"latency_ms,omitempty"`
}

// call proxies one JSON-RPC request to an agent: the caller must hold the
// agent's a2a_call entitlement; the request goes on with a credential
// xavyo issues for the target (never the caller's), and the answer — JSON
// or an event stream — comes back as it arrives. Every call is audited.
func (h *Handlers) call(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		rpcError(w, http.StatusRequestEntityTooLarge, nil, codeInvalidRequest, "the request is too large", nil)
		return
	}
	t, ctx, ok := h.scope(w, r)
	if !ok {
		return
	}
	h.callWith(w, r.WithContext(ctx), t, body, false)
}

// callWith serves one request to an agent of tenant t (r's context is
// the tenant's), JSON-RPC or (rest) built from the HTTP+JSON binding;
// errors and answers take the request's form.
func (h *Handlers) callWith(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, body []byte, rest bool) {
	start := time.Now()
	rpcError := func(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string, data map[string]string) {
		if rest {
			restError(w, status, code, msg, data)
			return
		}
		rpcError(w, status, id, code, msg, data)
	}
	ctx := r.Context()
	list, err := h.agents(ctx, r.PathValue("agent"))
	if err != nil {
		rpcError(w, http.StatusServiceUnavailable, nil, codeInternal, "the agent directory is unavailable", nil)
		return
	}
	if len(list) == 0 {
		rpcError(w, http.StatusNotFound, nil, codeInvalidRequest, "no such agent", nil)
		return
	}
	a := list[0]
	p, ok := h.authenticate(w, r.WithContext(ctx), t, h.urls(t).agentEndpoint(a.slug))
	if !ok {
		return
	}
	var m struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		rpcError(w, http.StatusOK, nil, codeParse, "not a JSON-RPC request", nil)
		return
	}
	if m.JSONRPC != "2.0" || m.Method == "" {
		rpcError(w, http.StatusOK, m.ID, codeInvalidRequest, "a JSON-RPC 2.0 request names a method", nil)
		return
	}
	if !slices.Contains(methods, m.Method) {
		rpcError(w, http.StatusOK, m.ID, codeMethodNotFound, "unknown A2A method: "+m.Method, nil)
		return
	}
	// The task the request addresses, if any (as the caller names it).
	task := requestedTask(m.Method, body)
	// A caller of 1.0 to an agent of 0.3: the request and its answer are
	// translated (1.0 method names are CamelCase, 0.3 ones have a slash).
	translate := a.version03 && !strings.Contains(m.Method, "/") && m.Method != "GetExtendedAgentCard" // xavyo makes that one
	if translate {
		if body, translate = requestTo03(body); !translate {
			rpcError(w, http.StatusOK, m.ID, codeUnsupported, m.Method+" is not offered toward an agent of A2A 0.3", nil)
			return
		}
	}
	// A caller of 0.3 to an agent of 1.0: the other way round.
	up := !a.version03 && strings.Contains(m.Method, "/") && m.Method != "agent/getAuthenticatedExtendedCard"
	if up {
		if body, up = requestTo10(body); !up {
			rpcError(w, http.StatusOK, m.ID, codeUnsupported, m.Method+" is not offered toward an agent of A2A 1.0", nil)
			return
		}
	}
	det := callDetails{Agent: a.slug, Method: m.Method, Version: r.Header.Get("A2A-Version"), Actors: p.Actors, ClientID: p.ClientID}
	// A decision record, durable as the gateway's tool-call records are
	// (audit.durability: process by default, disk on request).
	entry := audit.Entry{TenantID: t.ID, Action: ActionCall, TargetKind: "a2a_agent", TargetID: a.slug, RequestID: reqid.From(ctx),
		ProcessDurable: true}.ActorFrom(p.Principal)
	snap, err := h.cfg.Access.Snapshot(ctx, t.ID)
	if err != nil {
		rpcError(w, http.StatusServiceUnavailable, m.ID, codeInternal, "access decisions are unavailable", nil)
		return
	}
	d := governance.Decision{Decision: governance.Deny, Reason: "the agent has no a2a_call entitlement yet", Code: "unknown_entitlement"}
	if ent, ok := snap.EntitlementID("a2a-"+a.slug, "call"); ok {
		v := h.cfg.Enforcer.Decide(t, p, snap, gateway.Ask{Entitlement: ent})
		d = v.Decision
		det.Decision, det.Reason, det.Code = d.Decision, d.Reason, d.Code
		if v.Hold {
			o := h.cfg.Enforcer.Hold(ctx, t, p, gateway.HoldRequest{Kind: governance.KindA2ACall, Entitlement: ent, ReuseMinutes: v.ReuseMinutes,
				Justification: "A2A " + m.Method + " to " + a.slug, Payload: map[string]any{"agent": a.slug, "method": m.Method,
					"caller": map[string]any{"kind": p.Kind, "id": p.SubjectID, "client_id": p.ClientID}, "actors": p.Actors}})
			if o.Approval != nil {
				det.ApprovalID = &o.Approval.ID
			}
			switch {
			case o.Reason != "":
				d = governance.Decision{Decision: governance.Deny, Reason: o.Reason, Code: o.Code, EntitlementID: ent}
			case o.Reused:
				d = governance.Decision{Decision: governance.Allow, Reason: "approved (an approval of this caller's calls, reused)", Code: "approval_reused"}
			default:
				d = governance.Decision{Decision: governance.Allow, Reason: "approved", Code: "approved"}
			}
		}
	}
	det.Decision, det.Reason, det.Code = d.Decision, d.Reason, d.Code
	notFound := false
	if d.Allowed() && task != "" {
		other, err := h.othersTask(ctx, p, a.slug, task)
		if err != nil {
			rpcError(w, http.StatusServiceUnavailable, m.ID, codeInternal, "the task's owner could not be checked", nil)
			return
		}
		if other {
			d = governance.Decision{Decision: governance.Deny, Reason: "the task was made by another caller", Code: "task_owner"}
			det.Reason, det.Code, notFound = d.Reason, d.Code, true
		}
	}
	if !d.Allowed() {
		det.Decision = governance.Deny
		h.cfg.Metrics.refused(t.ID, a.slug, m.Method, det.Code)
		entry.Outcome, entry.Details = audit.OutcomeDenied, det
		rec, err := h.cfg.Enforcer.Record(ctx, entry)
		if err != nil {
			rpcError(w, http.StatusServiceUnavailable, m.ID, codeInternal, apperr.PublicMessage(err), nil)
			return
		}
		if notFound {
			// Another's task does not exist, to this caller.
			rpcError(w, http.StatusOK, m.ID, codeTaskNotFound, "task not found", map[string]string{"audit_id": rec.ID.String()})
			return
		}
		rpcError(w, http.StatusForbidden, m.ID, codeForbidden, "not allowed: "+det.Reason, map[string]string{"reason": det.Reason, "code": det.Code,
			"audit_id": rec.ID.String()})
		return
	}
	if body, err = h.relayPush(ctx, t, p, a, body); err != nil {
		rpcError(w, http.StatusOK, m.ID, codeInvalidParams, apperr.PublicMessage(err), nil)
		return
	}
	if m.Method == "GetExtendedAgentCard" || m.Method == "agent/getAuthenticatedExtendedCard" {
		h.extendedCard(ctx, w, t, p, a, m.ID, body, translate, rest, entry, det)
		h.cfg.Metrics.allowed(t.ID, a.slug, m.Method, 0, time.Since(start))
		return
	}
	entry.Outcome, entry.Details = audit.OutcomeSuccess, det
	h.cfg.Enforcer.Used(ctx, p)
	// Nothing is forwarded before its decision record is durable: with the
	// audit log unavailable the call is refused, never sent unrecorded.
	receipt, err := h.cfg.Enforcer.Record(ctx, entry)
	if err != nil {
		rpcError(w, http.StatusServiceUnavailable, m.ID, codeInternal, apperr.PublicMessage(err), nil)
		return
	}
	fctx := ctx
	if !slices.Contains(streaming, m.Method) {
		// An answer that does not stream comes within the bound.
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	status, err := h.forward(fctx, w, r, t, p, a, body, receipt, translate, up, rest, m.Method)
	if err != nil {
		if apperr.KindOf(err) == apperr.KindInternal {
			h.cfg.Logger.Error("A2A call not forwarded", "error", err, "request_id", reqid.From(ctx))
		}
		rpcError(w, http.StatusBadGateway, m.ID, codeInternal, apperr.PublicMessage(err), map[string]string{"audit_id": receipt.ID.String()})
	}
	h.outcome(ctx, t, p, a, receipt.ID, m.Method, status, time.Since(start))
}

// forward sends the request on and copies the answer back, flushing each
// chunk (event streams pass as they come). It returns the target's status;
// an error only when nothing was answered yet.
func (h *Handlers) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p *gateway.Caller, a *agentRecord,
	body []byte, receipt *audit.Receipt, translate, up, rest bool, method string) (int, error) {
	cred, err := h.credential(ctx, t, p, a)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for _, k := range []string{"Content-Type", "Accept", "A2A-Version", "A2A-Extensions"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	if translate {
		req.Header.Del("A2A-Version") // none: 0.3
	}
	if up {
		req.Header.Set("A2A-Version", ProtocolVersion)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return 0, egress.Unreachable("the agent", err)
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "A2A-Version", "A2A-Extensions"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set("X-Audit-Id", receipt.ID.String())
	rc := http.NewResponseController(w)
	push := slices.Contains(pushConfigMethods, method)
	var bind *binder
	if slices.Contains(sendMethods, method) {
		bind = &binder{h: h, ctx: context.WithoutCancel(ctx), p: p, agent: a.slug}
	}
	if translate || up || rest || push || bind != nil || method == "ListTasks" {
		// Each answer rewritten: between versions, and/or out of its
		// JSON-RPC envelope; push-notification configs as the caller set
		// them; the tasks it names bound to the caller (before the caller
		// hears of them), or, listed, left out when another's.
		rewrite := func(b []byte) []byte {
			switch {
			case translate:
				b = responseFrom03(b, method)
			case up:
				b = responseTo03(b, method)
			}
			switch {
			case push:
				b = h.restorePush(ctx, t, p, b)
			case bind != nil:
				bind.observe(b)
			case method == "ListTasks":
				b = h.filterTasks(ctx, p, a.slug, b)
			}
			return b
		}
		if translate {
			w.Header().Set("A2A-Version", ProtocolVersion)
		}
		if up {
			w.Header().Del("A2A-Version")
		}
		if isJSON(resp.Header.Get("Content-Type")) {
			b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if err != nil {
				return 0, apperr.Wrap(err, apperr.KindUnavailable, "the agent's answer could not be read")
			}
			b = rewrite(b)
			status := resp.StatusCode
			if rest {
				status, b = unwrapRPC(b)
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(status)
			_, _ = w.Write(b)
			return resp.StatusCode, nil
		}
		w.WriteHeader(resp.StatusCode)
		_ = rewriteStream(w, resp.Body, func(b []byte) []byte {
			b = rewrite(b)
			if rest {
				_, b = unwrapRPC(b)
			}
			return b
		}, func() { _ = rc.Flush() })
		return resp.StatusCode, nil
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break
			}
			_ = rc.Flush()
		}
		if err != nil {
			break
		}
	}
	return resp.StatusCode, nil
}

// credential is what the gateway presents to the target: a short-lived
// token of the tenant's issuer for the target's endpoint, naming the
// caller (and the caller's actors) — never the caller's own token.
// Credentials are reused per caller and target until a minute before they
// expire.
func (h *Handlers) credential(ctx context.Context, t *tenant.Tenant, p *gateway.Caller, a *agentRecord) (string, error) {
	now := h.cfg.Now()
	key := t.ID.String() + "|" + string(p.Kind) + ":" + p.SubjectID + "|" + p.ClientID + "|" + a.endpoint
	if v, ok := h.creds.Load(key); ok {
		if c := v.(issued); c.exp.Sub(now) > time.Minute {
			return c.token, nil
		}
	}
	exp := now.Add(5 * time.Minute)
	c := token.Claims{Claims: jwt.Claims{Subject: p.SubjectID, Audience: jwt.Audience{a.endpoint}, Expiry: jwt.NewNumericDate(exp)},
		TenantID: t.ID, Scope: "a2a", SubjectKind: string(p.Kind), ClientID: p.ClientID}
	tok, err := h.cfg.Minter.Mint(ctx, c)
	if err != nil {
		return "", err
	}
	// A miss (at most one per caller and target every four minutes) also
	// drops the credentials that have expired.
	h.creds.Range(func(k, v any) bool {
		if v.(issued).exp.Before(now) {
			h.creds.Delete(k)
		}
		return true
	})
	h.creds.Store(key, issued{token: tok, exp: exp})
	return tok, nil
}

type issued struct {
	token string
	exp   time.Time
}

// outcome records how a forwarded call ended (not waited for).
func (h *Handlers) outcome(ctx context.Context, t *tenant.Tenant, p *gateway.Caller, a *agentRecord, call uuid.UUID, method string, status int,
	took time.Duration) {
	e := audit.Entry{TenantID: t.ID, Action: ActionResult, TargetKind: "a2a_agent", TargetID: a.slug, RequestID: reqid.From(ctx),
		Outcome: audit.OutcomeSuccess, Details: map[string]any{"call_id": call, "method": method, "upstream_status": status,
			"latency_ms": float64(took.Microseconds()) / 1000}}.ActorFrom(p.Principal)
	if status == 0 || status >= 400 {
		e.Outcome = audit.OutcomeFailure
	}
	h.cfg.Enforcer.Outcome(ctx, e)
	h.cfg.Metrics.allowed(t.ID, a.slug, method, status, took)
}
