-- The console's sign-ins (SPEC §8 `/console`). A browser holds a random token in an HttpOnly
-- cookie; the database holds its sha256. Each belongs to a session (a refresh-token family), so
-- ending the session (log-out, revocation, a reused refresh token) ends the console's too.
CREATE TABLE console_sessions (
    token_hash bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id  uuid        NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_family_idx ON console_sessions (family_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
