-- A2A push notifications: a caller's webhook, registered through the
-- gateway, is replaced toward the target by a relay URL of xavyo's; the
-- relay delivers to the caller. SQLite form.

CREATE TABLE a2a_push_relays (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    agent          TEXT NOT NULL,
    caller_kind    TEXT NOT NULL,
    caller_id      TEXT NOT NULL,
    url            TEXT NOT NULL,
    caller_token   BLOB,
    secret_sha256  TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
