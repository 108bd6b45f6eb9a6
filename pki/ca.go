// Package pki is xavyo's built-in CA: an embedded smallstep authority
// signing short-lived X.509 certificates for NHIs with SPIFFE IDs, its
// issued certificates, revocations and CRL kept in our store, root and
// intermediate keys sealed under the KEK. One root and one intermediate
// serve the deployment (docs/design/0005-pki.md says why).
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
)

// CertificateEvent is the change-event kind of issued certificates (the
// ID is the serial).
const CertificateEvent = "pki.certificate"

// Config configures the CA.
type Config struct {
	DB          *store.DB
	Sealer      *seal.Sealer
	TrustDomain string
	// CRLURL is where the CRL is served; leaves name it as their
	// distribution point and the CRL as its issuing distribution point.
	CRLURL string
	// Audit records issuance and revocation.
	Audit  audit.Recorder
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CheckAndSetDefaults validates and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DB == nil || c.Sealer == nil || c.TrustDomain == "" || c.CRLURL == "" || c.Audit == nil {
		return errors.New("pki: DB, Sealer, TrustDomain, CRLURL and Audit are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

type material struct {
	root, inter           *x509.Certificate
	interKey              crypto.Signer
	interID               uuid.UUID
	previousRoots         []*x509.Certificate
	previousIntermediates []*x509.Certificate
	auth                  *authority.Authority
}

// CA issues and revokes certificates.
type CA struct {
	cfg Config
	db  *authDB
	mu  sync.RWMutex
	cur *material
}

// New loads the CA material, creating it at first start (idempotent
// across replicas), and starts the embedded authority.
func New(ctx context.Context, cfg Config) (*CA, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	c := &CA{cfg: cfg, db: &authDB{db: cfg.DB}}
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	if err := c.Reload(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

const (
	rootLifetime  = 10 * 365 * 24 * time.Hour
	interLifetime = 2 * 365 * 24 * time.Hour
)

func aad(id uuid.UUID) []byte { return []byte("pki_authority:" + id.String()) }

// ensure creates a root and an intermediate when there is no active one.
func (c *CA) ensure(ctx context.Context) error {
	return c.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		n, err := countActiveIntermediates(ctx, tx)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		return c.create(ctx, tx, nil)
	})
}

// create makes a root (unless one is given) and an intermediate under it,
// both active.
func (c *CA) create(ctx context.Context, tx *store.Tx, root *struct {
	cert *x509.Certificate
	key  crypto.Signer
}) error {
	now := c.cfg.Now()
	if root == nil {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "xavyo root CA", Organization: []string{c.cfg.TrustDomain}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(rootLifetime), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, MaxPathLen: 1}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return err
		}
		cert, _ := x509.ParseCertificate(der)
		if err := c.insert(ctx, tx, "root", cert, key); err != nil {
			return err
		}
		root = &struct {
			cert *x509.Certificate
			key  crypto.Signer
		}{cert, key}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "xavyo intermediate CA", Organization: []string{c.cfg.TrustDomain}},
		NotBefore: now.Add(-time.Hour), NotAfter: minTime(now.Add(interLifetime), root.cert.NotAfter), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, MaxPathLenZero: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, key.Public(), root.key)
	if err != nil {
		return err
	}
	cert, _ := x509.ParseCertificate(der)
	return c.insert(ctx, tx, "intermediate", cert, key)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func (c *CA) insert(ctx context.Context, tx *store.Tx, kind string, cert *x509.Certificate, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	id := uuid.Must(uuid.NewV7())
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return insertAuthority(ctx, tx, id, kind, pemCert, c.cfg.Sealer.Seal(der, aad(id)), cert.NotAfter)
}

// Reload reads the CA material and rebuilds the embedded authority (at
// start and after a rotation).
func (c *CA) Reload(ctx context.Context) error {
	m := &material{}
	err := c.cfg.DB.SystemRead(ctx, func(tx *store.Tx) error {
		auths, err := liveAuthorities(ctx, tx)
		if err != nil {
			return err
		}
		for _, au := range auths {
			id, kind, status, certPEM, sealed := au.id, au.kind, au.status, au.certPEM, au.sealed
			b, _ := pem.Decode([]byte(certPEM))
			if b == nil {
				return fmt.Errorf("pki: authority %s is not PEM", id)
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return err
			}
			switch {
			case kind == "root" && status == "active":
				m.root = cert
			case kind == "root":
				m.previousRoots = append(m.previousRoots, cert)
			case kind == "intermediate" && status == "active":
				raw, err := c.cfg.Sealer.Open(sealed, aad(id))
				if err != nil {
					return fmt.Errorf("pki: intermediate key: %w", err)
				}
				k, err := x509.ParsePKCS8PrivateKey(raw)
				if err != nil {
					return err
				}
				m.inter, m.interKey, m.interID = cert, k.(crypto.Signer), id
			default:
				m.previousIntermediates = append(m.previousIntermediates, cert)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if m.root == nil || m.inter == nil {
		return errors.New("pki: no active root and intermediate")
	}
	roots := append([]*x509.Certificate{m.root}, m.previousRoots...)
	m.auth, err = authority.NewEmbedded(
		authority.WithConfig(&config.Config{CRL: &config.CRLConfig{Enabled: true, GenerateOnRevoke: true,
			CacheDuration: &provisioner.Duration{Duration: 24 * time.Hour}, IDPurl: c.cfg.CRLURL}}),
		authority.WithX509RootCerts(roots...),
		authority.WithX509Signer(m.inter, m.interKey),
		authority.WithDatabase(c.db),
		authority.WithQuietInit(),
	)
	if err != nil {
		return fmt.Errorf("pki: start authority: %w", err)
	}
	c.mu.Lock()
	c.cur = m
	c.mu.Unlock()
	return nil
}

func (c *CA) material() *material {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur
}

// Roots returns the trusted roots: the active one and any previous ones
// still in their overlap.
func (c *CA) Roots() []*x509.Certificate {
	m := c.material()
	return append([]*x509.Certificate{m.root}, m.previousRoots...)
}

// Intermediates returns the active and previous intermediates.
func (c *CA) Intermediates() []*x509.Certificate {
	m := c.material()
	return append([]*x509.Certificate{m.inter}, m.previousIntermediates...)
}

// Pool returns a pool of the trusted roots, for the agent plane's
// client-certificate verification.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range c.Roots() {
		p.AddCert(r)
	}
	return p
}

// BundlePEM is the trust bundle in PEM (roots).
func (c *CA) BundlePEM() []byte {
	var b bytes.Buffer
	for _, r := range c.Roots() {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	return b.Bytes()
}

// Rotate replaces the intermediate (and the root too when newRoot): the
// previous ones stay trusted — in the bundle and for verification — until
// retired, so certificates already issued keep working.
func (c *CA) Rotate(ctx context.Context, newRoot bool) error {
	m := c.material()
	err := c.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		if err := demoteActive(ctx, tx, newRoot); err != nil {
			return err
		}
		if newRoot {
			return c.create(ctx, tx, nil)
		}
		id, sealed, err := activeRootKey(ctx, tx)
		if err != nil {
			return err
		}
		raw, err := c.cfg.Sealer.Open(sealed, aad(id))
		if err != nil {
			return err
		}
		k, err := x509.ParsePKCS8PrivateKey(raw)
		if err != nil {
			return err
		}
		return c.create(ctx, tx, &struct {
			cert *x509.Certificate
			key  crypto.Signer
		}{m.root, k.(crypto.Signer)})
	})
	if err != nil {
		return err
	}
	return c.Reload(ctx)
}

// RetirePrevious stops trusting previous roots and intermediates.
func (c *CA) RetirePrevious(ctx context.Context) error {
	if err := c.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		return retirePrevious(ctx, tx)
	}); err != nil {
		return err
	}
	return c.Reload(ctx)
}

// CRL returns the current CRL (DER), generating one if none is stored.
func (c *CA) CRL() ([]byte, error) {
	a := c.material().auth
	info, err := a.GetCertificateRevocationList()
	if err != nil || info == nil || len(info.Data) == 0 {
		if err := a.GenerateCertificateRevocationList(); err != nil {
			return nil, err
		}
		if info, err = a.GetCertificateRevocationList(); err != nil {
			return nil, err
		}
	}
	return info.Data, nil
}

// PEM encodes a DER certificate.
func PEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// RunReload follows CA rotations made by other replicas: it reloads when
// the active intermediate changes, until ctx ends.
func (c *CA) RunReload(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var id uuid.UUID
		err := c.cfg.DB.SystemRead(ctx, func(tx *store.Tx) error {
			var err error
			id, err = activeIntermediate(ctx, tx)
			return err
		})
		if err != nil || id == c.material().interID {
			continue
		}
		if err := c.Reload(ctx); err != nil {
			c.cfg.Logger.Error("reloading the CA failed", "error", err)
		}
	}
}
