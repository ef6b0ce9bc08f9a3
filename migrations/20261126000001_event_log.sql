-- The append-only event log (SPEC §3, §4).
--
-- Read order is the pair (tx_id, seq): the appending transaction's id and a sequence number.
-- Readers only return rows whose tx_id is below events_read_horizon() (the oldest transaction
-- of this database still running), so a transaction that commits late can never sort before an
-- event that was already delivered. See eventlog/src/position.rs.
CREATE TABLE events (
    tx_id          bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    event_id       uuid        NOT NULL,
    stream_type    text        NOT NULL,
    stream_id      uuid        NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version >= 1),
    workspace_id   uuid,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL,
    -- sha256 over the previous event's hash of the same stream and this event's content.
    hash           bytea       NOT NULL,
    PRIMARY KEY (tx_id, seq),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_workspace_idx ON events (workspace_id, tx_id, seq);
CREATE INDEX events_recorded_at_idx ON events (recorded_at);

-- The log is append-only for the application: updates and deletes are refused by the database
-- itself. (A superuser can still disable the trigger, which is what the hash chain is for.)
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- The read horizon: every transaction with a smaller id has finished, as far as this database
-- can be concerned. It is the smallest in-progress transaction id of the current snapshot
-- (or the snapshot's xmax when none is in progress), ignoring transactions that are positively
-- known to run in another database of the same server (they cannot append to this log; without
-- this, any long transaction anywhere on the server would hold every reader back). Unknown
-- transactions (prepared ones, hidden ones) still count: the horizon errs on the safe side.
CREATE FUNCTION events_read_horizon() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT min(x::text::bigint)
           FROM pg_snapshot_xip(pg_current_snapshot()) AS x
          WHERE NOT EXISTS (
                SELECT 1 FROM pg_stat_get_activity(NULL) AS a
                 WHERE a.backend_xid = xid(x)
                   AND a.datid IS DISTINCT FROM
                       (SELECT oid FROM pg_database WHERE datname = current_database()))),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
$$;
