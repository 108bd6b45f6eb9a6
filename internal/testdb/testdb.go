// Package testdb gives tests a migrated store on each backend: a fresh
// SQLite file per test, and on PostgreSQL a database per test package,
// cloned from a migrated template and reached as the application role
// (never a superuser, which would bypass row-level security).
//
// PostgreSQL is found at XAVYO_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/test, a role that may create roles
// and databases). When it is unreachable the PostgreSQL cases skip, unless
// XAVYO_REQUIRE_POSTGRES=1, which turns the skip into a failure.
package testdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/migrations"
)

// AppRole is the application role tests connect as.
const AppRole = "xavyo_app"

const setupLock int64 = 0x78617679_6f000002

// AdminURL is the URL of the PostgreSQL role that prepares test databases.
func AdminURL() string {
	if u := os.Getenv("XAVYO_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RequirePostgres reports whether PostgreSQL tests must run.
func RequirePostgres() bool { return os.Getenv("XAVYO_REQUIRE_POSTGRES") == "1" }

// Open opens a migrated store for a test: SQLite when flavor is
// store.SQLite, PostgreSQL (skipping or failing as above) otherwise.
func Open(t testing.TB, flavor store.Flavor) *store.DB {
	t.Helper()
	if flavor == store.SQLite {
		return SQLite(t)
	}
	return Postgres(t)
}

// Each runs fn as a subtest on SQLite and on PostgreSQL.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, f := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(f.String(), func(t *testing.T) { fn(t, Open(t, f)) })
	}
}

// SQLite returns a migrated store on a new file in a temporary directory.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + filepath.Join(t.TempDir(), "xavyo.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := store.Migrate(ctx, db, migrations.SQLite(), store.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	return db
}

var pkg struct {
	once     sync.Once
	appURL   string
	ownerURL string
	name     string
	tmpl     string
	err      error
	skip     string
}

// Postgres returns a store on this package's PostgreSQL test database,
// connected as the application role. Each call opens its own pool.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	appURL, _ := urls(t)
	db, err := store.Open(context.Background(), store.Config{URL: appURL, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// OwnerURL returns a URL of the package's PostgreSQL test database as the
// schema owner (a superuser): for tests that must tamper with what the
// application role cannot touch.
func OwnerURL(t testing.TB) string {
	t.Helper()
	_, owner := urls(t)
	return owner
}

// AppURL returns the package database's URL as the application role.
func AppURL(t testing.TB) string {
	t.Helper()
	app, _ := urls(t)
	return app
}

// OwnDatabase gives a test a PostgreSQL database of its own, cloned from
// the migrated template and dropped at the test's end (application and
// owner URLs). For tests that run in parallel with others: servers on one
// database act as replicas of each other (claiming each other's outbox
// rows, timers and deliveries), which tests written for one server do not
// expect.
func OwnDatabase(t testing.TB) (app, owner string) {
	t.Helper()
	urls(t)
	ctx := context.Background()
	admin, err := store.Open(ctx, store.Config{URL: AdminURL(), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	own.Lock()
	own.n++
	name := fmt.Sprintf("%s_%d", pkg.name, own.n)
	own.Unlock()
	// One clone at a time: a template being copied cannot be copied again.
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, setupLock); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(ctx, `CREATE DATABASE `+quote(name)+` TEMPLATE `+quote(pkg.tmpl))
	_, _ = conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, setupLock)
	if err != nil {
		t.Fatalf("testdb: clone the template: %v", err)
	}
	t.Cleanup(func() {
		if admin, err := store.Open(context.Background(), store.Config{URL: AdminURL(), MaxConns: 1}); err == nil {
			if conn, err := admin.Conn(context.Background()); err == nil {
				_, _ = conn.ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+quote(name)+` WITH (FORCE)`)
				_ = conn.Close()
			}
			_ = admin.Close()
		}
	})
	adminURL := AdminURL()
	return withDB(adminURL, name, AppRole), withDB(adminURL, name, "")
}

var own struct {
	sync.Mutex
	n int
}

func urls(t testing.TB) (app, owner string) {
	t.Helper()
	pkg.once.Do(preparePackageDB)
	if pkg.skip != "" {
		if RequirePostgres() {
			t.Fatalf("PostgreSQL required (XAVYO_REQUIRE_POSTGRES=1): %s", pkg.skip)
		}
		t.Skipf("PostgreSQL unavailable: %s", pkg.skip)
	}
	if pkg.err != nil {
		t.Fatal(pkg.err)
	}
	return pkg.appURL, pkg.ownerURL
}

// Main runs a package's tests and then drops its PostgreSQL database.
// Use it from TestMain: os.Exit(testdb.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if pkg.name != "" {
		if admin, err := sql.Open("pgx", AdminURL()); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+quote(pkg.name)+` WITH (FORCE)`)
			cancel()
			_ = admin.Close()
		}
	}
	return code
}

func preparePackageDB() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adminURL := AdminURL()
	admin, err := store.Open(ctx, store.Config{URL: adminURL, MaxConns: 2})
	if err != nil {
		pkg.skip = err.Error()
		return
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		pkg.skip = err.Error()
		return
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, setupLock); err != nil {
		pkg.err = err
		return
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, setupLock) }()

	steps, err := store.Steps(migrations.Postgres())
	if err != nil {
		pkg.err = err
		return
	}
	h := sha256.New()
	for _, s := range steps {
		h.Write([]byte(s.Checksum))
	}
	tmpl := "xavyo_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		pkg.err = err
		return
	}
	if !exists {
		if err := buildTemplate(ctx, conn, adminURL, tmpl); err != nil {
			pkg.err = fmt.Errorf("testdb: build template: %w", err)
			return
		}
	}
	name := fmt.Sprintf("xavyo_t_%s_%d_%d", packageTag(), os.Getpid(), time.Now().UnixNano()%1e6)
	if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+quote(name)+` TEMPLATE `+quote(tmpl)); err != nil {
		pkg.err = fmt.Errorf("testdb: clone template: %w", err)
		return
	}
	pkg.name, pkg.tmpl = name, tmpl
	pkg.ownerURL = withDB(adminURL, name, "")
	pkg.appURL = withDB(adminURL, name, AppRole)
}

func buildTemplate(ctx context.Context, conn *sql.Conn, adminURL, tmpl string) error {
	building := tmpl + "_build"
	_, _ = conn.ExecContext(ctx, `DROP DATABASE IF EXISTS `+quote(building))
	if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+quote(building)); err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{URL: withDB(adminURL, building, ""), MaxConns: 2})
	if err != nil {
		return err
	}
	_, err = store.Migrate(ctx, db, migrations.Postgres(), store.MigrateOptions{AppRole: AppRole, CreateAppRole: true})
	_ = db.Close()
	if err != nil {
		return err
	}
	// Renamed only once complete, so a crashed build never becomes a template.
	_, err = conn.ExecContext(ctx, `ALTER DATABASE `+quote(building)+` RENAME TO `+quote(tmpl))
	return err
}

func packageTag() string {
	wd, _ := os.Getwd()
	b := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(filepath.Base(wd)))
	if len(b) > 20 {
		b = b[:20]
	}
	return b
}

func withDB(raw, db, user string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	if user != "" {
		u.User = url.User(user)
	}
	return u.String()
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }
