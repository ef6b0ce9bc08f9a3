-- Inline read models (SPEC §5): the tables frontends query, updated in the same transaction as
-- the append of the events they reflect (projections/src/inline.rs). Each can be rebuilt from
-- the log and then equals the live one.

CREATE TABLE users (
    id               uuid        PRIMARY KEY,
    email            text        NOT NULL,
    -- lower-cased email: the uniqueness key (emails are unique case-insensitively)
    email_normalized text        NOT NULL CONSTRAINT users_email_key UNIQUE,
    display_name     text        NOT NULL,
    referral_code    text        NOT NULL CONSTRAINT users_referral_code_key UNIQUE,
    referred_by      uuid,
    staff_roles      text[]      NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL
);

CREATE TABLE workspaces (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL,
    region        text        NOT NULL,
    plan          text        NOT NULL,
    trial_ends_at timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint      NOT NULL
);

CREATE TABLE members (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    user_id      uuid        NOT NULL,
    role         text        NOT NULL,
    joined_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX members_user_idx ON members (user_id);

CREATE TABLE items (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    title        text        NOT NULL,
    body         text        NOT NULL,
    tags         text[]      NOT NULL,
    status       text        NOT NULL,
    author_id    uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL
);
CREATE INDEX items_workspace_created_idx ON items (workspace_id, created_at, id);
CREATE INDEX items_workspace_updated_idx ON items (workspace_id, updated_at, id);
CREATE INDEX items_workspace_title_idx ON items (workspace_id, title, id);
CREATE INDEX items_tags_idx ON items USING gin (tags);

-- Idempotency keys (SPEC §4): a mutation retried with the same key returns the first result.
-- Written in the same transaction as the mutation's events, so either both exist or neither.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,  -- who may reuse the key: a user id, or 'anonymous'
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,  -- what was asked: the same key with other input is refused
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
