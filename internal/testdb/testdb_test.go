package testdb_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// TestUnreachablePostgres runs a PostgreSQL test in a child process
// against a closed port: it skips, unless XAVYO_REQUIRE_POSTGRES=1 makes
// it fail.
func TestUnreachablePostgres(t *testing.T) {
	for _, tc := range []struct {
		require string
		fail    bool
		want    string
	}{
		{"", false, "SKIP"},
		{"1", true, "PostgreSQL required"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresChild$", "-test.v")
		cmd.Env = append(os.Environ(), "XAVYO_TESTDB_CHILD=1",
			"XAVYO_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
			"XAVYO_REQUIRE_POSTGRES="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fail || !strings.Contains(string(out), tc.want) {
			t.Fatalf("require=%q: err=%v output:\n%s", tc.require, err, out)
		}
	}
}

func TestPostgresChild(t *testing.T) {
	if os.Getenv("XAVYO_TESTDB_CHILD") == "" {
		t.Skip("child process only")
	}
	testdb.Postgres(t)
}

// TestAppRoleIsOrdinary: PostgreSQL tests run as a role that row-level
// security applies to.
func TestAppRoleIsOrdinary(t *testing.T) {
	db := testdb.Postgres(t)
	r, err := db.Role(t.Context())
	if err != nil || r.Name != testdb.AppRole || r.Super || r.BypassRLS {
		t.Fatalf("%+v %v", r, err)
	}
}
