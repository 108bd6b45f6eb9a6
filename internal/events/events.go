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
}

// Message is what subscribers receive: a change, or a resync order.
type Message struct {
	Change Change
	// Resync means changes may have been missed: drop every cache.
	Resync bool
}

// Publish records c in tx: an outbox row carrying payload (any JSON value;
// nil for none) and a notification delivered at commit.
func Publish(ctx context.Context, tx *store.Tx, c Change, payload any) error {
	if c.TenantID == uuid.Nil || c.Kind == "" {
		return fmt.Errorf("events: change needs a tenant and a kind")
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
	msg, _ := json.Marshal(c)
	return tx.Notify(ctx, Channel, string(msg))
}

// Bus delivers change messages to in-process subscribers.
type Bus struct {
	db  *store.DB
	log *slog.Logger

	mu   sync.RWMutex
	subs map[int]func(Message)
	next int

	// own counts this process's changes delivered at their commit whose
	// copy from the listener has not come back yet: that copy is dropped,
	// so each subscriber hears each change once.
	omu sync.Mutex
	own map[Change]int
}

// NewBus returns a bus reading notifications from db. This process's own
// changes reach subscribers synchronously at their commit, before the
// committing request answers (no window in which a replica's own change
// is not yet seen by its caches); other replicas' through the listener.
func NewBus(db *store.DB, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{db: db, log: log, subs: map[int]func(Message){}, own: map[Change]int{}}
	db.OnCommitted(b.committed)
	return b
}

// committed delivers a change this process has just committed.
func (b *Bus) committed(n store.Notification) {
	if n.Channel != Channel {
		return
	}
	var c Change
	if json.Unmarshal([]byte(n.Payload), &c) != nil {
		return
	}
	b.omu.Lock()
	if len(b.own) > 100_000 {
		clear(b.own) // echoes that never came: at worst a change heard twice
	}
	b.own[c]++
	b.omu.Unlock()
	b.deliver(Message{Change: c})
}

// echo reports (and counts off) the listener's copy of a change already
// delivered at its commit.
func (b *Bus) echo(c Change) bool {
	b.omu.Lock()
	defer b.omu.Unlock()
	if b.own[c] == 0 {
		return false
	}
	if b.own[c]--; b.own[c] == 0 {
		delete(b.own, c)
	}
	return true
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

// Run listens for notifications until ctx ends.
func (b *Bus) Run(ctx context.Context) error {
	return b.db.Listen(ctx, []string{Channel}, func(n store.Notification, resync bool) {
		if resync {
			b.omu.Lock()
			clear(b.own)
			b.omu.Unlock()
			b.deliver(Message{Resync: true})
			return
		}
		var c Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			b.log.Warn("dropping malformed change notification", "error", err)
			return
		}
		if b.echo(c) {
			return
		}
		b.deliver(Message{Change: c})
	})
}

func (b *Bus) deliver(m Message) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, fn := range b.subs {
		fn(m)
	}
}
