-- Access requests, approvals and separation of duties. Form: SQLite.
-- An approval is the generic decision record other modules open (kind
-- access_request here, tool_call for the gateway's approval holds); its
-- steps are copied from a workflow when it opens, its approvers are
-- resolved per step into approval_approvers when the step opens.

ALTER TABLE users ADD COLUMN manager_id TEXT;
ALTER TABLE entitlements ADD COLUMN workflow_id TEXT;
ALTER TABLE roles ADD COLUMN workflow_id TEXT;

CREATE TABLE approval_workflows (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    key            TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    steps          TEXT NOT NULL,
    auto_approve_max_risk TEXT NOT NULL DEFAULT '' CHECK (auto_approve_max_risk IN ('', 'low', 'medium', 'high', 'critical')),
    is_default     BOOLEAN NOT NULL DEFAULT 0,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX approval_workflows_key ON approval_workflows (tenant_id, key);
CREATE UNIQUE INDEX approval_workflows_default ON approval_workflows (tenant_id) WHERE is_default;

CREATE TABLE approvals (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    id               TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('access_request', 'tool_call', 'a2a_call')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'expired', 'failed')),
    requester_type   TEXT NOT NULL,
    requester_id     TEXT NOT NULL,
    subject_type     TEXT NOT NULL CHECK (subject_type IN ('user', 'nhi')),
    subject_id       TEXT NOT NULL,
    target_type      TEXT NOT NULL CHECK (target_type IN ('entitlement', 'role')),
    target_id        TEXT NOT NULL,
    risk_level       TEXT NOT NULL,
    workflow_id      TEXT,
    steps            TEXT NOT NULL,
    current_step     INTEGER NOT NULL DEFAULT 0,
    step_started_at  TIMESTAMP NOT NULL,
    step_due_at      TIMESTAMP,
    escalated        BOOLEAN NOT NULL DEFAULT 0,
    justification    TEXT NOT NULL DEFAULT '',
    duration_seconds INTEGER NOT NULL DEFAULT 0,
    payload          TEXT NOT NULL,
    fingerprint      TEXT NOT NULL DEFAULT '',
    assignment_id    TEXT,
    reason           TEXT NOT NULL DEFAULT '',
    expires_at       TIMESTAMP NOT NULL,
    decided_at       TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    version          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX approvals_status ON approvals (tenant_id, status, step_started_at);
CREATE INDEX approvals_requester ON approvals (tenant_id, requester_id, id);
CREATE INDEX approvals_subject ON approvals (tenant_id, subject_id, id);
CREATE INDEX approvals_due ON approvals (step_due_at) WHERE status = 'pending';
-- Held calls: an approval may cover identical calls (same subject, target and content) for a while.
CREATE INDEX approvals_fingerprint ON approvals (tenant_id, fingerprint, decided_at) WHERE kind <> 'access_request';
CREATE INDEX approvals_expiry ON approvals (expires_at) WHERE status = 'pending';
-- One pending request per access (racing requests: one wins).
CREATE UNIQUE INDEX approvals_one_pending_request ON approvals (tenant_id, subject_type, subject_id, target_type, target_id)
    WHERE status = 'pending' AND kind = 'access_request';

CREATE TABLE approval_approvers (
    tenant_id    TEXT NOT NULL,
    approval_id  TEXT NOT NULL,
    step         INTEGER NOT NULL,
    user_id      TEXT NOT NULL,
    via          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, approval_id, step, user_id),
    FOREIGN KEY (tenant_id, approval_id) REFERENCES approvals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX approval_approvers_user ON approval_approvers (tenant_id, user_id);

CREATE TABLE approval_decisions (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    approval_id   TEXT NOT NULL,
    step          INTEGER NOT NULL,
    approver_id   TEXT NOT NULL,
    on_behalf_of  TEXT,
    decision      TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    comment       TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, approval_id) REFERENCES approvals (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX approval_decisions_once ON approval_decisions (tenant_id, approval_id, step, approver_id);

CREATE TABLE approval_events (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    approval_id  TEXT NOT NULL,
    at           TIMESTAMP NOT NULL,
    actor        TEXT NOT NULL,
    type         TEXT NOT NULL,
    step         INTEGER NOT NULL DEFAULT 0,
    comment      TEXT NOT NULL DEFAULT '',
    data         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, approval_id) REFERENCES approvals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX approval_events_approval ON approval_events (tenant_id, approval_id, id);

CREATE TABLE approval_delegations (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    id            TEXT NOT NULL,
    delegator_id  TEXT NOT NULL,
    delegate_id   TEXT NOT NULL,
    starts_at     TIMESTAMP NOT NULL,
    ends_at       TIMESTAMP NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX approval_delegations_delegate ON approval_delegations (tenant_id, delegate_id, ends_at);
CREATE INDEX approval_delegations_delegator ON approval_delegations (tenant_id, delegator_id, ends_at);

CREATE TABLE sod_rules (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    severity     TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    kind         TEXT NOT NULL CHECK (kind IN ('conflict', 'cardinality')),
    left_ids     TEXT NOT NULL,
    right_ids    TEXT NOT NULL,
    max_held     INTEGER NOT NULL DEFAULT 0,
    enabled      BOOLEAN NOT NULL DEFAULT 1,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    version      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX sod_rules_key ON sod_rules (tenant_id, key);

CREATE TABLE sod_exemptions (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    rule_id        TEXT NOT NULL,
    subject_type   TEXT NOT NULL CHECK (subject_type IN ('user', 'nhi')),
    subject_id     TEXT NOT NULL,
    justification  TEXT NOT NULL,
    approved_by    TEXT NOT NULL,
    expires_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES sod_rules (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sod_exemptions_subject ON sod_exemptions (tenant_id, subject_type, subject_id);

CREATE TABLE sod_violations (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    subject_type     TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    entitlement_ids  TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    first_seen_at    TIMESTAMP NOT NULL,
    last_seen_at     TIMESTAMP NOT NULL,
    resolved_at      TIMESTAMP,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES sod_rules (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX sod_violations_open ON sod_violations (tenant_id, rule_id, subject_type, subject_id) WHERE status = 'open';
