-- Tool pinning: the definition an admin approved stays beside the latest
-- one the tool server listed (a diff shows what changed), and each tool
-- server says which changes need re-approval. SQLite form.

ALTER TABLE mcp_servers ADD COLUMN pin_policy TEXT NOT NULL DEFAULT 'any' CHECK (pin_policy IN ('any', 'description'));
ALTER TABLE mcp_tools ADD COLUMN pinned_definition TEXT NOT NULL DEFAULT '';
ALTER TABLE mcp_tools ADD COLUMN pinned_hash TEXT NOT NULL DEFAULT '';
