-- MCP gateway: upstream settings of tool servers, their tool catalog, and
-- agent sessions. SQLite form.

CREATE TABLE mcp_servers (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    nhi_id          TEXT NOT NULL,
    auto_approve    BOOLEAN NOT NULL DEFAULT 0,
    timeout_ms      INTEGER NOT NULL,
    credential_type TEXT NOT NULL,
    credential      BLOB,
    token_url       TEXT NOT NULL DEFAULT '',
    client_id       TEXT NOT NULL DEFAULT '',
    scope           TEXT NOT NULL DEFAULT '',
    server_ca_pem   TEXT NOT NULL DEFAULT '',
    synced_at       TIMESTAMP,
    sync_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, nhi_id)
);

CREATE TABLE mcp_tools (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    server_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    definition      TEXT NOT NULL,
    hash            TEXT NOT NULL,
    entitlement_id  TEXT NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, server_id, name)
);

CREATE TABLE mcp_sessions (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    id_hash          TEXT NOT NULL,
    subject_kind     TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    server           TEXT NOT NULL DEFAULT '',
    protocol_version TEXT NOT NULL,
    client_info      TEXT NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    expires_at       TIMESTAMP NOT NULL,
    terminated_at    TIMESTAMP,
    PRIMARY KEY (tenant_id, id_hash)
);
CREATE INDEX mcp_sessions_expiry ON mcp_sessions (expires_at);
