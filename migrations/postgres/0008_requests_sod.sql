-- Access requests, approvals and separation of duties. Form: PostgreSQL.
-- An approval is the generic decision record other modules open (kind
-- access_request here, tool_call for the gateway's approval holds); its
-- steps are copied from a workflow when it opens, its approvers are
-- resolved per step into approval_approvers when the step opens.

ALTER TABLE users ADD COLUMN manager_id uuid;
ALTER TABLE entitlements ADD COLUMN workflow_id uuid;
ALTER TABLE roles ADD COLUMN workflow_id uuid;

CREATE TABLE approval_workflows (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    id             uuid NOT NULL,
    key            text NOT NULL,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    steps          jsonb NOT NULL,
    auto_approve_max_risk text NOT NULL DEFAULT '' CHECK (auto_approve_max_risk IN ('', 'low', 'medium', 'high', 'critical')),
    is_default     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX approval_workflows_key ON approval_workflows (tenant_id, key);
CREATE UNIQUE INDEX approval_workflows_default ON approval_workflows (tenant_id) WHERE is_default;

CREATE TABLE approvals (
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    id               uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('access_request', 'tool_call', 'a2a_call')),
    status           text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'expired', 'failed')),
    requester_type   text NOT NULL,
    requester_id     uuid NOT NULL,
    subject_type     text NOT NULL CHECK (subject_type IN ('user', 'nhi')),
    subject_id       uuid NOT NULL,
    target_type      text NOT NULL CHECK (target_type IN ('entitlement', 'role')),
    target_id        uuid NOT NULL,
    risk_level       text NOT NULL,
    workflow_id      uuid,
    steps            jsonb NOT NULL,
    current_step     bigint NOT NULL DEFAULT 0,
    step_started_at  timestamptz NOT NULL,
    step_due_at      timestamptz,
    escalated        boolean NOT NULL DEFAULT false,
    justification    text NOT NULL DEFAULT '',
    duration_seconds bigint NOT NULL DEFAULT 0,
    payload          jsonb NOT NULL,
    fingerprint      text NOT NULL DEFAULT '',
    assignment_id    uuid,
    reason           text NOT NULL DEFAULT '',
    expires_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL,
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
    tenant_id    uuid NOT NULL,
    approval_id  uuid NOT NULL,
    step         bigint NOT NULL,
    user_id      uuid NOT NULL,
    via          text NOT NULL,
    PRIMARY KEY (tenant_id, approval_id, step, user_id),
    FOREIGN KEY (tenant_id, approval_id) REFERENCES approvals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX approval_approvers_user ON approval_approvers (tenant_id, user_id);

CREATE TABLE approval_decisions (
    tenant_id     uuid NOT NULL,
    id            uuid NOT NULL,
    approval_id   uuid NOT NULL,
    step          bigint NOT NULL,
    approver_id   uuid NOT NULL,
    on_behalf_of  uuid,
    decision      text NOT NULL CHECK (decision IN ('approve', 'deny')),
    comment       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, approval_id) REFERENCES approvals (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX approval_decisions_once ON approval_decisions (tenant_id, approval_id, step, approver_id);

CREATE TABLE approval_events (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    approval_id  uuid NOT NULL,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    type         text NOT NULL,
    step         bigint NOT NULL DEFAULT 0,
    comment      text NOT NULL DEFAULT '',
    data         jsonb NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, approval_id) REFERENCES approvals (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX approval_events_approval ON approval_events (tenant_id, approval_id, id);

CREATE TABLE approval_delegations (
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    id            uuid NOT NULL,
    delegator_id  uuid NOT NULL,
    delegate_id   uuid NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    reason        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX approval_delegations_delegate ON approval_delegations (tenant_id, delegate_id, ends_at);
CREATE INDEX approval_delegations_delegator ON approval_delegations (tenant_id, delegator_id, ends_at);

CREATE TABLE sod_rules (
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    id           uuid NOT NULL,
    key          text NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    severity     text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    kind         text NOT NULL CHECK (kind IN ('conflict', 'cardinality')),
    left_ids     jsonb NOT NULL,
    right_ids    jsonb NOT NULL,
    max_held     bigint NOT NULL DEFAULT 0,
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX sod_rules_key ON sod_rules (tenant_id, key);

CREATE TABLE sod_exemptions (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    rule_id        uuid NOT NULL,
    subject_type   text NOT NULL CHECK (subject_type IN ('user', 'nhi')),
    subject_id     uuid NOT NULL,
    justification  text NOT NULL,
    approved_by    text NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES sod_rules (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sod_exemptions_subject ON sod_exemptions (tenant_id, subject_type, subject_id);

CREATE TABLE sod_violations (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    rule_id          uuid NOT NULL,
    subject_type     text NOT NULL,
    subject_id       uuid NOT NULL,
    entitlement_ids  jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN ('open', 'resolved')),
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    resolved_at      timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES sod_rules (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX sod_violations_open ON sod_violations (tenant_id, rule_id, subject_type, subject_id) WHERE status = 'open';
ALTER TABLE approval_workflows ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_workflows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_workflows
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE approvals ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approvals
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE approval_approvers ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_approvers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_approvers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE approval_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_decisions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE approval_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE approval_delegations ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_delegations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approval_delegations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE sod_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE sod_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sod_rules
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE sod_exemptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sod_exemptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sod_exemptions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
ALTER TABLE sod_violations ENABLE ROW LEVEL SECURITY;
ALTER TABLE sod_violations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sod_violations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
