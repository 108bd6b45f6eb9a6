-- Authorization codes (single use, PKCE-bound, short-lived). SQLite form.

CREATE TABLE authorization_codes (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    code_hash       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resources       TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    nonce           TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    used_at         TIMESTAMP,
    family_id       TEXT,
    PRIMARY KEY (tenant_id, code_hash)
);
