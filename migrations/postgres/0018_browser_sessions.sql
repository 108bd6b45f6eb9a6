-- Browser SSO sessions: a session a person opened on the sign-in pages
-- carries the SHA-256 of its cookie's secret, when and how the person
-- authenticated (RFC 8176 amr values, space-separated); an authorization
-- code remembers the session it was issued in. PostgreSQL form.
ALTER TABLE sessions ADD COLUMN sso_hash text;
ALTER TABLE sessions ADD COLUMN auth_time timestamptz;
ALTER TABLE sessions ADD COLUMN amr text NOT NULL DEFAULT '';
ALTER TABLE authorization_codes ADD COLUMN session_id uuid;
ALTER TABLE authorization_codes ADD COLUMN auth_time timestamptz;
ALTER TABLE authorization_codes ADD COLUMN amr text NOT NULL DEFAULT '';
