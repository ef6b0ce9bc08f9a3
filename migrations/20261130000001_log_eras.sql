-- The log's order survives operations (SPEC §4).
--
-- 1. Eras. A position's tx_id is the appending transaction's id plus an offset kept in
--    `events_era`. A dump restored into a fresh cluster (or a move to a managed database, or a
--    logical-replication switch-over) restarts the transaction-id counter below the stored
--    tx_ids; `eventlog::ensure_positions_increase` (run at migrate and at start) then raises the
--    offset, under a lock that keeps appenders out, so that every new tx_id sorts after every
--    stored one. The read horizon is shifted by the same offset, so readers see the whole
--    history and then the new events, in order.
-- 2. A hot standby cannot compute the read horizon (its snapshots do not say which transactions
--    of the primary run in which database): `events_read_horizon()` refuses to answer there.
-- 3. An append to an existing stream must be the first write of its transaction: the
--    per-stream version order follows the log order only if the insert takes the id.

CREATE TABLE events_era (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    -- added to pg_current_xact_id() to make an event's tx_id
    tx_offset  bigint      NOT NULL DEFAULT 0 CHECK (tx_offset >= 0),
    -- when the offset was last raised (null: never)
    raised_at  timestamptz
);
INSERT INTO events_era DEFAULT VALUES;

-- The offset of the current era. STABLE: an INSERT reads it with its statement's snapshot,
-- which (READ COMMITTED) is taken after the INSERT obtained its lock on `events` — so an
-- appender held up by a raise of the offset sees the raised one.
CREATE FUNCTION events_tx_offset() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT tx_offset FROM events_era
$$;

ALTER TABLE events
    ALTER COLUMN tx_id SET DEFAULT (pg_current_xact_id()::text::bigint + events_tx_offset());

-- The read horizon, in tx_id terms: every event with a smaller tx_id is committed (or will
-- never be). See 20261126000001_event_log.sql for which transactions count.
CREATE OR REPLACE FUNCTION events_read_horizon() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'the event log is not read on a server in recovery (hot standby): its read horizon cannot be computed there'
            USING ERRCODE = 'CH001',
                  HINT = 'point log readers at the primary';
    END IF;
    RETURN COALESCE(
        (SELECT min(x::text::bigint)
           FROM pg_snapshot_xip(pg_current_snapshot()) AS x
          WHERE NOT EXISTS (
                SELECT 1 FROM pg_stat_get_activity(NULL) AS a
                 WHERE a.backend_xid = xid(x)
                   AND a.datid IS DISTINCT FROM
                       (SELECT oid FROM pg_database WHERE datname = current_database()))),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
        + events_tx_offset();
END;
$$;

-- Called by the append statement before its rows are inserted: refuses an append to a stream
-- that already has events (its versions follow the head the appender read) by a transaction
-- that already has a transaction id — it wrote something, or asked for its id, before. Such a
-- transaction can hold an id older than that of an append it read the head of, and its event
-- (the next version) would then sort before that one. An append that starts a stream is safe
-- anywhere in its transaction (the unique key orders it before any later version).
CREATE FUNCTION events_check_first_write(extends_stream boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF extends_stream AND pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'an append to an existing stream must be the first write of its transaction'
            USING ERRCODE = 'CH002',
                  DETAIL = format('transaction %s wrote before appending', pg_current_xact_id_if_assigned()),
                  HINT = 'append first, then write read models and other tables';
    END IF;
    RETURN true;
END;
$$;
