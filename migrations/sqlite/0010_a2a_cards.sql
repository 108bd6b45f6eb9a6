-- A2A: an agent's own card as last imported from its endpoint, beside the
-- card an admin approved (pinned). SQLite form.

CREATE TABLE a2a_cards (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    nhi_id       TEXT NOT NULL,
    card         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    signed       BOOLEAN NOT NULL,
    pinned_card  TEXT NOT NULL DEFAULT '',
    pinned_hash  TEXT NOT NULL DEFAULT '',
    fetched_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, nhi_id)
);
