-- WebAuthn credentials (passkeys, security keys) are second factors of
-- kind webauthn: their credential record (public key, sign counter,
-- backup flags, AAGUID) is kept in secret as JSON, found by credential id
-- within the tenant. Challenges are single use: a spent one is recorded
-- until it expires. Remembered devices skip the second step for a while.
-- SQLite form.
ALTER TABLE mfa_factors ADD COLUMN credential_id TEXT NOT NULL DEFAULT '';
ALTER TABLE mfa_factors ADD COLUMN last_used_at TIMESTAMP;
CREATE UNIQUE INDEX mfa_factors_credential ON mfa_factors (tenant_id, credential_id) WHERE credential_id <> '';
CREATE TABLE webauthn_spent (
    tenant_id   TEXT NOT NULL,
    challenge   TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, challenge)
);
CREATE INDEX webauthn_spent_expiry ON webauthn_spent (tenant_id, expires_at);
CREATE TABLE mfa_remembered (
    tenant_id   TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX mfa_remembered_user ON mfa_remembered (tenant_id, user_id);
