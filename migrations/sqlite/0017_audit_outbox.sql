-- Records of changes are written in the change's own transaction, here,
-- and moved into their tenant's chain right after the commit (the row is
-- deleted in the chaining transaction). SQLite form.
CREATE TABLE audit_outbox (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_outbox_created ON audit_outbox (created_at, id);
