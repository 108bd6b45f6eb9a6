-- A2A push notifications: a caller's webhook, registered through the
-- gateway, is replaced toward the target by a relay URL of xavyo's; the
-- relay delivers to the caller. PostgreSQL form.

CREATE TABLE a2a_push_relays (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    id             uuid NOT NULL,
    agent          text NOT NULL,
    caller_kind    text NOT NULL,
    caller_id      text NOT NULL,
    url            text NOT NULL,
    caller_token   bytea,
    secret_sha256  text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE a2a_push_relays ENABLE ROW LEVEL SECURITY;
ALTER TABLE a2a_push_relays FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON a2a_push_relays
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
