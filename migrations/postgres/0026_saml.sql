-- The SAML identity provider of each tenant: its signing keys (RSA, with
-- their self-signed certificates; the private key sealed with the KEK; the
-- newest activated one signs, the others are published for a rollover)
-- and the service providers it answers (by stable key and entity id),
-- each guarded by an entitlement; the service providers each SSO session
-- signed in to (for single logout); the ids of signed requests already
-- answered (replays are refused). PostgreSQL form.
CREATE TABLE saml_idp_keys (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    certificate  text NOT NULL,
    private_key  text NOT NULL,
    created_at   timestamptz NOT NULL,
    activated_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE saml_service_providers (
    tenant_id                uuid NOT NULL,
    id                       uuid NOT NULL,
    key                      text NOT NULL,
    name                     text NOT NULL,
    entity_id                text NOT NULL,
    metadata                 text NOT NULL,
    metadata_url             text NOT NULL DEFAULT '',
    refreshed_at             timestamptz,
    entitlement_id           uuid NOT NULL,
    nameid_format            text NOT NULL,
    nameid_source            text NOT NULL DEFAULT '',
    attributes               text NOT NULL DEFAULT '[]',
    clock_skew_seconds       integer NOT NULL DEFAULT 0,
    require_signed_requests  boolean NOT NULL DEFAULT false,
    legacy_sha1              boolean NOT NULL DEFAULT false,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    version                  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE saml_participants (
    tenant_id      uuid NOT NULL,
    session_id     uuid NOT NULL,
    sp_entity_id   text NOT NULL,
    name_id        text NOT NULL,
    name_id_format text NOT NULL,
    session_index  text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, session_id, sp_entity_id)
);
CREATE TABLE saml_replay (
    tenant_id   uuid NOT NULL,
    message_id  text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE UNIQUE INDEX saml_service_providers_key ON saml_service_providers (tenant_id, key);
CREATE UNIQUE INDEX saml_service_providers_entity ON saml_service_providers (tenant_id, entity_id);
ALTER TABLE saml_idp_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE saml_idp_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saml_idp_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE saml_service_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE saml_service_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saml_service_providers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE saml_participants ENABLE ROW LEVEL SECURITY;
ALTER TABLE saml_participants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saml_participants
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE saml_replay ENABLE ROW LEVEL SECURITY;
ALTER TABLE saml_replay FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saml_replay
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
