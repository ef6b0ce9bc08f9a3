-- The read horizon for a read that starts after the statement computing it (SPEC §4).
--
-- `events_read_horizon()` computes the horizon inside the reading statement, from that
-- statement's snapshot; it must then hold back at every transaction of its snapshot it cannot
-- place, including one of another database that ends a moment later (its session is gone
-- before the check) — a transient stall on any busy server with other databases.
--
-- A horizon computed by one statement and used by a later one can do better: a transaction
-- of its snapshot that has finished by the time it is checked committed (or aborted) before
-- the later read's snapshot, so its events are visible to that read. Only transactions still
-- in progress hold the horizon back, unless positively known to run in another database.
CREATE FUNCTION events_settled_horizon() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'the event log is not read on a server in recovery (hot standby): its read horizon cannot be computed there'
            USING ERRCODE = 'CH001',
                  HINT = 'point log readers at the primary';
    END IF;
    RETURN COALESCE(
        (SELECT min(x::text::bigint)
           FROM pg_snapshot_xip(pg_current_snapshot()) AS x
          WHERE pg_xact_status(x) = 'in progress'
            AND NOT EXISTS (
                SELECT 1 FROM pg_stat_get_activity(NULL) AS a
                 WHERE a.backend_xid = xid(x)
                   AND a.datid IS DISTINCT FROM
                       (SELECT oid FROM pg_database WHERE datname = current_database()))),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
        + events_tx_offset();
END;
$$;
