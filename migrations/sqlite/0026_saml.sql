-- The SAML identity provider of each tenant: its signing keys (RSA, with
-- their self-signed certificates; the private key sealed with the KEK; the
-- newest activated one signs, the others are published for a rollover)
-- and the service providers it answers (by stable key and entity id),
-- each guarded by an entitlement; the service providers each SSO session
-- signed in to (for single logout); the ids of signed requests already
-- answered (replays are refused). SQLite form.
CREATE TABLE saml_idp_keys (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    certificate  TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE saml_service_providers (
    tenant_id                TEXT NOT NULL,
    id                       TEXT NOT NULL,
    key                      TEXT NOT NULL,
    name                     TEXT NOT NULL,
    entity_id                TEXT NOT NULL,
    metadata                 TEXT NOT NULL,
    metadata_url             TEXT NOT NULL DEFAULT '',
    refreshed_at             TIMESTAMP,
    entitlement_id           TEXT NOT NULL,
    nameid_format            TEXT NOT NULL,
    nameid_source            TEXT NOT NULL DEFAULT '',
    attributes               TEXT NOT NULL DEFAULT '[]',
    clock_skew_seconds       INTEGER NOT NULL DEFAULT 0,
    require_signed_requests  BOOLEAN NOT NULL DEFAULT 0,
    legacy_sha1              BOOLEAN NOT NULL DEFAULT 0,
    created_at               TIMESTAMP NOT NULL,
    updated_at               TIMESTAMP NOT NULL,
    version                  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE saml_participants (
    tenant_id      TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    sp_entity_id   TEXT NOT NULL,
    name_id        TEXT NOT NULL,
    name_id_format TEXT NOT NULL,
    session_index  TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, session_id, sp_entity_id)
);
CREATE TABLE saml_replay (
    tenant_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE UNIQUE INDEX saml_service_providers_key ON saml_service_providers (tenant_id, key);
CREATE UNIQUE INDEX saml_service_providers_entity ON saml_service_providers (tenant_id, entity_id);
