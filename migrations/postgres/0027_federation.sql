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
-- PostgreSQL form.
CREATE TABLE identity_providers (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    key         text NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL,
    enabled     boolean NOT NULL,
    settings    text NOT NULL,
    secret      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX identity_providers_key ON identity_providers (tenant_id, key);
CREATE TABLE user_links (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    user_id      uuid NOT NULL,
    source       text NOT NULL,
    external_id  text NOT NULL,
    managed      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX user_links_external ON user_links (tenant_id, source, external_id);
CREATE INDEX user_links_user ON user_links (tenant_id, user_id);
CREATE TABLE federation_attempts (
    tenant_id   uuid NOT NULL,
    state_hash  text NOT NULL,
    provider_id uuid NOT NULL,
    data        text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, state_hash)
);
CREATE INDEX federation_attempts_expires ON federation_attempts (expires_at);
CREATE TABLE federation_sessions (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    tx_hash        text NOT NULL,
    session_id     uuid,
    provider_id    uuid NOT NULL,
    user_id        uuid NOT NULL,
    name_id        text NOT NULL,
    name_id_format text NOT NULL,
    session_index  text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX federation_sessions_tx ON federation_sessions (tenant_id, tx_hash);
CREATE INDEX federation_sessions_session ON federation_sessions (tenant_id, session_id);
CREATE INDEX federation_sessions_upstream ON federation_sessions (tenant_id, provider_id, name_id);
ALTER TABLE auth_transactions ADD COLUMN pending_amr text NOT NULL DEFAULT '';
ALTER TABLE identity_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON identity_providers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE user_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_links
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE federation_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE federation_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON federation_attempts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE federation_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE federation_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON federation_sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
