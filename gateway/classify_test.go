package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func selfSigned(t *testing.T, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// TestClassify: chains to the pool are trusted, lone valid self-signed
// certificates are self-signed, and everything else is refused — expired
// self-signed, forged self-signatures, a stranger's chain, garbage, and any
// chain when there is no pool (never the system roots).
func TestClassify(t *testing.T) {
	ca, caKey := selfSigned(t, time.Now().Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, leafKey.Public(), caKey)
	if k, err := classify([][]byte{leafDER}, pool); err != nil || !k.trusted || k.selfSigned || k.thumbprint == "" {
		t.Fatalf("trusted leaf: %+v %v", k, err)
	}
	if _, err := classify([][]byte{leafDER}, nil); err == nil {
		t.Fatal("a chain was trusted without a pool")
	}
	other, _ := selfSigned(t, time.Now().Add(time.Hour))
	if k, err := classify([][]byte{other.Raw}, pool); err != nil || k.trusted || !k.selfSigned {
		t.Fatalf("self-signed: %+v %v", k, err)
	}
	if _, err := classify([][]byte{other.Raw, ca.Raw}, pool); err == nil {
		t.Fatal("a self-signed certificate with extra chain was accepted")
	}
	expired, _ := selfSigned(t, time.Now().Add(-time.Minute))
	if _, err := classify([][]byte{expired.Raw}, pool); err == nil {
		t.Fatal("an expired self-signed certificate was accepted")
	}
	forged := append([]byte(nil), other.Raw...)
	forged[len(forged)-3] ^= 0xff // inside the signature
	if _, err := classify([][]byte{forged}, pool); err == nil {
		t.Fatal("a forged self-signature was accepted")
	}
	stranger, strangerKey := selfSigned(t, time.Now().Add(time.Hour))
	sDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, stranger, leafKey.Public(), strangerKey)
	if _, err := classify([][]byte{sDER, stranger.Raw}, pool); err == nil {
		t.Fatal("a stranger's chain was accepted")
	}
	if _, err := classify([][]byte{[]byte("garbage")}, pool); err == nil {
		t.Fatal("garbage was accepted")
	}
}
