-- Access tokens are also revoked by the refresh family they were issued
-- from ("fam": a replayed authorization code, a revoked refresh token) and
-- by client ("client": a deleted client). SQLite form: a CHECK changes
-- only by rebuilding the table.

CREATE TABLE token_revocations_new (
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('jti', 'sid', 'fam', 'client')),
    value       TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);
INSERT INTO token_revocations_new (tenant_id, kind, value, expires_at, created_at)
    SELECT tenant_id, kind, value, expires_at, created_at FROM token_revocations;
DROP TABLE token_revocations;
ALTER TABLE token_revocations_new RENAME TO token_revocations;
CREATE INDEX token_revocations_expiry ON token_revocations (expires_at);

-- A principal's live MCP sessions are counted when it opens one (the
-- oldest beyond the limit end).
CREATE INDEX mcp_sessions_subject ON mcp_sessions (tenant_id, subject_kind, subject_id, created_at);
