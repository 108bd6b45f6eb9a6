package testdb

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Cluster is a private PostgreSQL server a test owns: started from the
// machine's PostgreSQL binaries in a temporary directory, on a loopback
// port of its own, with trust authentication. Tests of outages stop and
// start it; the shared server is never touched.
type Cluster struct {
	bin  string
	dir  string
	port int
	// owner runs the server when this process is root (initdb refuses
	// root): the postgres user.
	owner *user.User
}

// StartCluster initializes and starts a private cluster, stopped at the
// test's end. Without PostgreSQL's server binaries it skips, unless
// XAVYO_REQUIRE_POSTGRES=1.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := serverBin()
	if err != nil {
		if RequirePostgres() {
			t.Fatalf("PostgreSQL required (XAVYO_REQUIRE_POSTGRES=1): %v", err)
		}
		t.Skipf("PostgreSQL server binaries unavailable: %v", err)
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		if c.owner, err = user.Lookup("postgres"); err != nil {
			t.Skipf("running as root without a postgres user: %v", err)
		}
	}
	// Not t.TempDir: its parents are private to this user, and the server
	// may run as another.
	base, err := os.MkdirTemp("", "xavyo-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	c.dir = filepath.Join(base, "data")
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if c.owner != nil {
		uid, _ := strconv.Atoi(c.owner.Uid)
		gid, _ := strconv.Atoi(c.owner.Gid)
		for _, d := range []string{base, c.dir} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if c.port, err = quietPort(); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Start(t)
	t.Cleanup(func() { _, _ = c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop") })
	return c
}

// quietPort finds a free loopback port below the kernel's ephemeral range.
// A port inside it can be taken while the server is down: a client that
// reconnects to a port nobody listens on may be given that very port as
// its own and connect to itself (TCP simultaneous open), and the server
// then cannot bind it again.
func quietPort() (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	first := max(low-12000, 1024)
	for range 200 {
		port := first + rand.IntN(low-first) //nolint:gosec // G404: a port to try, not a secret
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		return port, nil
	}
	return 0, errors.New("no free loopback port below the ephemeral range")
}

// URL is the cluster's database "postgres" as role (trust: no password).
func (c *Cluster) URL(role string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", role, c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60", c.port, filepath.Dir(c.dir))
	if out, err := c.run("pg_ctl", "-D", c.dir, "-o", opts, "-l", filepath.Join(filepath.Dir(c.dir), "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(c.dir), "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server as an operator would (fast mode: clients cut
// off, what was committed kept).
func (c *Cluster) Stop(t testing.TB) { c.stop(t, "fast") }

// Crash stops the server at once, as a crash would (immediate mode: no
// checkpoint; commits not yet flushed, such as asynchronous ones, lost).
func (c *Cluster) Crash(t testing.TB) { c.stop(t, "immediate") }

func (c *Cluster) stop(t testing.TB, mode string) {
	t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.dir, "-m", mode, "-w", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (c *Cluster) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.owner != nil {
		cmd = exec.Command("runuser", append([]string{"-u", c.owner.Username, "--", path}, args...)...) //nolint:gosec // G204: the machine's PostgreSQL tools, arguments made here
	} else {
		cmd = exec.Command(path, args...) //nolint:gosec // G204: as above
	}
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

// serverBin finds the directory of initdb and pg_ctl: on PATH, or the
// newest under /usr/lib/postgresql (Debian keeps them off PATH).
func serverBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb not found on PATH or under /usr/lib/postgresql")
}
