// Package audit is the append-only, per-tenant hash-chained audit log
// (docs/design/0000-architecture.md §8, §11). Appends go through a Sequencer that group-commits
// every queued record in one transaction; a caller that must not answer
// before its record is durable waits on its receipt.
//
// Each record's hash is SHA-256(prev_hash || canonical fields), so an
// altered, deleted, inserted or reordered row breaks the chain, and the
// chain head (audit_heads) exposes a truncated tail. The chain of
// uuid.Nil is the platform's own.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"
	OutcomeFailure = "failure"
)

// Platform is the tenant ID of the platform's own chain.
var Platform = uuid.Nil

// Entry is what a caller records.
type Entry struct {
	TenantID   uuid.UUID
	ActorKind  string
	ActorID    string
	Action     string
	TargetKind string
	TargetID   string
	Outcome    string
	RequestID  string
	// Details is any JSON-encodable value (nil for none).
	Details any
	// ProcessDurable marks a record that needs to survive a crash of this
	// process but not of the machine (the gateway's call records): unless
	// the sequencer is configured for disk durability, a batch of only
	// such records commits without waiting for the disk flush.
	ProcessDurable bool
	// Lazy marks a record nobody waits for: it does not start a commit of
	// its own but joins the next batch, or is committed after LazyDelay.
	Lazy bool
}

// ActorFrom fills the actor fields from a principal.
func (e Entry) ActorFrom(p *principal.Principal) Entry {
	if p == nil {
		e.ActorKind, e.ActorID = "anonymous", ""
		return e
	}
	e.ActorKind, e.ActorID = string(p.Kind), p.SubjectID
	return e
}

// Record is a stored entry.
type Record struct {
	TenantID   uuid.UUID       `json:"tenant_id"`
	Seq        int64           `json:"seq"`
	ID         uuid.UUID       `json:"id"`
	At         time.Time       `json:"at"`
	ActorKind  string          `json:"actor_kind"`
	ActorID    string          `json:"actor_id"`
	Action     string          `json:"action"`
	TargetKind string          `json:"target_kind"`
	TargetID   string          `json:"target_id"`
	Outcome    string          `json:"outcome"`
	RequestID  string          `json:"request_id"`
	Details    json.RawMessage `json:"details"`
	PrevHash   []byte          `json:"prev_hash"`
	Hash       []byte          `json:"hash"`
}

// computeHash is the chain function: SHA-256 over the previous hash and
// every field, each length-prefixed so no two records encode alike.
func computeHash(r *Record) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(r.PrevHash)
	field(r.TenantID[:])
	binary.BigEndian.PutUint64(n[:], uint64(r.Seq))
	field(n[:])
	field(r.ID[:])
	field([]byte(strconv.FormatInt(r.At.UTC().UnixMicro(), 10)))
	for _, s := range []string{r.ActorKind, r.ActorID, r.Action, r.TargetKind, r.TargetID, r.Outcome, r.RequestID} {
		field([]byte(s))
	}
	field(r.Details)
	return h.Sum(nil)
}

// Config configures a Sequencer.
type Config struct {
	DB     *store.DB
	Logger *slog.Logger
	// MaxBatch bounds the records committed in one transaction (default 256).
	MaxBatch int
	// Queue bounds records waiting for a batch (default 8192); Append
	// blocks when it is full.
	Queue int
	// DiskDurable makes every batch wait for the disk flush, process-
	// durable records included (config audit.durability = disk).
	DiskDurable bool
	// LazyDelay bounds how long a lazy record waits for company (default 50ms).
	LazyDelay time.Duration
	// OutboxEvery is how often records left in the outbox (older than
	// that) are chained (default 5s).
	OutboxEvery time.Duration
}

// CheckAndSetDefaults validates and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DB == nil {
		return errors.New("audit: DB is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.Queue <= 0 {
		c.Queue = 8192
	}
	if c.LazyDelay <= 0 {
		c.LazyDelay = 50 * time.Millisecond
	}
	if c.OutboxEvery <= 0 {
		c.OutboxEvery = 5 * time.Second
	}
	return nil
}

// Receipt is the promise of one appended record.
type Receipt struct {
	// ID is the record's ID, known at once.
	ID   uuid.UUID
	done chan struct{}
	err  error
	seq  int64
}

// finished reports whether the record is durable or failed.
func (r *Receipt) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the record is durable (nil) or failed.
func (r *Receipt) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Seq returns the record's position in its chain once durable.
func (r *Receipt) Seq() int64 { <-r.done; return r.seq }

type pending struct {
	rec     Record
	receipt *Receipt
	process bool // process-durable
	lazy    bool
	queued  time.Time
	// outbox: the record waits in audit_outbox (written in its change's
	// transaction); chainedElsewhere: another sequencer chained it first.
	outbox, chainedElsewhere bool
}

// Sequencer orders appends into per-tenant chains and group-commits them.
//
// Records wait in one queue, in the order they were appended. Whoever
// commits holds cmu and takes the queue's head, up to MaxBatch records:
// the Run goroutine, or a caller of AppendDurable that finds no commit
// running and no other record waiting but lazy ones, and commits its own
// record (with those lazy ones) on its own goroutine — no hand-off to
// another goroutine and back when the log is idle. Records appended while
// a commit runs are committed together by the next one, Run's.
type Sequencer struct {
	cfg   Config
	stmts *stmts
	// heads are the chain heads this sequencer last committed, by tenant
	// (read and written by the committer, under cmu): a batch extends a
	// known head with a conditional update instead of reading it first,
	// and falls back to the read when another writer moved it.
	heads map[uuid.UUID]chainHead

	cmu sync.Mutex // held while committing

	mu       sync.Mutex
	queue    []*pending
	urgent   int           // records in the queue that are not lazy
	room     chan struct{} // closed (and replaced) when the queue shrinks
	stopping bool

	wake    chan struct{} // tells Run the queue has something for it
	stopped chan struct{}
}

// chainHead is a chain's last position.
type chainHead struct {
	seq  int64
	hash []byte
}

// stmts are the batch writer's statements, prepared once.
type stmts struct {
	head, insert, setHead, moveHead *store.Stmt
}

const (
	qHead    = `SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`
	qInsert  = `INSERT INTO audit_log (tenant_id, seq, id, at, actor_kind, actor_id, action, target_kind, target_id, outcome, request_id, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`
	qSetHead = `INSERT INTO audit_heads (tenant_id, seq, hash, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at`
	qMoveHead = `UPDATE audit_heads SET seq = $2, hash = $3, updated_at = $4 WHERE tenant_id = $1 AND seq = $5`
)

func prepare(ctx context.Context, db *store.DB) (*stmts, error) {
	var s stmts
	var err error
	if s.head, err = db.PrepareWrite(ctx, qHead); err != nil {
		return nil, err
	}
	if s.insert, err = db.PrepareWrite(ctx, qInsert); err != nil {
		return nil, err
	}
	if s.setHead, err = db.PrepareWrite(ctx, qSetHead); err != nil {
		return nil, err
	}
	if s.moveHead, err = db.PrepareWrite(ctx, qMoveHead); err != nil {
		return nil, err
	}
	return &s, nil
}

// ErrStopped is returned by appends after the sequencer stopped.
var ErrStopped = errors.New("audit: sequencer stopped")

// New returns a Sequencer; start it with Run.
func New(cfg Config) (*Sequencer, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &Sequencer{cfg: cfg, heads: map[uuid.UUID]chainHead{}, room: make(chan struct{}), wake: make(chan struct{}, 1), stopped: make(chan struct{})}, nil
}

// Append queues e and returns its receipt at once; the record is
// committed by the sequencer.
func (s *Sequencer) Append(ctx context.Context, e Entry) (*Receipt, error) {
	p, err := newPending(e)
	if err != nil {
		return nil, err
	}
	if err := s.enqueue(ctx, p, false); err != nil {
		return nil, err
	}
	return p.receipt, nil
}

// AppendDurable appends e and returns once it is durable, with its
// receipt; when no commit is running it commits the record itself.
func (s *Sequencer) AppendDurable(ctx context.Context, e Entry) (*Receipt, error) {
	p, err := newPending(e)
	if err != nil {
		return nil, err
	}
	if err := s.enqueue(ctx, p, true); err != nil {
		return nil, err
	}
	if err := p.receipt.Wait(ctx); err != nil {
		return nil, err
	}
	return p.receipt, nil
}

// enqueue adds p to the queue, waiting while the queue is full. With
// lead, when no other record but lazy ones waits and no commit is
// running, the caller commits until p is durable.
func (s *Sequencer) enqueue(ctx context.Context, p *pending, lead bool) error {
	s.mu.Lock()
	for len(s.queue) >= s.cfg.Queue && !s.stopping {
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-s.stopped:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	if s.stopping {
		s.mu.Unlock()
		return ErrStopped
	}
	p.queued = time.Now()
	s.queue = append(s.queue, p)
	first := len(s.queue) == 1
	if !p.lazy {
		s.urgent++
	}
	alone := s.urgent == 1 // no other record waits to be committed soon
	s.mu.Unlock()
	switch {
	case p.lazy:
		if first {
			s.signal() // Run starts the wait for company
		}
	case lead && alone && s.cmu.TryLock():
		// No other record waiting (lazy ones aside) and no commit
		// running: commit here. A record queued behind others waits for
		// their committer, so that under load batches stay whole.
		for !p.receipt.finished() {
			s.commitQueued(context.WithoutCancel(ctx))
		}
		s.cmu.Unlock()
		if s.pending() {
			s.signal() // appended while this commit ran
		}
	default:
		s.signal()
	}
	return nil
}

// signal wakes Run without blocking.
func (s *Sequencer) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pending reports whether records are queued.
func (s *Sequencer) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// commitQueued commits the queue's head (up to MaxBatch records); the
// caller holds cmu.
func (s *Sequencer) commitQueued(ctx context.Context) {
	s.mu.Lock()
	n := min(len(s.queue), s.cfg.MaxBatch)
	batch := make([]*pending, n)
	copy(batch, s.queue)
	for _, p := range batch {
		if !p.lazy {
			s.urgent--
		}
	}
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	close(s.room)
	s.room = make(chan struct{})
	s.mu.Unlock()
	if n > 0 {
		s.commit(ctx, batch)
	}
}

// due reports whether the queue should be committed now, or else how long
// until its oldest lazy record has waited LazyDelay (0: nothing queued).
func (s *Sequencer) due() (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return false, 0
	}
	if len(s.queue) >= s.cfg.MaxBatch || !allLazy(s.queue) {
		return true, 0
	}
	if wait := s.cfg.LazyDelay - time.Since(s.queue[0].queued); wait > 0 {
		// Nobody waits for these: give them a moment to join a batch
		// that must be committed anyway.
		return false, wait
	}
	return true, 0
}

// newPending checks e and makes its record, with a new ID.
func newPending(e Entry) (*pending, error) {
	details := []byte("{}")
	if e.Details != nil {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return nil, fmt.Errorf("audit: details: %w", err)
		}
	}
	if e.Action == "" {
		return nil, errors.New("audit: action is required")
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
	}
	p := &pending{
		rec: Record{
			TenantID: e.TenantID, ID: uuid.Must(uuid.NewV7()),
			ActorKind: e.ActorKind, ActorID: e.ActorID, Action: e.Action,
			TargetKind: e.TargetKind, TargetID: e.TargetID, Outcome: e.Outcome,
			RequestID: e.RequestID, Details: details,
		},
	}
	p.receipt = &Receipt{ID: p.rec.ID, done: make(chan struct{})}
	p.process, p.lazy = e.ProcessDurable, e.Lazy
	return p, nil
}

// AppendSync appends e and waits until it is durable.
func (s *Sequencer) AppendSync(ctx context.Context, e Entry) error {
	_, err := s.AppendDurable(ctx, e)
	return err
}

// Run commits batches until ctx ends, then commits what is still queued.
func (s *Sequencer) Run(ctx context.Context) error {
	defer close(s.stopped)
	bg := context.WithoutCancel(ctx)
	// Records left in the outbox by a crash (or a failed chaining) first.
	s.cmu.Lock()
	s.adoptOutbox(bg, 0)
	s.cmu.Unlock()
	adopt := time.NewTicker(s.cfg.OutboxEvery)
	defer adopt.Stop()
	lazy := time.NewTimer(time.Hour)
	lazy.Stop()
	for {
		select {
		case <-s.wake:
		case <-lazy.C:
		case <-adopt.C:
			s.cmu.Lock()
			s.adoptOutbox(bg, s.cfg.OutboxEvery)
			s.cmu.Unlock()
			continue
		case <-ctx.Done():
			s.drain()
			return nil
		}
		for {
			now, wait := s.due()
			if !now {
				if wait > 0 {
					lazy.Reset(wait)
				}
				break
			}
			s.cmu.Lock()
			s.commitQueued(bg)
			s.cmu.Unlock()
		}
	}
}

func allLazy(batch []*pending) bool {
	for _, p := range batch {
		if !p.lazy {
			return false
		}
	}
	return true
}

// drain commits what was queued before the stop; appends refused from
// now on.
func (s *Sequencer) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for s.pending() {
		s.commitQueued(ctx)
	}
}

func (s *Sequencer) commit(ctx context.Context, batch []*pending) {
	run := s.cfg.DB.SystemTxRelaxed
	for _, p := range batch {
		// A record from the outbox may commit relaxed: if the commit is
		// lost, so is the outbox row's deletion, and it is chained again.
		if !(p.process || p.outbox) || s.cfg.DiskDurable {
			run = s.cfg.DB.SystemTx
			break
		}
	}
	if s.stmts == nil {
		// Prepared outside any transaction, at the first commit.
		st, err := prepare(ctx, s.cfg.DB)
		if err != nil {
			s.cfg.Logger.Warn("audit statements not prepared", "error", err)
			st = &stmts{}
		}
		s.stmts = st
	}
	var moved map[uuid.UUID]chainHead
	err := run(ctx, func(tx *store.Tx) error {
		var err error
		moved, err = writeBatch(ctx, tx, s.stmts, s.heads, batch)
		return err
	})
	if err != nil {
		s.cfg.Logger.Error("audit batch failed", "records", len(batch), "error", err)
		err = fmt.Errorf("audit: commit: %w", err)
		clear(s.heads) // read again: the commit may or may not have happened
	}
	for tid, h := range moved {
		s.heads[tid] = h
	}
	for _, p := range batch {
		p.receipt.err = err
		if err == nil {
			p.receipt.seq = p.rec.Seq
		}
		close(p.receipt.done)
	}
}

const insertCols = 14

// writeBatch extends each tenant's chain from its head and returns the
// heads it moved. A head in known (this sequencer's last commit) is moved
// by a conditional update, which also locks it; when another writer moved
// it since, or it is not known, it is read and locked first. With
// prepared statements (SQLite, in process) rows go one by one; otherwise
// (PostgreSQL) one multi-row insert saves round trips.
func writeBatch(ctx context.Context, tx *store.Tx, st *stmts, known map[uuid.UUID]chainHead, batch []*pending) (map[uuid.UUID]chainHead, error) {
	byTenant := map[uuid.UUID][]*pending{}
	var order []uuid.UUID
	for _, p := range batch {
		if _, ok := byTenant[p.rec.TenantID]; !ok {
			order = append(order, p.rec.TenantID)
		}
		byTenant[p.rec.TenantID] = append(byTenant[p.rec.TenantID], p)
	}
	prepared := st != nil && st.head != nil
	exec := func(stmt *store.Stmt, q string, args ...any) (int64, error) {
		var res interface{ RowsAffected() (int64, error) }
		var err error
		if prepared {
			res, err = tx.ExecStmt(ctx, stmt, args...)
		} else {
			res, err = tx.Exec(ctx, q, args...)
		}
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	now := store.Now()
	moved := make(map[uuid.UUID]chainHead, len(order))
	for _, tid := range order {
		ps, err := claimOutbox(ctx, tx, byTenant[tid])
		if err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			continue
		}
		from, ok := known[tid]
		if ok {
			to := chain(ps, from, now)
			n, err := exec(st.moveHead, qMoveHead, tid, to.seq, to.hash, now, from.seq)
			if err != nil {
				return nil, err
			}
			ok = n == 1
		}
		if !ok {
			// Unknown, or moved by another writer: read it, locked.
			if prepared {
				err = tx.QueryRowStmt(ctx, st.head, tid).Scan(&from.seq, &from.hash)
			} else {
				err = tx.QueryRow(ctx, qHead, tid).Scan(&from.seq, &from.hash)
			}
			if err != nil && !isNoRows(err) {
				return nil, err
			}
			if isNoRows(err) {
				from = chainHead{hash: []byte{}}
			}
			to := chain(ps, from, now)
			if _, err := exec(st.setHead, qSetHead, tid, to.seq, to.hash, now); err != nil {
				return nil, err
			}
		}
		if err := insertRecords(ctx, tx, st, ps); err != nil {
			return nil, err
		}
		last := &ps[len(ps)-1].rec
		moved[tid] = chainHead{seq: last.Seq, hash: last.Hash}
	}
	return moved, nil
}

// chain places records after from and returns the new head.
func chain(ps []*pending, from chainHead, now time.Time) chainHead {
	seq, prev := from.seq, from.hash
	if prev == nil {
		prev = []byte{}
	}
	for _, p := range ps {
		r := &p.rec
		seq++
		r.Seq, r.At, r.PrevHash = seq, now, prev
		r.Hash = computeHash(r)
		prev = r.Hash
	}
	return chainHead{seq: seq, hash: prev}
}

// insertRecords writes chained records: one by one with the prepared
// statement, or in one multi-row insert.
func insertRecords(ctx context.Context, tx *store.Tx, st *stmts, ps []*pending) error {
	prepared := st != nil && st.insert != nil
	var sb strings.Builder
	sb.WriteString(`INSERT INTO audit_log (tenant_id, seq, id, at, actor_kind, actor_id, action, target_kind, target_id, outcome, request_id, details, prev_hash, hash) VALUES `)
	args := make([]any, 0, len(ps)*insertCols)
	for i, p := range ps {
		r := &p.rec
		row := []any{r.TenantID, r.Seq, r.ID, r.At, r.ActorKind, r.ActorID, r.Action, r.TargetKind, r.TargetID,
			r.Outcome, r.RequestID, string(r.Details), r.PrevHash, r.Hash}
		if prepared {
			if _, err := tx.ExecStmt(ctx, st.insert, row...); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for c := range insertCols {
			if c > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(i*insertCols + c + 1))
		}
		sb.WriteByte(')')
		args = append(args, row...)
	}
	if prepared {
		return nil
	}
	_, err := tx.Exec(ctx, sb.String(), args...)
	return err
}

// CrossTenant records a super admin acting inside another tenant, in that
// tenant's chain, without holding up the request.
func (s *Sequencer) CrossTenant(ctx context.Context, p *principal.Principal, tenant uuid.UUID, method, path string) {
	e := Entry{TenantID: tenant, Action: "admin.cross_tenant", TargetKind: "tenant", TargetID: tenant.String(),
		RequestID: reqid.From(ctx), Details: map[string]string{"method": method, "path": path}}.ActorFrom(p)
	if _, err := s.Append(ctx, e); err != nil {
		s.cfg.Logger.Error("audit of cross-tenant access failed", "error", err, "tenant_id", tenant.String())
	}
}

// Syncer appends a record and waits until it is durable.
type Syncer interface {
	AppendSync(ctx context.Context, e Entry) error
}

// RecordChange writes the durable audit record of an event that changes
// nothing in the database (a sign-in, a certificate issued by the CA)
// made by the principal of ctx in the tenant of ctx. Records of changes
// are written in the change's transaction (RecordChangeTx).
func RecordChange(ctx context.Context, s Syncer, action, targetKind, targetID string, details any) error {
	if s == nil {
		return ErrNoRecorder
	}
	tid, _ := store.TenantFrom(ctx)
	e := Entry{TenantID: tid, Action: action, TargetKind: targetKind, TargetID: targetID, RequestID: reqid.From(ctx), Details: details}.
		ActorFrom(principal.From(ctx))
	if err := s.AppendSync(ctx, e); err != nil {
		return apperr.Wrap(err, apperr.KindUnavailable, "audit log unavailable")
	}
	return nil
}
