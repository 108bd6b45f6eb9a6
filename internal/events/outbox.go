package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// Event is one outbox row handed to a dispatcher.
type Event struct {
	ID        uuid.UUID
	TenantID  uuid.UUID
	Kind      string
	SubjectID string
	Version   int64
	Payload   json.RawMessage
	CreatedAt time.Time
	// Attempts counts deliveries tried, this one included.
	Attempts int
}

// Dispatcher delivers outbox events somewhere durable consumers read
// them (webhooks, SIEM exporters, in-process handlers). A nil error marks
// the event delivered; an error schedules a retry with backoff. Delivery
// is at least once: dispatchers must be idempotent on Event.ID.
type Dispatcher interface {
	Dispatch(ctx context.Context, e Event) error
}

// InProcess is a Dispatcher that calls handlers registered in this
// process for an event kind prefix ("" matches every kind).
type InProcess struct {
	mu       sync.RWMutex
	handlers []prefixHandler
}

type prefixHandler struct {
	prefix string
	fn     func(context.Context, Event) error
}

// Handle registers fn for events whose kind starts with prefix.
func (d *InProcess) Handle(prefix string, fn func(context.Context, Event) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers = append(d.handlers, prefixHandler{prefix: prefix, fn: fn})
}

// Dispatch calls every matching handler; it fails if any fails.
func (d *InProcess) Dispatch(ctx context.Context, e Event) error {
	d.mu.RLock()
	hs := d.handlers
	d.mu.RUnlock()
	var errs []error
	for _, h := range hs {
		if strings.HasPrefix(e.Kind, h.prefix) {
			if err := h.fn(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// OutboxConfig configures the outbox worker.
type OutboxConfig struct {
	DB         *store.DB
	Dispatcher Dispatcher
	// Bus, when set, wakes the worker on every change instead of waiting
	// for the next poll.
	Bus    *Bus
	Logger *slog.Logger
	// Batch is how many events one claim takes (default 100).
	Batch int
	// Poll is the idle polling interval (default 1s).
	Poll time.Duration
	// Lease is how long a claimed event is hidden from other workers
	// (default 30s): a worker that dies mid-delivery loses its claim.
	Lease time.Duration
	// MaxBackoff caps the retry delay (default 10m).
	MaxBackoff time.Duration
	// Retention is how long delivered events are kept (default 7 days).
	Retention time.Duration
}

// CheckAndSetDefaults validates and fills defaults.
func (c *OutboxConfig) CheckAndSetDefaults() error {
	if c.DB == nil || c.Dispatcher == nil {
		return errors.New("events: outbox needs a DB and a dispatcher")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Minute
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	return nil
}

// Outbox delivers outbox rows to a dispatcher. Several replicas may run
// one each: claims are leases taken with FOR UPDATE SKIP LOCKED.
type Outbox struct {
	cfg  OutboxConfig
	wake chan struct{}
}

// NewOutbox returns a worker; run it with Run.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &Outbox{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Run delivers events until ctx ends.
func (o *Outbox) Run(ctx context.Context) error {
	if o.cfg.Bus != nil {
		defer o.cfg.Bus.Subscribe(func(Message) { o.Wake() })()
	}
	lastPrune := time.Time{}
	for {
		if time.Since(lastPrune) > time.Hour {
			if err := o.Prune(ctx); err != nil && ctx.Err() == nil {
				o.cfg.Logger.Warn("pruning delivered outbox events failed", "error", err)
			}
			lastPrune = time.Now()
		}
		n, err := o.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			o.cfg.Logger.Error("outbox delivery failed", "error", err)
		}
		if n == o.cfg.Batch {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		case <-time.After(o.cfg.Poll):
		}
	}
}

// Wake makes the worker look for events now.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// RunOnce claims one batch of due events and delivers it; it returns how
// many it claimed.
func (o *Outbox) RunOnce(ctx context.Context) (int, error) {
	var batch []Event
	now := store.Now()
	err := o.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		batch = batch[:0]
		rows, err := tx.Query(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1
			WHERE id IN (SELECT id FROM outbox WHERE dispatched_at IS NULL AND next_attempt_at <= $2
			             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
			RETURNING id, tenant_id, kind, subject_id, version, payload, created_at, attempts`,
			now.Add(o.cfg.Lease), now, o.cfg.Batch)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Event
			var payload []byte
			if err := rows.Scan(&e.ID, &e.TenantID, &e.Kind, &e.SubjectID, &e.Version, &payload, &e.CreatedAt, &e.Attempts); err != nil {
				return err
			}
			e.Payload = payload
			batch = append(batch, e)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("events: claim: %w", err)
	}
	for _, e := range batch {
		derr := o.cfg.Dispatcher.Dispatch(ctx, e)
		if err := o.settle(ctx, e, derr); err != nil {
			return len(batch), err
		}
	}
	return len(batch), nil
}

func (o *Outbox) settle(ctx context.Context, e Event, derr error) error {
	ctx = context.WithoutCancel(ctx)
	return o.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		if derr == nil {
			_, err := tx.Exec(ctx, `UPDATE outbox SET dispatched_at = $1, last_error = NULL WHERE id = $2`, store.Now(), e.ID)
			return err
		}
		o.cfg.Logger.Warn("outbox event delivery failed; will retry", "event_id", e.ID.String(), "kind", e.Kind, "attempts", e.Attempts, "error", derr)
		delay := min(time.Duration(1<<min(e.Attempts, 20))*time.Second, o.cfg.MaxBackoff)
		msg := derr.Error()
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		_, err := tx.Exec(ctx, `UPDATE outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3`, store.Now().Add(delay), msg, e.ID)
		return err
	})
}

// Prune deletes events delivered longer ago than the retention period.
func (o *Outbox) Prune(ctx context.Context) error {
	return o.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE dispatched_at IS NOT NULL AND dispatched_at < $1`, store.Now().Add(-o.cfg.Retention))
		return err
	})
}
