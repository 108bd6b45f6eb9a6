-- DPoP (RFC 9449): the proofs already accepted, by the SHA-256 of their
-- key thumbprint and jti, until they are too old to be accepted anyway
-- (a replay on any replica is refused); and the key a refresh token is
-- bound to (its next use needs a proof with the same key). PostgreSQL form.
CREATE TABLE dpop_proofs (
    tenant_id   uuid NOT NULL,
    proof_hash  text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, proof_hash)
);
CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires_at);
ALTER TABLE refresh_tokens ADD COLUMN jkt text NOT NULL DEFAULT '';
ALTER TABLE dpop_proofs ENABLE ROW LEVEL SECURITY;
ALTER TABLE dpop_proofs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dpop_proofs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
