//! Reading streams and the whole log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, EventLog, Metadata, Position, RecordedEvent};

/// An `events` row as selected by the readers below.
pub(crate) struct EventRow {
    pub tx_id: i64,
    pub seq: i64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub workspace_id: Option<Uuid>,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl EventLog {
    /// Every event of one stream, oldest first.
    #[tracing::instrument(skip(self))]
    pub async fn read_stream(&self, stream_id: Uuid) -> Result<Vec<RecordedEvent>, Error> {
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events WHERE stream_id = $1 ORDER BY stream_version"#,
            stream_id
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|row| self.decode(row)).collect()
    }

    /// Up to `limit` events after `after`, in log order.
    ///
    /// Only events of transactions older than every transaction of this database still running
    /// are returned (see `events_read_horizon` in the migrations), so a transaction that commits
    /// later can never add an event before the last one read: resuming after the last returned
    /// position never skips anything.
    #[tracing::instrument(skip(self))]
    pub async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events
               WHERE (tx_id, seq) > ($1, $2)
                 AND tx_id < events_read_horizon()
               ORDER BY tx_id, seq
               LIMIT $3"#,
            after.tx_id(),
            after.seq(),
            limit.min(i64::MAX as usize) as i64
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|row| self.decode(row)).collect()
    }

    /// Whether events after `after` exist that [`EventLog::read_all`] cannot return yet,
    /// because an older transaction is still open.
    pub async fn has_held_back_events(&self, after: Position) -> Result<bool, Error> {
        let held = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM events
                              WHERE (tx_id, seq) > ($1, $2) AND tx_id >= events_read_horizon())
                      AS "held!""#,
            after.tx_id(),
            after.seq()
        )
        .fetch_one(self.pool())
        .await?;
        Ok(held)
    }

    /// The position of the last event readers can see now ([`Position::START`] if none).
    pub async fn head(&self) -> Result<Position, Error> {
        let head = sqlx::query!(
            r#"SELECT tx_id, seq FROM events
               WHERE tx_id < events_read_horizon()
               ORDER BY tx_id DESC, seq DESC LIMIT 1"#
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(head.map_or(Position::START, |row| Position::new(row.tx_id, row.seq)))
    }

    fn decode(&self, row: EventRow) -> Result<RecordedEvent, Error> {
        let metadata: Metadata =
            serde_json::from_value(row.metadata).map_err(|err| Error::Corrupt {
                event_id: row.event_id,
                reason: format!("metadata: {err}"),
            })?;
        let (schema_version, payload) =
            (self.inner.upcaster)(&row.event_type, row.schema_version, row.payload);
        Ok(RecordedEvent {
            position: Position::new(row.tx_id, row.seq),
            event_id: row.event_id,
            stream_type: row.stream_type,
            stream_id: row.stream_id,
            stream_version: row.stream_version as u64,
            workspace_id: row.workspace_id,
            event_type: row.event_type,
            schema_version,
            payload,
            metadata,
            recorded_at: row.recorded_at,
        })
    }
}

impl EventLog {
    /// How long the oldest write transaction of this database that is still open has been
    /// running: readers cannot pass its transaction id, so a long one stalls every projection
    /// and tail. `None` when no write transaction is open.
    pub async fn reader_stall(&self) -> Result<Option<std::time::Duration>, Error> {
        let seconds = sqlx::query_scalar!(
            r#"SELECT EXTRACT(EPOCH FROM now() - min(xact_start))::float8 AS "seconds"
               FROM pg_stat_activity
               WHERE datname = current_database() AND backend_xid IS NOT NULL"#
        )
        .fetch_one(self.pool())
        .await?;
        Ok(seconds.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))))
    }
}

impl EventLog {
    /// Up to `limit` events of streams of `stream_type`, ordered by stream and version, after
    /// `after` (a stream id and version), read on the caller's connection with its snapshot —
    /// for replays that hold locks keeping writers out (see `projections::inline::rebuild`).
    pub async fn read_streams_of_type_in(
        &self,
        conn: &mut sqlx::PgConnection,
        stream_type: &str,
        after: Option<(Uuid, u64)>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let (after_stream, after_version) =
            after.map_or((Uuid::nil(), 0), |(id, v)| (id, v as i64));
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events
               WHERE stream_type = $1 AND (stream_id, stream_version) > ($2, $3)
               ORDER BY stream_id, stream_version
               LIMIT $4"#,
            stream_type,
            after_stream,
            after_version,
            limit.min(i64::MAX as usize) as i64
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().map(|row| self.decode(row)).collect()
    }
}

impl EventLog {
    /// Every event of a transaction that `snapshot` (a `pg_snapshot` in its text form, as
    /// `pg_current_snapshot()` gave it) does not see, ordered by stream and version: what
    /// committed after a replay took that snapshot. Read on the caller's connection.
    pub async fn read_invisible_to_in(
        &self,
        conn: &mut sqlx::PgConnection,
        snapshot: &str,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events
               WHERE tx_id >= pg_snapshot_xmin($1::text::pg_snapshot)::text::bigint
                 AND NOT pg_visible_in_snapshot(tx_id::text::xid8, $1::text::pg_snapshot)
               ORDER BY stream_id, stream_version"#,
            snapshot
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().map(|row| self.decode(row)).collect()
    }
}

/// Which events a filtered read returns. Every condition set must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub workspace_id: Option<Uuid>,
    pub stream_id: Option<Uuid>,
    /// The acting user (`metadata.actor.id`).
    pub actor_id: Option<Uuid>,
    /// Any of these event types (`None`: all).
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
    /// Streams of this type (`"item"`, `"workspace"`, `"user"`).
    pub stream_type: Option<String>,
    /// At or before this position.
    pub up_to: Option<Position>,
}

/// Reads a page of filtered events in one direction; `$visible` bounds what may be read.
macro_rules! filtered_page {
    ($log:expr, $filter:expr, $after:expr, $limit:expr, $cmp:literal, $dir:literal, $visible:literal) => {
        sqlx::query_as!(
            EventRow,
            "SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                    event_type, schema_version, payload, metadata, recorded_at
             FROM events
             WHERE ($1::uuid IS NULL OR workspace_id = $1)
               AND ($2::uuid IS NULL OR stream_id = $2)
               AND ($3::text IS NULL OR metadata->'actor'->>'id' = $3)
               AND ($4::text[] IS NULL OR event_type = ANY($4))
               AND ($5::timestamptz IS NULL OR recorded_at >= $5)
               AND ($6::timestamptz IS NULL OR recorded_at < $6)
               AND ($7::bigint IS NULL OR (tx_id, seq) "
                + $cmp
                + " ($7, $8))
               AND ($10::text IS NULL OR stream_type = $10)
               AND ($11::bigint IS NULL OR (tx_id, seq) <= ($11, $12))
               "
                + $visible
                + "
             ORDER BY tx_id "
                + $dir
                + ", seq "
                + $dir
                + "
             LIMIT $9",
            $filter.workspace_id,
            $filter.stream_id,
            $filter.actor_id.map(|id| id.to_string()),
            $filter.event_types.as_deref(),
            $filter.from,
            $filter.to,
            $after.map(|p: Position| p.tx_id()),
            $after.map(|p: Position| p.seq()),
            $limit.min(i64::MAX as usize) as i64,
            $filter.stream_type.as_deref(),
            $filter.up_to.map(|p: Position| p.tx_id()),
            $filter.up_to.map(|p: Position| p.seq())
        )
        .fetch_all($log.pool())
        .await?
    };
}

impl EventLog {
    /// Up to `limit` events matching `filter`, after `after` in the chosen direction. Oldest
    /// first reads only below the read horizon, like [`EventLog::read_all`], so paging forward
    /// from a cursor never skips an event that commits late; newest first (histories) reads
    /// everything committed.
    pub async fn read_filtered(
        &self,
        filter: &EventFilter,
        after: Option<Position>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let rows = if newest_first {
            filtered_page!(self, filter, after, limit, "<", "DESC", "")
        } else {
            filtered_page!(
                self,
                filter,
                after,
                limit,
                ">",
                "ASC",
                "AND tx_id < events_read_horizon()"
            )
        };
        rows.into_iter().map(|row| self.decode(row)).collect()
    }
}

impl EventLog {
    /// How many events follow `after`, counting no further than `cap`: a cheap lag check.
    pub async fn count_after_capped(&self, after: Position, cap: u64) -> Result<u64, Error> {
        let count = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM (
                   SELECT 1 FROM events WHERE (tx_id, seq) > ($1, $2) LIMIT $3) AS behind"#,
            after.tx_id(),
            after.seq(),
            i64::try_from(cap).unwrap_or(i64::MAX)
        )
        .fetch_one(self.pool())
        .await?;
        Ok(count as u64)
    }

    /// How many events follow `after` (in one workspace, if given): for progress reports.
    pub async fn count_after(
        &self,
        after: Option<Position>,
        workspace_id: Option<Uuid>,
    ) -> Result<u64, Error> {
        let after = after.unwrap_or(Position::START);
        let count = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM events
               WHERE (tx_id, seq) > ($1, $2) AND ($3::uuid IS NULL OR workspace_id = $3)"#,
            after.tx_id(),
            after.seq(),
            workspace_id
        )
        .fetch_one(self.pool())
        .await?;
        Ok(count as u64)
    }
}
