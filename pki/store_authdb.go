package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql/database"
	"golang.org/x/crypto/ssh"

	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// authDB adapts our store to the embedded authority's database: issued
// certificates, revocations and the CRL live in our tables. The authority
// serves every tenant, so this adapter works on the store's system path;
// tenant scoping is enforced by the service before it calls the authority.
type authDB struct {
	db *store.DB
}

var (
	_ db.AuthDB                      = (*authDB)(nil)
	_ db.CertificateRevocationListDB = (*authDB)(nil)
	_ db.CertificateStorer           = (*authDB)(nil)
)

func (a *authDB) ctx() context.Context { return context.Background() }

// IsRevoked reports whether a serial is revoked.
func (a *authDB) IsRevoked(sn string) (bool, error) {
	var revoked *time.Time
	err := a.db.SystemRead(a.ctx(), func(tx *store.Tx) error {
		return tx.QueryRow(a.ctx(), `SELECT revoked_at FROM pki_certificates WHERE serial = $1`, sn).Scan(&revoked)
	})
	if store.NoRows(err) {
		return false, nil
	}
	return revoked != nil, err
}

// Revoke records a revocation and tells every replica.
func (a *authDB) Revoke(rci *db.RevokedCertificateInfo) error {
	return a.db.SystemTx(a.ctx(), func(tx *store.Tx) error {
		var tenant uuid.UUID
		var revoked *time.Time
		err := tx.QueryRow(a.ctx(), `SELECT tenant_id, revoked_at FROM pki_certificates WHERE serial = $1 FOR UPDATE`, rci.Serial).Scan(&tenant, &revoked)
		if store.NoRows(err) {
			return database.ErrNotFound
		}
		if err != nil {
			return err
		}
		if revoked != nil {
			return db.ErrAlreadyExists
		}
		if _, err := tx.Exec(a.ctx(), `UPDATE pki_certificates SET revoked_at = $1, revocation_reason = $2, revocation_code = $3 WHERE serial = $4`,
			rci.RevokedAt.UTC().Truncate(time.Microsecond), rci.Reason, rci.ReasonCode, rci.Serial); err != nil {
			return err
		}
		return events.Publish(a.ctx(), tx, events.Change{TenantID: tenant, Kind: CertificateEvent, ID: rci.Serial, Version: 2},
			map[string]any{"revoked": true, "reason": rci.Reason})
	})
}

// GetRevokedCertificates lists revocations of unexpired certificates.
func (a *authDB) GetRevokedCertificates() (*[]db.RevokedCertificateInfo, error) {
	out := []db.RevokedCertificateInfo{}
	err := a.db.SystemRead(a.ctx(), func(tx *store.Tx) error {
		rows, err := tx.Query(a.ctx(), `SELECT serial, revoked_at, not_after, COALESCE(revocation_reason, ''), COALESCE(revocation_code, 0)
			FROM pki_certificates WHERE revoked_at IS NOT NULL AND not_after > $1`, store.Now().Add(-time.Hour))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r db.RevokedCertificateInfo
			if err := rows.Scan(&r.Serial, &r.RevokedAt, &r.ExpiresAt, &r.Reason, &r.ReasonCode); err != nil {
				return err
			}
			r.MTLS = true
			out = append(out, r)
		}
		return rows.Err()
	})
	return &out, err
}

// GetCRL returns the stored CRL.
func (a *authDB) GetCRL() (*db.CertificateRevocationListInfo, error) {
	var c db.CertificateRevocationListInfo
	var ns int64
	err := a.db.SystemRead(a.ctx(), func(tx *store.Tx) error {
		return tx.QueryRow(a.ctx(), `SELECT number, der, expires_at, duration_ns FROM pki_crls WHERE id = 1`).Scan(&c.Number, &c.DER, &c.ExpiresAt, &ns)
	})
	if store.NoRows(err) {
		return nil, database.ErrNotFound
	}
	c.Duration = time.Duration(ns)
	return &c, err
}

// StoreCRL keeps the newest CRL.
func (a *authDB) StoreCRL(c *db.CertificateRevocationListInfo) error {
	return a.db.SystemTx(a.ctx(), func(tx *store.Tx) error {
		_, err := tx.Exec(a.ctx(), `INSERT INTO pki_crls (id, number, der, expires_at, duration_ns, created_at) VALUES (1, $1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET number = excluded.number, der = excluded.der, expires_at = excluded.expires_at,
			duration_ns = excluded.duration_ns, created_at = excluded.created_at`, c.Number, c.DER, c.ExpiresAt.UTC(), int64(c.Duration), store.Now())
		return err
	})
}

// GetCertificate returns an issued certificate by serial.
func (a *authDB) GetCertificate(sn string) (*x509.Certificate, error) {
	var p string
	err := a.db.SystemRead(a.ctx(), func(tx *store.Tx) error {
		return tx.QueryRow(a.ctx(), `SELECT cert_pem FROM pki_certificates WHERE serial = $1`, sn).Scan(&p)
	})
	if store.NoRows(err) {
		return nil, database.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("pki: stored certificate is not PEM")
	}
	return x509.ParseCertificate(b.Bytes)
}

// StoreCertificate is a no-op: the service records certificates itself,
// with their tenant and NHI, in the issuing transaction.
func (a *authDB) StoreCertificate(*x509.Certificate) error { return nil }

// StoreSSHCertificate is unsupported: xavyo issues no SSH certificates.
func (a *authDB) StoreSSHCertificate(*ssh.Certificate) error { return db.ErrNotImplemented }

// IsSSHRevoked is unsupported.
func (a *authDB) IsSSHRevoked(string) (bool, error) { return false, nil }

// RevokeSSH is unsupported.
func (a *authDB) RevokeSSH(*db.RevokedCertificateInfo) error { return db.ErrNotImplemented }

// UseToken allows every token: xavyo does not use one-time tokens here.
func (a *authDB) UseToken(string, string) (bool, error) { return true, nil }

// IsSSHHost is unsupported.
func (a *authDB) IsSSHHost(string) (bool, error) { return false, nil }

// GetSSHHostPrincipals is unsupported.
func (a *authDB) GetSSHHostPrincipals() ([]string, error) { return nil, nil }

// Shutdown does nothing: the store is closed by its owner.
func (a *authDB) Shutdown() error { return nil }
