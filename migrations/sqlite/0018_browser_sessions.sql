-- Browser SSO sessions: a session a person opened on the sign-in pages
-- carries the SHA-256 of its cookie's secret, when and how the person
-- authenticated (RFC 8176 amr values, space-separated); an authorization
-- code remembers the session it was issued in. SQLite form.
ALTER TABLE sessions ADD COLUMN sso_hash TEXT;
ALTER TABLE sessions ADD COLUMN auth_time TIMESTAMP;
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE authorization_codes ADD COLUMN session_id TEXT;
ALTER TABLE authorization_codes ADD COLUMN auth_time TIMESTAMP;
ALTER TABLE authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT '';
