-- Non-human identities: NHIs, user permissions on them, OAuth clients and
-- their secrets, and the built-in CA (authorities, issued certificates, CRL).

CREATE TABLE nhis (
    tenant_id         uuid NOT NULL REFERENCES tenants(id),
    id                uuid NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('agent', 'tool_server', 'service_account')),
    slug              text NOT NULL,
    name              text NOT NULL,
    description       text NOT NULL DEFAULT '',
    status            text NOT NULL CHECK (status IN ('active', 'inactive', 'suspended', 'deprecated', 'archived')),
    status_reason     text NOT NULL DEFAULT '',
    status_changed_at timestamptz NOT NULL,
    -- Owners are users; no foreign key: an owner who leaves makes the NHI
    -- orphaned (reported), not deleted.
    owner_id          uuid,
    backup_owner_id   uuid,
    profile           jsonb NOT NULL,
    risk_score        integer NOT NULL DEFAULT 0,
    risk_factors      jsonb NOT NULL,
    last_used_at      timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    version           bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX nhis_slug ON nhis (tenant_id, slug);
CREATE INDEX nhis_kind ON nhis (tenant_id, kind, status);
CREATE INDEX nhis_owner ON nhis (tenant_id, owner_id);
ALTER TABLE nhis ENABLE ROW LEVEL SECURITY;
ALTER TABLE nhis FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON nhis
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE nhi_permissions (
    tenant_id   uuid NOT NULL,
    nhi_id      uuid NOT NULL,
    user_id     uuid NOT NULL,
    permission  text NOT NULL CHECK (permission IN ('use', 'manage', 'admin')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, nhi_id, user_id),
    FOREIGN KEY (tenant_id, nhi_id) REFERENCES nhis (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX nhi_permissions_user ON nhi_permissions (tenant_id, user_id);
ALTER TABLE nhi_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE nhi_permissions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON nhi_permissions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE oauth_clients (
    tenant_id                  uuid NOT NULL REFERENCES tenants(id),
    id                         uuid NOT NULL,
    client_id                  text NOT NULL,
    nhi_id                     uuid,
    name                       text NOT NULL,
    client_type                text NOT NULL CHECK (client_type IN ('confidential', 'public')),
    token_endpoint_auth_method text NOT NULL,
    grant_types                jsonb NOT NULL,
    redirect_uris              jsonb NOT NULL,
    scope                      text NOT NULL DEFAULT '',
    jwks                       jsonb NOT NULL,
    metadata                   jsonb NOT NULL,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    version                    bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, nhi_id) REFERENCES nhis (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX oauth_clients_client_id ON oauth_clients (tenant_id, client_id);
CREATE UNIQUE INDEX oauth_clients_nhi ON oauth_clients (tenant_id, nhi_id) WHERE nhi_id IS NOT NULL;
ALTER TABLE oauth_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oauth_clients
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE client_secrets (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    client       uuid NOT NULL,
    secret_hash  text NOT NULL,
    hint         text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    expiry_notified_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, client) REFERENCES oauth_clients (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX client_secrets_client ON client_secrets (tenant_id, client);
CREATE UNIQUE INDEX client_secrets_hash ON client_secrets (secret_hash);
ALTER TABLE client_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON client_secrets
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE pki_authorities (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('root', 'intermediate')),
    status       text NOT NULL CHECK (status IN ('active', 'previous', 'retired')),
    cert_pem     text NOT NULL,
    private_key  bytea NOT NULL,
    not_after    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE pki_certificates (
    tenant_id          uuid NOT NULL,
    serial             text NOT NULL,
    nhi_id             uuid NOT NULL,
    spiffe_id          text NOT NULL,
    fingerprint        text NOT NULL,
    cert_pem           text NOT NULL,
    not_before         timestamptz NOT NULL,
    not_after          timestamptz NOT NULL,
    issued_at          timestamptz NOT NULL,
    renewed_from       text,
    revoked_at         timestamptz,
    revocation_reason  text,
    revocation_code    integer,
    PRIMARY KEY (tenant_id, serial),
    FOREIGN KEY (tenant_id, nhi_id) REFERENCES nhis (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pki_certificates_serial ON pki_certificates (serial);
CREATE UNIQUE INDEX pki_certificates_fingerprint ON pki_certificates (fingerprint);
CREATE INDEX pki_certificates_nhi ON pki_certificates (tenant_id, nhi_id, issued_at);
ALTER TABLE pki_certificates ENABLE ROW LEVEL SECURITY;
ALTER TABLE pki_certificates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pki_certificates
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE pki_crls (
    id          integer PRIMARY KEY,
    number      bigint NOT NULL,
    der         bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    duration_ns bigint NOT NULL,
    created_at  timestamptz NOT NULL
);
