package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"testing"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/pki"
)

// FuzzParseCSR: untrusted certificate requests are refused with an
// invalid-argument error or accepted only with the expected SAN.
func FuzzParseCSR(f *testing.F) {
	want, _ := url.Parse("spiffe://xavyo.local/t/0196f3a0-0000-7000-8000-000000000001/agent/0196f3a0-0000-7000-8000-000000000002")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tmpl := range []*x509.CertificateRequest{{}, {URIs: []*url.URL{want}}, {DNSNames: []string{"x"}}} {
		der, _ := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	}
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
	f.Fuzz(func(t *testing.T, s string) {
		csr, err := pki.ParseCSR(s, want)
		if err != nil {
			if apperr.KindOf(err) != apperr.KindInvalidArgument {
				t.Fatalf("error of kind %s: %v", apperr.KindOf(err), err)
			}
			return
		}
		if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 {
			t.Fatal("accepted a CSR with DNS, IP or email names")
		}
		for _, u := range csr.URIs {
			if u.String() != want.String() {
				t.Fatalf("accepted a foreign URI %s", u)
			}
		}
		if csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose signature does not verify")
		}
	})
}
