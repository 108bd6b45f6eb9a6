package saml

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The store of identity provider keys and service providers (migration
// 0026).

const spCols = `id, key, name, entity_id, metadata, metadata_url, refreshed_at, entitlement_id, nameid_format, nameid_source, attributes,
	clock_skew_seconds, require_signed_requests, legacy_sha1, created_at, updated_at, version`

func scanSP(r store.Scanner) (*ServiceProvider, error) {
	var sp ServiceProvider
	var attrs string
	if err := r.Scan(&sp.ID, &sp.Key, &sp.Name, &sp.EntityID, &sp.metadata, &sp.MetadataURL, &sp.RefreshedAt, &sp.EntitlementID, &sp.NameIDFormat,
		&sp.NameIDSource, &attrs, &sp.ClockSkewSeconds, &sp.RequireSignedRequests, &sp.LegacySHA1, &sp.CreatedAt, &sp.UpdatedAt, &sp.Version); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(attrs), &sp.Attributes)
	if sp.Attributes == nil {
		sp.Attributes = []AttributeMapping{}
	}

	if ed, err := ParseMetadata(sp.metadata); err == nil {
		sp.ACS = acsOf(ed)
	}
	return &sp, nil
}

func insertSPTx(ctx context.Context, tx *store.Tx, sp *ServiceProvider) error {
	attrs, _ := json.Marshal(sp.Attributes)
	_, err := tx.Exec(ctx, `INSERT INTO saml_service_providers (tenant_id, `+spCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		tx.TenantID(), sp.ID, sp.Key, sp.Name, sp.EntityID, sp.metadata, sp.MetadataURL, sp.RefreshedAt, sp.EntitlementID, sp.NameIDFormat,
		sp.NameIDSource, string(attrs), sp.ClockSkewSeconds, sp.RequireSignedRequests, sp.LegacySHA1, sp.CreatedAt, sp.UpdatedAt, sp.Version)
	return err
}

func updateSPTx(ctx context.Context, tx *store.Tx, sp *ServiceProvider) error {
	attrs, _ := json.Marshal(sp.Attributes)
	_, err := tx.Exec(ctx, `UPDATE saml_service_providers SET name = $1, entity_id = $2, metadata = $3, entitlement_id = $4, nameid_format = $5,
		require_signed_requests = $6, legacy_sha1 = $7, updated_at = $8, version = $9, metadata_url = $10, refreshed_at = $11, nameid_source = $12,
		attributes = $13, clock_skew_seconds = $14 WHERE tenant_id = $15 AND id = $16`, sp.Name, sp.EntityID, sp.metadata, sp.EntitlementID,
		sp.NameIDFormat, sp.RequireSignedRequests, sp.LegacySHA1, sp.UpdatedAt, sp.Version, sp.MetadataURL, sp.RefreshedAt, sp.NameIDSource,
		string(attrs), sp.ClockSkewSeconds, tx.TenantID(), sp.ID)
	return err
}

// spTx reads a service provider by id, key or entity id (apperr not found:
// none), locked when asked.
func spTx(ctx context.Context, tx *store.Tx, by, value string, lock bool) (*ServiceProvider, error) {
	q := `SELECT ` + spCols + ` FROM saml_service_providers WHERE tenant_id = $1 AND id = $2`
	switch by {
	case "entity_id":
		q = `SELECT ` + spCols + ` FROM saml_service_providers WHERE tenant_id = $1 AND entity_id = $2`
	case "key":
		q = `SELECT ` + spCols + ` FROM saml_service_providers WHERE tenant_id = $1 AND key = $2`
	}
	if lock {
		q += " FOR UPDATE"
	}
	sp, err := scanSP(tx.QueryRow(ctx, q, tx.TenantID(), value))
	if store.NoRows(err) {
		return nil, apperr.NotFound("service provider")
	}
	return sp, err
}

func listSPTx(ctx context.Context, tx *store.Tx) ([]*ServiceProvider, error) {
	return store.Collect(ctx, tx, scanSP, `SELECT `+spCols+` FROM saml_service_providers WHERE tenant_id = $1 ORDER BY key`, tx.TenantID())
}

func deleteSPTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	r, err := tx.Exec(ctx, `DELETE FROM saml_service_providers WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// keyRow is a stored identity provider key.
type keyRow struct {
	id           uuid.UUID
	cert, sealed string
	created      time.Time
	activated    *time.Time
}

// keysTx lists the tenant's keys, the signing one (newest activated)
// first.
func keysTx(ctx context.Context, tx *store.Tx) ([]keyRow, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (keyRow, error) {
		var k keyRow
		err := r.Scan(&k.id, &k.cert, &k.sealed, &k.created, &k.activated)
		return k, err
	}, `SELECT id, certificate, private_key, created_at, activated_at FROM saml_idp_keys WHERE tenant_id = $1
		ORDER BY activated_at IS NULL, activated_at DESC, created_at DESC`, tx.TenantID())
}

func activateKeyTx(ctx context.Context, tx *store.Tx, id uuid.UUID, now time.Time) (bool, error) {
	r, err := tx.Exec(ctx, `UPDATE saml_idp_keys SET activated_at = $1 WHERE tenant_id = $2 AND id = $3`, now, tx.TenantID(), id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

func deleteKeyTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM saml_idp_keys WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

func insertKeyTx(ctx context.Context, tx *store.Tx, id uuid.UUID, cert, sealed string, now time.Time, activated *time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO saml_idp_keys (tenant_id, id, certificate, private_key, created_at, activated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		tx.TenantID(), id, cert, sealed, now, activated)
	return err
}

// Participant is a service provider an SSO session signed in to, with the
// subject it was given (for single logout).
type Participant struct {
	EntityID, NameID, NameIDFormat, SessionIndex string
}

func addParticipantTx(ctx context.Context, tx *store.Tx, session uuid.UUID, p Participant, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO saml_participants (tenant_id, session_id, sp_entity_id, name_id, name_id_format, session_index, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, session_id, sp_entity_id)
		DO UPDATE SET name_id = excluded.name_id, name_id_format = excluded.name_id_format, session_index = excluded.session_index`,
		tx.TenantID(), session, p.EntityID, p.NameID, p.NameIDFormat, p.SessionIndex, now)
	return err
}

func participantsTx(ctx context.Context, tx *store.Tx, session uuid.UUID) ([]Participant, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Participant, error) {
		var p Participant
		err := r.Scan(&p.EntityID, &p.NameID, &p.NameIDFormat, &p.SessionIndex)
		return p, err
	}, `SELECT sp_entity_id, name_id, name_id_format, session_index FROM saml_participants WHERE tenant_id = $1 AND session_id = $2 ORDER BY created_at`,
		tx.TenantID(), session)
}

func forgetParticipantsTx(ctx context.Context, tx *store.Tx, session uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM saml_participants WHERE tenant_id = $1 AND session_id = $2`, tx.TenantID(), session)
	return err
}

// consumeTx records a request id until it expires (false: it was), and
// forgets the tenant's expired ones.
func consumeTx(ctx context.Context, tx *store.Tx, id string, expires, now time.Time) (bool, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM saml_replay WHERE tenant_id = $1 AND expires_at < $2`, tx.TenantID(), now); err != nil {
		return false, err
	}
	r, err := tx.Exec(ctx, `INSERT INTO saml_replay (tenant_id, message_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, tx.TenantID(), id, expires)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// staleTx lists, across tenants, the service providers whose metadata
// comes from a URL and was last fetched before a time.
func staleTx(ctx context.Context, tx *store.Tx, before time.Time) ([][2]uuid.UUID, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) ([2]uuid.UUID, error) {
		var p [2]uuid.UUID
		err := r.Scan(&p[0], &p[1])
		return p, err
	}, `SELECT tenant_id, id FROM saml_service_providers WHERE metadata_url <> '' AND (refreshed_at IS NULL OR refreshed_at < $1) ORDER BY refreshed_at LIMIT 100`,
		before)
}
