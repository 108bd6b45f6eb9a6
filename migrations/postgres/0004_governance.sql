-- Governance core: applications, entitlements, roles (hierarchy and
-- inducements), and assignments with validity windows and call constraints.

CREATE TABLE applications (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           uuid NOT NULL,
    key          text NOT NULL,
    name         text NOT NULL,
    type         text NOT NULL CHECK (type IN ('generic', 'mcp_server', 'a2a_agent', 'saas', 'internal')),
    status       text NOT NULL CHECK (status IN ('active', 'inactive', 'retired')),
    owner_id     uuid,
    nhi_id       uuid,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX applications_key ON applications (tenant_id, key);
CREATE UNIQUE INDEX applications_nhi ON applications (tenant_id, nhi_id) WHERE nhi_id IS NOT NULL;
ALTER TABLE applications ENABLE ROW LEVEL SECURITY;
ALTER TABLE applications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON applications
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE entitlements (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    application_id  uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('generic', 'mcp_tool', 'a2a_call')),
    key             text NOT NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    risk_level      text NOT NULL CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
    classification  text NOT NULL CHECK (classification IN ('public', 'internal', 'confidential', 'restricted')),
    owner_id        uuid,
    requestable     boolean NOT NULL DEFAULT false,
    approval_state  text NOT NULL CHECK (approval_state IN ('approved', 'pending', 'quarantined', 'rejected')),
    definition_hash text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, application_id) REFERENCES applications (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX entitlements_key ON entitlements (tenant_id, application_id, key);
ALTER TABLE entitlements ENABLE ROW LEVEL SECURITY;
ALTER TABLE entitlements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON entitlements
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE roles (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           uuid NOT NULL,
    key          text NOT NULL,
    name         text NOT NULL,
    type         text NOT NULL CHECK (type IN ('business', 'it')),
    parent_id    uuid,
    owner_id     uuid,
    requestable  boolean NOT NULL DEFAULT false,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES roles (tenant_id, id)
);
CREATE UNIQUE INDEX roles_key ON roles (tenant_id, key);
ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON roles
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE role_entitlements (
    tenant_id       uuid NOT NULL,
    role_id         uuid NOT NULL,
    entitlement_id  uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, role_id, entitlement_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, entitlement_id) REFERENCES entitlements (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE role_entitlements ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_entitlements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON role_entitlements
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE role_inducements (
    tenant_id        uuid NOT NULL,
    role_id          uuid NOT NULL,
    induced_role_id  uuid NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, role_id, induced_role_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, induced_role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE role_inducements ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_inducements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON role_inducements
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');

CREATE TABLE assignments (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    id             uuid NOT NULL,
    subject_type   text NOT NULL CHECK (subject_type IN ('user', 'group', 'nhi')),
    subject_id     uuid NOT NULL,
    target_type    text NOT NULL CHECK (target_type IN ('entitlement', 'role')),
    target_id      uuid NOT NULL,
    source         text NOT NULL CHECK (source IN ('direct', 'role', 'birthright', 'request')),
    valid_from     timestamptz,
    valid_until    timestamptz,
    justification  text NOT NULL DEFAULT '',
    constraints    jsonb NOT NULL,
    created_by     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX assignments_subject ON assignments (tenant_id, subject_type, subject_id);
CREATE INDEX assignments_target ON assignments (tenant_id, target_type, target_id);
ALTER TABLE assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON assignments
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
