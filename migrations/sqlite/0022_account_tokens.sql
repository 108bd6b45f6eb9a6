-- Single-use tokens of the account flows mailed to people (an invitation,
-- a password reset, an address to verify), found by their SHA-256; the
-- token itself is only ever in the email. SQLite form.
CREATE TABLE account_tokens (
    tenant_id    TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    email        TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    used_at      TIMESTAMP,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX account_tokens_user ON account_tokens (tenant_id, user_id, kind);
