package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notification is one message delivered on a channel.
type Notification struct {
	Channel string
	Payload string
	// Local is what the sender attached for this process's own hooks
	// (OnCommitted); it never leaves the process.
	Local any
}

// Notify sends payload on channel when the transaction commits: through
// PostgreSQL NOTIFY (delivered to every replica's listener at commit), or
// on SQLite to this process's listeners after commit.
func (t *Tx) Notify(ctx context.Context, channel, payload string) error {
	return t.NotifyWith(ctx, channel, payload, nil)
}

// NotifyWith is Notify with a value this process's OnCommitted hooks get
// beside the payload (Notification.Local).
func (t *Tx) NotifyWith(ctx context.Context, channel, payload string, local any) error {
	n := Notification{Channel: channel, Payload: payload, Local: local}
	// This process hears its own notifications at their commit, before
	// the committing request answers, all of one transaction's at once;
	// the listener's copy may come before or after that (hooks must tell
	// the two apart: DB.Origin).
	if len(t.notes) == 0 {
		t.AfterCommit(func() { t.db.committed(t.notes) })
	}
	t.notes = append(t.notes, n)
	if t.db.flavor == Postgres {
		_, err := t.tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
		return translate(err)
	}
	t.AfterCommit(func() { t.db.local.publish(Notification{Channel: channel, Payload: payload}) })
	return nil
}

// OnCommitted registers fn to hear, synchronously and right after their
// commit, the notifications of this process's own transactions: one call
// per transaction, with its notifications in the order they were sent.
// fn runs on the committing goroutine and must not block long.
func (db *DB) OnCommitted(fn func([]Notification)) {
	db.hmu.Lock()
	defer db.hmu.Unlock()
	db.hooks = append(db.hooks, fn)
}

func (db *DB) committed(ns []Notification) {
	db.hmu.RLock()
	hooks := db.hooks
	db.hmu.RUnlock()
	for _, fn := range hooks {
		fn(ns)
	}
}

// ListenFunc receives notifications. resync is true (and n empty) when
// notifications may have been missed: after the listener (re)connects.
type ListenFunc func(n Notification, resync bool)

// Listen delivers notifications on channels to fn until ctx ends. On
// PostgreSQL it holds one connection in LISTEN and reconnects with
// backoff, calling fn with resync after every reconnect; on SQLite it
// receives what this process's transactions notify.
func (db *DB) Listen(ctx context.Context, channels []string, fn ListenFunc) error {
	if db.flavor != Postgres {
		return db.local.listen(ctx, channels, fn)
	}
	backoff := 100 * time.Millisecond
	first := true
	for {
		err := db.listenPG(ctx, channels, fn, !first)
		if ctx.Err() != nil {
			return nil
		}
		first = false
		db.log.Warn("notification listener lost its connection; reconnecting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (db *DB) listenPG(ctx context.Context, channels []string, fn ListenFunc, resync bool) error {
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return fmt.Errorf("listen connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	if resync {
		fn(Notification{}, true)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(Notification{Channel: n.Channel, Payload: n.Payload}, false)
	}
}

// localNotifier fans notifications out inside one process (SQLite).
type localNotifier struct {
	mu   sync.RWMutex
	subs map[*localSub]struct{}
}

type localSub struct {
	channels map[string]bool
	ch       chan Notification
}

func newLocalNotifier() *localNotifier {
	return &localNotifier{subs: map[*localSub]struct{}{}}
}

func (l *localNotifier) listen(ctx context.Context, channels []string, fn ListenFunc) error {
	s := &localSub{channels: map[string]bool{}, ch: make(chan Notification, 1024)}
	for _, c := range channels {
		s.channels[c] = true
	}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.subs, s)
		l.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-s.ch:
			if n.Channel == "" {
				fn(Notification{}, true)
				continue
			}
			fn(n, false)
		}
	}
}

// publish never blocks a committing writer: a subscriber that falls 1024
// messages behind gets a resync instead of the messages it missed.
func (l *localNotifier) publish(n Notification) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for s := range l.subs {
		if !s.channels[n.Channel] {
			continue
		}
		select {
		case s.ch <- n:
		default:
			// Drain one slot and signal resync; the subscriber drops caches.
			select {
			case <-s.ch:
			default:
			}
			select {
			case s.ch <- Notification{}:
			default:
			}
		}
	}
}
