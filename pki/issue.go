package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/pki/spiffe"
)

// MaxCSR bounds a certificate request in bytes.
const MaxCSR = 16 << 10

// IssueInput asks for a certificate: from a CSR (PEM), or with a key the
// server generates and returns once.
type IssueInput struct {
	CSR           string `json:"csr,omitempty" doc:"PEM certificate request; its key is certified, its subject and SANs are ignored unless they differ from the NHI's SPIFFE ID (then refused)"`
	LifetimeHours int    `json:"lifetime_hours,omitempty" doc:"1-720; default the tenant's credentials.certificate_hours (24)"`
}

// Issued is a new certificate.
type Issued struct {
	Serial         string    `json:"serial"`
	SPIFFEID       string    `json:"spiffe_id"`
	Fingerprint    string    `json:"fingerprint" doc:"x5t#S256: base64url SHA-256 of the DER certificate"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	CertificatePEM string    `json:"certificate_pem"`
	ChainPEM       string    `json:"chain_pem" doc:"the certificate followed by the intermediate"`
	PrivateKeyPEM  string    `json:"private_key_pem,omitempty" doc:"only when the server generated the key: shown once, never stored"`
}

// Certificate describes an issued certificate.
type Certificate struct {
	Serial           string     `json:"serial"`
	NHIID            uuid.UUID  `json:"nhi_id"`
	SPIFFEID         string     `json:"spiffe_id"`
	Fingerprint      string     `json:"fingerprint"`
	NotBefore        time.Time  `json:"not_before"`
	NotAfter         time.Time  `json:"not_after"`
	IssuedAt         time.Time  `json:"issued_at"`
	RenewedFrom      *string    `json:"renewed_from,omitempty"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason *string    `json:"revocation_reason,omitempty"`
}

// Fingerprint is the x5t#S256 of a certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParseCSR reads and checks an untrusted PEM certificate request: size,
// signature, key strength, and SANs (only the expected SPIFFE ID, if any).
func ParseCSR(raw string, want *url.URL) (*x509.CertificateRequest, error) {
	if len(raw) > MaxCSR {
		return nil, apperr.Invalid("csr", fmt.Sprintf("must be at most %d bytes", MaxCSR))
	}
	b, rest := pem.Decode([]byte(raw))
	if b == nil || b.Type != "CERTIFICATE REQUEST" || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, apperr.Invalid("csr", "must be one PEM block of type CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, apperr.Invalid("csr", "is not a valid certificate request")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, apperr.Invalid("csr", "its signature does not verify")
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, apperr.Invalid("csr", "ECDSA keys must be P-256 or P-384")
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, apperr.Invalid("csr", "RSA keys must be at least 2048 bits")
		}
	case ed25519.PublicKey:
	default:
		return nil, apperr.Invalid("csr", "the key must be ECDSA, RSA or Ed25519")
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 {
		return nil, apperr.Invalid("csr", "must not ask for DNS, IP or email names: the certificate carries the NHI's SPIFFE ID only")
	}
	for _, u := range csr.URIs {
		if u.String() != want.String() {
			return nil, apperr.Invalid("csr", "asks for a URI that is not this NHI's SPIFFE ID")
		}
	}
	return csr, nil
}

// Issue certifies a key for an active NHI of the tenant in ctx.
func (c *CA) Issue(ctx context.Context, n *nhi.NHI, in IssueInput, defaultLifetime time.Duration, renewedFrom string) (*Issued, error) {
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return nil, store.ErrNoTenant
	}
	if n.Status != nhi.StatusActive {
		return nil, apperr.New(apperr.KindConflict, "only active NHIs get certificates (this one is %s)", n.Status)
	}
	lifetime := defaultLifetime
	if in.LifetimeHours != 0 {
		if in.LifetimeHours < 1 || in.LifetimeHours > 720 {
			return nil, apperr.Invalid("lifetime_hours", "must be from 1 to 720")
		}
		lifetime = time.Duration(in.LifetimeHours) * time.Hour
	}
	id := spiffe.ID{TrustDomain: c.cfg.TrustDomain, TenantID: tid, Kind: n.Kind, Name: n.ID.String()}
	out := &Issued{SPIFFEID: id.String()}
	var csr *x509.CertificateRequest
	var err error
	if in.CSR != "" {
		if csr, err = ParseCSR(in.CSR, id.URL()); err != nil {
			return nil, err
		}
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: n.Slug}}, key)
		if err != nil {
			return nil, err
		}
		csr, _ = x509.ParseCertificateRequest(der)
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		out.PrivateKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	}
	m := c.material()
	now := c.cfg.Now()
	notAfter := minTime(now.Add(lifetime), m.inter.NotAfter)
	modifier := provisioner.CertificateModifierFunc(func(crt *x509.Certificate, _ provisioner.SignOptions) error {
		crt.Subject = pkix.Name{CommonName: n.Slug, Organization: []string{tid.String()}}
		crt.NotBefore, crt.NotAfter = now.Add(-time.Minute), notAfter
		crt.URIs = []*url.URL{id.URL()}
		crt.DNSNames, crt.IPAddresses, crt.EmailAddresses = nil, nil, nil
		crt.KeyUsage = x509.KeyUsageDigitalSignature
		crt.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		crt.UnknownExtKeyUsage = nil
		crt.IsCA, crt.BasicConstraintsValid = false, true
		crt.CRLDistributionPoints = []string{c.cfg.CRLURL}
		return nil
	})
	chain, err := m.auth.SignWithContext(provisioner.NewContextWithMethod(ctx, provisioner.SignMethod), csr, provisioner.SignOptions{}, modifier)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindInvalidArgument, "the certificate request was refused")
	}
	leaf := chain[0]
	out.Serial = leaf.SerialNumber.String() // decimal, as the authority's CRL expects
	out.Fingerprint = Fingerprint(leaf.Raw)
	out.NotBefore, out.NotAfter = leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	out.CertificatePEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
	out.ChainPEM = out.CertificatePEM
	for _, ic := range chain[1:] {
		out.ChainPEM += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Raw}))
	}
	err = c.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var from any
		if renewedFrom != "" {
			from = renewedFrom
		}
		if err := insertCertificate(ctx, tx, n.ID, out, from); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: CertificateEvent, ID: out.Serial, Version: 1},
			map[string]any{"nhi_id": n.ID, "not_after": out.NotAfter}); err != nil {
			return err
		}
		action := "pki.certificate.issue"
		if renewedFrom != "" {
			action = "pki.certificate.renew"
		}
		return audit.RecordChangeTx(ctx, tx, c.cfg.Audit, action, "certificate", out.Serial, map[string]any{"nhi_id": n.ID,
			"spiffe_id": out.SPIFFEID, "not_after": out.NotAfter, "renewed_from": renewedFrom, "server_generated_key": out.PrivateKeyPEM != ""})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Certificates lists an NHI's certificates, newest first.
func (c *CA) Certificates(ctx context.Context, nhiID uuid.UUID) ([]Certificate, error) {
	var out []Certificate
	err := c.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = certificatesOf(ctx, tx, nhiID)
		return err
	})
	return out, err
}

// RevokeInput revokes a certificate.
type RevokeInput struct {
	Reason string `json:"reason"`
	// ReasonCode is an RFC 5280 CRLReason (default 0, unspecified; 1 key compromise).
	ReasonCode int `json:"reason_code,omitempty"`
}

// Revoke revokes one of an NHI's certificates in the tenant of ctx.
func (c *CA) Revoke(ctx context.Context, nhiID uuid.UUID, serial string, in RevokeInput) error {
	if strings.TrimSpace(in.Reason) == "" || len(in.Reason) > 500 {
		return apperr.Invalid("reason", "a revocation needs a reason (at most 500 characters)")
	}
	if in.ReasonCode < 0 || in.ReasonCode > 10 || in.ReasonCode == 7 {
		return apperr.Invalid("reason_code", "must be an RFC 5280 CRLReason (0-10, not 7)")
	}
	// The revocation, its change event and its audit record commit
	// together; the CRL is regenerated from the store after.
	err := c.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		revoked, err := lockCertificate(ctx, tx, nhiID, serial)
		if store.NoRows(err) {
			return apperr.NotFound("certificate")
		}
		if err != nil {
			return err
		}
		if revoked != nil {
			return apperr.New(apperr.KindConflict, "the certificate is already revoked")
		}
		if err := revokeCertificate(ctx, tx, serial, store.Now(), in.Reason, in.ReasonCode); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: CertificateEvent, ID: serial, Version: 2},
			map[string]any{"revoked": true, "reason": in.Reason}); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, c.cfg.Audit, "pki.certificate.revoke", "certificate", serial, map[string]any{"nhi_id": nhiID,
			"reason": in.Reason, "reason_code": in.ReasonCode})
	})
	if err != nil {
		return err
	}
	if err := c.material().auth.GenerateCertificateRevocationList(); err != nil {
		return apperr.Wrap(err, apperr.KindInternal, "the certificate is revoked, but the CRL could not be regenerated")
	}
	return nil
}
