-- Authentication (SPEC §8): password credentials, sessions as refresh-token families, login
-- throttling, and secrets shared by every node. None of these tables is derived from the event
-- log: they are the auth module's own state (api/src/auth).

-- A user's password hash (argon2id, PHC string). Deliberately no foreign key to `users`: that
-- table is a read model that may be rebuilt from the log, which must not take credentials with it.
CREATE TABLE user_credentials (
    user_id       uuid        PRIMARY KEY,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A session: one family of refresh tokens, each replacing the previous one. Revoking the family
-- (log out, or reuse of a used refresh token) ends the session for its refresh token and for
-- every access token carrying its id (`sid`).
CREATE TABLE refresh_token_families (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX refresh_token_families_user_idx ON refresh_token_families (user_id);

-- Refresh tokens, stored only as the sha256 of the token the client holds. A token is used
-- once: `used_at` is set when it is exchanged; presenting it again is reuse.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id  uuid        NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Failed-login counters in fixed windows starting at a window's first failure, per account
-- (normalized email, whether or not it exists) and per client address (IPv4, or the /64 of an
-- IPv6 address). An attempt is counted before its password is checked (so concurrent attempts
-- cannot overshoot the limit) and given back if it succeeds.
CREATE TABLE login_throttle (
    kind         text        NOT NULL CHECK (kind IN ('account', 'ip')),
    subject      text        NOT NULL,
    failures     integer     NOT NULL,
    window_start timestamptz NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- Secrets every node must agree on (the JWT signing key when none is configured): created
-- once by whichever node comes first (INSERT … ON CONFLICT DO NOTHING), then read by all.
CREATE TABLE server_secrets (
    name       text        PRIMARY KEY,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
