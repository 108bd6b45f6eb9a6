-- Access tokens are also revoked by the refresh family they were issued
-- from ("fam": a replayed authorization code, a revoked refresh token) and
-- by client ("client": a deleted client). PostgreSQL form.

ALTER TABLE token_revocations DROP CONSTRAINT token_revocations_kind_check;
ALTER TABLE token_revocations ADD CONSTRAINT token_revocations_kind_check CHECK (kind IN ('jti', 'sid', 'fam', 'client'));

-- A principal's live MCP sessions are counted when it opens one (the
-- oldest beyond the limit end).
CREATE INDEX mcp_sessions_subject ON mcp_sessions (tenant_id, subject_kind, subject_id, created_at);
