package mfa

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The store of factors and recovery codes (migration 0023).

type factorRow struct {
	id        uuid.UUID
	user      uuid.UUID
	secret    string
	lastStep  int64
	confirmed *time.Time
}

func insertFactorTx(ctx context.Context, tx *store.Tx, id, user uuid.UUID, kind, name, secret string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO mfa_factors (tenant_id, id, user_id, kind, name, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tx.TenantID(), id, user, kind, name, secret, now)
	return err
}

func deleteUnconfirmedTx(ctx context.Context, tx *store.Tx, user uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NULL`, tx.TenantID(), user)
	return err
}

// factorTx reads one of a person's factors, locked (nil: none).
func factorTx(ctx context.Context, tx *store.Tx, user, id uuid.UUID) (*factorRow, error) {
	var f factorRow
	err := tx.QueryRow(ctx, `SELECT id, secret, last_step, confirmed_at FROM mfa_factors
		WHERE tenant_id = $1 AND user_id = $2 AND id = $3 FOR UPDATE`, tx.TenantID(), user, id).Scan(&f.id, &f.secret, &f.lastStep, &f.confirmed)
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// confirmedTx lists a person's confirmed factors.
func confirmedTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]*factorRow, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*factorRow, error) {
		var f factorRow
		err := r.Scan(&f.id, &f.secret, &f.lastStep, &f.confirmed)
		return &f, err
	}, `SELECT id, secret, last_step, confirmed_at FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL AND kind = 'totp'`,
		tx.TenantID(), user)
}

func confirmFactorTx(ctx context.Context, tx *store.Tx, id uuid.UUID, step int64, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE mfa_factors SET confirmed_at = $1, last_step = $2 WHERE tenant_id = $3 AND id = $4`, now, step, tx.TenantID(), id)
	return err
}

// useStepTx records a factor's code of step as used, if no later one was
// (a code works once, even against a concurrent use).
func useStepTx(ctx context.Context, tx *store.Tx, id uuid.UUID, last, step int64) (bool, error) {
	r, err := tx.Exec(ctx, `UPDATE mfa_factors SET last_step = $1 WHERE tenant_id = $2 AND id = $3 AND last_step = $4`, step, tx.TenantID(), id, last)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// confirmedKindsTx lists the kinds of a person's confirmed factors.
func confirmedKindsTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]string, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (string, error) {
		var k string
		err := r.Scan(&k)
		return k, err
	}, `SELECT DISTINCT kind FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL`, tx.TenantID(), user)
}

func confirmedCountTx(ctx context.Context, tx *store.Tx, user uuid.UUID) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL`,
		tx.TenantID(), user).Scan(&n)
	return n, err
}

func factorsTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]Factor, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Factor, error) {
		var f Factor
		var secret string
		err := r.Scan(&f.ID, &f.Kind, &f.Name, &f.ConfirmedAt, &f.CreatedAt, &f.LastUsedAt, &secret)
		if err == nil && f.Kind == KindWebAuthn {
			f.describe(secret)
		}
		return f, err
	}, `SELECT id, kind, name, confirmed_at, created_at, last_used_at, secret FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at`,
		tx.TenantID(), user)
}

// webauthnFactorsTx lists a person's WebAuthn credentials.
func webauthnFactorsTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]*factorRow, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*factorRow, error) {
		f := factorRow{user: user}
		err := r.Scan(&f.id, &f.secret)
		return &f, err
	}, `SELECT id, secret FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND kind = 'webauthn' ORDER BY created_at`, tx.TenantID(), user)
}

// credentialTx reads the WebAuthn credential of an id, locked (nil: none
// in this tenant).
func credentialTx(ctx context.Context, tx *store.Tx, credentialID string) (*factorRow, error) {
	var f factorRow
	err := tx.QueryRow(ctx, `SELECT id, user_id, secret FROM mfa_factors
		WHERE tenant_id = $1 AND credential_id = $2 AND kind = 'webauthn' FOR UPDATE`, tx.TenantID(), credentialID).Scan(&f.id, &f.user, &f.secret)
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

func insertCredentialTx(ctx context.Context, tx *store.Tx, id, user uuid.UUID, name, record, credentialID string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO mfa_factors (tenant_id, id, user_id, kind, name, secret, credential_id, confirmed_at, created_at)
		VALUES ($1, $2, $3, 'webauthn', $4, $5, $6, $7, $7)`, tx.TenantID(), id, user, name, record, credentialID, now)
	return err
}

func updateCredentialTx(ctx context.Context, tx *store.Tx, id uuid.UUID, record string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE mfa_factors SET secret = $1, last_used_at = $2 WHERE tenant_id = $3 AND id = $4`, record, now, tx.TenantID(), id)
	return err
}

// spendTx records a WebAuthn challenge as spent until it expires (false:
// it was already), and forgets the tenant's expired ones.
func spendTx(ctx context.Context, tx *store.Tx, challenge string, expires, now time.Time) (bool, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM webauthn_spent WHERE tenant_id = $1 AND expires_at < $2`, tx.TenantID(), now); err != nil {
		return false, err
	}
	r, err := tx.Exec(ctx, `INSERT INTO webauthn_spent (tenant_id, challenge, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		tx.TenantID(), challenge, expires)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// rememberTx records a remembered device of a person.
func rememberTx(ctx context.Context, tx *store.Tx, user uuid.UUID, hash string, expires, now time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM mfa_remembered WHERE tenant_id = $1 AND expires_at < $2`, tx.TenantID(), now); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO mfa_remembered (tenant_id, token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)`,
		tx.TenantID(), hash, user, expires, now)
	return err
}

// rememberedTx reports whether a device of a person is remembered.
func rememberedTx(ctx context.Context, tx *store.Tx, user uuid.UUID, hash string, now time.Time) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM mfa_remembered WHERE tenant_id = $1 AND token_hash = $2 AND user_id = $3 AND expires_at > $4`,
		tx.TenantID(), hash, user, now).Scan(&n)
	return n > 0, err
}

// forgetDevicesTx forgets every remembered device of a person.
func forgetDevicesTx(ctx context.Context, tx *store.Tx, user uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM mfa_remembered WHERE tenant_id = $1 AND user_id = $2`, tx.TenantID(), user)
	return err
}

func deleteFactorTx(ctx context.Context, tx *store.Tx, user, id uuid.UUID) (bool, error) {
	r, err := tx.Exec(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2 AND id = $3`, tx.TenantID(), user, id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

func insertRecoveryTx(ctx context.Context, tx *store.Tx, user uuid.UUID, hash string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO mfa_recovery_codes (tenant_id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)`,
		tx.TenantID(), user, hash, now)
	return err
}

func deleteRecoveryTx(ctx context.Context, tx *store.Tx, user uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2`, tx.TenantID(), user)
	return err
}

func recoveryLeftTx(ctx context.Context, tx *store.Tx, user uuid.UUID) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL`,
		tx.TenantID(), user).Scan(&n)
	return n, err
}

// useRecoveryTx spends an unused recovery code (false: none such).
func useRecoveryTx(ctx context.Context, tx *store.Tx, user uuid.UUID, hash string, now time.Time) (bool, error) {
	r, err := tx.Exec(ctx, `UPDATE mfa_recovery_codes SET used_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND code_hash = $4 AND used_at IS NULL`,
		now, tx.TenantID(), user, hash)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// deleteFactorsTx removes all of a person's factors and says how many.
func deleteFactorsTx(ctx context.Context, tx *store.Tx, user uuid.UUID) (int, error) {
	r, err := tx.Exec(ctx, `DELETE FROM mfa_factors WHERE tenant_id = $1 AND user_id = $2`, tx.TenantID(), user)
	if err != nil {
		return 0, err
	}
	n, _ := r.RowsAffected()
	return int(n), nil
}
