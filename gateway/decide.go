package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
)

// Snapshots gives a tenant's effective-access snapshot.
type Snapshots interface {
	Snapshot(ctx context.Context, tenant uuid.UUID) (*governance.Snapshot, error)
}

// Approvals is governance's approval primitive: calls whose grant (or
// whose risk) requires one are held until it is decided.
type Approvals interface {
	OpenApproval(ctx context.Context, in governance.OpenInput) (*governance.Approval, error)
	AwaitApproval(ctx context.Context, bus *events.Bus, id uuid.UUID, poll time.Duration) (*governance.Approval, error)
	ReusableApproval(ctx context.Context, fingerprint string, within time.Duration) (*governance.Approval, error)
	Cancel(ctx context.Context, id uuid.UUID, in governance.CancelInput) (*governance.Approval, error)
}

// Toucher stamps an NHI's last use, off the caller's path.
type Toucher interface {
	Used(ctx context.Context, id uuid.UUID)
}

// Ask is what a caller asks to do: use an entitlement (a tool of a tool
// server, an agent's a2a_call), with the call's arguments when the
// protocol has any.
type Ask struct {
	Entitlement uuid.UUID
	// Arguments are checked against the grant's argument constraints;
	// Decoded are the same, decoded as JSON Schema instances.
	Arguments map[string]json.RawMessage
	Decoded   map[string]any
}

// Verdict is the enforcement point's decision: governance's, with the
// tenant's rate limits and risk policy applied. Hold says the call may
// go on only once approved (Hold); ReuseMinutes is how long an approval
// of identical calls may be reused.
type Verdict struct {
	governance.Decision
	Hold         bool
	ReuseMinutes int
}

// Policy is the tenant's agent-plane policy (risk threshold and action,
// approval timeout, argument auditing), read once per tenant version.
func (e *Enforcer) Policy(t *tenant.Tenant) tenant.MCPPolicy {
	type cached struct {
		version int64
		pol     tenant.MCPPolicy
	}
	if c, ok := e.policies.Load(t.ID); ok && c.(cached).version == t.Version {
		return c.(cached).pol
	}
	pol := tenant.PoliciesOf(t).MCP
	e.policies.Store(t.ID, cached{version: t.Version, pol: pol})
	return pol
}

// Decide decides a call from the snapshot: the caller (and, for a
// delegated call, its actor) must hold a valid grant of the entitlement
// that its constraints (time window, arguments, rate limit) admit; a
// grant requiring approval, or a high-risk entitlement called by a
// subject at or above the tenant's risk threshold (with risk_action
// approval), holds the call.
func (e *Enforcer) Decide(t *tenant.Tenant, c *Caller, snap *governance.Snapshot, ask Ask) Verdict {
	if !c.Governed {
		return Verdict{Decision: governance.Decision{Decision: governance.Deny, Reason: "the caller is not a governed subject", Code: "no_grant",
			EntitlementID: ask.Entitlement}}
	}
	now := e.cfg.Now()
	req := governance.Request{Subject: c.Subject, Actor: c.Actor, EntitlementID: ask.Entitlement, Arguments: ask.Arguments, Decoded: ask.Decoded}
	if snap.HasRateLimits() {
		req.Admit = e.admitRate(ask.Entitlement, now)
	}
	v := Verdict{Decision: snap.Decide(&req, now)}
	switch {
	case v.Decision.Decision == governance.ApprovalRequired:
		v.Hold = true
		if v.Constraints != nil {
			v.ReuseMinutes = v.Constraints.ApprovalReuseMinutes
		}
	case !v.Allowed():
		return v
	}
	pol := e.Policy(t)
	if riskyCall(snap, pol.RiskThreshold, ask.Entitlement, c.Subject, c.Actor) {
		if pol.RiskAction != "approval" {
			v.Decision.Decision, v.Reason, v.Code = governance.Deny,
				"the caller's risk score is at or above the tenant's threshold for high-risk tools", "risk"
			v.Hold = false
			return v
		}
		v.Hold = true
	}
	return v
}

// riskyCall reports whether the tenant's risk threshold applies: an
// entitlement of high or critical risk, used by (or for) a subject at or
// above it.
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

// HoldRequest asks for an approval of a held call.
type HoldRequest struct {
	// Kind is the approval's kind (governance.KindToolCall, KindA2ACall).
	Kind        string
	Entitlement uuid.UUID
	// Scope is what an approval covers beyond the caller, its actors and
	// the entitlement (the arguments' digest of a tool call; "" for calls
	// whose content varies, which an approval covers whole).
	Scope string
	// ReuseMinutes: an approval of identical calls granted this recently
	// lets the call go on without a new one.
	ReuseMinutes  int
	Justification string
	Payload       map[string]any
	// Waiting, when set, runs while the call waits (progress for the
	// client); it must return when its context ends.
	Waiting func(ctx context.Context, approval uuid.UUID)
}

// HoldOutcome is how a held call ended: Reason is empty when it may go on.
type HoldOutcome struct {
	Approval *governance.Approval
	Reused   bool
	Reason   string
	Code     string
}

// Hold opens an approval for a held call and waits for its decision, up
// to the tenant's approval timeout (or reuses a recent approval of
// identical calls when the grant allows it). A caller that goes away, or
// a timeout, withdraws the request: no approver approves a call that will
// not run.
func (e *Enforcer) Hold(ctx context.Context, t *tenant.Tenant, c *Caller, hr HoldRequest) HoldOutcome {
	if e.cfg.Approvals == nil || !c.Governed {
		return HoldOutcome{Reason: "the call needs an approval, which could not be requested", Code: "approval_unavailable"}
	}
	// Governance acts as the caller: it records and checks who asks.
	ctx = principal.With(ctx, c.Principal)
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s/%s/%s/%s", hr.Kind, c.Subject.Type, c.Subject.ID, hr.Entitlement, hr.Scope)
	for _, a := range c.Actors {
		fmt.Fprintf(h, "/%s:%s", a.Kind, a.SubjectID)
	}
	fingerprint := hex.EncodeToString(h.Sum(nil))
	if hr.ReuseMinutes > 0 {
		a, err := e.cfg.Approvals.ReusableApproval(ctx, fingerprint, time.Duration(hr.ReuseMinutes)*time.Minute)
		if err != nil {
			return HoldOutcome{Reason: "approvals are unavailable", Code: "approval_unavailable"}
		}
		if a != nil {
			return HoldOutcome{Approval: a, Reused: true}
		}
	}
	timeout := time.Duration(e.Policy(t).ApprovalTimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	a, err := e.cfg.Approvals.OpenApproval(ctx, governance.OpenInput{Kind: hr.Kind, RequesterType: c.Subject.Type, RequesterID: c.Subject.ID,
		SubjectType: c.Subject.Type, SubjectID: c.Subject.ID, TargetType: "entitlement", TargetID: hr.Entitlement, Payload: hr.Payload,
		TTL: timeout, Fingerprint: fingerprint, Justification: hr.Justification})
	if err != nil {
		return HoldOutcome{Reason: "the call needs an approval, which could not be requested", Code: "approval_unavailable"}
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	var waiting sync.WaitGroup
	if hr.Waiting != nil {
		waiting.Go(func() { hr.Waiting(wctx, a.ID) })
	}
	defer func() { cancel(); waiting.Wait() }()
	got, err := e.cfg.Approvals.AwaitApproval(wctx, e.cfg.Bus, a.ID, 2*time.Second)
	switch {
	case err != nil && ctx.Err() != nil:
		_, _ = e.cfg.Approvals.Cancel(context.WithoutCancel(ctx), a.ID, governance.CancelInput{Comment: "the caller went away"})
		return HoldOutcome{Approval: a, Reason: "the call was cancelled while waiting for approval", Code: "approval_cancelled"}
	case err != nil:
		reason, code := governance.HoldTimeout(timeout)
		_, _ = e.cfg.Approvals.Cancel(context.WithoutCancel(ctx), a.ID, governance.CancelInput{Comment: reason})
		return HoldOutcome{Approval: a, Reason: reason, Code: code}
	}
	if ok, reason, code := got.Outcome(timeout); !ok {
		return HoldOutcome{Approval: got, Reason: reason, Code: code}
	}
	return HoldOutcome{Approval: got}
}

// Used stamps the caller's NHIs (the caller and, for a delegated call,
// its actor) as used, off the request's path (nhi.Service.Used).
func (e *Enforcer) Used(ctx context.Context, c *Caller) {
	if e.cfg.NHIs == nil {
		return
	}
	for _, s := range []*governance.Subject{&c.Subject, c.Actor} {
		if s != nil && s.Type == governance.SubjectNHI {
			e.cfg.NHIs.Used(ctx, s.ID)
		}
	}
}

// Run does the enforcement point's background work until ctx ends:
// forgetting idle rate-limit counters.
func (e *Enforcer) Run(ctx context.Context) error {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-sweep.C:
			e.limits.sweep(now)
		}
	}
}

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
func (e *Enforcer) admitRate(ent uuid.UUID, now time.Time) func(governance.Subject, *governance.Assignment) (bool, string, string) {
	return func(sub governance.Subject, a *governance.Assignment) (bool, string, string) {
		limit := a.Constraints.RateLimitPerMinute
		if limit <= 0 || e.limits.allow(rateKey{a.ID, sub.ID, ent}, limit, now) {
			return true, "", ""
		}
		return false, fmt.Sprintf("the rate limit of %d calls per minute is reached", limit), "rate_limit"
	}
}
