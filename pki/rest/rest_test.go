package rest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// freshConn forces a new TLS connection (to test resumption) on c.
func freshConn(c *http.Client) { c.Transport.(*http.Transport).CloseIdleConnections() }

// TestCertificateLifecycleOverMTLS: issue → an mTLS request identifies the
// agent → revoke → refused, on a resumed TLS session too; renewal over
// mTLS; a suspended agent with a valid certificate is refused; a tenant-A
// certificate at /t/{B}/… is refused; certificates parse as X509-SVIDs
// against the SPIFFE bundle; the CRL lists revocations.
func TestCertificateLifecycleOverMTLS(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
			slugA, slugB := apptest.UniqueSlug("pa"), apptest.UniqueSlug("pb")
			tidA, tokA := h.TenantAdmin(t, slugA)
			h.TenantAdmin(t, slugB)
			_, body := h.DoAs(tokA, "GET", "/api/v1/me", nil)
			me := apptest.Decode[userJSON](t, body)
			resp, body := h.DoAs(tokA, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "billing-bot", "name": "Billing bot",
				"owner_id": me.ID, "profile": map[string]any{"agent": map[string]any{"model_provider": "acme", "risk_level": "low"}}})
			apptest.Expect(t, resp, body, 201, "create agent")
			agent := apptest.Decode[struct {
				ID           string `json:"id"`
				ClientSecret string `json:"client_secret"`
			}](t, body)
			if !strings.HasPrefix(agent.ClientSecret, "xvs_") {
				t.Fatalf("no client secret: %s", body)
			}

			resp, body = h.DoAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
			apptest.Expect(t, resp, body, 201, "issue")
			cert := apptest.Decode[apptest.Issued](t, body)
			wantID := "spiffe://xavyo.local/t/" + tidA + "/agent/" + agent.ID
			if cert.SPIFFEID != wantID || cert.PrivateKeyPEM == "" {
				t.Fatalf("issued %s", body)
			}

			// X509-SVID against the SPIFFE bundle.
			_, bundleJSON, _ := apptest.Get(t, h.TLS, h.Agent+"/t/"+slugA+"/pki/bundle.json")
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

			client := h.MTLSClient(cert.KeyPair(t, ""))
			code, body, _ := apptest.Get(t, client, h.Agent+"/t/"+slugA+"/pki/identity")
			if code != 200 || !strings.Contains(string(body), agent.ID) || !strings.Contains(string(body), `"serial":"`+cert.Serial+`"`) {
				t.Fatalf("identity: %d %s", code, body)
			}
			if code, body, _ := apptest.Get(t, client, h.Agent+"/t/"+slugB+"/pki/identity"); code != 403 {
				t.Fatalf("A's certificate at B: %d %s", code, body)
			}

			// Renewal over mTLS with a new key.
			newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newKey)
			csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
			raw, _ := json.Marshal(map[string]string{"csr": csrPEM})
			rresp, err := client.Post(h.Agent+"/t/"+slugA+"/pki/renew", "application/json", strings.NewReader(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			rbody, _ := io.ReadAll(rresp.Body)
			rresp.Body.Close()
			if rresp.StatusCode != 201 {
				t.Fatalf("renew: %d %s", rresp.StatusCode, rbody)
			}
			renewed := apptest.Decode[apptest.Issued](t, rbody)
			kder, _ := x509.MarshalPKCS8PrivateKey(newKey)
			renewedClient := h.MTLSClient(renewed.KeyPair(t, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))))
			if code, body, _ := apptest.Get(t, renewedClient, h.Agent+"/t/"+slugA+"/pki/identity"); code != 200 || !strings.Contains(string(body), renewed.Serial) {
				t.Fatalf("renewed certificate: %d %s", code, body)
			}

			// Revocation holds on a resumed session.
			freshConn(client)
			if _, _, st := apptest.Get(t, client, h.Agent+"/t/"+slugA+"/pki/identity"); !st.DidResume {
				t.Log("note: the second connection did not resume (TLS 1.3 tickets arrive after the first request)")
			}
			resp, body = h.DoAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/certificates/"+cert.Serial+"/revoke", map[string]any{"reason": "test", "reason_code": 1})
			apptest.Expect(t, resp, body, 204, "revoke")
			freshConn(client)
			code, body, st := apptest.Get(t, client, h.Agent+"/t/"+slugA+"/pki/identity")
			if code != 401 {
				t.Fatalf("revoked certificate: %d %s", code, body)
			}
			if !st.DidResume {
				t.Fatal("the check after revocation did not run on a resumed session")
			}
			_, crlDER, _ := apptest.Get(t, h.TLS, h.Agent+"/pki/crl")
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
			resp, body = h.DoAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/transition", map[string]any{"status": "suspended", "reason": "investigation"})
			apptest.Expect(t, resp, body, 200, "suspend")
			if code, body, _ := apptest.Get(t, renewedClient, h.Agent+"/t/"+slugA+"/pki/identity"); code != 401 {
				t.Fatalf("suspended agent: %d %s", code, body)
			}
			resp, body = h.DoAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/transition", map[string]any{"status": "active", "reason": "cleared"})
			apptest.Expect(t, resp, body, 200, "reactivate")
			if code, body, _ := apptest.Get(t, renewedClient, h.Agent+"/t/"+slugA+"/pki/identity"); code != 200 {
				t.Fatalf("reactivated agent: %d %s", code, body)
			}
			// A suspended NHI gets no certificate either.
			h.DoAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/transition", map[string]any{"status": "suspended", "reason": "again"})
			resp, _ = h.DoAs(tokA, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{})
			if resp.StatusCode != 409 {
				t.Fatalf("issued to a suspended NHI: %d", resp.StatusCode)
			}
		})
	}
}

// TestBadCSRsIssueNothing: malformed, oversized, weak-key and foreign-SAN
// requests are refused with 4xx and nothing is issued.
func TestBadCSRsIssueNothing(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("csr")
	_, tok := h.TenantAdmin(t, slug)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	_, body = h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "a", "name": "A", "owner_id": me.ID})
	agent := apptest.Decode[userJSON](t, body)
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
		resp, body := h.DoAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{"csr": c})
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{"csr": good, "lifetime_hours": 9999})
	if resp.StatusCode != 400 {
		t.Errorf("lifetime: %d %s", resp.StatusCode, body)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/nhis/"+agent.ID+"/certificates", nil)
	if resp.StatusCode != 200 || string(body) != "[]\n" && string(body) != "[]" {
		t.Fatalf("something was issued: %s", body)
	}
	resp, body = h.DoAs(tok, "POST", "/api/v1/nhis/"+agent.ID+"/certificates", map[string]any{"csr": good})
	apptest.Expect(t, resp, body, 201, "the good CSR")
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
	h := apptest.Start(t, apptest.Env(t, store.SQLite, dir), apptest.Options{})
	slug, other := apptest.UniqueSlug("sh"), apptest.UniqueSlug("sh")
	_, tok := h.TenantAdmin(t, slug)
	h.TenantAdmin(t, other)
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	resp, body := h.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "billing-bot", "name": "Billing", "owner_id": me.ID})
	apptest.Expect(t, resp, body, 201, "create agent")
	agent := apptest.Decode[userJSON](t, body)
	cmd := exec.Command("bash", "testdata/mtls.sh")
	cmd.Env = append(os.Environ(), "ADMIN="+h.Admin, "AGENT="+h.Agent, "AGENT_CA="+filepath.Join(dir, "agent-ca.pem"),
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
	one := apptest.Start(t, apptest.Env(t, store.Postgres, t.TempDir()), apptest.Options{})
	two := apptest.Start(t, apptest.Env(t, store.Postgres, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("rep")
	_, tok := one.TenantAdmin(t, slug)
	_, body := one.DoAs(tok, "GET", "/api/v1/me", nil)
	me := apptest.Decode[userJSON](t, body)
	newAgent := func(s string) (string, *http.Client, string) {
		resp, body := one.DoAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": s, "name": s, "owner_id": me.ID})
		apptest.Expect(t, resp, body, 201, "create agent")
		a := apptest.Decode[userJSON](t, body)
		resp, body = one.DoAs(tok, "POST", "/api/v1/nhis/"+a.ID+"/certificates", map[string]any{})
		apptest.Expect(t, resp, body, 201, "issue")
		c := apptest.Decode[apptest.Issued](t, body)
		// The second replica's trust: its own development CA for the
		// server, the shared CA for clients.
		client := two.MTLSClient(c.KeyPair(t, ""))
		if code, body, _ := apptest.Get(t, client, two.Agent+"/t/"+slug+"/pki/identity"); code != 200 {
			t.Fatalf("replica two before: %d %s", code, body)
		}
		return a.ID, client, c.Serial
	}
	waitRefused := func(what string, client *http.Client) {
		t.Helper()
		start := time.Now()
		for {
			freshConn(client)
			code, _, _ := apptest.Get(t, client, two.Agent+"/t/"+slug+"/pki/identity")
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
	resp, body := one.DoAs(tok, "POST", "/api/v1/nhis/"+id+"/certificates/"+serial+"/revoke", map[string]any{"reason": "replica test"})
	apptest.Expect(t, resp, body, 204, "revoke on replica one")
	waitRefused("revocation", client)

	id, client, _ = newAgent("suspended-bot")
	resp, body = one.DoAs(tok, "POST", "/api/v1/nhis/"+id+"/transition", map[string]any{"status": "suspended", "reason": "replica test"})
	apptest.Expect(t, resp, body, 200, "suspend on replica one")
	waitRefused("suspension", client)
}

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type userJSON struct {
	ID string `json:"id"`
}
