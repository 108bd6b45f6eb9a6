-- Foundation: tenants, platform settings and secrets, the outbox and the
-- audit chain. Every table with a tenant_id has forced row-level security:
-- a transaction sees the rows of the tenant in app.tenant_id, or every row
-- on the explicitly named system path (app.system = 'on').

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    settings    jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    version     bigint NOT NULL
);
CREATE INDEX tenants_created ON tenants (created_at, id);

CREATE TABLE system_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE system_secrets (
    name        text PRIMARY KEY,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    kind            text NOT NULL,
    subject_id      text NOT NULL,
    version         bigint NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    dispatched_at   timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_tenant ON outbox (tenant_id, created_at);
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

-- The audit chain of a tenant; tenant_id 00000000-0000-0000-0000-000000000000
-- is the platform's own chain (tenant lifecycle, bootstrap token use).
-- The application role may only SELECT and INSERT here.
CREATE TABLE audit_log (
    tenant_id   uuid NOT NULL,
    seq         bigint NOT NULL,
    id          uuid NOT NULL,
    at          timestamptz NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    text NOT NULL,
    action      text NOT NULL,
    target_kind text NOT NULL,
    target_id   text NOT NULL,
    outcome     text NOT NULL,
    request_id  text NOT NULL,
    details     text NOT NULL, -- the exact JSON bytes that were hashed
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX audit_log_id ON audit_log (tenant_id, id);
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

-- The head of each chain, locked by the appender so that replicas extend
-- one chain in turn.
CREATE TABLE audit_heads (
    tenant_id   uuid PRIMARY KEY,
    seq         bigint NOT NULL,
    hash        bytea NOT NULL,
    updated_at  timestamptz NOT NULL
);
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
