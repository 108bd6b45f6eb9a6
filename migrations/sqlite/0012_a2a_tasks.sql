-- A2A tasks made through the gateway belong to the caller that made them:
-- another caller is told they do not exist. SQLite form.

CREATE TABLE a2a_tasks (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    agent          TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    caller_kind    TEXT NOT NULL,
    caller_id      TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, agent, task_id)
);
CREATE INDEX a2a_tasks_created ON a2a_tasks (created_at);
