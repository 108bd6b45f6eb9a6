-- API keys (xvk_<public id>_<secret>): found by their public id (unique
-- across tenants: the key names its tenant), checked against the SHA-256
-- of their secret. PostgreSQL form.
CREATE TABLE api_keys (
    tenant_id     uuid NOT NULL,
    id            uuid NOT NULL,
    public_id     text NOT NULL,
    secret_hash   text NOT NULL,
    owner_kind    text NOT NULL,
    owner_id      uuid NOT NULL,
    name          text NOT NULL,
    scopes        text NOT NULL,
    allowed_ips   text NOT NULL,
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    use_count     bigint NOT NULL DEFAULT 0,
    version       bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX api_keys_public_id ON api_keys (public_id);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
