-- MCP gateway: upstream settings of tool servers, their tool catalog, and
-- agent sessions (stored so that any replica can continue them).

CREATE TABLE mcp_servers (
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    nhi_id          uuid NOT NULL,
    auto_approve    boolean NOT NULL DEFAULT false,
    timeout_ms      integer NOT NULL,
    credential_type text NOT NULL,   -- none, bearer, oauth_client_credentials, mtls
    credential      bytea,           -- sealed JSON of the secret parts
    token_url       text NOT NULL DEFAULT '',
    client_id       text NOT NULL DEFAULT '',
    scope           text NOT NULL DEFAULT '',
    server_ca_pem   text NOT NULL DEFAULT '',  -- extra roots for the upstream's server certificate
    synced_at       timestamptz,
    sync_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (tenant_id, nhi_id)
);
ALTER TABLE mcp_servers ENABLE ROW LEVEL SECURITY;
ALTER TABLE mcp_servers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mcp_servers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE mcp_tools (
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    server_id       uuid NOT NULL,
    name            text NOT NULL,
    definition      text NOT NULL,   -- the definition exactly as the upstream sent it (compacted)
    hash            text NOT NULL,
    entitlement_id  uuid NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, server_id, name)
);
ALTER TABLE mcp_tools ENABLE ROW LEVEL SECURITY;
ALTER TABLE mcp_tools FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mcp_tools
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE mcp_sessions (
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    id_hash          text NOT NULL,
    subject_kind     text NOT NULL,
    subject_id       text NOT NULL,
    server           text NOT NULL DEFAULT '',  -- '' for the aggregate endpoint
    protocol_version text NOT NULL,
    client_info      text NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    terminated_at    timestamptz,
    PRIMARY KEY (tenant_id, id_hash)
);
CREATE INDEX mcp_sessions_expiry ON mcp_sessions (expires_at);
ALTER TABLE mcp_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE mcp_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mcp_sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

