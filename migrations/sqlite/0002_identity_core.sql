-- Identity core (SQLite form): users, password history, attribute definitions, groups and
-- memberships, sessions, refresh-token families, token revocations and
-- per-tenant signing keys.

CREATE TABLE users (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    id                   TEXT NOT NULL,
    email                TEXT NOT NULL,
    email_normalized     TEXT NOT NULL,
    username             TEXT,
    given_name           TEXT NOT NULL DEFAULT '',
    family_name          TEXT NOT NULL DEFAULT '',
    display_name         TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'locked', 'pending_verification')),
    attributes           TEXT NOT NULL,
    admin_roles          TEXT NOT NULL,
    password_hash        TEXT,
    password_changed_at  TIMESTAMP,
    must_change_password BOOLEAN NOT NULL DEFAULT 0,
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    lockouts             INTEGER NOT NULL DEFAULT 0,
    locked_until         TIMESTAMP,
    last_login_at        TIMESTAMP,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL,
    version              INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_email ON users (tenant_id, email_normalized);
CREATE UNIQUE INDEX users_username ON users (tenant_id, username) WHERE username IS NOT NULL;
CREATE INDEX users_created ON users (tenant_id, created_at, id);
CREATE INDEX users_status ON users (tenant_id, status, id);

CREATE TABLE password_history (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX password_history_user ON password_history (tenant_id, user_id, created_at);

CREATE TABLE attribute_definitions (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('string', 'number', 'boolean', 'date', 'enum')),
    required     BOOLEAN NOT NULL DEFAULT 0,
    enum_values  TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    version      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX attribute_definitions_name ON attribute_definitions (tenant_id, name);

CREATE TABLE groups (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    parent_id    TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    version      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES groups (tenant_id, id)
);
CREATE UNIQUE INDEX groups_name ON groups (tenant_id, name);
CREATE INDEX groups_parent ON groups (tenant_id, parent_id);

CREATE TABLE group_members (
    tenant_id   TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (tenant_id, user_id);

CREATE TABLE sessions (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    device        TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    auth_method   TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP,
    revoked_reason TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id, created_at);

CREATE TABLE refresh_tokens (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    family_id    TEXT NOT NULL,
    session_id   TEXT,
    subject      TEXT NOT NULL,
    client_id    TEXT NOT NULL DEFAULT '',
    scope        TEXT NOT NULL DEFAULT '',
    audience     TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    used_at      TIMESTAMP,
    revoked_at   TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (tenant_id, session_id);

CREATE TABLE token_revocations (
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('jti', 'sid')),
    value       TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);
CREATE INDEX token_revocations_expiry ON token_revocations (expires_at);

CREATE TABLE signing_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    alg          TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    status       TEXT NOT NULL CHECK (status IN ('active', 'passive', 'retired')),
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    rotated_at   TIMESTAMP,
    retire_at    TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX signing_keys_kid ON signing_keys (id);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (tenant_id) WHERE status = 'active';
