package nhi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The NHI stores: nhis, nhi_permissions, and each NHI's own OAuth client
// (the oauth_clients rows with an nhi_id) and its client_secrets.

const cols = `n.id, n.kind, n.slug, n.name, n.description, n.status, n.status_reason, n.status_changed_at, n.owner_id, n.backup_owner_id,
	n.profile, n.risk_score, n.risk_factors, n.last_used_at, n.created_at, n.updated_at, n.version, COALESCE(c.client_id, '')`

const from = ` FROM nhis n LEFT JOIN oauth_clients c ON c.tenant_id = n.tenant_id AND c.nhi_id = n.id `

func scan(row interface{ Scan(...any) error }, tenant uuid.UUID) (*NHI, error) {
	var n NHI
	var profile, factors []byte
	if err := row.Scan(&n.ID, &n.Kind, &n.Slug, &n.Name, &n.Description, &n.Status, &n.StatusReason, &n.StatusChangedAt, &n.OwnerID,
		&n.BackupOwnerID, &profile, &n.RiskScore, &factors, &n.LastUsedAt, &n.CreatedAt, &n.UpdatedAt, &n.Version, &n.ClientID); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(profile, &n.Profile)
	_ = json.Unmarshal(factors, &n.RiskFactors)
	if n.RiskFactors == nil {
		n.RiskFactors = []RiskFactor{}
	}
	n.SPIFFEPath = fmt.Sprintf("/t/%s/%s/%s", tenant, n.Kind, n.ID)
	return &n, nil
}

func get(ctx context.Context, tx *store.Tx, id uuid.UUID, lock bool) (*NHI, error) {
	if lock {
		if err := lockNHI(ctx, tx, id); err != nil {
			return nil, err
		}
	}
	n, err := scan(tx.QueryRow(ctx, `SELECT `+cols+from+`WHERE n.tenant_id = $1 AND n.id = $2`, tx.TenantID(), id), tx.TenantID())
	if store.NoRows(err) {
		return nil, apperr.NotFound("NHI")
	}
	return n, err
}

func insertSecret(ctx context.Context, tx *store.Tx, client uuid.UUID, secret string, expires time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO client_secrets (tenant_id, id, client, secret_hash, hint, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, tx.TenantID(), uuid.Must(uuid.NewV7()), client, HashSecret(secret), secret[len(secret)-4:],
		store.Now(), expires)
	return err
}

// nhisOf reads the NHIs a query selects (cols and from) in the tenant in tx.
func nhisOf(ctx context.Context, tx *store.Tx, q string, args ...any) ([]*NHI, error) {
	tenant := tx.TenantID()
	return store.Collect(ctx, tx, func(r store.Scanner) (*NHI, error) { return scan(r, tenant) }, q, args...)
}

func insertNHI(ctx context.Context, tx *store.Tx, n *NHI) error {
	profile, _ := json.Marshal(n.Profile)
	factors, _ := json.Marshal(n.RiskFactors)
	_, err := tx.Exec(ctx, `INSERT INTO nhis (tenant_id, id, kind, slug, name, description, status, status_reason, status_changed_at,
		owner_id, backup_owner_id, profile, risk_score, risk_factors, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $9, $9, 1)`,
		tx.TenantID(), n.ID, n.Kind, n.Slug, n.Name, n.Description, n.Status, n.StatusReason, n.CreatedAt, n.OwnerID, n.BackupOwnerID,
		string(profile), n.RiskScore, string(factors))
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "an NHI with slug %q already exists", n.Slug)
	}
	return err
}

func updateNHI(ctx context.Context, tx *store.Tx, n *NHI) error {
	profile, _ := json.Marshal(n.Profile)
	factors, _ := json.Marshal(n.RiskFactors)
	_, err := tx.Exec(ctx, `UPDATE nhis SET name = $1, description = $2, status = $3, status_reason = $4, status_changed_at = $5,
		owner_id = $6, backup_owner_id = $7, profile = $8, risk_score = $9, risk_factors = $10, updated_at = $11, version = $12
		WHERE tenant_id = $13 AND id = $14`, n.Name, n.Description, n.Status, n.StatusReason, n.StatusChangedAt, n.OwnerID, n.BackupOwnerID,
		string(profile), n.RiskScore, string(factors), n.UpdatedAt, n.Version, tx.TenantID(), n.ID)
	return err
}

// touchNHI records a use at now unless one after notBefore is recorded.
func touchNHI(ctx context.Context, tx *store.Tx, id uuid.UUID, now, notBefore time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE nhis SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3 AND (last_used_at IS NULL OR last_used_at < $4)`,
		now, tx.TenantID(), id, notBefore)
	return err
}

// listNHIs reads a page of NHIs by id; a viewer other than uuid.Nil sees
// only those they own, back up or hold a permission on.
func listNHIs(ctx context.Context, tx *store.Tx, o ListOptions, viewer uuid.UUID) ([]*NHI, error) {
	return nhisOf(ctx, tx, `SELECT `+cols+from+`WHERE n.tenant_id = $1 AND n.id > $2
		AND ($3 = '' OR n.kind = $3) AND ($4 = '' OR n.status = $4) AND (n.owner_id = $5 OR $5 = $6)
		AND (n.owner_id = $7 OR $7 = $6 OR n.backup_owner_id = $7 OR EXISTS (SELECT 1 FROM nhi_permissions p
		     WHERE p.tenant_id = n.tenant_id AND p.nhi_id = n.id AND p.user_id = $7))
		ORDER BY n.id LIMIT $8`, tx.TenantID(), o.After, o.Kind, o.Status, o.OwnerID, uuid.Nil, viewer, o.Limit+1)
}

// activeOf lists the active NHIs of a kind (the one with slug, when
// given), by slug.
func activeOf(ctx context.Context, tx *store.Tx, kind, slug string) ([]*NHI, error) {
	q := `SELECT ` + cols + from + `WHERE n.tenant_id = $1 AND n.kind = $2 AND n.status = 'active'`
	args := []any{tx.TenantID(), kind}
	if slug != "" {
		q, args = q+` AND n.slug = $3`, append(args, slug)
	}
	return nhisOf(ctx, tx, q+` ORDER BY n.slug`, args...)
}

// unusedSince lists up to limit live NHIs last used (or created) before cutoff.
func unusedSince(ctx context.Context, tx *store.Tx, cutoff time.Time, limit int) ([]*NHI, error) {
	return nhisOf(ctx, tx, `SELECT `+cols+from+`WHERE n.tenant_id = $1 AND n.status <> 'archived'
		AND COALESCE(n.last_used_at, n.created_at) < $2 ORDER BY n.id LIMIT $3`, tx.TenantID(), cutoff, limit)
}

// liveNHIs lists up to limit NHIs that are not archived, by id after after.
func liveNHIs(ctx context.Context, tx *store.Tx, after uuid.UUID, limit int) ([]*NHI, error) {
	return nhisOf(ctx, tx, `SELECT `+cols+from+`WHERE n.tenant_id = $1 AND n.status <> 'archived' AND n.id > $2
		ORDER BY n.id LIMIT $3`, tx.TenantID(), after, limit)
}

// countActive counts the active NHIs of a kind with a slug.
func countActive(ctx context.Context, tx *store.Tx, kind, slug string) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM nhis WHERE tenant_id = $1 AND kind = $2 AND slug = $3 AND status = 'active'`,
		tx.TenantID(), kind, slug).Scan(&n)
	return n, err
}

func refsOf(ctx context.Context, tx *store.Tx, kind string) ([]Ref, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Ref, error) {
		var x Ref
		err := r.Scan(&x.ID, &x.Slug, &x.Status)
		return x, err
	}, `SELECT id, slug, status FROM nhis WHERE tenant_id = $1 AND kind = $2`, tx.TenantID(), kind)
}

func upsertPermission(ctx context.Context, tx *store.Tx, id, user uuid.UUID, perm string, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO nhi_permissions (tenant_id, nhi_id, user_id, permission, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, nhi_id, user_id) DO UPDATE SET permission = excluded.permission`, tx.TenantID(), id, user, perm, at)
	return err
}

// deletePermission removes a user's permission; false when there was none.
func deletePermission(ctx context.Context, tx *store.Tx, id, user uuid.UUID) (bool, error) {
	r, err := tx.Exec(ctx, `DELETE FROM nhi_permissions WHERE tenant_id = $1 AND nhi_id = $2 AND user_id = $3`, tx.TenantID(), id, user)
	if err != nil {
		return false, err
	}
	k, _ := r.RowsAffected()
	return k > 0, nil
}

func permissionsOf(ctx context.Context, tx *store.Tx, id uuid.UUID) ([]Permission, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Permission, error) {
		var p Permission
		err := r.Scan(&p.UserID, &p.Permission, &p.CreatedAt)
		return p, err
	}, `SELECT user_id, permission, created_at FROM nhi_permissions WHERE tenant_id = $1 AND nhi_id = $2 ORDER BY created_at`, tx.TenantID(), id)
}

// permissionOf is a user's permission on an NHI (store.NoRows: none).
func permissionOf(ctx context.Context, tx *store.Tx, id, user uuid.UUID) (string, error) {
	var have string
	err := tx.QueryRow(ctx, `SELECT permission FROM nhi_permissions WHERE tenant_id = $1 AND nhi_id = $2 AND user_id = $3`, tx.TenantID(), id, user).Scan(&have)
	return have, err
}

// insertNHIClient stores an NHI's confidential OAuth client.
func insertNHIClient(ctx context.Context, tx *store.Tx, row uuid.UUID, n *NHI, scope string) error {
	_, err := tx.Exec(ctx, `INSERT INTO oauth_clients (tenant_id, id, client_id, nhi_id, name, client_type, token_endpoint_auth_method,
		grant_types, redirect_uris, scope, jwks, metadata, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, 'confidential', 'client_secret_basic', $6, '[]', $7, '{"keys":[]}', '{}', $8, $8, 1)`,
		tx.TenantID(), row, n.ClientID, n.ID, n.Name, `["client_credentials","urn:ietf:params:oauth:grant-type:token-exchange"]`,
		scope, n.CreatedAt)
	return err
}

// clientOf is the row id of an NHI's OAuth client.
func clientOf(ctx context.Context, tx *store.Tx, id uuid.UUID) (uuid.UUID, error) {
	var client uuid.UUID
	err := tx.QueryRow(ctx, `SELECT id FROM oauth_clients WHERE tenant_id = $1 AND nhi_id = $2`, tx.TenantID(), id).Scan(&client)
	return client, err
}

// clientRow reads an OAuth client by client ID: its NHI (nil for a
// relying party), scope and public keys (store.NoRows: none).
func clientRow(ctx context.Context, tx *store.Tx, clientID string) (*uuid.UUID, string, []byte, error) {
	var nid *uuid.UUID
	var scope string
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT nhi_id, scope, jwks FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2`, tx.TenantID(), clientID).
		Scan(&nid, &scope, &raw)
	return nid, scope, raw, err
}

// setClientKeys replaces the public keys of an NHI's client.
func setClientKeys(ctx context.Context, tx *store.Tx, id uuid.UUID, jwks []byte, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE oauth_clients SET jwks = $1, updated_at = $2, version = version + 1 WHERE tenant_id = $3 AND nhi_id = $4`,
		string(jwks), now, tx.TenantID(), id)
	return err
}

// expireSecrets makes a client's live secrets expire at until (sooner
// ones keep their expiry).
func expireSecrets(ctx context.Context, tx *store.Tx, client uuid.UUID, until time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE client_secrets SET expires_at = $1 WHERE tenant_id = $2 AND client = $3 AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > $1)`, until, tx.TenantID(), client)
	return err
}

// secretsOf lists an NHI's client secrets, newest first.
func secretsOf(ctx context.Context, tx *store.Tx, id uuid.UUID) ([]SecretInfo, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (SecretInfo, error) {
		var x SecretInfo
		err := r.Scan(&x.ID, &x.Hint, &x.CreatedAt, &x.ExpiresAt, &x.RevokedAt)
		return x, err
	}, `SELECT s.id, s.hint, s.created_at, s.expires_at, s.revoked_at FROM client_secrets s
		JOIN oauth_clients c ON c.tenant_id = s.tenant_id AND c.id = s.client WHERE s.tenant_id = $1 AND c.nhi_id = $2
		ORDER BY s.created_at DESC`, tx.TenantID(), id)
}

// liveSecretClient finds the NHI and scope of the client clientID whose
// live secret hashes to hash (store.NoRows: none).
func liveSecretClient(ctx context.Context, tx *store.Tx, clientID, hash string, now time.Time) (uuid.UUID, string, error) {
	var nid uuid.UUID
	var scope string
	err := tx.QueryRow(ctx, `SELECT c.nhi_id, c.scope FROM client_secrets s JOIN oauth_clients c ON c.tenant_id = s.tenant_id AND c.id = s.client
		WHERE s.tenant_id = $1 AND s.secret_hash = $2 AND c.client_id = $3 AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $4)`,
		tx.TenantID(), hash, clientID, now).Scan(&nid, &scope)
	return nid, scope, err
}

// oldestLiveSecret is when an NHI's oldest live secret was made
// (store.NoRows: none). ORDER BY … LIMIT 1 rather than MIN(): SQLite
// returns aggregates of timestamps as text.
func oldestLiveSecret(ctx context.Context, tx *store.Tx, id uuid.UUID, now time.Time) (time.Time, error) {
	var t time.Time
	err := tx.QueryRow(ctx, `SELECT s.created_at FROM client_secrets s JOIN oauth_clients c ON c.tenant_id = s.tenant_id AND c.id = s.client
		WHERE s.tenant_id = $1 AND c.nhi_id = $2 AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $3)
		ORDER BY s.created_at LIMIT 1`, tx.TenantID(), id, now).Scan(&t)
	return t, err
}

// expiring is a secret whose owners are to be told it expires soon.
type expiring struct {
	tenant, id, client uuid.UUID
	expires            time.Time
}

// claimExpiring marks, across tenants, the live secrets expiring in
// (now, until] that were not announced yet, and returns them.
func claimExpiring(ctx context.Context, tx *store.Tx, now, until time.Time) ([]expiring, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (expiring, error) {
		var d expiring
		err := r.Scan(&d.tenant, &d.id, &d.client, &d.expires)
		return d, err
	}, `UPDATE client_secrets SET expiry_notified_at = $1
		WHERE revoked_at IS NULL AND expiry_notified_at IS NULL AND expires_at > $1 AND expires_at <= $2
		RETURNING tenant_id, id, client, expires_at`, now, until)
}

// ownersOfClient is the NHI of a client row and its owners.
func ownersOfClient(ctx context.Context, tx *store.Tx, tenant, client uuid.UUID) (uuid.UUID, *uuid.UUID, *uuid.UUID, error) {
	var nhiID uuid.UUID
	var owner, backup *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT n.id, n.owner_id, n.backup_owner_id FROM oauth_clients c JOIN nhis n ON n.tenant_id = c.tenant_id AND n.id = c.nhi_id
		WHERE c.tenant_id = $1 AND c.id = $2`, tenant, client).Scan(&nhiID, &owner, &backup)
	return nhiID, owner, backup, err
}

// What other domains (governance) read of NHIs inside their own
// transactions.

// OwnersTx is an NHI's owner and backup owner (nil, nil: no such NHI).
func (s *Service) OwnersTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (owner, backup *uuid.UUID, err error) {
	err = tx.QueryRow(ctx, `SELECT owner_id, backup_owner_id FROM nhis WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&owner, &backup)
	if store.NoRows(err) {
		return nil, nil, nil
	}
	return owner, backup, err
}

// LockTx locks an NHI's row until tx ends (apperr not found when the
// tenant has no such NHI).
func (s *Service) LockTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	return lockNHI(ctx, tx, id)
}

func lockNHI(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM nhis WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), id).Scan(&one)
	if store.NoRows(err) {
		return apperr.NotFound("NHI")
	}
	return err
}

// ManagesTx tells whether a user may act for an NHI on governance's
// side: its owner, backup owner, or a holder of the manage or admin
// permission.
func (s *Service) ManagesTx(ctx context.Context, tx *store.Tx, id, user uuid.UUID) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM nhis n WHERE n.tenant_id = $1 AND n.id = $2 AND (n.owner_id = $3 OR n.backup_owner_id = $3
		OR EXISTS (SELECT 1 FROM nhi_permissions p WHERE p.tenant_id = n.tenant_id AND p.nhi_id = n.id AND p.user_id = $3
		AND p.permission IN ('manage', 'admin')))`, tx.TenantID(), id, user).Scan(&n)
	return n > 0, err
}

// EachTx calls fn with every NHI's status and risk score.
func (s *Service) EachTx(ctx context.Context, tx *store.Tx, fn func(id uuid.UUID, status string, risk int)) error {
	return store.Each(ctx, tx, func(r store.Scanner) error {
		var id uuid.UUID
		var status string
		var risk int
		if err := r.Scan(&id, &status, &risk); err != nil {
			return err
		}
		fn(id, status, risk)
		return nil
	}, `SELECT id, status, risk_score FROM nhis WHERE tenant_id = $1`, tx.TenantID())
}

// StateTx is an NHI's status and risk score (apperr not found: no such NHI).
func (s *Service) StateTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (status string, risk int, err error) {
	err = tx.QueryRow(ctx, `SELECT status, risk_score FROM nhis WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&status, &risk)
	if store.NoRows(err) {
		return "", 0, apperr.NotFound("nhi")
	}
	return status, risk, err
}

// ExistsTx tells whether the tenant has an NHI.
func (s *Service) ExistsTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM nhis WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&n)
	return n > 0, err
}
