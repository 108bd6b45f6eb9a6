-- Access tokens are also revoked by the refresh family they were issued
-- from ("fam": a replayed authorization code, a revoked refresh token) and
-- by client ("client": a deleted client). PostgreSQL form.

ALTER TABLE token_revocations DROP CONSTRAINT token_revocations_kind_check;
ALTER TABLE token_revocations ADD CONSTRAINT token_revocations_kind_check CHECK (kind IN ('jti', 'sid', 'fam', 'client'));
