-- Audit exports: a tenant's audit records streamed to its SIEM over syslog
-- (RFC 5424 messages, octet-counted TCP, optionally TLS), from a cursor.
-- PostgreSQL form.

CREATE TABLE audit_exports (
    tenant_id            uuid NOT NULL REFERENCES tenants(id),
    id                   uuid NOT NULL,
    name                 text NOT NULL,
    address              text NOT NULL,
    tls                  boolean NOT NULL,
    server_ca_pem        text NOT NULL DEFAULT '',
    format               text NOT NULL,
    status               text NOT NULL,
    cursor               bigint NOT NULL,
    exported             bigint NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL,
    lease_until          timestamptz,
    last_error           text,
    last_exported_at     timestamptz,
    version              bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE audit_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_exports
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
