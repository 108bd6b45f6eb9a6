package oauth

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The OAuth stores: relying-party clients (the oauth_clients rows that
// belong to no NHI) and authorization codes.

const appClientCols = `id, client_id, name, client_type, token_endpoint_auth_method, redirect_uris, scope, created_at, version, metadata, jwks`

// clientMeta is what oauth_clients.metadata holds for a relying party.
type clientMeta struct {
	RAT         string   `json:"registration_token_sha256,omitempty"`
	PostLogout  []string `json:"post_logout_redirect_uris,omitempty"`
	FirstParty  bool     `json:"first_party,omitempty"`
	Secret      string   `json:"client_secret_sha256,omitempty"`
	Backchannel string   `json:"backchannel_logout_uri,omitempty"`
	Sector      string   `json:"sector,omitempty"`
	ClientProfile
}

func metaOf(c *AppClient) string {
	m := clientMeta{RAT: c.ratHash, PostLogout: c.PostLogoutRedirectURIs, FirstParty: c.FirstParty, Secret: c.secretHash, Backchannel: c.BackchannelLogoutURI,
		Sector: c.sector, ClientProfile: c.ClientProfile}
	b, _ := json.Marshal(m) //nolint:gosec // G117: the secret's SHA-256, not the secret
	return string(b)
}

func scanAppClient(r store.Scanner) (*AppClient, error) {
	var c AppClient
	var redirects, meta []byte
	var jwks string
	if err := r.Scan(&c.ID, &c.ClientID, &c.Name, &c.ClientType, &c.TokenEndpointAuthMethod, &redirects, &c.Scope, &c.CreatedAt, &c.Version, &meta,
		&jwks); err != nil {
		return nil, err
	}
	if c.TokenEndpointAuthMethod == "private_key_jwt" || c.TokenEndpointAuthMethod == "self_signed_tls_client_auth" {
		c.jwks = jwks
	}
	_ = json.Unmarshal(redirects, &c.RedirectURIs)
	var m clientMeta
	_ = json.Unmarshal(meta, &m)
	c.ratHash, c.PostLogoutRedirectURIs, c.FirstParty, c.secretHash, c.BackchannelLogoutURI = m.RAT, m.PostLogout, m.FirstParty, m.Secret, m.Backchannel
	c.ClientProfile, c.sector = m.ClientProfile, m.Sector
	return &c, nil
}

// insertAppClient stores a relying-party client with its metadata.
func insertAppClient(ctx context.Context, tx *store.Tx, c *AppClient) error {
	redirects, _ := json.Marshal(c.RedirectURIs)
	_, err := tx.Exec(ctx, `INSERT INTO oauth_clients (tenant_id, id, client_id, name, client_type, token_endpoint_auth_method, grant_types,
		redirect_uris, scope, jwks, metadata, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $9, $10,
		'["authorization_code","refresh_token"]', $5, $6, $11, $8, $7, $7, 1)`,
		tx.TenantID(), c.ID, c.ClientID, c.Name, string(redirects), c.Scope, c.CreatedAt, metaOf(c), c.ClientType, c.TokenEndpointAuthMethod, jwksOf(c))
	return err
}

func jwksOf(c *AppClient) string {
	if c.jwks == "" {
		return `{"keys":[]}`
	}
	return c.jwks
}

// updateAppClient writes a client's name, redirect URIs, scope, metadata,
// keys and version.
func updateAppClient(ctx context.Context, tx *store.Tx, c *AppClient) error {
	redirects, _ := json.Marshal(c.RedirectURIs)
	_, err := tx.Exec(ctx, `UPDATE oauth_clients SET name = $1, redirect_uris = $2, scope = $3, updated_at = $4, version = $5, metadata = $8, jwks = $9
		WHERE tenant_id = $6 AND id = $7`, c.Name, string(redirects), c.Scope, store.Now(), c.Version, tx.TenantID(), c.ID, metaOf(c), jwksOf(c))
	return err
}

// deleteClient removes a client and the consents people gave it.
func deleteClient(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM consents WHERE tenant_id = $1 AND client_id IN (SELECT client_id FROM oauth_clients WHERE tenant_id = $1 AND id = $2)`,
		tx.TenantID(), id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM oauth_clients WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

// listAppClients lists the tenant's relying-party clients, oldest first.
func listAppClients(ctx context.Context, tx *store.Tx) ([]AppClient, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (AppClient, error) {
		c, err := scanAppClient(r)
		if err != nil {
			return AppClient{}, err
		}
		return *c, nil
	}, `SELECT `+appClientCols+` FROM oauth_clients WHERE tenant_id = $1 AND nhi_id IS NULL ORDER BY created_at`, tx.TenantID())
}

// appClientIDOf is the client ID of relying-party client id.
func appClientIDOf(ctx context.Context, tx *store.Tx, id uuid.UUID) (string, error) {
	var clientID string
	err := tx.QueryRow(ctx, `SELECT client_id FROM oauth_clients WHERE tenant_id = $1 AND id = $2 AND nhi_id IS NULL`, tx.TenantID(), id).Scan(&clientID)
	if store.NoRows(err) {
		return "", apperr.NotFound("client")
	}
	return clientID, err
}

// appClientRow reads a relying-party client by client ID, with its
// metadata, locked for update when lock (store.NoRows: none).
func appClientRow(ctx context.Context, tx *store.Tx, clientID string, lock bool) (*AppClient, error) {
	q := `SELECT ` + appClientCols + ` FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2 AND nhi_id IS NULL`
	if lock {
		q += ` FOR UPDATE`
	}
	return scanAppClient(tx.QueryRow(ctx, q, tx.TenantID(), clientID))
}

func insertCode(ctx context.Context, tx *store.Tx, hash string, req *AuthorizeRequest, user uuid.UUID, in SignIn, now, expires time.Time) error {
	res, _ := json.Marshal(req.Resources)
	var session *uuid.UUID
	if in.SessionID != uuid.Nil {
		session = &in.SessionID
	}
	authTime := in.AuthTime
	if authTime.IsZero() {
		authTime = now
	}
	amr := in.AMR
	if len(amr) == 0 {
		amr = []string{"pwd"}
	}
	_, err := tx.Exec(ctx, `INSERT INTO authorization_codes (tenant_id, code_hash, client_id, redirect_uri, user_id, scope, resources, code_challenge, nonce, created_at, expires_at,
		session_id, auth_time, amr)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, tx.TenantID(), hash, req.ClientID, req.RedirectURI, user,
		strings.Join(req.Scope, " "), string(res), req.CodeChallenge, req.Nonce, now, expires, session, authTime, strings.Join(amr, " "))
	return err
}

// codeRow is a stored authorization code.
type codeRow struct {
	clientID, redirectURI, scope, challenge, nonce string
	user                                           uuid.UUID
	resources                                      []string
	createdAt, expires                             time.Time
	used, authTime                                 *time.Time
	family, session                                *uuid.UUID
	amr                                            []string
}

// lockCode reads a code for update (store.NoRows: none).
func lockCode(ctx context.Context, tx *store.Tx, hash string) (*codeRow, error) {
	var r codeRow
	var res []byte
	var amr string
	err := tx.QueryRow(ctx, `SELECT client_id, redirect_uri, user_id, scope, resources, code_challenge, nonce, created_at, expires_at, used_at, family_id,
		session_id, auth_time, amr
		FROM authorization_codes WHERE tenant_id = $1 AND code_hash = $2 FOR UPDATE`, tx.TenantID(), hash).
		Scan(&r.clientID, &r.redirectURI, &r.user, &r.scope, &res, &r.challenge, &r.nonce, &r.createdAt, &r.expires, &r.used, &r.family,
			&r.session, &r.authTime, &amr)
	if err != nil {
		return nil, err
	}
	if r.amr = strings.Fields(amr); len(r.amr) == 0 {
		r.amr = []string{"pwd"}
	}
	_ = json.Unmarshal(res, &r.resources)
	return &r, nil
}

// markCodeUsed marks a code used by the refresh family it started.
func markCodeUsed(ctx context.Context, tx *store.Tx, hash string, family uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE authorization_codes SET used_at = $1, family_id = $2 WHERE tenant_id = $3 AND code_hash = $4`,
		store.Now(), family, tx.TenantID(), hash)
	return err
}

// Consent is what a person allowed a relying party.
type Consent struct {
	ID         uuid.UUID `json:"id"`
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name"`
	Scope      string    `json:"scope"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// consentScopeTx returns the scopes a person granted a client ("" and
// false when none).
func consentScopeTx(ctx context.Context, tx *store.Tx, user uuid.UUID, clientID string) (string, bool, error) {
	var scope string
	err := tx.QueryRow(ctx, `SELECT scope FROM consents WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3`, tx.TenantID(), user, clientID).Scan(&scope)
	if store.NoRows(err) {
		return "", false, nil
	}
	return scope, err == nil, err
}

// putConsentTx records the scopes a person granted a client.
func putConsentTx(ctx context.Context, tx *store.Tx, user uuid.UUID, clientID, scope string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO consents (tenant_id, id, user_id, client_id, scope, created_at, updated_at) VALUES ($1, $6, $2, $3, $4, $5, $5)
		ON CONFLICT (tenant_id, user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at`,
		tx.TenantID(), user, clientID, scope, now, uuid.Must(uuid.NewV7()))
	return err
}

// listConsentsTx lists a person's consents, newest first, with the
// clients' names ("" for a client that is gone).
func listConsentsTx(ctx context.Context, tx *store.Tx, user uuid.UUID) ([]Consent, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Consent, error) {
		var c Consent
		var name *string
		err := r.Scan(&c.ID, &c.ClientID, &name, &c.Scope, &c.CreatedAt, &c.UpdatedAt)
		if name != nil {
			c.ClientName = *name
		}
		return c, err
	}, `SELECT k.id, k.client_id, c.name, k.scope, k.created_at, k.updated_at FROM consents k
		LEFT JOIN oauth_clients c ON c.tenant_id = k.tenant_id AND c.client_id = k.client_id
		WHERE k.tenant_id = $1 AND k.user_id = $2 ORDER BY k.updated_at DESC LIMIT 500`, tx.TenantID(), user)
}

// deleteConsentTx removes a person's consent and returns its client
// ("" when the person has no such consent).
func deleteConsentTx(ctx context.Context, tx *store.Tx, user, id uuid.UUID) (string, error) {
	var clientID string
	err := tx.QueryRow(ctx, `SELECT client_id FROM consents WHERE tenant_id = $1 AND user_id = $2 AND id = $3`, tx.TenantID(), user, id).Scan(&clientID)
	if store.NoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	_, err = tx.Exec(ctx, `DELETE FROM consents WHERE tenant_id = $1 AND user_id = $2 AND id = $3`, tx.TenantID(), user, id)
	return clientID, err
}

// deviceRow is a stored device authorization.
type deviceRow struct {
	hash, clientID, scope, resources, status, amr string
	user, session                                 *uuid.UUID
	authTime, polled                              *time.Time
	created, expires                              time.Time
	interval                                      int
}

const deviceCols = `code_hash, client_id, scope, resources, status, amr, user_id, session_id, auth_time, polled_at, created_at, expires_at, interval_s`

func scanDevice(r store.Scanner) (*deviceRow, error) {
	var d deviceRow
	err := r.Scan(&d.hash, &d.clientID, &d.scope, &d.resources, &d.status, &d.amr, &d.user, &d.session, &d.authTime, &d.polled,
		&d.created, &d.expires, &d.interval)
	if store.NoRows(err) {
		return nil, nil
	}
	return &d, err
}

func insertDeviceTx(ctx context.Context, tx *store.Tx, hash, userCode, clientID, scope, resources string, now, expires time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO device_codes (tenant_id, code_hash, user_code, client_id, scope, resources, status, interval_s, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)`, tx.TenantID(), hash, userCode, clientID, scope, resources, deviceInterval, now, expires)
	return err
}

func deviceByUserCodeTx(ctx context.Context, tx *store.Tx, userCode string) (*deviceRow, error) {
	return scanDevice(tx.QueryRow(ctx, `SELECT `+deviceCols+` FROM device_codes WHERE tenant_id = $1 AND user_code = $2`, tx.TenantID(), userCode))
}

func lockDeviceTx(ctx context.Context, tx *store.Tx, hash string) (*deviceRow, error) {
	return scanDevice(tx.QueryRow(ctx, `SELECT `+deviceCols+` FROM device_codes WHERE tenant_id = $1 AND code_hash = $2 FOR UPDATE`, tx.TenantID(), hash))
}

// decideDeviceTx records a person's answer to a pending, live request
// (false when there is none).
func decideDeviceTx(ctx context.Context, tx *store.Tx, userCode, status string, user uuid.UUID, in SignIn, now time.Time) (bool, error) {
	var session *uuid.UUID
	if in.SessionID != uuid.Nil {
		session = &in.SessionID
	}
	res, err := tx.Exec(ctx, `UPDATE device_codes SET status = $1, user_id = $2, session_id = $3, auth_time = $4, amr = $5
		WHERE tenant_id = $6 AND user_code = $7 AND status = 'pending' AND expires_at > $8`,
		status, user, session, in.AuthTime, strings.Join(in.AMR, " "), tx.TenantID(), userCode, now)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func pollDeviceTx(ctx context.Context, tx *store.Tx, hash string, now time.Time, interval int) error {
	_, err := tx.Exec(ctx, `UPDATE device_codes SET polled_at = $1, interval_s = $2 WHERE tenant_id = $3 AND code_hash = $4`, now, interval, tx.TenantID(), hash)
	return err
}

func useDeviceTx(ctx context.Context, tx *store.Tx, hash string) error {
	_, err := tx.Exec(ctx, `UPDATE device_codes SET status = 'used' WHERE tenant_id = $1 AND code_hash = $2`, tx.TenantID(), hash)
	return err
}

// sessionClient is a relying party an SSO session signed a person in to.
type sessionClient struct {
	clientID string
	user     uuid.UUID
}

// sessionClientsTx lists the relying parties an SSO session signed a
// person in to (by code or device grant).
func sessionClientsTx(ctx context.Context, tx *store.Tx, sid uuid.UUID) ([]sessionClient, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (sessionClient, error) {
		var c sessionClient
		err := r.Scan(&c.clientID, &c.user)
		return c, err
	}, `SELECT client_id, user_id FROM authorization_codes WHERE tenant_id = $1 AND session_id = $2
		UNION SELECT client_id, user_id FROM device_codes WHERE tenant_id = $1 AND session_id = $2 AND status IN ('approved', 'used')`,
		tx.TenantID(), sid)
}

const rsCols = `id, key, name, issuer, settings, entitlement_id, created_at, updated_at, version`

func scanResourceServer(r store.Scanner) (*ResourceServer, error) {
	var rs ResourceServer
	var settings string
	if err := r.Scan(&rs.ID, &rs.Key, &rs.Name, &rs.Issuer, &settings, &rs.EntitlementID, &rs.CreatedAt, &rs.UpdatedAt, &rs.Version); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(settings), &rs.ResourceServerSettings)
	return &rs, nil
}

func insertResourceServerTx(ctx context.Context, tx *store.Tx, rs *ResourceServer, settings string) error {
	_, err := tx.Exec(ctx, `INSERT INTO resource_servers (tenant_id, `+rsCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		tx.TenantID(), rs.ID, rs.Key, rs.Name, rs.Issuer, settings, rs.EntitlementID, rs.CreatedAt, rs.UpdatedAt, rs.Version)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "a resource server with this key already exists")
	}
	return err
}

// resourceServersTx lists the tenant's resource servers, or those of an
// issuer when issuer is not "".
func resourceServersTx(ctx context.Context, tx *store.Tx, issuer string) ([]*ResourceServer, error) {
	if issuer != "" {
		return store.Collect(ctx, tx, scanResourceServer, `SELECT `+rsCols+` FROM resource_servers WHERE tenant_id = $1 AND issuer = $2 ORDER BY key`,
			tx.TenantID(), issuer)
	}
	return store.Collect(ctx, tx, scanResourceServer, `SELECT `+rsCols+` FROM resource_servers WHERE tenant_id = $1 ORDER BY key`, tx.TenantID())
}

func deleteResourceServerTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	r, err := tx.Exec(ctx, `DELETE FROM resource_servers WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}
