-- Non-human identities: NHIs, user permissions on them, OAuth clients and
-- their secrets, and the built-in CA (authorities, issued certificates, CRL). SQLite form.

CREATE TABLE nhis (
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    id                TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('agent', 'tool_server', 'service_account')),
    slug              TEXT NOT NULL,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'suspended', 'deprecated', 'archived')),
    status_reason     TEXT NOT NULL DEFAULT '',
    status_changed_at TIMESTAMP NOT NULL,
    -- Owners are users; no foreign key: an owner who leaves makes the NHI
    -- orphaned (reported), not deleted.
    owner_id          TEXT,
    backup_owner_id   TEXT,
    profile           TEXT NOT NULL,
    risk_score        INTEGER NOT NULL DEFAULT 0,
    risk_factors      TEXT NOT NULL,
    last_used_at      TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    version           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX nhis_slug ON nhis (tenant_id, slug);
CREATE INDEX nhis_kind ON nhis (tenant_id, kind, status);
CREATE INDEX nhis_owner ON nhis (tenant_id, owner_id);

CREATE TABLE nhi_permissions (
    tenant_id   TEXT NOT NULL,
    nhi_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    permission  TEXT NOT NULL CHECK (permission IN ('use', 'manage', 'admin')),
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, nhi_id, user_id),
    FOREIGN KEY (tenant_id, nhi_id) REFERENCES nhis (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX nhi_permissions_user ON nhi_permissions (tenant_id, user_id);

CREATE TABLE oauth_clients (
    tenant_id                  TEXT NOT NULL REFERENCES tenants(id),
    id                         TEXT NOT NULL,
    client_id                  TEXT NOT NULL,
    nhi_id                     TEXT,
    name                       TEXT NOT NULL,
    client_type                TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    token_endpoint_auth_method TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    redirect_uris              TEXT NOT NULL,
    scope                      TEXT NOT NULL DEFAULT '',
    jwks                       TEXT NOT NULL,
    metadata                   TEXT NOT NULL,
    created_at                 TIMESTAMP NOT NULL,
    updated_at                 TIMESTAMP NOT NULL,
    version                    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, nhi_id) REFERENCES nhis (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX oauth_clients_client_id ON oauth_clients (tenant_id, client_id);
CREATE UNIQUE INDEX oauth_clients_nhi ON oauth_clients (tenant_id, nhi_id) WHERE nhi_id IS NOT NULL;

CREATE TABLE client_secrets (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    client       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    hint         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP,
    revoked_at   TIMESTAMP,
    expiry_notified_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, client) REFERENCES oauth_clients (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX client_secrets_client ON client_secrets (tenant_id, client);
CREATE UNIQUE INDEX client_secrets_hash ON client_secrets (secret_hash);

CREATE TABLE pki_authorities (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('root', 'intermediate')),
    status       TEXT NOT NULL CHECK (status IN ('active', 'previous', 'retired')),
    cert_pem     TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    not_after    TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

CREATE TABLE pki_certificates (
    tenant_id          TEXT NOT NULL,
    serial             TEXT NOT NULL,
    nhi_id             TEXT NOT NULL,
    spiffe_id          TEXT NOT NULL,
    fingerprint        TEXT NOT NULL,
    cert_pem           TEXT NOT NULL,
    not_before         TIMESTAMP NOT NULL,
    not_after          TIMESTAMP NOT NULL,
    issued_at          TIMESTAMP NOT NULL,
    renewed_from       TEXT,
    revoked_at         TIMESTAMP,
    revocation_reason  TEXT,
    revocation_code    INTEGER,
    PRIMARY KEY (tenant_id, serial),
    FOREIGN KEY (tenant_id, nhi_id) REFERENCES nhis (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pki_certificates_serial ON pki_certificates (serial);
CREATE UNIQUE INDEX pki_certificates_fingerprint ON pki_certificates (fingerprint);
CREATE INDEX pki_certificates_nhi ON pki_certificates (tenant_id, nhi_id, issued_at);

CREATE TABLE pki_crls (
    id          INTEGER PRIMARY KEY,
    number      INTEGER NOT NULL,
    der         BLOB NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    duration_ns INTEGER NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
