-- API keys (xvk_<public id>_<secret>): found by their public id (unique
-- across tenants: the key names its tenant), checked against the SHA-256
-- of their secret. SQLite form.
CREATE TABLE api_keys (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    public_id     TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    owner_kind    TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    allowed_ips   TEXT NOT NULL,
    expires_at    TIMESTAMP,
    created_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP,
    last_used_at  TIMESTAMP,
    use_count     INTEGER NOT NULL DEFAULT 0,
    version       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX api_keys_public_id ON api_keys (public_id);
