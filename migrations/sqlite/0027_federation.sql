-- Sign-in through upstream identity providers: each tenant's providers
-- (OIDC, GitHub, SAML), by stable key, their settings as JSON (the client
-- secret a secret reference or sealed with the KEK); the directory's
-- external identities (user_links: a federation subject, later a SCIM
-- externalId, an import key, a connector's account), unique per tenant,
-- source and external id; the sign-ins sent upstream and not yet back
-- (found by the SHA-256 of their state, used once); and the first step
-- of a sign-in that owes a second one now records how it was passed;
-- the upstream SAML sessions each SSO session came from (single logout
-- both ways), tied to their sign-in's transaction until it opens one.
-- SQLite form.
CREATE TABLE identity_providers (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    key         TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    settings    TEXT NOT NULL,
    secret      TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX identity_providers_key ON identity_providers (tenant_id, key);
CREATE TABLE user_links (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    source       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    managed      BOOLEAN NOT NULL DEFAULT 0,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX user_links_external ON user_links (tenant_id, source, external_id);
CREATE INDEX user_links_user ON user_links (tenant_id, user_id);
CREATE TABLE federation_attempts (
    tenant_id   TEXT NOT NULL,
    state_hash  TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    data        TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, state_hash)
);
CREATE INDEX federation_attempts_expires ON federation_attempts (expires_at);
CREATE TABLE federation_sessions (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    tx_hash        TEXT NOT NULL,
    session_id     TEXT,
    provider_id    TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    name_id        TEXT NOT NULL,
    name_id_format TEXT NOT NULL,
    session_index  TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX federation_sessions_tx ON federation_sessions (tenant_id, tx_hash);
CREATE INDEX federation_sessions_session ON federation_sessions (tenant_id, session_id);
CREATE INDEX federation_sessions_upstream ON federation_sessions (tenant_id, provider_id, name_id);
ALTER TABLE auth_transactions ADD COLUMN pending_amr TEXT NOT NULL DEFAULT '';
