-- Authorization codes (single use, PKCE-bound, short-lived).

CREATE TABLE authorization_codes (
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    code_hash       text NOT NULL,
    client_id       text NOT NULL,
    redirect_uri    text NOT NULL,
    user_id         uuid NOT NULL,
    scope           text NOT NULL,
    resources       jsonb NOT NULL,
    code_challenge  text NOT NULL,
    nonce           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    family_id       uuid,
    PRIMARY KEY (tenant_id, code_hash)
);
ALTER TABLE authorization_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE authorization_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON authorization_codes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
