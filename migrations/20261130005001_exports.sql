-- Exports read model (SPEC §2, §5): who asked for which export of a workspace's items and
-- where it stands. Updated inline with the workspace's export events
-- (projections/src/inline.rs).
CREATE TABLE exports (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    format       text        NOT NULL,  -- CSV, PDF
    -- the item filter, as the ExportRequested event carries it
    filter       jsonb       NOT NULL,
    status       text        NOT NULL,  -- PENDING, COMPLETED, FAILED
    requested_by uuid        NOT NULL,
    row_count    bigint,
    size_bytes   bigint,
    -- the job run whose chunks are the file (export_chunks.run_id)
    file_id      uuid,
    error        text,
    created_at   timestamptz NOT NULL,
    completed_at timestamptz,
    expires_at   timestamptz,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX exports_workspace_idx ON exports (workspace_id, created_at, id);

-- Export files (SPEC §7: files live in PostgreSQL so any node serves them), written by the
-- export job in chunks as it goes, each run of the job under its own run id. The file of an
-- export is the run named by exports.file_id; chunks of other runs (a run killed midway, a run
-- that lost the race to complete) are never served and are deleted by the job and by pruning.
CREATE TABLE export_chunks (
    export_id uuid    NOT NULL,
    run_id    uuid    NOT NULL,
    chunk_no  integer NOT NULL,
    bytes     bytea   NOT NULL,
    PRIMARY KEY (export_id, run_id, chunk_no)
);
