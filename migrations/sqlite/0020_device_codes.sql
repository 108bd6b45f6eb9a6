-- OAuth 2.0 Device Authorization Grant (RFC 8628): a device's request,
-- found by the SHA-256 of its device code (the device polls) and by its
-- user code (the person types it), decided by a signed-in person. SQLite
-- form.
CREATE TABLE device_codes (
    tenant_id    TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    user_code    TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    scope        TEXT NOT NULL,
    resources    TEXT NOT NULL,
    status       TEXT NOT NULL,
    user_id      TEXT,
    session_id   TEXT,
    auth_time    TIMESTAMP,
    amr          TEXT NOT NULL DEFAULT '',
    interval_s   INTEGER NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    polled_at    TIMESTAMP,
    PRIMARY KEY (tenant_id, code_hash)
);
CREATE UNIQUE INDEX device_codes_user_code ON device_codes (tenant_id, user_code);
