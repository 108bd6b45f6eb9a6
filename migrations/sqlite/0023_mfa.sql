-- Second factors: a person's TOTP authenticators (secret sealed with the
-- KEK; the last time step used, so that each code works once) and their
-- single-use recovery codes (SHA-256 only). SQLite form.
CREATE TABLE mfa_factors (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    secret        TEXT NOT NULL,
    last_step     INTEGER NOT NULL DEFAULT 0,
    confirmed_at  TIMESTAMP,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX mfa_factors_user ON mfa_factors (tenant_id, user_id);
CREATE TABLE mfa_recovery_codes (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    used_at     TIMESTAMP,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, user_id, code_hash)
);
ALTER TABLE auth_transactions ADD COLUMN pending_user TEXT;
ALTER TABLE auth_transactions ADD COLUMN pending_hash TEXT NOT NULL DEFAULT '';
