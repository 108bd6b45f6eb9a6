package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrationLock is the advisory lock key that serializes migrations (and
// first-start bootstrap) across replicas.
const migrationLock int64 = 0x78617679_6f000001

// Step is one migration.
type Step struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

var stepName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Steps reads the numbered steps of fsys in order.
func Steps(fsys fs.FS) ([]Step, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var steps []Step
	for _, e := range entries {
		m := stepName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrations: bad file name %q", e.Name())
		}
		raw, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(raw)
		steps = append(steps, Step{Version: v, Name: m[2], SQL: string(raw), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].Version < steps[j].Version })
	for i, s := range steps {
		if s.Version != i+1 {
			return nil, fmt.Errorf("migrations: step %d missing", i+1)
		}
	}
	return steps, nil
}

// MigrateOptions tunes Migrate.
type MigrateOptions struct {
	// AppRole, on PostgreSQL, is the application role to grant table
	// rights to (no ownership, append-only on audit_log). Empty: none.
	AppRole string
	// CreateAppRole creates AppRole (LOGIN, no BYPASSRLS) when missing —
	// for development; production roles are made by a DBA.
	CreateAppRole bool
}

// Migrate applies the pending steps of fsys under an advisory lock and
// returns how many it applied. A landed step whose file changed is an
// error: steps are never edited.
func Migrate(ctx context.Context, db *DB, fsys fs.FS, opts MigrateOptions) (int, error) {
	steps, err := Steps(fsys)
	if err != nil {
		return 0, err
	}
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if db.flavor == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
			return 0, fmt.Errorf("migrate: lock: %w", err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	applied := map[int]string{}
	rows, err := conn.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return 0, err
		}
		applied[v] = sum
	}
	rows.Close()
	n := 0
	for _, s := range steps {
		if sum, ok := applied[s.Version]; ok {
			if sum != s.Checksum {
				return n, fmt.Errorf("migrate: step %04d_%s was edited after it was applied", s.Version, s.Name)
			}
			continue
		}
		if err := applyStep(ctx, conn, s); err != nil {
			return n, err
		}
		n++
	}
	if len(applied) > len(steps) {
		return n, fmt.Errorf("migrate: database is at a newer schema (%d steps) than this binary (%d)", len(applied), len(steps))
	}
	if db.flavor == Postgres && opts.AppRole != "" {
		if err := grantAppRole(ctx, conn, opts); err != nil {
			return n, err
		}
	}
	return n, nil
}

func applyStep(ctx context.Context, conn *sql.Conn, s Step) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, s.SQL); err != nil {
		return fmt.Errorf("migrate: step %04d_%s: %w", s.Version, s.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`,
		s.Version, s.Name, s.Checksum, time.Now().UTC()); err != nil {
		return fmt.Errorf("migrate: record step %d: %w", s.Version, err)
	}
	return tx.Commit()
}

func grantAppRole(ctx context.Context, conn *sql.Conn, opts MigrateOptions) error {
	role := pgx.Identifier{opts.AppRole}.Sanitize()
	var current string
	if err := conn.QueryRowContext(ctx, `SELECT current_user`).Scan(&current); err != nil {
		return err
	}
	if current == opts.AppRole {
		return nil
	}
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, opts.AppRole).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if !opts.CreateAppRole {
			return fmt.Errorf("migrate: application role %q does not exist; create it (LOGIN NOBYPASSRLS) first", opts.AppRole)
		}
		// Concurrent migrators may race here; the advisory lock only
		// covers this database, roles are cluster-wide.
		if _, err := conn.ExecContext(ctx, `CREATE ROLE `+role+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`); err != nil &&
			!isDuplicateObject(err) {
			return fmt.Errorf("migrate: create role: %w", err)
		}
	}
	stmts := []string{
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ` + role,
		// The audit chain is append-only for the application.
		`REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM ` + role,
		`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM ` + role,
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate: grant: %w", err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied step (0 when none).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.ro.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return int(v.Int64), nil
}

// RoleInfo describes the role the DB connects as.
type RoleInfo struct {
	Name      string
	Super     bool
	BypassRLS bool
}

// Role returns the connecting role on PostgreSQL (empty on SQLite).
func (db *DB) Role(ctx context.Context) (RoleInfo, error) {
	var r RoleInfo
	if db.flavor != Postgres {
		return r, nil
	}
	err := db.rw.QueryRowContext(ctx, `SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&r.Name, &r.Super, &r.BypassRLS)
	return r, err
}

// UnprotectedTables lists the tables of the public schema that have a
// tenant_id column but lack enabled and forced row-level security or a
// policy (PostgreSQL). An empty list is the invariant every migration
// must keep.
func UnprotectedTables(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) ([]string, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT c.relname
		  FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		 WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
		   AND NOT (c.relrowsecurity AND c.relforcerowsecurity
		            AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))
		 ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// isDuplicateObject reports PostgreSQL's duplicate_object (42710): a role
// another migrator created first.
func isDuplicateObject(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42710"
}
