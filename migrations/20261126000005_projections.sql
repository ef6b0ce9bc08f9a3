-- Asynchronous projections (SPEC §5): where each one stands, and the analytics one's table.

-- The position (tx_id, seq) of the last event whose effect a projection has stored.
-- Shared projections (node = '') update their row in the transaction that stores the effect,
-- only if it still holds the position they started from, so a deposed leader can never apply
-- an event twice. Node-local projections (the search index) keep their checkpoint with their
-- effect elsewhere and report it here under their node's name, for `chronicle projections
-- status` and `minPosition` waits on other nodes.
CREATE TABLE projection_checkpoints (
    name       text        NOT NULL,
    node       text        NOT NULL DEFAULT '',
    tx_id      bigint      NOT NULL DEFAULT 0,
    seq        bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, node)
);

-- Per-workspace activity, written by the shared `activity` projection.
CREATE TABLE workspace_activity (
    workspace_id  uuid        PRIMARY KEY,
    events        bigint      NOT NULL,
    items_created bigint      NOT NULL,
    items_deleted bigint      NOT NULL,
    last_event_at timestamptz NOT NULL
);
