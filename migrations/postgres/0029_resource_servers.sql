-- The authorization servers of other organizations a tenant's people may
-- reach with an identity assertion grant (ID-JAG) from it: by stable key,
-- their issuer (the grant's audience), the resources and scopes a grant
-- may name, the entitlement that allows a person to get one, and the ids
-- the tenant's clients have there. PostgreSQL form.
CREATE TABLE resource_servers (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    key            text NOT NULL,
    name           text NOT NULL,
    issuer         text NOT NULL,
    settings       text NOT NULL,
    entitlement_id uuid NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX resource_servers_key ON resource_servers (tenant_id, key);
CREATE INDEX resource_servers_issuer ON resource_servers (tenant_id, issuer);
ALTER TABLE resource_servers ENABLE ROW LEVEL SECURITY;
ALTER TABLE resource_servers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resource_servers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
