-- Invites read model (SPEC §2): who was invited to which workspace, and how it ended.
-- Updated inline with the workspace's invite events (projections/src/inline.rs).
CREATE TABLE invites (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    email        text        NOT NULL,
    role         text        NOT NULL,
    -- sha256 of the secret token (the token itself is only ever shown to the inviter)
    token_hash   text        NOT NULL CONSTRAINT invites_token_hash_key UNIQUE,
    status       text        NOT NULL,  -- PENDING, ACCEPTED, REVOKED
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX invites_workspace_idx ON invites (workspace_id, created_at, id);
