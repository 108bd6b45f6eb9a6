package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/xavyo/xavyo/internal/store"
)

type issued struct {
	Serial         string `json:"serial"`
	SPIFFEID       string `json:"spiffe_id"`
	CertificatePEM string `json:"certificate_pem"`
	ChainPEM       string `json:"chain_pem"`
	PrivateKeyPEM  string `json:"private_key_pem"`
}

func (i issued) keyPair(t *testing.T, keyPEM string) tls.Certificate {
	t.Helper()
	if keyPEM == "" {
		keyPEM = i.PrivateKeyPEM
	}
	c, err := tls.X509KeyPair([]byte(i.ChainPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mtlsClient presents cert, trusts the agent plane and resumes sessions.
func (h *harness) mtlsClient(cert tls.Certificate) *http.Client {
	base := h.tls.Transport.(*http.Transport).TLSClientConfig.Clone()
	base.Certificates = []tls.Certificate{cert}
	base.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: base}}
}

// freshConn forces a new TLS connection (to test resumption) on c.
func freshConn(c *http.Client) { c.Transport.(*http.Transport).CloseIdleConnections() }

func agentGet(t *testing.T, c *http.Client, url string) (int, []byte, *tls.ConnectionState) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.TLS
}

// TestCertificateLifecycleOverMTLS: issue → an mTLS request identifies the
// agent → revoke → refused, on a resumed TLS session too; renewal over
// mTLS; a suspended agent with a valid certificate is refused; a tenant-A
// certificate at /t/{B}/… is refused; certificates parse as X509-SVIDs
// against the SPIFFE bundle; the CRL lists revocations.
func TestCertificateLifecycleOverMTLS(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			slugA, slugB := uniqueSlug("pa"), uniqueSlug("pb")
			tidA, tokA := tenantAdmin(t, h, slugA)
			tenantAdmin(t, h, slugB)
			_, body := h.doAs(tokA, "GET", "/api/v1/me", nil)
			me := decode[userJSON](t, body)
			resp, body := h.doAs(tokA, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "billing-bot", "name": "Billing bot",
				"owner_id": me.ID, "profile": map[string]any{"agent": map[string]any{"model_provider": "acme", "risk_level": "low"}}})
			expect(t, resp, body, 201, "create agent")
			agent := decode[struct {
				ID           string `json:"id"`
				ClientSecret string `json:"client_secret"`
			}](t, body)
			if !strings.HasPrefix(agent.ClientSecret, "xvs_") {
				t.Fatalf("no client secret: %s", body)
			}

			resp, body = h.doAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
			expect(t, resp, body, 201, "issue")
			cert := decode[issued](t, body)
			wantID := "spiffe://xavyo.local/t/" + tidA + "/agent/" + agent.ID
			if cert.SPIFFEID != wantID || cert.PrivateKeyPEM == "" {
				t.Fatalf("issued %s", body)
			}

			// X509-SVID against the SPIFFE bundle.
			_, bundleJSON, _ := agentGet(t, h.tls, h.agent+"/t/"+slugA+"/pki/bundle.json")
			td := spiffeid.RequireTrustDomainFromString("xavyo.local")
			bundle, err := spiffebundle.Parse(td, bundleJSON)
			if err != nil {
				t.Fatalf("bundle.json: %v %s", err, bundleJSON)
			}
			var chain [][]byte
			for rest := []byte(cert.ChainPEM); ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				chain = append(chain, b.Bytes)
			}
			svidID, _, err := x509svid.ParseAndVerify(chain, bundle)
			if err != nil || svidID.String() != wantID {
				t.Fatalf("X509-SVID: %v %v", svidID, err)
			}

			client := h.mtlsClient(cert.keyPair(t, ""))
			code, body, _ := agentGet(t, client, h.agent+"/t/"+slugA+"/pki/identity")
			if code != 200 || !strings.Contains(string(body), agent.ID) || !strings.Contains(string(body), `"serial":"`+cert.Serial+`"`) {
				t.Fatalf("identity: %d %s", code, body)
			}
			if code, body, _ := agentGet(t, client, h.agent+"/t/"+slugB+"/pki/identity"); code != 403 {
				t.Fatalf("A's certificate at B: %d %s", code, body)
			}

			// Renewal over mTLS with a new key.
			newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newKey)
			csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
			raw, _ := json.Marshal(map[string]string{"csr": csrPEM})
			rresp, err := client.Post(h.agent+"/t/"+slugA+"/pki/renew", "application/json", strings.NewReader(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			rbody, _ := io.ReadAll(rresp.Body)
			rresp.Body.Close()
			if rresp.StatusCode != 201 {
				t.Fatalf("renew: %d %s", rresp.StatusCode, rbody)
			}
			renewed := decode[issued](t, rbody)
			kder, _ := x509.MarshalPKCS8PrivateKey(newKey)
			renewedClient := h.mtlsClient(renewed.keyPair(t, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))))
			if code, body, _ := agentGet(t, renewedClient, h.agent+"/t/"+slugA+"/pki/identity"); code != 200 || !strings.Contains(string(body), renewed.Serial) {
				t.Fatalf("renewed certificate: %d %s", code, body)
			}

			// Revocation holds on a resumed session.
			freshConn(client)
			if _, _, st := agentGet(t, client, h.agent+"/t/"+slugA+"/pki/identity"); !st.DidResume {
				t.Log("note: the second connection did not resume (TLS 1.3 tickets arrive after the first request)")
			}
			resp, body = h.doAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/certificates/"+cert.Serial+"/revoke", map[string]any{"reason": "test", "reason_code": 1})
			expect(t, resp, body, 204, "revoke")
			freshConn(client)
			code, body, st := agentGet(t, client, h.agent+"/t/"+slugA+"/pki/identity")
			if code != 401 {
				t.Fatalf("revoked certificate: %d %s", code, body)
			}
			if !st.DidResume {
				t.Fatal("the check after revocation did not run on a resumed session")
			}
			_, crlDER, _ := agentGet(t, h.tls, h.agent+"/pki/crl")
			crl, err := x509.ParseRevocationList(crlDER)
			if err != nil {
				t.Fatal(err)
			}
			listed := false
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber.String() == cert.Serial {
					listed = true
				}
			}
			if !listed {
				t.Fatal("the CRL does not list the revoked certificate")
			}

			// Suspension refuses a valid certificate; reactivation restores it.
			resp, body = h.doAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/transition", map[string]any{"status": "suspended", "reason": "investigation"})
			expect(t, resp, body, 200, "suspend")
			if code, body, _ := agentGet(t, renewedClient, h.agent+"/t/"+slugA+"/pki/identity"); code != 401 {
				t.Fatalf("suspended agent: %d %s", code, body)
			}
			resp, body = h.doAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/transition", map[string]any{"status": "active", "reason": "cleared"})
			expect(t, resp, body, 200, "reactivate")
			if code, body, _ := agentGet(t, renewedClient, h.agent+"/t/"+slugA+"/pki/identity"); code != 200 {
				t.Fatalf("reactivated agent: %d %s", code, body)
			}
			// A suspended NHI gets no certificate either.
			h.doAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/transition", map[string]any{"status": "suspended", "reason": "again"})
			resp, _ = h.doAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
			if resp.StatusCode != 409 {
				t.Fatalf("issued to a suspended NHI: %d", resp.StatusCode)
			}
		})
	}
}

// TestBadCSRsIssueNothing: malformed, oversized, weak-key and foreign-SAN
// requests are refused with 4xx and nothing is issued.
func TestBadCSRsIssueNothing(t *testing.T) {
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	slug := uniqueSlug("csr")
	_, tok := tenantAdmin(t, h, slug)
	_, body := h.doAs(tok, "GET", "/api/v1/me", nil)
	me := decode[userJSON](t, body)
	_, body = h.doAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "a", "name": "A", "owner_id": me.ID})
	agent := decode[userJSON](t, body)
	csr := func(tmpl *x509.CertificateRequest, key any) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	good := csr(&x509.CertificateRequest{}, p256)
	tampered := []byte(good)
	tampered[len(tampered)/2] ^= 0x01
	cases := map[string]string{
		"not PEM":         "hello",
		"wrong PEM type":  strings.Replace(good, "CERTIFICATE REQUEST", "CERTIFICATE", 2),
		"tampered":        string(tampered),
		"oversized":       good + strings.Repeat("A", 20000),
		"weak curve":      csr(&x509.CertificateRequest{}, p224),
		"DNS SAN":         csr(&x509.CertificateRequest{DNSNames: []string{"evil.example"}}, p256),
		"foreign URI SAN": csr(&x509.CertificateRequest{URIs: []*url.URL{mustURL("spiffe://xavyo.local/t/00000000-0000-0000-0000-000000000001/agent/x")}}, p256),
		"two blocks":      good + good,
	}
	for name, c := range cases {
		resp, body := h.doAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{"csr": c})
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, body := h.doAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{"csr": good, "lifetime_hours": 9999})
	if resp.StatusCode != 400 {
		t.Errorf("lifetime: %d %s", resp.StatusCode, body)
	}
	resp, body = h.doAs(tok, "GET", "/api/v1/nhis/"+agent.ID+"/certificates", nil)
	if resp.StatusCode != 200 || string(body) != "[]\n" && string(body) != "[]" {
		t.Fatalf("something was issued: %s", body)
	}
	resp, body = h.doAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{"csr": good})
	expect(t, resp, body, 201, "the good CSR")
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestMTLSWithOpenSSLAndCurl runs testdata/mtls.sh: keys and CSRs from
// openssl, mTLS from curl, chain and CRL checks by openssl verify.
func TestMTLSWithOpenSSLAndCurl(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	h := start(t, env(t, store.SQLite, dir), nil)
	slug, other := uniqueSlug("sh"), uniqueSlug("sh")
	_, tok := tenantAdmin(t, h, slug)
	tenantAdmin(t, h, other)
	_, body := h.doAs(tok, "GET", "/api/v1/me", nil)
	me := decode[userJSON](t, body)
	resp, body := h.doAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "billing-bot", "name": "Billing", "owner_id": me.ID})
	expect(t, resp, body, 201, "create agent")
	agent := decode[userJSON](t, body)
	cmd := exec.Command("bash", "testdata/mtls.sh")
	cmd.Env = append(os.Environ(), "ADMIN="+h.admin, "AGENT="+h.agent, "AGENT_CA="+filepath.Join(dir, "agent-ca.pem"),
		"TOKEN="+tok, "NHI="+agent.ID, "SLUG="+slug, "OTHER_SLUG="+other, "WORK="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mtls shell test passed") {
		t.Fatalf("mtls.sh: %v\n%s", err, out)
	}
}

// TestReplicasEnforceRevocationWithinASecond runs two servers on one
// PostgreSQL database (two replicas: separate caches and listeners): a
// revocation or suspension made through one is enforced by the other
// within one second.
func TestReplicasEnforceRevocationWithinASecond(t *testing.T) {
	one := start(t, env(t, store.Postgres, t.TempDir()), nil)
	two := start(t, env(t, store.Postgres, t.TempDir()), nil)
	slug := uniqueSlug("rep")
	_, tok := tenantAdmin(t, one, slug)
	_, body := one.doAs(tok, "GET", "/api/v1/me", nil)
	me := decode[userJSON](t, body)
	newAgent := func(s string) (string, *http.Client, string) {
		resp, body := one.doAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": s, "name": s, "owner_id": me.ID})
		expect(t, resp, body, 201, "create agent")
		a := decode[userJSON](t, body)
		resp, body = one.doAs(tok, "POST", "/api/v1/nhis/"+a.ID+"/certificates", map[string]any{})
		expect(t, resp, body, 201, "issue")
		c := decode[issued](t, body)
		// The second replica's trust: its own development CA for the
		// server, the shared CA for clients.
		client := two.mtlsClient(c.keyPair(t, ""))
		if code, body, _ := agentGet(t, client, two.agent+"/t/"+slug+"/pki/identity"); code != 200 {
			t.Fatalf("replica two before: %d %s", code, body)
		}
		return a.ID, client, c.Serial
	}
	waitRefused := func(what string, client *http.Client) {
		t.Helper()
		start := time.Now()
		for {
			freshConn(client)
			code, _, _ := agentGet(t, client, two.agent+"/t/"+slug+"/pki/identity")
			if code == 401 {
				t.Logf("%s enforced by the other replica after %v", what, time.Since(start))
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s not enforced by the other replica within a second (status %d)", what, code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	id, client, serial := newAgent("revoked-bot")
	resp, body := one.doAs(tok, "POST", "/api/v1/nhis/"+id+"/certificates/"+serial+"/revoke", map[string]any{"reason": "replica test"})
	expect(t, resp, body, 204, "revoke on replica one")
	waitRefused("revocation", client)

	id, client, _ = newAgent("suspended-bot")
	resp, body = one.doAs(tok, "POST", "/api/v1/nhis/"+id+"/transition", map[string]any{"status": "suspended", "reason": "replica test"})
	expect(t, resp, body, 200, "suspend on replica one")
	waitRefused("suspension", client)
}
