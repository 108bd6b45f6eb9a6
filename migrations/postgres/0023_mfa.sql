-- Second factors: a person's TOTP authenticators (secret sealed with the
-- KEK; the last time step used, so that each code works once) and their
-- single-use recovery codes (SHA-256 only). PostgreSQL form.
CREATE TABLE mfa_factors (
    tenant_id     uuid NOT NULL,
    id            uuid NOT NULL,
    user_id       uuid NOT NULL,
    kind          text NOT NULL,
    name          text NOT NULL,
    secret        text NOT NULL,
    last_step     bigint NOT NULL DEFAULT 0,
    confirmed_at  timestamptz,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX mfa_factors_user ON mfa_factors (tenant_id, user_id);
CREATE TABLE mfa_recovery_codes (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    code_hash   text NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, code_hash)
);
ALTER TABLE auth_transactions ADD COLUMN pending_user uuid;
ALTER TABLE auth_transactions ADD COLUMN pending_hash text NOT NULL DEFAULT '';
ALTER TABLE mfa_factors ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_factors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mfa_factors
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE mfa_recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mfa_recovery_codes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
