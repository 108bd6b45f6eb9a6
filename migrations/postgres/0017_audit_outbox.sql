-- Records of changes are written in the change's own transaction, here,
-- and moved into their tenant's chain right after the commit (the row is
-- deleted in the chaining transaction). PostgreSQL form.
CREATE TABLE audit_outbox (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    text NOT NULL,
    action      text NOT NULL,
    target_kind text NOT NULL,
    target_id   text NOT NULL,
    outcome     text NOT NULL,
    request_id  text NOT NULL,
    details     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_outbox_created ON audit_outbox (created_at, id);
ALTER TABLE audit_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_outbox
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
