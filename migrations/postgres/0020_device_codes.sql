-- OAuth 2.0 Device Authorization Grant (RFC 8628): a device's request,
-- found by the SHA-256 of its device code (the device polls) and by its
-- user code (the person types it), decided by a signed-in person.
-- PostgreSQL form.
CREATE TABLE device_codes (
    tenant_id    uuid NOT NULL,
    code_hash    text NOT NULL,
    user_code    text NOT NULL,
    client_id    text NOT NULL,
    scope        text NOT NULL,
    resources    text NOT NULL,
    status       text NOT NULL,
    user_id      uuid,
    session_id   uuid,
    auth_time    timestamptz,
    amr          text NOT NULL DEFAULT '',
    interval_s   integer NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    polled_at    timestamptz,
    PRIMARY KEY (tenant_id, code_hash)
);
CREATE UNIQUE INDEX device_codes_user_code ON device_codes (tenant_id, user_code);
ALTER TABLE device_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON device_codes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
