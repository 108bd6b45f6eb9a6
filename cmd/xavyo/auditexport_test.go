package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
)

// rsyslog is a real syslog receiver (rsyslogd from Debian) listening on
// TCP, writing each message it parsed as RFC 5424 to a file: its priority,
// app-name, msgid and text, one line each.
type rsyslog struct {
	t         *testing.T
	dir, port string
	cmd       *exec.Cmd
	out       string
}

func rsyslogd(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("XAVYO_REQUIRE_E2E") == "1" {
		t.Fatal("rsyslogd is required (apt-get install rsyslog)")
	}
	t.Skip("rsyslogd missing (apt-get install rsyslog)")
	return ""
}

func startRsyslog(t *testing.T, port string) *rsyslog {
	t.Helper()
	bin := rsyslogd(t)
	r := &rsyslog{t: t, dir: t.TempDir(), port: port}
	r.out = filepath.Join(r.dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp")
input(type="imtcp" port=%q address="127.0.0.1")
template(name="parsed" type="string" string="%%pri%%|%%app-name%%|%%msgid%%|%%msg%%\n")
*.* action(type="omfile" file=%q template="parsed")
`, r.dir, port, r.out)
	if err := os.WriteFile(filepath.Join(r.dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", filepath.Join(r.dir, "pid"))
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	waitFor(t, "rsyslogd listening", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

func (r *rsyslog) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// lines are the messages received so far: priority, app-name, msgid, text.
func (r *rsyslog) lines() [][4]string {
	f, err := os.Open(r.out)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][4]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 4)
		if len(parts) == 4 {
			out = append(out, [4]string{parts[0], parts[1], parts[2], strings.TrimPrefix(parts[3], " ")})
		}
	}
	return out
}

// freePort is freeAddr's port.
func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}

type exportJSON struct {
	ID        string  `json:"id"`
	Cursor    int64   `json:"cursor"`
	Exported  int64   `json:"exported"`
	Lag       int64   `json:"lag"`
	LastError *string `json:"last_error"`
}

// TestAuditExportToSyslog: a tenant's audit records reach a real syslog
// receiver (rsyslogd) as RFC 5424 messages it parses — app-name xavyo, msgid
// audit, authpriv priorities by outcome — as JSON records (every record,
// in order, from the beginning) and as CEF events (from now on); while the
// receiver is down the export waits (its error shown) and, once it is back,
// sends what it missed, nothing lost; another tenant's records never go to
// this tenant's receiver; bad input changes nothing.
func TestAuditExportToSyslog(t *testing.T) {
	t.Parallel() // waits more than it works: it overlaps the other waiting suites
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			port := freePort(t)
			rs := startRsyslog(t, port)
			receivers := []*rsyslog{rs}
			received := func() (out [][4]string) { // what every receiver took, in order
				for _, r := range receivers {
					out = append(out, r.lines()...)
				}
				return out
			}
			h := start(t, append(envOwn(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
			slug := uniqueSlug("ax")
			tid, tok := tenantAdmin(t, h, slug)
			_, otherTok := tenantAdmin(t, h, uniqueSlug("ax"))
			addr := "127.0.0.1:" + port

			for what, in := range map[string]map[string]any{
				"no address":     {"name": "siem", "format": "json"},
				"no port":        {"name": "siem", "address": "127.0.0.1"},
				"bad format":     {"name": "siem", "address": addr, "format": "xml"},
				"bad start":      {"name": "siem", "address": addr, "start": "yesterday"},
				"ca without tls": {"name": "siem", "address": addr, "server_ca_pem": "-----BEGIN CERTIFICATE-----"},
				"no name":        {"address": addr},
			} {
				if resp, body := h.DoAs(tok, "POST", "/api/v1/audit-exports", in); resp.StatusCode != 400 {
					t.Errorf("%s: %d %s", what, resp.StatusCode, body)
				}
			}
			if _, body := h.DoAs(tok, "GET", "/api/v1/audit-exports", nil); !strings.Contains(string(body), `"items":[]`) {
				t.Fatalf("bad input created an export: %s", body)
			}

			resp, body := h.DoAs(tok, "POST", "/api/v1/audit-exports", map[string]any{"name": "siem-json", "address": addr, "format": "json",
				"start": "beginning"})
			expect(t, resp, body, 201, "json export")
			jsonExport := decode[exportJSON](t, body)
			resp, body = h.DoAs(tok, "POST", "/api/v1/audit-exports", map[string]any{"name": "siem-cef", "address": addr, "format": "cef"})
			expect(t, resp, body, 201, "cef export")
			cefExport := decode[exportJSON](t, body)
			if cefExport.Cursor == 0 || jsonExport.Cursor != 0 {
				t.Fatalf("cursors: json %d (from the beginning), cef %d (from now)", jsonExport.Cursor, cefExport.Cursor)
			}
			if resp, _ := h.DoAs(otherTok, "GET", "/api/v1/audit-exports/"+jsonExport.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant read the export: %d", resp.StatusCode)
			}
			// Records of this tenant, and of another.
			resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@" + slug + ".test", "password": "Analytical-engine-1843"})
			expect(t, resp, body, 201, "user")
			h.Login(slug, "ada@"+slug+".test", "wrong-password-1", 401)
			resp, body = h.DoAs(otherTok, "POST", "/api/v1/groups", map[string]any{"name": "Elsewhere"})
			expect(t, resp, body, 201, "another tenant's group")

			caughtUp := func(id string) exportJSON {
				var x exportJSON
				waitFor(t, "export "+id+" caught up", func() bool {
					_, b := h.DoAs(tok, "GET", "/api/v1/audit-exports/"+id, nil)
					x = decode[exportJSON](t, b)
					return x.Lag == 0 && x.Exported > 0
				})
				return x
			}
			caughtUp(jsonExport.ID)
			caughtUp(cefExport.ID)
			check := func(stage string) (seqs []int64) {
				t.Helper()
				var cefs int
				for _, l := range received() {
					if l[1] != "xavyo" || l[2] != "audit" {
						t.Fatalf("%s: rsyslog parsed %q", stage, l)
					}
					pri, _ := strconv.Atoi(l[0])
					if pri/8 != 10 || pri%8 < 4 || pri%8 > 6 {
						t.Fatalf("%s: priority %d", stage, pri)
					}
					if strings.HasPrefix(l[3], "CEF:0|xavyo|xavyo|") {
						cefs++
						if !strings.Contains(l[3], "cs3="+tid) {
							t.Fatalf("%s: a CEF event of another tenant: %s", stage, l[3])
						}
						continue
					}
					var rec struct {
						TenantID string `json:"tenant_id"`
						Seq      int64  `json:"seq"`
						Action   string `json:"action"`
						Outcome  string `json:"outcome"`
					}
					if err := json.Unmarshal([]byte(l[3]), &rec); err != nil {
						t.Fatalf("%s: not a JSON record: %q", stage, l[3])
					}
					if rec.TenantID != tid {
						t.Fatalf("%s: another tenant's record reached this tenant's receiver: %s", stage, l[3])
					}
					if rec.Outcome == "denied" && pri%8 != 5 {
						t.Fatalf("%s: a denied record at priority %d", stage, pri)
					}
					seqs = append(seqs, rec.Seq)
				}
				if cefs == 0 {
					return nil // the CEF export's events are not written yet
				}
				return seqs
			}
			var seqs []int64
			waitFor(t, "the records at the receiver", func() bool { seqs = check("first"); return int64(len(seqs)) >= jsonCursor(t, h, tok, jsonExport.ID) })
			for i, s := range seqs {
				if s != int64(i+1) {
					t.Fatalf("JSON records out of order or missing: %v", seqs)
				}
			}
			waitFor(t, "the user's creation exported in both formats", func() bool {
				all := fmt.Sprint(received())
				return strings.Contains(all, `"action":"user.create"`) && strings.Contains(all, "act=user.create")
			})

			// The receiver goes away: records wait; it comes back: they come.
			rs.stop()
			for i := range 3 {
				h.Login(slug, fmt.Sprintf("nobody%d@%s.test", i, slug), "wrong-password-1", 401)
			}
			waitFor(t, "the export's error shown", func() bool {
				_, b := h.DoAs(tok, "GET", "/api/v1/audit-exports/"+jsonExport.ID, nil)
				x := decode[exportJSON](t, b)
				return x.LastError != nil && x.Lag > 0
			})
			receivers = append(receivers, startRsyslog(t, port))
			x := caughtUp(jsonExport.ID)
			if x.LastError != nil {
				t.Fatalf("error after catching up: %s", *x.LastError)
			}
			// The receiver writes what it took moments later.
			missing := func() []int64 {
				seen := map[int64]bool{}
				for _, s := range check("after the outage") {
					seen[s] = true
				}
				var out []int64
				for s := int64(1); s <= x.Cursor; s++ {
					if !seen[s] {
						out = append(out, s)
					}
				}
				return out
			}
			waitFor(t, "every record at the receiver", func() bool { return len(missing()) == 0 })

			// Paused, then deleted: audited.
			resp, body = h.DoAs(tok, "PATCH", "/api/v1/audit-exports/"+cefExport.ID, map[string]any{"status": "paused"})
			expect(t, resp, body, 200, "pause")
			resp, body = h.DoAs(tok, "DELETE", "/api/v1/audit-exports/"+cefExport.ID, nil)
			expect(t, resp, body, 204, "delete")
			_, body = h.DoAs(tok, "GET", "/api/v1/audit?action=audit_export.*", nil)
			for _, a := range []string{"audit_export.create", "audit_export.update", "audit_export.delete"} {
				if !strings.Contains(string(body), `"action":"`+a+`"`) {
					t.Errorf("no %s audited", a)
				}
			}
		})
	}
}

func jsonCursor(t *testing.T, h *harness, tok, id string) int64 {
	_, b := h.DoAs(tok, "GET", "/api/v1/audit-exports/"+id, nil)
	return decode[exportJSON](t, b).Cursor
}
