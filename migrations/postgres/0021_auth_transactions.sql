-- The sign-in page flow's server-side state (an auth transaction): which
-- flow a person is signing in for (an authorization request, a device
-- code, …), found by the SHA-256 of its id (the id travels in URLs and in
-- state / RelayState), and the SSO session the person signed in with.
-- PostgreSQL form.
CREATE TABLE auth_transactions (
    tenant_id    uuid NOT NULL,
    id_hash      text NOT NULL,
    purpose      text NOT NULL,
    request      text NOT NULL,
    session_id   uuid,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
);
CREATE INDEX auth_transactions_expires ON auth_transactions (expires_at);
ALTER TABLE auth_transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_transactions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON auth_transactions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
