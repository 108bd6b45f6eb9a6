package apptest

import (
	"crypto/tls"
	"testing"
)

// Issued is a certificate the API issued (POST …/certificates).
type Issued struct {
	Serial         string `json:"serial"`
	SPIFFEID       string `json:"spiffe_id"`
	CertificatePEM string `json:"certificate_pem"`
	ChainPEM       string `json:"chain_pem"`
	PrivateKeyPEM  string `json:"private_key_pem"`
}

// KeyPair is the certificate chain with keyPEM (default: the issued
// private key).
func (i Issued) KeyPair(t testing.TB, keyPEM string) tls.Certificate {
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
