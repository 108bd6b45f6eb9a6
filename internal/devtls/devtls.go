// Package devtls provides the agent plane's development TLS material when
// no certificate is configured: a CA and a server certificate generated at
// first start and kept in the database, sealed under the KEK, so every
// replica serves the same certificate and a restart keeps it.
package devtls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
)

const (
	caName     = "agent_dev_ca"
	serverName = "agent_dev_server"
)

// Material is the development TLS material.
type Material struct {
	// Server is the agent plane's certificate, chained to CA.
	Server tls.Certificate
	// CA verifies Server (and, in development, client certificates).
	CA *x509.Certificate
	// CAPEM is CA in PEM, for clients (curl --cacert).
	CAPEM []byte
}

type pair struct {
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
}

// Ensure loads the material, creating the CA on first start and
// (re)issuing the server certificate when it is missing, near expiry, or
// does not cover hosts. Safe under concurrent replicas.
func Ensure(ctx context.Context, db *store.DB, s *seal.Sealer, hosts []string) (*Material, error) {
	var m *Material
	err := db.SystemTx(ctx, func(tx *store.Tx) error {
		ca, err := loadOrCreate(ctx, tx, s, caName, func() (*pair, error) { return newCA() })
		if err != nil {
			return err
		}
		caCert, caKey, err := parse(ca)
		if err != nil {
			return err
		}
		srv, err := load(ctx, tx, s, serverName)
		if err != nil {
			return err
		}
		if srv == nil || !covers(srv, hosts) {
			if srv, err = newServer(caCert, caKey, hosts); err != nil {
				return err
			}
			if err := put(ctx, tx, s, serverName, srv); err != nil {
				return err
			}
		}
		tc, err := tls.X509KeyPair([]byte(srv.CertPEM+ca.CertPEM), []byte(srv.KeyPEM))
		if err != nil {
			return err
		}
		m = &Material{Server: tc, CA: caCert, CAPEM: []byte(ca.CertPEM)}
		return nil
	})
	return m, err
}

func loadOrCreate(ctx context.Context, tx *store.Tx, s *seal.Sealer, name string, mk func() (*pair, error)) (*pair, error) {
	p, err := load(ctx, tx, s, name)
	if err != nil || p != nil {
		return p, err
	}
	if p, err = mk(); err != nil {
		return nil, err
	}
	if err := put(ctx, tx, s, name, p); err != nil {
		return nil, err
	}
	// Another replica may have won the race: use what is stored.
	return load(ctx, tx, s, name)
}

func load(ctx context.Context, tx *store.Tx, s *seal.Sealer, name string) (*pair, error) {
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT ciphertext FROM system_secrets WHERE name = $1 FOR UPDATE`, name).Scan(&sealed)
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := s.Open(sealed, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("devtls: %s: %w", name, err)
	}
	var p pair
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("devtls: %s: %w", name, err)
	}
	return &p, nil
}

func put(ctx context.Context, tx *store.Tx, s *seal.Sealer, name string, p *pair) error {
	raw, _ := json.Marshal(p)
	now := store.Now()
	_, err := tx.Exec(ctx, `INSERT INTO system_secrets (name, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
		name, s.Seal(raw, []byte(name)), now)
	return err
}

func parse(p *pair) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode([]byte(p.CertPEM))
	kb, _ := pem.Decode([]byte(p.KeyPEM))
	if cb == nil || kb == nil {
		return nil, nil, errors.New("devtls: bad PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	return cert, key, err
}

func covers(p *pair, hosts []string) bool {
	cert, _, err := parse(p)
	if err != nil || time.Until(cert.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func encode(der []byte, key *ecdsa.PrivateKey) (*pair, error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &pair{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})),
	}, nil
}

func newCA() (*pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "xavyo development CA", Organization: []string{"xavyo"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return encode(der, key)
}

func newServer(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) (*pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	all := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	slices.Sort(all)
	all = slices.Compact(all)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "xavyo agent plane", Organization: []string{"xavyo"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range all {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return encode(der, key)
}

// Equal reports whether two materials hold the same server certificate.
func (m *Material) Equal(o *Material) bool {
	return o != nil && bytes.Equal(m.Server.Certificate[0], o.Server.Certificate[0])
}
