package mcp

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// The gateway's stores: tool servers' settings (mcp_servers), their
// synced tools (mcp_tools) and MCP sessions (mcp_sessions).

// catalogRow is one synced tool.
type catalogRow struct {
	server, ent uuid.UUID
	name, hash  string
	def         []byte
}

// catalogRows lists every synced tool of the tenant.
func catalogRows(ctx context.Context, tx *store.Tx) ([]catalogRow, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (catalogRow, error) {
		var c catalogRow
		err := r.Scan(&c.server, &c.name, &c.def, &c.ent, &c.hash)
		return c, err
	}, `SELECT server_id, name, definition, entitlement_id, hash FROM mcp_tools WHERE tenant_id = $1`, tx.TenantID())
}

// recordSync notes a tool server's last sync and its error ("" none),
// creating its settings row with defaults if it has none.
func recordSync(ctx context.Context, tx *store.Tx, server uuid.UUID, at time.Time, syncErr string) error {
	_, err := tx.Exec(ctx, `INSERT INTO mcp_servers (tenant_id, nhi_id, timeout_ms, credential_type, synced_at, sync_error, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $5, $5, 1)
		ON CONFLICT (tenant_id, nhi_id) DO UPDATE SET synced_at = $5, sync_error = $6`,
		tx.TenantID(), server, defaultTimeoutMS, CredNone, at, syncErr)
	return err
}

func toolNames(ctx context.Context, tx *store.Tx, server uuid.UUID) ([]string, error) {
	return store.Collect(ctx, tx, store.ScanString, `SELECT name FROM mcp_tools WHERE tenant_id = $1 AND server_id = $2`, tx.TenantID(), server)
}

func deleteTool(ctx context.Context, tx *store.Tx, server uuid.UUID, name string) error {
	_, err := tx.Exec(ctx, `DELETE FROM mcp_tools WHERE tenant_id = $1 AND server_id = $2 AND name = $3`, tx.TenantID(), server, name)
	return err
}

// upsertTool stores a tool's latest definition; an approved one is pinned
// too, a quarantined one waits beside the pinned one for an admin.
func upsertTool(ctx context.Context, tx *store.Tx, server uuid.UUID, name string, def json.RawMessage, hash string, ent uuid.UUID, now time.Time, approved bool) error {
	_, err := tx.Exec(ctx, `INSERT INTO mcp_tools (tenant_id, server_id, name, definition, hash, entitlement_id, updated_at, pinned_definition,
		pinned_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN $4 ELSE '' END, CASE WHEN $8 THEN $5 ELSE '' END)
		ON CONFLICT (tenant_id, server_id, name) DO UPDATE SET definition = $4, hash = $5, entitlement_id = $6, updated_at = $7,
		pinned_definition = CASE WHEN $8 THEN $4 ELSE mcp_tools.pinned_definition END,
		pinned_hash = CASE WHEN $8 THEN $5 ELSE mcp_tools.pinned_hash END`,
		tx.TenantID(), server, name, string(def), hash, ent, now, approved)
	return err
}

// toolsOf lists a tool server's synced tools by name.
func toolsOf(ctx context.Context, tx *store.Tx, server uuid.UUID) ([]Tool, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (Tool, error) {
		t := Tool{ServerID: server}
		var def []byte
		err := r.Scan(&t.Name, &def, &t.Hash, &t.EntitlementID, &t.UpdatedAt)
		t.Definition = def
		return t, err
	}, `SELECT name, definition, hash, entitlement_id, updated_at FROM mcp_tools WHERE tenant_id = $1 AND server_id = $2 ORDER BY name`, tx.TenantID(), server)
}

// pinnedToolsOf reads a tool server's pinned and latest definitions by
// tool name.
func pinnedToolsOf(ctx context.Context, tx *store.Tx, server uuid.UUID) (map[string]pinnedTool, error) {
	rows, err := tx.Query(ctx, `SELECT name, pinned_definition, pinned_hash, definition, hash, entitlement_id FROM mcp_tools WHERE tenant_id = $1 AND server_id = $2`,
		tx.TenantID(), server)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]pinnedTool{}
	for rows.Next() {
		var name string
		var p pinnedTool
		var def, latest []byte
		if err := rows.Scan(&name, &def, &p.hash, &latest, &p.latestHash, &p.ent); err != nil {
			return nil, err
		}
		p.def, p.latest = def, latest
		out[name] = p
	}
	return out, rows.Err()
}

// pinApproved pins the latest definition of the tools of entitlement ent
// whose latest definition hashes to the approved hash.
func pinApproved(ctx context.Context, tx *store.Tx, ent uuid.UUID, hash string) error {
	_, err := tx.Exec(ctx, `UPDATE mcp_tools SET pinned_definition = definition, pinned_hash = hash WHERE tenant_id = $1 AND entitlement_id = $2
		AND pinned_hash <> hash AND hash = $3`, tx.TenantID(), ent, hash)
	return err
}

// settingsOf reads a tool server's settings, locked when lock
// (store.NoRows: none stored).
func settingsOf(ctx context.Context, tx *store.Tx, server uuid.UUID, lock bool) (*Settings, error) {
	q := `SELECT ` + settingsCols + ` FROM mcp_servers WHERE tenant_id = $1 AND nhi_id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	return scanSettings(tx.QueryRow(ctx, q, tx.TenantID(), server))
}

func insertSettings(ctx context.Context, tx *store.Tx, server uuid.UUID, in SettingsInput, sealed []byte, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO mcp_servers (tenant_id, nhi_id, auto_approve, timeout_ms, credential_type, credential, token_url,
		client_id, scope, server_ca_pem, created_at, updated_at, version, pin_policy) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1, $12)`,
		tx.TenantID(), server, in.AutoApprove, in.TimeoutMS, in.CredentialType, sealed, in.TokenURL, in.ClientID, in.Scope, in.ServerCAPEM, now,
		in.PinPolicy)
	return err
}

func updateSettings(ctx context.Context, tx *store.Tx, server uuid.UUID, in SettingsInput, sealed []byte, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE mcp_servers SET auto_approve = $1, timeout_ms = $2, credential_type = $3, credential = $4, token_url = $5,
		client_id = $6, scope = $7, server_ca_pem = $8, updated_at = $9, version = version + 1, pin_policy = $12 WHERE tenant_id = $10 AND nhi_id = $11`,
		in.AutoApprove, in.TimeoutMS, in.CredentialType, sealed, in.TokenURL, in.ClientID, in.Scope, in.ServerCAPEM, now, tx.TenantID(), server,
		in.PinPolicy)
	return err
}

// upstreamRow reads what calling a tool server takes into c and returns
// its sealed credential and timeout in ms (store.NoRows: no settings).
func upstreamRow(ctx context.Context, tx *store.Tx, server uuid.UUID, c *upstreamConfig) ([]byte, int, error) {
	var sealed []byte
	var ms int
	err := tx.QueryRow(ctx, `SELECT auto_approve, timeout_ms, credential_type, credential, token_url, client_id, scope, server_ca_pem, pin_policy
		FROM mcp_servers WHERE tenant_id = $1 AND nhi_id = $2`, tx.TenantID(), server).Scan(&c.auto, &ms, &c.credType, &sealed, &c.tokenURL, &c.clientID,
		&c.scope, &c.serverCA, &c.pinPolicy)
	return sealed, ms, err
}

func insertSession(ctx context.Context, tx *store.Tx, s *session, clientInfo, caps []byte, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO mcp_sessions (tenant_id, id_hash, subject_kind, subject_id, server, protocol_version, client_info,
		client_capabilities, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		tx.TenantID(), s.hash, s.subjectKind, s.subjectID, s.server, s.version, string(clientInfo), string(caps), now, s.expires)
	return err
}

// liveSessions lists a principal's live sessions, newest first.
func liveSessions(ctx context.Context, tx *store.Tx, kind, subject string, now time.Time) ([]string, error) {
	return store.Collect(ctx, tx, store.ScanString, `SELECT id_hash FROM mcp_sessions WHERE tenant_id = $1 AND subject_kind = $2 AND subject_id = $3
		AND terminated_at IS NULL AND expires_at > $4 ORDER BY created_at DESC, id_hash`, tx.TenantID(), kind, subject, now)
}

// endSession terminates a session at now (an ended one keeps its time).
func endSession(ctx context.Context, tx *store.Tx, hash string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE mcp_sessions SET terminated_at = $1 WHERE tenant_id = $2 AND id_hash = $3 AND terminated_at IS NULL`,
		now, tx.TenantID(), hash)
	return err
}

// sessionRow reads session hash into s and returns its client
// capabilities (JSON) and when it was terminated (store.NoRows: none).
func sessionRow(ctx context.Context, tx *store.Tx, hash string, s *session) (string, *time.Time, error) {
	var caps string
	var terminated *time.Time
	err := tx.QueryRow(ctx, `SELECT subject_kind, subject_id, server, protocol_version, client_capabilities, log_level, expires_at, terminated_at
		FROM mcp_sessions WHERE tenant_id = $1 AND id_hash = $2`, tx.TenantID(), hash).
		Scan(&s.subjectKind, &s.subjectID, &s.server, &s.version, &caps, &s.logLevel, &s.expires, &terminated)
	return caps, terminated, err
}

func setSessionLogLevel(ctx context.Context, tx *store.Tx, hash, level string) error {
	_, err := tx.Exec(ctx, `UPDATE mcp_sessions SET log_level = $1 WHERE tenant_id = $2 AND id_hash = $3`, level, tx.TenantID(), hash)
	return err
}

// purgeSessions deletes, across tenants, sessions expired before now or
// terminated before ended; it returns how many.
func purgeSessions(ctx context.Context, tx *store.Tx, now, ended time.Time) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM mcp_sessions WHERE expires_at < $1 OR terminated_at < $2`, now, ended)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
