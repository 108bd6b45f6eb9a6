-- DPoP (RFC 9449): the proofs already accepted, by the SHA-256 of their
-- key thumbprint and jti, until they are too old to be accepted anyway
-- (a replay on any replica is refused); and the key a refresh token is
-- bound to (its next use needs a proof with the same key). SQLite form.
CREATE TABLE dpop_proofs (
    tenant_id   TEXT NOT NULL,
    proof_hash  TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, proof_hash)
);
CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires_at);
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT NOT NULL DEFAULT '';
