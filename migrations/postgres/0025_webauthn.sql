-- WebAuthn credentials (passkeys, security keys) are second factors of
-- kind webauthn: their credential record (public key, sign counter,
-- backup flags, AAGUID) is kept in secret as JSON, found by credential id
-- within the tenant. Challenges are single use: a spent one is recorded
-- until it expires. Remembered devices skip the second step for a while.
-- PostgreSQL form.
ALTER TABLE mfa_factors ADD COLUMN credential_id text NOT NULL DEFAULT '';
ALTER TABLE mfa_factors ADD COLUMN last_used_at timestamptz;
CREATE UNIQUE INDEX mfa_factors_credential ON mfa_factors (tenant_id, credential_id) WHERE credential_id <> '';
CREATE TABLE webauthn_spent (
    tenant_id   uuid NOT NULL,
    challenge   text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, challenge)
);
CREATE INDEX webauthn_spent_expiry ON webauthn_spent (tenant_id, expires_at);
CREATE TABLE mfa_remembered (
    tenant_id   uuid NOT NULL,
    token_hash  text NOT NULL,
    user_id     uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX mfa_remembered_user ON mfa_remembered (tenant_id, user_id);
ALTER TABLE webauthn_spent ENABLE ROW LEVEL SECURITY;
ALTER TABLE webauthn_spent FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webauthn_spent
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE mfa_remembered ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_remembered FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mfa_remembered
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
