-- Single-use tokens of the account flows mailed to people (an invitation,
-- a password reset, an address to verify), found by their SHA-256; the
-- token itself is only ever in the email. PostgreSQL form.
CREATE TABLE account_tokens (
    tenant_id    uuid NOT NULL,
    token_hash   text NOT NULL,
    kind         text NOT NULL,
    user_id      uuid NOT NULL,
    email        text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX account_tokens_user ON account_tokens (tenant_id, user_id, kind);
ALTER TABLE account_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON account_tokens
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
