-- A2A tasks made through the gateway belong to the caller that made them:
-- another caller is told they do not exist. PostgreSQL form.

CREATE TABLE a2a_tasks (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    agent          text NOT NULL,
    task_id        text NOT NULL,
    caller_kind    text NOT NULL,
    caller_id      text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent, task_id)
);
CREATE INDEX a2a_tasks_created ON a2a_tasks (created_at);
ALTER TABLE a2a_tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE a2a_tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON a2a_tasks
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid OR current_setting('app.system', true) = 'on');
