package pki

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The PKI stores: the CA's authorities (pki_authorities) and the issued
// certificates (pki_certificates); store_authdb.go adapts the latter, and
// the CRL, to the embedded authority.

func countActiveIntermediates(ctx context.Context, tx *store.Tx) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM pki_authorities WHERE kind = 'intermediate' AND status = 'active'`).Scan(&n)
	return n, err
}

func insertAuthority(ctx context.Context, tx *store.Tx, id uuid.UUID, kind string, certPEM, sealedKey []byte, notAfter time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO pki_authorities (id, kind, status, cert_pem, private_key, not_after, created_at) VALUES ($1, $2, 'active', $3, $4, $5, $6)`,
		id, kind, string(certPEM), sealedKey, notAfter.UTC(), store.Now())
	return err
}

// storedAuthority is a stored root or intermediate.
type storedAuthority struct {
	id                    uuid.UUID
	kind, status, certPEM string
	sealed                []byte
}

// liveAuthorities lists the authorities not retired, oldest first.
func liveAuthorities(ctx context.Context, tx *store.Tx) ([]storedAuthority, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (storedAuthority, error) {
		var a storedAuthority
		err := r.Scan(&a.id, &a.kind, &a.status, &a.certPEM, &a.sealed)
		return a, err
	}, `SELECT id, kind, status, cert_pem, private_key FROM pki_authorities WHERE status <> 'retired' ORDER BY created_at`)
}

// demoteActive makes the active intermediate (and root, when root)
// previous.
func demoteActive(ctx context.Context, tx *store.Tx, root bool) error {
	q := `UPDATE pki_authorities SET status = 'previous' WHERE status = 'active' AND kind = 'intermediate'`
	if root {
		q = `UPDATE pki_authorities SET status = 'previous' WHERE status = 'active' AND kind IN ('intermediate', 'root')`
	}
	_, err := tx.Exec(ctx, q)
	return err
}

// activeRootKey is the active root's id and sealed key.
func activeRootKey(ctx context.Context, tx *store.Tx) (uuid.UUID, []byte, error) {
	var id uuid.UUID
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT id, private_key FROM pki_authorities WHERE kind = 'root' AND status = 'active'`).Scan(&id, &sealed)
	return id, sealed, err
}

func activeIntermediate(ctx context.Context, tx *store.Tx) (uuid.UUID, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `SELECT id FROM pki_authorities WHERE kind = 'intermediate' AND status = 'active'`).Scan(&id)
	return id, err
}

func retirePrevious(ctx context.Context, tx *store.Tx) error {
	_, err := tx.Exec(ctx, `UPDATE pki_authorities SET status = 'retired' WHERE status = 'previous'`)
	return err
}

// insertCertificate records a certificate issued to an NHI (renewing
// from, a serial or nil).
func insertCertificate(ctx context.Context, tx *store.Tx, nhiID uuid.UUID, out *Issued, from any) error {
	_, err := tx.Exec(ctx, `INSERT INTO pki_certificates (tenant_id, serial, nhi_id, spiffe_id, fingerprint, cert_pem, not_before, not_after, issued_at, renewed_from)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, tx.TenantID(), out.Serial, nhiID, out.SPIFFEID, out.Fingerprint, out.CertificatePEM,
		out.NotBefore.Truncate(time.Microsecond), out.NotAfter.Truncate(time.Microsecond), store.Now(), from)
	return err
}

// certificatesOf lists an NHI's latest certificates, newest first.
func certificatesOf(ctx context.Context, tx *store.Tx, nhiID uuid.UUID) ([]Certificate, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Certificate, error) {
		var x Certificate
		err := r.Scan(&x.Serial, &x.NHIID, &x.SPIFFEID, &x.Fingerprint, &x.NotBefore, &x.NotAfter, &x.IssuedAt, &x.RenewedFrom,
			&x.RevokedAt, &x.RevocationReason)
		return x, err
	}, `SELECT serial, nhi_id, spiffe_id, fingerprint, not_before, not_after, issued_at, renewed_from, revoked_at, revocation_reason
		FROM pki_certificates WHERE tenant_id = $1 AND nhi_id = $2 ORDER BY issued_at DESC LIMIT 500`, tx.TenantID(), nhiID)
}

// lockCertificate locks an NHI's certificate and tells when it was
// revoked (store.NoRows: no such certificate).
func lockCertificate(ctx context.Context, tx *store.Tx, nhiID uuid.UUID, serial string) (*time.Time, error) {
	var revoked *time.Time
	err := tx.QueryRow(ctx, `SELECT revoked_at FROM pki_certificates WHERE tenant_id = $1 AND nhi_id = $2 AND serial = $3 FOR UPDATE`,
		tx.TenantID(), nhiID, serial).Scan(&revoked)
	return revoked, err
}

// revokeCertificate records a revocation (RFC 5280 reason code).
func revokeCertificate(ctx context.Context, tx *store.Tx, serial string, at time.Time, reason string, code int) error {
	_, err := tx.Exec(ctx, `UPDATE pki_certificates SET revoked_at = $1, revocation_reason = $2, revocation_code = $3 WHERE tenant_id = $4 AND serial = $5`,
		at, reason, code, tx.TenantID(), serial)
	return err
}

// certificateByFingerprint reads the certificate with fingerprint fp, of
// any tenant, into x and returns when it was revoked (store.NoRows: none).
func certificateByFingerprint(ctx context.Context, tx *store.Tx, fp string, x *certEntry) (*time.Time, error) {
	var revoked *time.Time
	err := tx.QueryRow(ctx, `SELECT tenant_id, nhi_id, serial, not_after, revoked_at FROM pki_certificates WHERE fingerprint = $1`, fp).
		Scan(&x.tenant, &x.nhi, &x.serial, &x.notAfter, &revoked)
	return revoked, err
}
