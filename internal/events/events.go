// Package events carries change events between modules (docs/design/0000-architecture.md §11):
// a Change is written in the writing transaction twice — as an outbox row
// for durable consumers and as a notification for caches — and delivered
// to subscribers after commit (PostgreSQL NOTIFY across replicas; SQLite
// in process). After a listener reconnects, subscribers get Resync and drop
// every cache, since notifications may have been missed.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// Channel is the notification channel of change events.
const Channel = "xavyo_changes"

// Change says that one record changed.
type Change struct {
	TenantID uuid.UUID `json:"t"`
	// Kind names the record type, e.g. "tenant", "user", "assignment".
	Kind    string `json:"k"`
	ID      string `json:"i"`
	Version int64  `json:"v"`
	// Op is OpUpsert (the default: created or changed) or OpDelete.
	Op string `json:"op,omitempty"`
}

// Operations of a change.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Deleted reports whether the change removed its record.
func (c Change) Deleted() bool { return c.Op == OpDelete }

// Message is what subscribers receive: a change, or a resync order.
type Message struct {
	Change Change
	// Record, for this process's own changes, is the payload the writer
	// published, as it was (nil from other replicas and for deletions).
	Record any
	// Resync means changes may have been missed: drop every cache.
	Resync bool
}

// Publish records c in tx: an outbox row carrying payload (any JSON value;
// nil for none) and a notification delivered at commit.
func Publish(ctx context.Context, tx *store.Tx, c Change, payload any) error {
	if c.TenantID == uuid.Nil || c.Kind == "" {
		return fmt.Errorf("events: change needs a tenant and a kind")
	}
	switch c.Op {
	case "":
		c.Op = OpUpsert
	case OpUpsert, OpDelete:
	default:
		return fmt.Errorf("events: unknown operation %q", c.Op)
	}
	body := []byte("{}")
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return fmt.Errorf("events: payload: %w", err)
		}
	}
	now := store.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, tenant_id, kind, subject_id, version, payload, created_at, next_attempt_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
		uuid.Must(uuid.NewV7()), c.TenantID, c.Kind, c.ID, c.Version, string(body), now); err != nil {
		return fmt.Errorf("events: outbox: %w", err)
	}
	msg, _ := json.Marshal(envelope{Change: c, Origin: tx.Origin(), Seq: seq.Add(1)})
	var local any
	if c.Op != OpDelete {
		local = payload
	}
	return tx.NotifyWith(ctx, Channel, string(msg), local)
}

// envelope is a change as notified: with the database handle that
// committed it and a number of its own, so that the committing replica
// hears it once although it comes to it twice (at commit, and back from
// the listener, in either order).
type envelope struct {
	Change
	Origin string `json:"o,omitempty"`
	Seq    uint64 `json:"s,omitempty"`
}

var seq atomic.Uint64

// Bus delivers change messages to in-process subscribers.
type Bus struct {
	db  *store.DB
	log *slog.Logger

	mu    sync.RWMutex
	subs  map[int]func(Message)
	batch map[int]func([]Message)
	next  int

	// once holds this handle's own changes that came one of their two ways
	// (at commit, from the listener) and whose other way is still to come,
	// each with a channel closed when its delivery is over.
	omu  sync.Mutex
	once map[uint64]chan struct{}
}

// NewBus returns a bus reading notifications from db. This process's own
// changes reach subscribers synchronously at their commit, before the
// committing request answers (no window in which a replica's own change
// is not yet seen by its caches); other replicas' through the listener.
func NewBus(db *store.DB, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{db: db, log: log, subs: map[int]func(Message){}, batch: map[int]func([]Message){}, once: map[uint64]chan struct{}{}}
	db.OnCommitted(b.committed)
	return b
}

// committed delivers the changes of a transaction this process has just
// committed. When the listener's copy of one came first, committed waits
// until the listener has delivered it: the committing request answers
// only once its changes are seen by this process's caches.
func (b *Bus) committed(ns []store.Notification) {
	var ms []Message
	var done, wait []chan struct{}
	for _, n := range ns {
		if n.Channel != Channel {
			continue
		}
		c, ch, first, ok := b.decode(n.Payload)
		switch {
		case !ok:
			continue
		case !first:
			wait = append(wait, ch)
			continue
		case ch != nil:
			done = append(done, ch)
		}
		ms = append(ms, Message{Change: c, Record: n.Local})
	}
	b.deliver(ms)
	for _, ch := range done {
		close(ch)
	}
	for _, ch := range wait {
		select {
		case <-ch:
		case <-time.After(ownDeliveryWait):
			b.log.Warn("a change of this process is still being delivered by the listener; answering without waiting longer")
			return
		}
	}
}

// ownDeliveryWait bounds how long a commit waits for the listener to
// finish delivering a change of its own that the listener heard first.
const ownDeliveryWait = 5 * time.Second

// decode reads a notified change. This handle's own changes come twice:
// the first time, first is true and ch (to be closed once the change is
// delivered) is returned; the second time, first is false and ch is the
// first delivery's. Other changes have ch nil and first true. ok is false
// for a payload that is not a change.
func (b *Bus) decode(payload string) (c Change, ch chan struct{}, first, ok bool) {
	var e envelope
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		b.log.Warn("dropping malformed change notification", "error", err)
		return Change{}, nil, false, false
	}
	if e.Op == "" {
		e.Op = OpUpsert
	}
	if e.Origin == "" || e.Origin != b.db.Origin() {
		return e.Change, nil, true, true
	}
	b.omu.Lock()
	defer b.omu.Unlock()
	if ch, seen := b.once[e.Seq]; seen {
		delete(b.once, e.Seq)
		return e.Change, ch, false, true
	}
	if len(b.once) > 100_000 {
		clear(b.once) // second ways that never came: at worst a change heard twice
	}
	ch = make(chan struct{})
	b.once[e.Seq] = ch
	return e.Change, ch, true, true
}

// Subscribe registers fn for every message; it returns the function that
// unsubscribes. fn runs on the bus goroutine and must not block long.
func (b *Bus) Subscribe(fn func(Message)) (unsubscribe func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// SubscribeBatch registers fn for messages in batches: a transaction's
// changes together when this process committed it, one at a time when
// they come from other replicas, and resync orders alone. It returns the
// function that unsubscribes; fn runs on the bus goroutine (the
// committing one, for this process's changes).
func (b *Bus) SubscribeBatch(fn func([]Message)) (unsubscribe func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.batch[id] = fn
	return func() {
		b.mu.Lock()
		delete(b.batch, id)
		b.mu.Unlock()
	}
}

// Run listens for notifications until ctx ends.
func (b *Bus) Run(ctx context.Context) error {
	return b.db.Listen(ctx, []string{Channel}, func(n store.Notification, resync bool) {
		if resync {
			b.omu.Lock()
			clear(b.once)
			b.omu.Unlock()
			b.deliver([]Message{{Resync: true}})
			return
		}
		c, ch, first, ok := b.decode(n.Payload)
		if !ok || !first {
			return // delivered at its commit
		}
		b.deliver([]Message{{Change: c}})
		if ch != nil {
			close(ch)
		}
	})
}

func (b *Bus) deliver(ms []Message) {
	if len(ms) == 0 {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, m := range ms {
		for _, fn := range b.subs {
			fn(m)
		}
	}
	for _, fn := range b.batch {
		fn(ms)
	}
}
