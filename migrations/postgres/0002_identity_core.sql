-- Identity core: users, password history, attribute definitions, groups and
-- memberships, sessions, refresh-token families, token revocations and
-- per-tenant signing keys.

CREATE TABLE users (
    tenant_id            uuid NOT NULL REFERENCES tenants(id),
    id                   uuid NOT NULL,
    email                text NOT NULL,
    email_normalized     text NOT NULL,
    username             text,
    given_name           text NOT NULL DEFAULT '',
    family_name          text NOT NULL DEFAULT '',
    display_name         text NOT NULL DEFAULT '',
    status               text NOT NULL CHECK (status IN ('active', 'disabled', 'locked', 'pending_verification')),
    attributes           jsonb NOT NULL,
    admin_roles          jsonb NOT NULL,
    password_hash        text,
    password_changed_at  timestamptz,
    must_change_password boolean NOT NULL DEFAULT false,
    failed_logins        integer NOT NULL DEFAULT 0,
    lockouts             integer NOT NULL DEFAULT 0,
    locked_until         timestamptz,
    last_login_at        timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    version              bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_email ON users (tenant_id, email_normalized);
CREATE UNIQUE INDEX users_username ON users (tenant_id, username) WHERE username IS NOT NULL;
CREATE INDEX users_created ON users (tenant_id, created_at, id);
CREATE INDEX users_status ON users (tenant_id, status, id);
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE password_history (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    id          uuid NOT NULL,
    hash        text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX password_history_user ON password_history (tenant_id, user_id, created_at);
ALTER TABLE password_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON password_history
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE attribute_definitions (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           uuid NOT NULL,
    name         text NOT NULL,
    type         text NOT NULL CHECK (type IN ('string', 'number', 'boolean', 'date', 'enum')),
    required     boolean NOT NULL DEFAULT false,
    enum_values  jsonb NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX attribute_definitions_name ON attribute_definitions (tenant_id, name);
ALTER TABLE attribute_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE attribute_definitions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON attribute_definitions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE groups (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           uuid NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    parent_id    uuid,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES groups (tenant_id, id)
);
CREATE UNIQUE INDEX groups_name ON groups (tenant_id, name);
CREATE INDEX groups_parent ON groups (tenant_id, parent_id);
ALTER TABLE groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE groups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON groups
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE group_members (
    tenant_id   uuid NOT NULL,
    group_id    uuid NOT NULL,
    user_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (tenant_id, user_id);
ALTER TABLE group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE group_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON group_members
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE sessions (
    tenant_id     uuid NOT NULL,
    id            uuid NOT NULL,
    user_id       uuid NOT NULL,
    device        text NOT NULL DEFAULT '',
    ip            text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT '',
    auth_method   text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoked_reason text,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id, created_at);
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE refresh_tokens (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    token_hash   text NOT NULL,
    family_id    uuid NOT NULL,
    session_id   uuid,
    subject      text NOT NULL,
    client_id    text NOT NULL DEFAULT '',
    scope        text NOT NULL DEFAULT '',
    audience     jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (tenant_id, session_id);
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE token_revocations (
    tenant_id   uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('jti', 'sid')),
    value       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);
CREATE INDEX token_revocations_expiry ON token_revocations (expires_at);
ALTER TABLE token_revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE token_revocations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON token_revocations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE signing_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           text NOT NULL,
    alg          text NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    status       text NOT NULL CHECK (status IN ('active', 'passive', 'retired')),
    private_key  bytea NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    retire_at    timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX signing_keys_kid ON signing_keys (id);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (tenant_id) WHERE status = 'active';
ALTER TABLE signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE signing_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON signing_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
