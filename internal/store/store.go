// Package store is xavyo's one store code path over two backends:
// PostgreSQL (pgx, production, row-level security) and SQLite (modernc,
// embedded default). SQL is written once in the subset both accept
// (docs/design/0001-sql-subset.md); a flavor layer adapts the few
// differences. Only this package imports database drivers.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/xavyo/xavyo/internal/apperr"
)

// Flavor is the SQL dialect of a backend.
type Flavor int

// Backends.
const (
	Postgres Flavor = iota + 1
	SQLite
)

// String names the flavor.
func (f Flavor) String() string {
	if f == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Config opens a DB.
type Config struct {
	// URL is postgres://… or sqlite:PATH (or a bare path for SQLite).
	URL string
	// MaxConns bounds open connections (reads, for SQLite).
	MaxConns int
	Logger   *slog.Logger
}

// CheckAndSetDefaults validates c and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.URL == "" {
		return errors.New("store: URL is required")
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 16
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// DB is a handle on the store. It is safe for concurrent use.
type DB struct {
	flavor Flavor
	// rw runs write transactions; on SQLite it has one connection, so
	// writers queue in Go instead of spinning on SQLITE_BUSY.
	rw *sql.DB
	// ro runs read-only transactions; on PostgreSQL it is rw.
	ro      *sql.DB
	url     string
	log     *slog.Logger
	queries sync.Map // original SQL → flavored SQL
	local   *localNotifier
	// stmts caches prepared statements per pool (SQLite: modernc parses
	// every unprepared query anew, which dominated short transactions).
	stmts  sync.Map // stmtKey → *sql.Stmt
	nstmts atomic.Int64
	// closed: after Close, transactions fail as Unavailable (a replica
	// shutting down), never as anything a caller would take for an answer.
	closed atomic.Bool
	// hooks hear this process's notifications at commit (OnCommitted).
	hmu   sync.RWMutex
	hooks []func([]Notification)
	// origin tells this handle's notifications from other replicas'
	// (set at Open, never changed).
	origin string
	// relaxed is the SQLite write connection's current mode: synchronous
	// NORMAL (true) or FULL. Only the holder of that one connection reads
	// or changes it.
	relaxed atomic.Bool
}

type stmtKey struct {
	pool  *sql.DB
	query string
}

// maxStmts bounds the statement cache; queries built on the fly beyond
// it run unprepared.
const maxStmts = 2000

// stmt returns the read pool's prepared statement for q, or nil when q
// is not to be cached. Only SQLite reads are cached: pgx caches
// statements per connection itself, and preparing needs a free
// connection, which the single-connection write pool never has while a
// transaction runs. A read that finds every connection busy within a
// millisecond runs unprepared this time.
func (db *DB) stmt(ctx context.Context, pool *sql.DB, q string) *sql.Stmt {
	if db.flavor != SQLite || pool != db.ro || db.ro == db.rw {
		return nil
	}
	k := stmtKey{pool, q}
	if v, ok := db.stmts.Load(k); ok {
		return v.(*sql.Stmt)
	}
	if db.nstmts.Load() >= maxStmts {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Millisecond)
	defer cancel()
	st, err := pool.PrepareContext(pctx, q)
	if err != nil {
		return nil // the direct path runs it (and reports real errors)
	}
	if v, loaded := db.stmts.LoadOrStore(k, st); loaded {
		_ = st.Close()
		return v.(*sql.Stmt)
	}
	db.nstmts.Add(1)
	return st
}

// Open connects to the backend named by cfg.URL.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	db := &DB{url: cfg.URL, log: cfg.Logger, local: newLocalNotifier(), origin: uuid.NewString()}
	if IsPostgresURL(cfg.URL) {
		db.flavor = Postgres
		pool, err := sql.Open("pgx", cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		pool.SetMaxOpenConns(cfg.MaxConns)
		pool.SetMaxIdleConns(cfg.MaxConns)
		pool.SetConnMaxIdleTime(5 * time.Minute)
		db.rw, db.ro = pool, pool
	} else {
		db.flavor = SQLite
		path := strings.TrimPrefix(cfg.URL, "sqlite:")
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create data dir: %w", err)
			}
		}
		rw, err := sql.Open("sqlite", sqliteDSN(path, false))
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		rw.SetMaxOpenConns(1)
		rw.SetMaxIdleConns(1)
		rw.SetConnMaxIdleTime(0)
		rw.SetConnMaxLifetime(0)
		// The first connection switches the file to WAL before readers open it.
		if err := rw.PingContext(ctx); err != nil {
			_ = rw.Close()
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		ro, err := sql.Open("sqlite", sqliteDSN(path, true))
		if err != nil {
			_ = rw.Close()
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		ro.SetMaxOpenConns(cfg.MaxConns)
		ro.SetMaxIdleConns(cfg.MaxConns)
		db.rw, db.ro = rw, ro
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: a commit survives a power loss, not only a process crash.
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_time_format", "sqlite")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// IsPostgresURL reports whether u names a PostgreSQL database.
func IsPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// Flavor returns the backend's dialect.
func (db *DB) Flavor() Flavor { return db.flavor }

// URL returns the connection URL the DB was opened with.
func (db *DB) URL() string { return db.url }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.rw.PingContext(ctx); err != nil {
		return apperr.Wrap(err, apperr.KindUnavailable, "database unreachable")
	}
	return nil
}

// Close closes every connection.
func (db *DB) Close() error {
	db.closed.Store(true)
	db.stmts.Range(func(_, v any) bool { _ = v.(*sql.Stmt).Close(); return true })
	err := db.rw.Close()
	if db.ro != db.rw {
		err = errors.Join(err, db.ro.Close())
	}
	return err
}

// Stats returns the write pool's statistics.
func (db *DB) Stats() sql.DBStats { return db.rw.Stats() }

// tenantKey carries the tenant a request works in.
type tenantKey struct{}

// WithTenant returns a context whose tenant transactions run in id.
func WithTenant(ctx context.Context, id uuid.UUID) context.Context {
	return context.WithValue(ctx, tenantKey{}, id)
}

// TenantFrom returns the tenant of ctx, if any.
func TenantFrom(ctx context.Context) (uuid.UUID, bool) {
	id, ok := ctx.Value(tenantKey{}).(uuid.UUID)
	return id, ok && id != uuid.Nil
}

// ErrNoTenant is returned by tenant transactions when the context names no
// tenant: the store fails closed.
var ErrNoTenant = apperr.New(apperr.KindInternal, "no tenant in context")

// InTenantTx runs fn in a read-write transaction scoped to the tenant of
// ctx. On PostgreSQL the transaction first sets app.tenant_id, so
// row-level security admits only that tenant's rows. fn may be retried on
// a serialization failure, so it must not have effects outside tx.
func (db *DB) InTenantTx(ctx context.Context, fn func(*Tx) error) error {
	tid, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return db.run(ctx, db.rw, false, tid, false, fn)
}

// InTenantTxRelaxed is InTenantTx for records that need only survive a
// crash of this process, not of the machine (see SystemTxRelaxed).
func (db *DB) InTenantTxRelaxed(ctx context.Context, fn func(*Tx) error) error {
	tid, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return db.runWith(ctx, db.rw, false, tid, false, true, fn)
}

// InTenantRead runs fn in a read-only transaction scoped to the tenant of
// ctx.
func (db *DB) InTenantRead(ctx context.Context, fn func(*Tx) error) error {
	tid, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return db.run(ctx, db.ro, true, tid, false, fn)
}

// SystemTx runs fn in a read-write transaction that is not scoped to one
// tenant: the explicitly named path for platform tables (tenants,
// settings) and for workers that serve every tenant (outbox). On
// PostgreSQL it sets app.system, which the row-level security policies
// admit; nothing else sets it.
func (db *DB) SystemTx(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.rw, false, uuid.Nil, true, fn)
}

// SystemTxRelaxed is SystemTx for records that need only survive a crash
// of this process, not of the machine: the commit returns once the
// database has the change (SQLite: written to the WAL, synchronous
// NORMAL; PostgreSQL: synchronous_commit off), and the disk flush follows
// within moments (the next fully synchronous commit, a checkpoint, or
// PostgreSQL's WAL writer).
func (db *DB) SystemTxRelaxed(ctx context.Context, fn func(*Tx) error) error {
	return db.runWith(ctx, db.rw, false, uuid.Nil, true, true, fn)
}

// SystemRead is SystemTx, read-only.
func (db *DB) SystemRead(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.ro, true, uuid.Nil, true, fn)
}

const maxAttempts = 4

func (db *DB) run(ctx context.Context, pool *sql.DB, readOnly bool, tenant uuid.UUID, system bool, fn func(*Tx) error) error {
	return db.runWith(ctx, pool, readOnly, tenant, system, false, fn)
}

func (db *DB) runWith(ctx context.Context, pool *sql.DB, readOnly bool, tenant uuid.UUID, system, relaxed bool, fn func(*Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		var after []func()
		after, err = db.runOnce(ctx, pool, readOnly, tenant, system, relaxed, fn)
		if err == nil {
			for _, f := range after {
				f()
			}
			return nil
		}
		if attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt*attempt) * 5 * time.Millisecond)
	}
}

func (db *DB) runOnce(ctx context.Context, pool *sql.DB, readOnly bool, tenant uuid.UUID, system, relaxed bool, fn func(*Tx) error) (after []func(), err error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	opts := &sql.TxOptions{}
	if db.flavor == Postgres {
		opts.ReadOnly = readOnly
	}
	var stx *sql.Tx
	if db.flavor == SQLite && pool == db.rw && pool != db.ro {
		// The one write connection: its durability mode can only change
		// outside a transaction, so set it before BEGIN when it differs.
		conn, err := pool.Conn(ctx)
		if err != nil {
			return nil, translate(fmt.Errorf("store: begin: %w", err))
		}
		defer conn.Close()
		if db.relaxed.Load() != relaxed {
			mode := "FULL"
			if relaxed {
				mode = "NORMAL"
			}
			if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
				return nil, translate(fmt.Errorf("store: synchronous: %w", err))
			}
			db.relaxed.Store(relaxed)
		}
		stx, err = conn.BeginTx(ctx, opts)
		if err != nil {
			return nil, translate(fmt.Errorf("store: begin: %w", err))
		}
	} else {
		stx, err = pool.BeginTx(ctx, opts)
		if err != nil {
			return nil, translate(fmt.Errorf("store: begin: %w", err))
		}
	}
	tx := &Tx{tx: stx, db: db, pool: pool, tenant: tenant, system: system}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
	}()
	if db.flavor == Postgres {
		// One round trip sets both: the tenant (empty for system work)
		// and whether this is the system path.
		sys := ""
		if system {
			sys = "on"
		}
		t := ""
		if tenant != uuid.Nil {
			t = tenant.String()
		}
		q := `SELECT set_config('app.tenant_id', $1, true), set_config('app.system', $2, true)`
		if relaxed {
			q += `, set_config('synchronous_commit', 'off', true)`
		}
		if _, err := stx.ExecContext(ctx, q, t, sys); err != nil {
			_ = stx.Rollback()
			return nil, translate(fmt.Errorf("store: set tenant: %w", err))
		}
	}
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return nil, translate(err)
	}
	if err := stx.Commit(); err != nil {
		return nil, translate(fmt.Errorf("store: commit: %w", err))
	}
	return tx.after, nil
}

// Tx is one transaction. Its methods take SQL in the common subset and
// adapt it to the backend.
type Tx struct {
	tx     *sql.Tx
	db     *DB
	pool   *sql.DB
	tenant uuid.UUID
	system bool
	after  []func()
	// notes are the notifications sent, heard by OnCommitted hooks at commit.
	notes []Notification
}

// TenantID returns the tenant the transaction is scoped to (uuid.Nil on
// the system path).
func (t *Tx) TenantID() uuid.UUID { return t.tenant }

// Origin names the database handle the transaction runs on: notifications
// carry it so a replica knows its own (DB.Origin).
func (t *Tx) Origin() string { return t.db.Origin() }

// Origin is a random name of this handle, fixed for its life.
func (db *DB) Origin() string { return db.origin }

// Flavor returns the backend's dialect.
func (t *Tx) Flavor() Flavor { return t.db.flavor }

// Exec runs a statement.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q := t.db.flavored(query)
	if st := t.db.stmt(ctx, t.pool, q); st != nil {
		r, err := t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		return r, translate(err)
	}
	r, err := t.tx.ExecContext(ctx, q, args...)
	return r, translate(err)
}

// Query runs a query returning rows.
func (t *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q := t.db.flavored(query)
	if st := t.db.stmt(ctx, t.pool, q); st != nil {
		r, err := t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		return r, translate(err)
	}
	r, err := t.tx.QueryContext(ctx, q, args...)
	return r, translate(err)
}

// QueryRow runs a query returning at most one row.
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	q := t.db.flavored(query)
	if st := t.db.stmt(ctx, t.pool, q); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

// Stmt is a write statement prepared once on SQLite's write connection
// (modernc parses every unprepared statement anew); on PostgreSQL the
// driver caches prepared statements itself and Stmt just holds the text.
type Stmt struct {
	q  string
	st *sql.Stmt
}

// PrepareWrite prepares query for use in write transactions. Call it
// outside any transaction (it needs the write connection).
func (db *DB) PrepareWrite(ctx context.Context, query string) (*Stmt, error) {
	q := db.flavored(query)
	s := &Stmt{q: q}
	if db.flavor != SQLite || db.rw == db.ro {
		return s, nil
	}
	st, err := db.rw.PrepareContext(ctx, q)
	if err != nil {
		return nil, translate(err)
	}
	s.st = st
	return s, nil
}

// ExecStmt runs a prepared write statement in the transaction.
func (t *Tx) ExecStmt(ctx context.Context, s *Stmt, args ...any) (sql.Result, error) {
	if s.st != nil && t.pool == t.db.rw {
		r, err := t.tx.StmtContext(ctx, s.st).ExecContext(ctx, args...)
		return r, translate(err)
	}
	r, err := t.tx.ExecContext(ctx, s.q, args...)
	return r, translate(err)
}

// QueryRowStmt runs a prepared statement returning at most one row.
func (t *Tx) QueryRowStmt(ctx context.Context, s *Stmt, args ...any) *sql.Row {
	if s.st != nil && t.pool == t.db.rw {
		return t.tx.StmtContext(ctx, s.st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, s.q, args...)
}

// AfterCommit registers fn to run after the transaction commits (not if it
// rolls back). Functions run in order, on the committing goroutine.
func (t *Tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

// flavored rewrites PostgreSQL-subset SQL for the backend. Rewrites are
// cached: queries are constants, so the cache is bounded by the code.
func (db *DB) flavored(q string) string {
	if db.flavor == Postgres {
		return q
	}
	if v, ok := db.queries.Load(q); ok {
		return v.(string)
	}
	r := sqliteRewriter.Replace(q)
	db.queries.Store(q, r)
	return r
}

// sqliteRewriter drops what SQLite lacks and needs not: row locks (SQLite
// has one writer at a time) and explicit casts to PostgreSQL-only types.
var sqliteRewriter = strings.NewReplacer(
	" FOR UPDATE SKIP LOCKED", "",
	" FOR UPDATE", "",
	"::uuid", "",
	"::jsonb", "",
	"::timestamptz", "",
)

// unreachable reports an error that says the database cannot be reached
// or is going away, as opposed to one about the statement: a failed
// connection, a broken one, or the server shutting down.
func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pe):
		// Class 08: connection exceptions; 57P01-57P03: the server is
		// shutting down or not accepting connections yet.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return false
}

// ErrClosed is what transactions on a closed store fail with.
var ErrClosed = apperr.New(apperr.KindUnavailable, "the database is closed")

// translate maps driver errors to apperr kinds; other errors pass through.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.Wrap(err, apperr.KindNotFound, "not found")
	}
	if unreachable(err) {
		// Callers answer "try again" (503), not "no such thing" or 500.
		return apperr.Wrap(err, apperr.KindUnavailable, "the database is unavailable")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return apperr.Wrap(err, apperr.KindAlreadyExists, "already exists")
		case "23503":
			return apperr.Wrap(err, apperr.KindConflict, "referenced record missing or still in use")
		case "23514", "23502", "22P02", "22001":
			return apperr.Wrap(err, apperr.KindInvalidArgument, "invalid value")
		}
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return apperr.Wrap(err, apperr.KindAlreadyExists, "already exists")
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return apperr.Wrap(err, apperr.KindConflict, "referenced record missing or still in use")
		case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			return apperr.Wrap(err, apperr.KindInvalidArgument, "invalid value")
		}
	}
	return err
}

// retryable reports a transient conflict worth running the transaction
// again: PostgreSQL serialization failure or deadlock, SQLite busy.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqlite3.SQLITE_BUSY
	}
	return false
}

// Conn returns a dedicated connection from the write pool, for
// session-level work such as advisory locks. The caller closes it.
func (db *DB) Conn(ctx context.Context) (*sql.Conn, error) { return db.rw.Conn(ctx) }

// Now returns the current time as the store keeps it: UTC, truncated to
// microseconds (PostgreSQL's precision), so values round-trip equal on
// both backends.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// NoRows reports whether err says a single-row query found nothing.
func NoRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || apperr.KindOf(err) == apperr.KindNotFound
}
