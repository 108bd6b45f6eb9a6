-- Governance core: applications, entitlements, roles (hierarchy and
-- inducements), and assignments with validity windows and call constraints. SQLite form.

CREATE TABLE applications (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('generic', 'mcp_server', 'a2a_agent', 'saas', 'internal')),
    status       TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'retired')),
    owner_id     TEXT,
    nhi_id       TEXT,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    version      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX applications_key ON applications (tenant_id, key);
CREATE UNIQUE INDEX applications_nhi ON applications (tenant_id, nhi_id) WHERE nhi_id IS NOT NULL;

CREATE TABLE entitlements (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    application_id  TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('generic', 'mcp_tool', 'a2a_call')),
    key             TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    risk_level      TEXT NOT NULL CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
    classification  TEXT NOT NULL CHECK (classification IN ('public', 'internal', 'confidential', 'restricted')),
    owner_id        TEXT,
    requestable     BOOLEAN NOT NULL DEFAULT 0,
    approval_state  TEXT NOT NULL CHECK (approval_state IN ('approved', 'pending', 'quarantined', 'rejected')),
    definition_hash TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, application_id) REFERENCES applications (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX entitlements_key ON entitlements (tenant_id, application_id, key);

CREATE TABLE roles (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('business', 'it')),
    parent_id    TEXT,
    owner_id     TEXT,
    requestable  BOOLEAN NOT NULL DEFAULT 0,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    version      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES roles (tenant_id, id)
);
CREATE UNIQUE INDEX roles_key ON roles (tenant_id, key);

CREATE TABLE role_entitlements (
    tenant_id       TEXT NOT NULL,
    role_id         TEXT NOT NULL,
    entitlement_id  TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, role_id, entitlement_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, entitlement_id) REFERENCES entitlements (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE role_inducements (
    tenant_id        TEXT NOT NULL,
    role_id          TEXT NOT NULL,
    induced_role_id  TEXT NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, role_id, induced_role_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, induced_role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE assignments (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    subject_type   TEXT NOT NULL CHECK (subject_type IN ('user', 'group', 'nhi')),
    subject_id     TEXT NOT NULL,
    target_type    TEXT NOT NULL CHECK (target_type IN ('entitlement', 'role')),
    target_id      TEXT NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('direct', 'role', 'birthright', 'request')),
    valid_from     TIMESTAMP,
    valid_until    TIMESTAMP,
    justification  TEXT NOT NULL DEFAULT '',
    constraints    TEXT NOT NULL,
    created_by     TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX assignments_subject ON assignments (tenant_id, subject_type, subject_id);
CREATE INDEX assignments_target ON assignments (tenant_id, target_type, target_id);
