package federation

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The store of identity providers and of sign-ins sent upstream
// (migration 0027).

const providerCols = `id, key, name, kind, enabled, settings, secret, created_at, updated_at, version`

func scanProvider(r store.Scanner) (*Provider, error) {
	var p Provider
	var settings string
	if err := r.Scan(&p.ID, &p.Key, &p.Name, &p.Kind, &p.Enabled, &settings, &p.secret, &p.CreatedAt, &p.UpdatedAt, &p.Version); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(settings), &p.Settings); err != nil {
		return nil, apperr.New(apperr.KindInternal, "identity provider %s: stored settings unreadable", p.Key)
	}
	p.ClientSecretSet = p.secret != ""
	if p.secret != "" && !isSealed(p.secret) {
		p.ClientSecretRef = p.secret
	}
	return &p, nil
}

func insertProviderTx(ctx context.Context, tx *store.Tx, p *Provider) error {
	_, err := tx.Exec(ctx, `INSERT INTO identity_providers (tenant_id, `+providerCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		tx.TenantID(), p.ID, p.Key, p.Name, p.Kind, p.Enabled, marshalSettings(p.Settings), p.secret, p.CreatedAt, p.UpdatedAt, p.Version)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "an identity provider with this key already exists")
	}
	return err
}

func updateProviderTx(ctx context.Context, tx *store.Tx, p *Provider) error {
	_, err := tx.Exec(ctx, `UPDATE identity_providers SET name = $1, kind = $2, enabled = $3, settings = $4, secret = $5, updated_at = $6, version = $7
		WHERE tenant_id = $8 AND id = $9`, p.Name, p.Kind, p.Enabled, marshalSettings(p.Settings), p.secret, p.UpdatedAt, p.Version, tx.TenantID(), p.ID)
	return err
}

// providerTx reads a provider by id or key (apperr not found: none),
// locked when asked.
func providerTx(ctx context.Context, tx *store.Tx, by, value string, lock bool) (*Provider, error) {
	q := `SELECT ` + providerCols + ` FROM identity_providers WHERE tenant_id = $1 AND id = $2`
	if by == "key" {
		q = `SELECT ` + providerCols + ` FROM identity_providers WHERE tenant_id = $1 AND key = $2`
	}
	if lock {
		q += " FOR UPDATE"
	}
	p, err := scanProvider(tx.QueryRow(ctx, q, tx.TenantID(), value))
	if store.NoRows(err) {
		return nil, apperr.NotFound("identity provider")
	}
	return p, err
}

func listProvidersTx(ctx context.Context, tx *store.Tx) ([]*Provider, error) {
	return store.Collect(ctx, tx, scanProvider, `SELECT `+providerCols+` FROM identity_providers WHERE tenant_id = $1 ORDER BY key`, tx.TenantID())
}

func deleteProviderTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	r, err := tx.Exec(ctx, `DELETE FROM identity_providers WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

// insertAttemptTx records a sign-in sent upstream, dropping the tenant's
// expired ones on the way.
func insertAttemptTx(ctx context.Context, tx *store.Tx, stateHash string, provider uuid.UUID, data string, expires, now time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM federation_attempts WHERE tenant_id = $1 AND expires_at < $2`, tx.TenantID(), now); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO federation_attempts (tenant_id, state_hash, provider_id, data, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		tx.TenantID(), stateHash, provider, data, expires)
	return err
}

// takeAttemptTx reads and removes a live sign-in sent upstream through
// provider ("" : none).
func takeAttemptTx(ctx context.Context, tx *store.Tx, stateHash string, provider uuid.UUID, now time.Time) (string, error) {
	var data string
	var expires time.Time
	err := tx.QueryRow(ctx, `SELECT data, expires_at FROM federation_attempts WHERE tenant_id = $1 AND state_hash = $2 AND provider_id = $3 FOR UPDATE`,
		tx.TenantID(), stateHash, provider).Scan(&data, &expires)
	if store.NoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM federation_attempts WHERE tenant_id = $1 AND state_hash = $2`, tx.TenantID(), stateHash); err != nil {
		return "", err
	}
	if !now.Before(expires) {
		return "", nil
	}
	return data, nil
}

// sessionRow is an upstream SAML session an SSO session came from.
type sessionRow struct {
	id, provider, user, session uuid.UUID
	nameID, format, index       string
}

// insertSessionTx records an upstream session of a sign-in, dropping the
// tenant's rows of more than 31 days on the way (no SSO session lives as
// long).
func insertSessionTx(ctx context.Context, tx *store.Tx, id uuid.UUID, txHash string, provider, user uuid.UUID, ss *SAMLSession, now time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM federation_sessions WHERE tenant_id = $1 AND created_at < $2`, tx.TenantID(), now.Add(-31*24*time.Hour)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO federation_sessions (tenant_id, id, tx_hash, provider_id, user_id, name_id, name_id_format, session_index, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, tx.TenantID(), id, txHash, provider, user, ss.NameID, ss.Format, ss.Index, now)
	return err
}

// openSessionTx ties the upstream sessions of a transaction to the SSO
// session it opened.
func openSessionTx(ctx context.Context, tx *store.Tx, txHash string, session uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE federation_sessions SET session_id = $1, tx_hash = '' WHERE tenant_id = $2 AND tx_hash = $3 AND session_id IS NULL`,
		session, tx.TenantID(), txHash)
	return err
}

func scanSessionRow(r store.Scanner) (sessionRow, error) {
	var row sessionRow
	var session *uuid.UUID
	err := r.Scan(&row.id, &row.provider, &row.user, &session, &row.nameID, &row.format, &row.index)
	if session != nil {
		row.session = *session
	}
	return row, err
}

const sessionCols = `id, provider_id, user_id, session_id, name_id, name_id_format, session_index`

// takeSessionsTx reads and removes the upstream sessions of an SSO session.
func takeSessionsTx(ctx context.Context, tx *store.Tx, session uuid.UUID) ([]sessionRow, error) {
	rows, err := store.Collect(ctx, tx, scanSessionRow, `SELECT `+sessionCols+` FROM federation_sessions WHERE tenant_id = $1 AND session_id = $2
		ORDER BY id`, tx.TenantID(), session)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM federation_sessions WHERE tenant_id = $1 AND session_id = $2`, tx.TenantID(), session)
	return rows, err
}

// takeUpstreamSessionsTx reads and removes the rows of an upstream
// session (a NameID, and its session index when given).
func takeUpstreamSessionsTx(ctx context.Context, tx *store.Tx, provider uuid.UUID, nameID, index string) ([]sessionRow, error) {
	q := `SELECT ` + sessionCols + ` FROM federation_sessions WHERE tenant_id = $1 AND provider_id = $2 AND name_id = $3`
	args := []any{tx.TenantID(), provider, nameID}
	if index != "" {
		q += ` AND session_index = $4`
		args = append(args, index)
	}
	rows, err := store.Collect(ctx, tx, scanSessionRow, q+` ORDER BY id`, args...)
	for _, r := range rows {
		if err == nil {
			_, err = tx.Exec(ctx, `DELETE FROM federation_sessions WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), r.id)
		}
	}
	return rows, err
}

// samlProvidersTx lists every tenant's SAML providers (tenant, id).
func samlProvidersTx(ctx context.Context, tx *store.Tx) ([][2]uuid.UUID, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) ([2]uuid.UUID, error) {
		var p [2]uuid.UUID
		err := r.Scan(&p[0], &p[1])
		return p, err
	}, `SELECT tenant_id, id FROM identity_providers WHERE kind = 'saml' ORDER BY tenant_id, id`)
}
