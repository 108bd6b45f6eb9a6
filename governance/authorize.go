package governance

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Authorizer answers access questions from the snapshot and audits each
// answer.
type Authorizer struct {
	Engine *Engine
	Audit  Auditor
}

// MaxBatch bounds a batch of questions.
const MaxBatch = 100

// Authorize answers one request in the tenant of ctx.
func (a *Authorizer) Authorize(ctx context.Context, req Request) (*Decision, error) {
	out, err := a.AuthorizeBatch(ctx, []Request{req})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// AuthorizeBatch answers requests against one snapshot.
func (a *Authorizer) AuthorizeBatch(ctx context.Context, reqs []Request) ([]Decision, error) {
	if len(reqs) == 0 || len(reqs) > MaxBatch {
		return nil, apperr.Invalid("requests", "a batch holds 1 to 100 requests")
	}
	for _, r := range reqs {
		if err := validRequest(&r); err != nil {
			return nil, err
		}
	}
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return nil, store.ErrNoTenant
	}
	snap, err := a.Engine.Snapshot(ctx, tid)
	if err != nil {
		return nil, err
	}
	now := a.Engine.now()
	out := make([]Decision, len(reqs))
	for i := range reqs {
		out[i] = snap.Decide(&reqs[i], now)
		if a.Audit != nil {
			e := audit.Entry{TenantID: tid, Action: "governance.authorize", Outcome: outcome(out[i].Decision), TargetKind: "entitlement",
				TargetID: out[i].EntitlementID.String(), RequestID: reqid.From(ctx),
				Details: map[string]any{"subject": reqs[i].Subject, "actor": reqs[i].Actor, "decision": out[i].Decision, "reason": out[i].Reason,
					"assignment_id": out[i].AssignmentID, "at": now.Format(time.RFC3339Nano)}}.ActorFrom(principal.From(ctx))
			if r, err := a.Audit.Append(ctx, e); err == nil {
				out[i].AuditID = &r.ID
			}
		}
	}
	return out, nil
}

func outcome(d string) string {
	if d == Allow {
		return audit.OutcomeSuccess
	}
	return audit.OutcomeDenied
}

func validRequest(r *Request) error {
	for _, s := range append([]*Subject{&r.Subject}, r.Actor) {
		if s == nil {
			continue
		}
		if s.Type != SubjectUser && s.Type != SubjectNHI {
			return apperr.Invalid("subject.type", "must be user or nhi")
		}
		if s.ID == uuid.Nil {
			return apperr.Invalid("subject.id", "is required")
		}
	}
	if r.EntitlementID == uuid.Nil && (r.Application == "" || r.Entitlement == "") {
		return apperr.Invalid("entitlement_id", "name the entitlement by entitlement_id, or by application and entitlement keys")
	}
	if len(r.Arguments) > 200 {
		return apperr.Invalid("arguments", "at most 200 arguments")
	}
	return nil
}

// Effective returns a subject's grants in the tenant of ctx (404 for a
// subject the tenant does not have).
func (a *Authorizer) Effective(ctx context.Context, typ string, id uuid.UUID) ([]Grant, error) {
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return nil, store.ErrNoTenant
	}
	snap, err := a.Engine.Snapshot(ctx, tid)
	if err != nil {
		return nil, err
	}
	var known bool
	switch typ {
	case SubjectUser:
		_, known = snap.users.get(id)
	case SubjectNHI:
		_, known = snap.nhis.get(id)
	case SubjectGroup:
		_, known = snap.groups.get(id)
	default:
		return nil, apperr.Invalid("subject_type", "must be user, group or nhi")
	}
	if !known {
		return nil, apperr.NotFound(typ)
	}
	out := snap.Effective(typ, id)
	if out == nil {
		out = []Grant{}
	}
	return out, nil
}
