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
	// outbox: the record waits in audit_outbox (written in its change's
	// transaction); chainedElsewhere: another sequencer chained it first.
	outbox, chainedElsewhere bool
}

// Sequencer orders appends into per-tenant chains and group-commits them.
type Sequencer struct {
	cfg     Config
	in      chan *pending
	stopped chan struct{}
	stmts   *stmts
}

// stmts are the batch writer's statements, prepared once.
type stmts struct {
	head, insert, setHead *store.Stmt
}

const (
	qHead    = `SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`
	qInsert  = `INSERT INTO audit_log (tenant_id, seq, id, at, actor_kind, actor_id, action, target_kind, target_id, outcome, request_id, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`
	qSetHead = `INSERT INTO audit_heads (tenant_id, seq, hash, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at`
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
	return &s, nil
}

// ErrStopped is returned by appends after the sequencer stopped.
var ErrStopped = errors.New("audit: sequencer stopped")

// New returns a Sequencer; start it with Run.
func New(cfg Config) (*Sequencer, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &Sequencer{cfg: cfg, in: make(chan *pending, cfg.Queue), stopped: make(chan struct{})}, nil
}

// Append queues e and returns its receipt at once.
func (s *Sequencer) Append(ctx context.Context, e Entry) (*Receipt, error) {
	p, err := newPending(e)
	if err != nil {
		return nil, err
	}
	select {
	case s.in <- p:
		return p.receipt, nil
	case <-s.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
	r, err := s.Append(ctx, e)
	if err != nil {
		return err
	}
	return r.Wait(ctx)
}

// Run commits batches until ctx ends, then commits what is still queued.
func (s *Sequencer) Run(ctx context.Context) error {
	defer close(s.stopped)
	// Records left in the outbox by a crash (or a failed chaining) first.
	s.adoptOutbox(context.WithoutCancel(ctx), 0)
	adopt := time.NewTicker(s.cfg.OutboxEvery)
	defer adopt.Stop()
	batch := make([]*pending, 0, s.cfg.MaxBatch)
	for {
		select {
		case p := <-s.in:
			batch = append(batch[:0], p)
		case <-adopt.C:
			s.adoptOutbox(context.WithoutCancel(ctx), s.cfg.OutboxEvery)
			continue
		case <-ctx.Done():
			s.drain()
			return nil
		}
		// Group commit: take everything queued while the last commit ran.
		batch = s.fill(batch)
		if allLazy(batch) {
			// Nobody waits for these: give them a moment to join a batch
			// that must be committed anyway.
			timer := time.NewTimer(s.cfg.LazyDelay)
		wait:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case p := <-s.in:
					batch = append(batch, p)
					if !p.lazy {
						break wait
					}
				case <-timer.C:
					break wait
				case <-ctx.Done():
					break wait
				}
			}
			timer.Stop()
			batch = s.fill(batch)
		}
		s.commit(context.WithoutCancel(ctx), batch)
	}
}

// fill adds what is queued, without waiting.
func (s *Sequencer) fill(batch []*pending) []*pending {
	for len(batch) < s.cfg.MaxBatch {
		select {
		case p := <-s.in:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

func allLazy(batch []*pending) bool {
	for _, p := range batch {
		if !p.lazy {
			return false
		}
	}
	return true
}

// drain commits what was queued before the stop.
func (s *Sequencer) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		batch := make([]*pending, 0, s.cfg.MaxBatch)
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case p := <-s.in:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		s.commit(ctx, batch)
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
	err := run(ctx, func(tx *store.Tx) error {
		return writeBatch(ctx, tx, s.stmts, batch)
	})
	if err != nil {
		s.cfg.Logger.Error("audit batch failed", "records", len(batch), "error", err)
		err = fmt.Errorf("audit: commit: %w", err)
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

// writeBatch extends each tenant's chain from its locked head. With
// prepared statements (SQLite, in process) rows go one by one; otherwise
// (PostgreSQL) one multi-row insert saves round trips.
func writeBatch(ctx context.Context, tx *store.Tx, st *stmts, batch []*pending) error {
	byTenant := map[uuid.UUID][]*pending{}
	var order []uuid.UUID
	for _, p := range batch {
		if _, ok := byTenant[p.rec.TenantID]; !ok {
			order = append(order, p.rec.TenantID)
		}
		byTenant[p.rec.TenantID] = append(byTenant[p.rec.TenantID], p)
	}
	prepared := st != nil && st.head != nil
	now := store.Now()
	for _, tid := range order {
		ps, err := claimOutbox(ctx, tx, byTenant[tid])
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			continue
		}
		var seq int64
		var head []byte
		if prepared {
			err = tx.QueryRowStmt(ctx, st.head, tid).Scan(&seq, &head)
		} else {
			err = tx.QueryRow(ctx, qHead, tid).Scan(&seq, &head)
		}
		if err != nil && !isNoRows(err) {
			return err
		}
		if head == nil {
			head = []byte{}
		}
		var sb strings.Builder
		sb.WriteString(`INSERT INTO audit_log (tenant_id, seq, id, at, actor_kind, actor_id, action, target_kind, target_id, outcome, request_id, details, prev_hash, hash) VALUES `)
		args := make([]any, 0, len(ps)*insertCols)
		for i, p := range ps {
			r := &p.rec
			seq++
			r.Seq, r.At, r.PrevHash = seq, now, head
			r.Hash = computeHash(r)
			head = r.Hash
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
		if !prepared {
			if _, err := tx.Exec(ctx, sb.String(), args...); err != nil {
				return err
			}
		}
		if prepared {
			_, err = tx.ExecStmt(ctx, st.setHead, tid, seq, head, now)
		} else {
			_, err = tx.Exec(ctx, qSetHead, tid, seq, head, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
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
