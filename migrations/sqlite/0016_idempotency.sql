-- Retries change nothing twice. SQLite form.
--
-- An assignment identical to one that exists (same subject, target, source,
-- source reference, constraints and validity window) is refused: its
-- dedup_key, a digest of those, is unique per tenant. Assignments made
-- before this step keep a key of their own ("legacy:" and their id).
ALTER TABLE assignments ADD COLUMN dedup_key TEXT NOT NULL DEFAULT '';
UPDATE assignments SET dedup_key = 'legacy:' || id;
CREATE UNIQUE INDEX assignments_dedup ON assignments (tenant_id, dedup_key);

-- Idempotency-Key on admin POSTs: the first answer to a key, kept 24 hours
-- and replayed to retries of the same request by the same caller. status
-- is 0 while the first request runs. tenant_id is the nil UUID for
-- platform routes.
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    location     TEXT NOT NULL DEFAULT '',
    body         BLOB,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, principal, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
