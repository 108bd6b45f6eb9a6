-- The authorization servers of other organizations a tenant's people may
-- reach with an identity assertion grant (ID-JAG) from it: by stable key,
-- their issuer (the grant's audience), the resources and scopes a grant
-- may name, the entitlement that allows a person to get one, and the ids
-- the tenant's clients have there. SQLite form.
CREATE TABLE resource_servers (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    key            TEXT NOT NULL,
    name           TEXT NOT NULL,
    issuer         TEXT NOT NULL,
    settings       TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX resource_servers_key ON resource_servers (tenant_id, key);
CREATE INDEX resource_servers_issuer ON resource_servers (tenant_id, issuer);
