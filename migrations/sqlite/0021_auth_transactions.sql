-- The sign-in page flow's server-side state (an auth transaction): which
-- flow a person is signing in for (an authorization request, a device
-- code, …), found by the SHA-256 of its id (the id travels in URLs and in
-- state / RelayState), and the SSO session the person signed in with.
-- SQLite form.
CREATE TABLE auth_transactions (
    tenant_id    TEXT NOT NULL,
    id_hash      TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    request      TEXT NOT NULL,
    session_id   TEXT,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
);
CREATE INDEX auth_transactions_expires ON auth_transactions (expires_at);
