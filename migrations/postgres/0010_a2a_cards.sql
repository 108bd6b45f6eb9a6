-- A2A: an agent's own card as last imported from its endpoint, beside the
-- card an admin approved (pinned). PostgreSQL form.

CREATE TABLE a2a_cards (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    nhi_id       uuid NOT NULL,
    card         text NOT NULL,
    hash         text NOT NULL,
    signed       boolean NOT NULL,
    pinned_card  text NOT NULL DEFAULT '',
    pinned_hash  text NOT NULL DEFAULT '',
    fetched_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, nhi_id)
);
ALTER TABLE a2a_cards ENABLE ROW LEVEL SECURITY;
ALTER TABLE a2a_cards FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON a2a_cards
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
