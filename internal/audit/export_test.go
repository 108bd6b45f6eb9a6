package audit_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// TestSyslogAndCEF: the exact RFC 5424 header, priorities by outcome, and
// CEF's escaping — a value cannot forge another field or event.
func TestSyslogAndCEF(t *testing.T) {
	at := time.Date(2026, 11, 30, 7, 50, 1, 123456000, time.UTC)
	r := &audit.Record{TenantID: uuid.MustParse("01a22b5f-38c4-7b3e-be22-b4dce9dc004a"), Seq: 42, ID: uuid.MustParse("01a22b5f-38c5-768d-8f06-c493a2bc8efc"),
		At: at, ActorKind: "nhi", ActorID: "agent=1 act=forged", Action: "mcp.tools.call", TargetKind: "mcp_tool", TargetID: "git|hub\\x",
		Outcome: audit.OutcomeDenied, RequestID: "r-1", Details: json.RawMessage(`{"reason":"no grant\nCEF:0|evil"}`)}
	msg := string(audit.SyslogMessage(r, "cef", "gw-1", "1.2|3"))
	wantHead := "<85>1 2026-11-30T07:50:01.123456Z gw-1 xavyo - audit - CEF:0|xavyo|xavyo|1.2\\|3|mcp.tools.call|mcp.tools.call|6|"
	if !strings.HasPrefix(msg, wantHead) {
		t.Fatalf("header:\n%s\nwant prefix\n%s", msg, wantHead)
	}
	for _, want := range []string{`suser=agent\=1 act\=forged `, `cs2=mcp_tool/git|hub\\x `, `cs5={"reason":"no grant\\nCEF:0|evil"} `,
		"rt=" + strconv.FormatInt(at.UnixMilli(), 10), "cn1=42", "externalId=01a22b5f-38c5-768d-8f06-c493a2bc8efc"} {
		if !strings.Contains(msg, want) {
			t.Errorf("lacks %q:\n%s", want, msg)
		}
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("a raw line break in %q", msg)
	}
	for outcome, pri := range map[string]string{audit.OutcomeSuccess: "<86>", audit.OutcomeDenied: "<85>", audit.OutcomeFailure: "<84>"} {
		r.Outcome = outcome
		m := string(audit.SyslogMessage(r, "json", "bad host", "v"))
		if !strings.HasPrefix(m, pri+"1 2026-11-30T07:50:01.123456Z - xavyo - audit - {") {
			t.Errorf("%s: %s", outcome, m)
		}
		var back audit.Record
		if err := json.Unmarshal([]byte(m[strings.Index(m, "{"):]), &back); err != nil || back.Seq != 42 || back.ActorID != r.ActorID {
			t.Errorf("the JSON text is not the record: %v %s", err, m)
		}
	}
}

// tlsReceiver is a syslog-over-TLS listener with a certificate of its own
// CA; it returns the messages of the octet-counted frames it reads.
func tlsReceiver(t *testing.T) (addr, caPEM string, got chan string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = make(chan string, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSpace(n))
					if err != nil {
						return
					}
					buf := make([]byte, size)
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					got <- string(buf)
				}
			}(c)
		}
	}()
	return l.Addr().String(), caPEM, got
}

// TestExportOverTLS: an export over TLS trusts the CA it is given; with
// another CA it sends nothing, keeps its cursor and shows the error.
func TestExportOverTLS(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		seq := start(t, db)
		tid := uuid.Must(uuid.NewV7())
		if err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
			_, err := tx.Exec(context.Background(), `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
				VALUES ($1, $2, 'T', 'active', '{}', $3, $3, 1)`, tid, "x-"+tid.String()[24:], store.Now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		appendN(t, seq, tid, 5)
		addr, caPEM, got := tlsReceiver(t)
		_, otherCA, _ := tlsReceiver(t)
		e := &audit.Exporter{DB: db, Audit: audit.Discard}
		ctx := store.WithTenant(context.Background(), tid)
		yes, name, format, start := true, "siem", "json", "beginning"
		x, err := e.CreateExport(ctx, audit.ExportInput{Name: &name, Address: &addr, TLS: &yes, ServerCAPEM: &otherCA, Format: &format, Start: start})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := e.RunOnce(context.Background()); err != nil || n != 0 {
			t.Fatalf("sent %d with the wrong CA (%v)", n, err)
		}
		if x, err = e.GetExport(ctx, x.ID); err != nil || x.LastError == nil || !strings.Contains(*x.LastError, "TLS") || x.Cursor != 0 || x.Lag != 5 {
			t.Fatalf("after the wrong CA: %+v %v", x, err)
		}
		active := "active"
		if _, err := e.UpdateExport(ctx, x.ID, audit.ExportInput{ServerCAPEM: &caPEM, Status: &active}, 0); err != nil {
			t.Fatal(err)
		}
		if n, err := e.RunOnce(context.Background()); err != nil || n != 5 {
			t.Fatalf("sent %d (%v)", n, err)
		}
		for i := range 5 {
			select {
			case m := <-got:
				var r audit.Record
				if err := json.Unmarshal([]byte(m[strings.Index(m, "{"):]), &r); err != nil || r.Seq != int64(i+1) || r.TenantID != tid {
					t.Fatalf("frame %d: %s", i, m)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("frame %d never came", i)
			}
		}
		if x, _ = e.GetExport(ctx, x.ID); x.Cursor != 5 || x.Exported != 5 || x.LastError != nil || x.Lag != 0 {
			t.Fatalf("after sending: %+v", x)
		}
	})
}
