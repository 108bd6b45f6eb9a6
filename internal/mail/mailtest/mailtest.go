// Package mailtest runs a real SMTP server for tests: Debian's
// python3-aiosmtpd on loopback, keeping every message it accepts in a
// maildir the test reads.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running SMTP server.
type Server struct {
	Host string
	Port int
	// Dir is the maildir messages land in.
	Dir string
	// Roots trusts the server's certificate (STARTTLS servers only).
	Roots *x509.CertPool
	args  []string
	cmd   *exec.Cmd
	t     testing.TB
}

// python is the interpreter that has aiosmtpd: Debian's, or the PATH's.
func python() (string, bool) {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import aiosmtpd").Run() == nil { //nolint:gosec // G204: fixed interpreters
			return p, true
		}
	}
	return "", false
}

// Start runs a server; with startTLS it offers STARTTLS (and requires it)
// with a certificate for 127.0.0.1. Without aiosmtpd the test is skipped,
// or fails on CI.
func Start(t testing.TB, startTLS bool) *Server {
	t.Helper()
	py, ok := python()
	if !ok {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-aiosmtpd is required on CI")
		}
		t.Skip("no python3-aiosmtpd here")
	}
	dir := t.TempDir()
	s := &Server{Host: "127.0.0.1", Port: freePort(t), Dir: filepath.Join(dir, "maildir"), t: t}
	s.args = []string{"-m", "aiosmtpd", "-n", "-l", fmt.Sprintf("%s:%d", s.Host, s.Port)}
	if startTLS {
		cert, key := selfSigned(t, dir)
		s.args = append(s.args, "--tlscert", cert, "--tlskey", key)
		pemBytes, _ := os.ReadFile(cert) //nolint:gosec // G304: the test's own file
		s.Roots = x509.NewCertPool()
		s.Roots.AppendCertsFromPEM(pemBytes)
	}
	s.args = append(s.args, "-c", "aiosmtpd.handlers.Mailbox", s.Dir)
	s.args = append([]string{py}, s.args...)
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (messages stay in Dir).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and maildir.
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...) //nolint:gosec // G204: the test's own command line
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for range 100 {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("the SMTP server did not start: %s", out.String())
}

// Message is a received email.
type Message struct {
	Header mail.Header
	To     string
	// Subject is decoded (RFC 2047).
	Subject string
	Text    string
	HTML    string
	Raw     string
}

// Messages returns every message received so far, oldest first.
func (s *Server) Messages() []Message {
	s.t.Helper()
	var files []string
	for _, sub := range []string{"new", "cur"} {
		m, _ := filepath.Glob(filepath.Join(s.Dir, sub, "*"))
		files = append(files, m...)
	}
	type dated struct {
		at  [3]int64 // seconds, microseconds, the server's counter
		msg Message
	}
	var all []dated
	for _, f := range files {
		raw, err := os.ReadFile(f) //nolint:gosec // G304: the server's maildir
		if err != nil {
			continue
		}
		all = append(all, dated{arrival(filepath.Base(f)), parse(s.t, raw)})
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i].at, all[j].at
		return a[0] < b[0] || (a[0] == b[0] && (a[1] < b[1] || (a[1] == b[1] && a[2] < b[2])))
	})
	out := make([]Message, len(all))
	for i, d := range all {
		out[i] = d.msg
	}
	return out
}

// arrival reads when a maildir file was made from its name, as Python's
// mailbox writes it: <seconds>.M<microseconds>P<pid>Q<counter>.<host>
// (file times are too coarse to order two messages of one instant).
func arrival(name string) [3]int64 {
	var at [3]int64
	sec, rest, _ := strings.Cut(name, ".M")
	usec, rest, _ := strings.Cut(rest, "P")
	_, rest, _ = strings.Cut(rest, "Q")
	count, _, _ := strings.Cut(rest, ".")
	at[0], _ = strconv.ParseInt(sec, 10, 64)
	at[1], _ = strconv.ParseInt(usec, 10, 64)
	at[2], _ = strconv.ParseInt(count, 10, 64)
	return at
}

// Wait waits until n messages have arrived (at most timeout) and returns
// them all.
func (s *Server) Wait(n int, timeout time.Duration) []Message {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := s.Messages()
		if len(m) >= n || time.Now().After(deadline) {
			if len(m) < n {
				s.t.Fatalf("%d messages arrived, want %d: %s", len(m), n, summary(m))
			}
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitFor waits for a message that match accepts and returns the first.
func (s *Server) WaitFor(what string, match func(Message) bool, timeout time.Duration) Message {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := s.Messages()
		for _, m := range all {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no message %s among %d: %s", what, len(all), summary(all))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// summary names messages by recipient and subject, for a failure.
func summary(ms []Message) string {
	var b strings.Builder
	for i, m := range ms {
		fmt.Fprintf(&b, "\n  %d. to %s: %q (%s)", i+1, m.To, m.Subject, m.Header.Get("Message-Id"))
	}
	return b.String()
}

func parse(t testing.TB, raw []byte) Message {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("a message the server kept is not a message: %v", err)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		subject = m.Header.Get("Subject")
	}
	out := Message{Header: m.Header, To: m.Header.Get("To"), Subject: subject, Raw: string(raw)}
	ct, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "multipart/") {
		r := multipart.NewReader(m.Body, params["boundary"])
		for {
			p, err := r.NextPart()
			if err != nil {
				break
			}
			body := decodePart(p.Header.Get("Content-Transfer-Encoding"), p)
			if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
				out.HTML = body
			} else if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
				out.Text = body
			}
		}
		return out
	}
	out.Text = decodePart(m.Header.Get("Content-Transfer-Encoding"), m.Body)
	return out
}

func decodePart(cte string, r io.Reader) string {
	b, _ := io.ReadAll(r)
	switch strings.ToLower(cte) {
	case "quoted-printable":
		q, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err == nil {
			return string(q)
		}
	case "base64":
		var out bytes.Buffer
		dec := base64.NewDecoder(base64.StdEncoding, bytes.NewReader(b))
		if _, err := io.Copy(&out, dec); err == nil {
			return out.String()
		}
	}
	return string(b)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "smtp.test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "smtp.pem"), filepath.Join(dir, "smtp.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TLSConfig trusts the server's certificate.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.Roots, ServerName: s.Host, MinVersion: tls.VersionTLS12}
}
