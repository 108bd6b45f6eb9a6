-- What a client declared at initialize (the server-to-client requests the
-- gateway may relay to it) and the log level it asked for.
ALTER TABLE mcp_sessions ADD COLUMN client_capabilities text NOT NULL DEFAULT '{}';
ALTER TABLE mcp_sessions ADD COLUMN log_level text NOT NULL DEFAULT '';
