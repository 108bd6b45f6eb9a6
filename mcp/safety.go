package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/gateway"
	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/principal"
)

// Rate limits are counted on this replica, per second: a call is admitted
// when fewer than limit calls were admitted in this second and the 60
// before it — never more than limit in any 60 s, a call leaving the count
// between 60 and 61 s after it was made. Constant memory whatever the
// limit.
type rateKey struct{ assignment, subject, ent uuid.UUID }

type callLog struct {
	mu     sync.Mutex
	counts [61]int32
	secs   [61]int64 // the second each slot counts
	last   int64
}

type rateLimits struct{ logs sync.Map } // rateKey → *callLog

func (r *rateLimits) allow(k rateKey, limit int, now time.Time) bool {
	v, ok := r.logs.Load(k)
	if !ok {
		v, _ = r.logs.LoadOrStore(k, &callLog{})
	}
	l := v.(*callLog)
	sec := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = now.UnixNano()
	n := 0
	for i := range l.secs {
		if l.secs[i] >= sec-60 {
			n += int(l.counts[i])
		}
	}
	if n >= limit {
		return false
	}
	i := sec % 61
	if l.secs[i] != sec {
		l.secs[i], l.counts[i] = sec, 0
	}
	l.counts[i]++
	return true
}

// sweep forgets keys idle for more than a minute.
func (r *rateLimits) sweep(now time.Time) {
	cut := now.Add(-time.Minute).UnixNano()
	r.logs.Range(func(k, v any) bool {
		l := v.(*callLog)
		l.mu.Lock()
		idle := l.last < cut
		l.mu.Unlock()
		if idle {
			r.logs.Delete(k)
		}
		return true
	})
}

// admitRate is the decision's last word on a grant with a rate limit.
func (g *Gateway) admitRate(ent uuid.UUID, now time.Time) func(governance.Subject, *governance.Assignment) (bool, string, string) {
	return func(sub governance.Subject, a *governance.Assignment) (bool, string, string) {
		limit := a.Constraints.RateLimitPerMinute
		if limit <= 0 || g.limits.allow(rateKey{a.ID, sub.ID, ent}, limit, now) {
			return true, "", ""
		}
		return false, fmt.Sprintf("the rate limit of %d calls per minute is reached", limit), "rate_limit"
	}
}

// riskyCall reports whether the tenant's risk threshold applies: a tool of
// high or critical risk, called by (or for) an NHI at or above it.
func riskyCall(snap *governance.Snapshot, threshold int, ent uuid.UUID, sub governance.Subject, actor *governance.Subject) bool {
	if threshold <= 0 {
		return false
	}
	if r := snap.EntitlementRisk(ent); r != "high" && r != "critical" {
		return false
	}
	if snap.RiskScore(sub) >= threshold {
		return true
	}
	return actor != nil && snap.RiskScore(*actor) >= threshold
}

// holdOutcome is how a held call ended.
type holdOutcome struct {
	approval *governance.Approval
	reused   bool
	reason   string // why it may not proceed ("" when approved)
	code     string
}

// hold opens an approval of kind tool_call for a call and waits for its
// decision (or reuses a recent approval of identical calls when the
// assignment allows it). While it waits, a client that asked for progress
// gets notifications/progress on stream every few seconds.
func (g *Gateway) hold(ctx context.Context, ep *endpoint, p *gateway.Caller, sub governance.Subject, t *toolEntry, det *callDetails,
	reuse int, payload map[string]any, progress json.RawMessage, stream *sseWriter) holdOutcome {
	// Governance acts as the caller: it records and checks who asks.
	ctx = principal.With(ctx, p.Principal)
	// What an approval covers: this subject, through these actors, calling
	// this tool with these arguments.
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s/%s/%s", sub.Type, sub.ID, t.ent, det.ArgsSHA256)
	for _, a := range p.Actors {
		fmt.Fprintf(h, "/%s:%s", a.Kind, a.SubjectID)
	}
	fingerprint := hex.EncodeToString(h.Sum(nil))
	if reuse > 0 {
		a, err := g.cfg.Gov.ReusableApproval(ctx, fingerprint, time.Duration(reuse)*time.Minute)
		if err != nil {
			return holdOutcome{reason: "approvals are unavailable", code: "approval_unavailable"}
		}
		if a != nil {
			return holdOutcome{approval: a, reused: true}
		}
	}
	timeout := time.Duration(g.policy(ep.tenant).ApprovalTimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	a, err := g.cfg.Gov.OpenApproval(ctx, governance.OpenInput{Kind: governance.KindToolCall, RequesterType: sub.Type, RequesterID: sub.ID,
		SubjectType: sub.Type, SubjectID: sub.ID, TargetType: "entitlement", TargetID: t.ent, Payload: payload, TTL: timeout, Fingerprint: fingerprint,
		Justification: fmt.Sprintf("tool call %s/%s by %s %s", t.server.slug, t.name, p.Kind, p.SubjectID)})
	if err != nil {
		return holdOutcome{reason: "the call needs an approval, which could not be requested", code: "approval_unavailable"}
	}
	det.ApprovalID = &a.ID
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if len(progress) > 0 && stream != nil {
		go g.holdProgress(wctx, stream, progress, a.ID)
	}
	got, err := g.cfg.Gov.AwaitApproval(wctx, g.bus, a.ID, 2*time.Second)
	switch {
	case err != nil && ctx.Err() != nil:
		// The caller left: withdraw the request.
		_, _ = g.cfg.Gov.Cancel(context.WithoutCancel(ctx), a.ID, governance.CancelInput{Comment: "the caller went away"})
		return holdOutcome{approval: a, reason: "the call was cancelled while waiting for approval", code: "approval_cancelled"}
	case err != nil:
		// Nobody waits for it any more: withdraw it rather than let an
		// approver approve a call that will not run.
		reason, code := governance.HoldTimeout(timeout)
		_, _ = g.cfg.Gov.Cancel(context.WithoutCancel(ctx), a.ID, governance.CancelInput{Comment: reason})
		return holdOutcome{approval: a, reason: reason, code: code}
	default:
		if ok, reason, code := got.Outcome(timeout); !ok {
			return holdOutcome{approval: got, reason: reason, code: code}
		}
		return holdOutcome{approval: got}
	}
}

// holdProgress tells a waiting client, every 5 s, that its call waits for
// an approval.
func (g *Gateway) holdProgress(ctx context.Context, stream *sseWriter, token json.RawMessage, id uuid.UUID) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/progress", "params": map[string]any{
			"progressToken": token, "progress": n, "message": "waiting for approval " + id.String()}})
		if !stream.event(msg) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
