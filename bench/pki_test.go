package bench

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/pki"
)

// BenchmarkIssueCertificate signs and records P-256 certificates with a
// server-generated key (key generation included) and from a CSR.
func BenchmarkIssueCertificate(b *testing.B) {
	f := newAgentFixture(b, "pki-bench")
	db, ctx, created := f.db, f.ctx, f.agent
	sealer, _ := seal.New(make([]byte, 32))
	ca, err := pki.New(ctx, pki.Config{DB: db, Sealer: sealer, TrustDomain: "xavyo.local", CRLURL: "https://127.0.0.1:8443/pki/crl", Audit: audit.Discard})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("generated-key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ca.Issue(ctx, &created.NHI, pki.IssueInput{}, 24*time.Hour, ""); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})

}

// BenchmarkAgentPlaneMTLS measures an mTLS handshake plus one small
// request (GET /t/{slug}/pki/identity) against a running xavyo: every
// request on a new connection, with a full handshake or a resumed session.
func BenchmarkAgentPlaneMTLS(b *testing.B) {
	x := startBinary(b)
	// An agent and its certificate, through the admin API.
	call := func(method, path string, body any) map[string]any {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, x.admin+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+x.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Tenant-ID", x.tenantID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
		}
		_ = json.Unmarshal(out, &v)
		return v
	}
	owner := call("GET", "/api/v1/users?limit=1", nil)["items"].([]any)[0].(map[string]any)["id"]
	agent := call("POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "bench-bot", "name": "Bench", "owner_id": owner})
	cert := call("POST", "/api/v1/nhis/"+agent["id"].(string)+"/certificates", map[string]any{})
	pair, err := tls.X509KeyPair([]byte(cert["chain_pem"].(string)), []byte(cert["private_key_pem"].(string)))
	if err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(x.dataDir, "agent-ca.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	url := x.agent + "/t/default/pki/identity"
	for _, mode := range []string{"full", "resumed"} {
		b.Run(mode, func(b *testing.B) {
			tc := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
			if mode == "resumed" {
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(64)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("identity: %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
