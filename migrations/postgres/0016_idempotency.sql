-- Retries change nothing twice. PostgreSQL form.
--
-- An assignment identical to one that exists (same subject, target, source,
-- source reference, constraints and validity window) is refused: its
-- dedup_key, a digest of those, is unique per tenant. Assignments made
-- before this step keep a key of their own ("legacy:" and their id).
ALTER TABLE assignments ADD COLUMN dedup_key text NOT NULL DEFAULT '';
UPDATE assignments SET dedup_key = 'legacy:' || id::text;
CREATE UNIQUE INDEX assignments_dedup ON assignments (tenant_id, dedup_key);

-- Idempotency-Key on admin POSTs: the first answer to a key, kept 24 hours
-- and replayed to retries of the same request by the same caller. status
-- is 0 while the first request runs. tenant_id is the nil UUID for
-- platform routes.
CREATE TABLE idempotency_keys (
    tenant_id    uuid NOT NULL,
    principal    text NOT NULL,
    key          text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL DEFAULT 0,
    content_type text NOT NULL DEFAULT '',
    location     text NOT NULL DEFAULT '',
    body         bytea,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, principal, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
