-- Audit exports: a tenant's audit records streamed to its SIEM over syslog
-- (RFC 5424 messages, octet-counted TCP, optionally TLS), from a cursor.
-- SQLite form.

CREATE TABLE audit_exports (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    id                   TEXT NOT NULL,
    name                 TEXT NOT NULL,
    address              TEXT NOT NULL,
    tls                  BOOLEAN NOT NULL,
    server_ca_pem        TEXT NOT NULL DEFAULT '',
    format               TEXT NOT NULL,
    status               TEXT NOT NULL,
    cursor               INTEGER NOT NULL,
    exported             INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_at      TIMESTAMP NOT NULL,
    lease_until          TIMESTAMP,
    last_error           TEXT,
    last_exported_at     TIMESTAMP,
    version              INTEGER NOT NULL,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
