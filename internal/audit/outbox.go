package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Records of changes are written in the change's own transaction, into
// audit_outbox: the change and its record commit together or not at all,
// so no change is made without its record and no request fails after its
// change was made because the log could not be written. Right after the
// commit the sequencer moves the record into its tenant's chain (deleting
// the outbox row in the same transaction, so it is chained exactly once),
// and the request waits for that while it can (readers of the log see
// their own changes). A record whose chaining failed or was cut short by a
// crash stays in the outbox until the sequencer adopts it: at start and
// every OutboxEvery.

// Recorder is the audit log as the domain services use it: records of
// changes written in the change's transaction (InTx), and records of
// events that change nothing, waited for (AppendSync).
type Recorder interface {
	Syncer
	InTx(ctx context.Context, tx *store.Tx, e Entry) error
}

// ErrNoRecorder is what a service without an audit log answers instead of
// changing anything unrecorded.
var ErrNoRecorder = errors.New("audit: no audit log configured")

// RecordChangeTx writes, in tx, the audit record of a change made there
// by the principal of ctx in the tenant of ctx.
func RecordChangeTx(ctx context.Context, tx *store.Tx, r Recorder, action, targetKind, targetID string, details any) error {
	if r == nil {
		return ErrNoRecorder
	}
	tid, _ := store.TenantFrom(ctx)
	e := Entry{TenantID: tid, Action: action, TargetKind: targetKind, TargetID: targetID, RequestID: reqid.From(ctx), Details: details}.
		ActorFrom(principal.From(ctx))
	return r.InTx(ctx, tx, e)
}

const outboxCols = `tenant_id, id, actor_kind, actor_id, action, target_kind, target_id, outcome, request_id, details, created_at`

// InTx writes e into audit_outbox in tx; once tx commits, the record is
// chained at once (the committing goroutine waits up to chainWait for it).
func (s *Sequencer) InTx(ctx context.Context, tx *store.Tx, e Entry) error {
	p, err := newPending(e)
	if err != nil {
		return err
	}
	p.outbox = true
	r := &p.rec
	if _, err := tx.Exec(ctx, `INSERT INTO audit_outbox (`+outboxCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.TenantID, r.ID, r.ActorKind, r.ActorID, r.Action, r.TargetKind, r.TargetID, r.Outcome, r.RequestID, string(r.Details), store.Now()); err != nil {
		return fmt.Errorf("audit: outbox: %w", err)
	}
	tx.AfterCommit(func() {
		// Chained at once, on this goroutine when the log is idle; a
		// record not chained in time stays in the outbox for adoption.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chainWait)
		defer cancel()
		if err := s.enqueue(wctx, p, true); err != nil {
			if !errors.Is(err, ErrStopped) { // else adopted at the next start
				s.cfg.Logger.Warn("audit record left in the outbox: the sequencer is busy", "id", r.ID.String())
			}
			return
		}
		if err := p.receipt.Wait(wctx); err != nil {
			s.cfg.Logger.Warn("audit record not chained yet; it stays in the outbox", "id", r.ID.String(), "error", err)
		}
	})
	return nil
}

// chainWait bounds how long a committed change waits for its record to
// be chained (it is durable in the outbox already).
const chainWait = 5 * time.Second

// adoptOutbox chains the outbox records older than age (all when age is
// zero): those whose chaining failed or was cut short.
func (s *Sequencer) adoptOutbox(ctx context.Context, age time.Duration) {
	for {
		var batch []*pending
		err := s.cfg.DB.SystemRead(ctx, func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, `SELECT `+outboxCols+` FROM audit_outbox WHERE created_at <= $1 ORDER BY created_at, id LIMIT $2`,
				store.Now().Add(-age), s.cfg.MaxBatch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				p := &pending{outbox: true}
				r := &p.rec
				var details string
				var created time.Time
				if err := rows.Scan(&r.TenantID, &r.ID, &r.ActorKind, &r.ActorID, &r.Action, &r.TargetKind, &r.TargetID, &r.Outcome,
					&r.RequestID, &details, &created); err != nil {
					return err
				}
				r.Details = json.RawMessage(details)
				p.receipt = &Receipt{ID: r.ID, done: make(chan struct{})}
				batch = append(batch, p)
			}
			return rows.Err()
		})
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("audit outbox not read", "error", err)
			}
			return
		}
		if len(batch) == 0 {
			return
		}
		s.commit(ctx, batch)
		if batch[0].receipt.err != nil || len(batch) < s.cfg.MaxBatch {
			return
		}
	}
}

// claimOutbox deletes the outbox rows of the records about to be chained
// in tx, keeping only those it deleted: a record another sequencer chained
// first is not chained again.
func claimOutbox(ctx context.Context, tx *store.Tx, ps []*pending) ([]*pending, error) {
	kept := ps[:0:0]
	for _, p := range ps {
		if !p.outbox {
			kept = append(kept, p)
			continue
		}
		res, err := tx.Exec(ctx, `DELETE FROM audit_outbox WHERE tenant_id = $1 AND id = $2`, p.rec.TenantID, p.rec.ID)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			kept = append(kept, p)
		} else {
			p.chainedElsewhere = true
		}
	}
	return kept, nil
}

// Discard is an audit log that records nothing, for tests of code that is
// not about the audit log. Services never fall back to it.
var Discard = NoLog{}

// NoLog records nothing (Discard).
type NoLog struct{}

// AppendSync records nothing.
func (NoLog) AppendSync(context.Context, Entry) error { return nil }

// InTx records nothing.
func (NoLog) InTx(context.Context, *store.Tx, Entry) error { return nil }

// AppendDurable records nothing; its receipt is done at once.
func (n NoLog) AppendDurable(ctx context.Context, e Entry) (*Receipt, error) { return n.Append(ctx, e) }

// Append records nothing; its receipt is done at once.
func (NoLog) Append(context.Context, Entry) (*Receipt, error) {
	r := &Receipt{ID: uuid.Must(uuid.NewV7()), done: make(chan struct{})}
	close(r.done)
	return r, nil
}

// Failing is an audit log whose every write fails with err: the last
// write of each change, so tests prove that a change which cannot finish
// leaves nothing behind.
func Failing(err error) FailingLog { return FailingLog{Err: err} }

// FailingLog fails every write with Err (Failing).
type FailingLog struct{ Err error }

// AppendSync fails.
func (f FailingLog) AppendSync(context.Context, Entry) error { return f.Err }

// InTx fails.
func (f FailingLog) InTx(context.Context, *store.Tx, Entry) error { return f.Err }

// AppendDurable fails.
func (f FailingLog) AppendDurable(context.Context, Entry) (*Receipt, error) { return nil, f.Err }

// Append fails.
func (f FailingLog) Append(context.Context, Entry) (*Receipt, error) { return nil, f.Err }
