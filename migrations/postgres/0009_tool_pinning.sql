-- Tool pinning: the definition an admin approved stays beside the latest
-- one the tool server listed (a diff shows what changed), and each tool
-- server says which changes need re-approval. PostgreSQL form.

ALTER TABLE mcp_servers ADD COLUMN pin_policy text NOT NULL DEFAULT 'any' CHECK (pin_policy IN ('any', 'description'));
ALTER TABLE mcp_tools ADD COLUMN pinned_definition text NOT NULL DEFAULT '';
ALTER TABLE mcp_tools ADD COLUMN pinned_hash text NOT NULL DEFAULT '';
