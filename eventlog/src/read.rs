//! Reading streams and the whole log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, EventLog, Metadata, Position, RecordedEvent, ScannedEvent};

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
    /// are returned (below [`EventLog::horizon`]), so a transaction that commits
    /// later can never add an event before the last one read: resuming after the last returned
    /// position never skips anything.
    #[tracing::instrument(skip(self))]
    pub async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let horizon = self.horizon().await?;
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events
               WHERE (tx_id, seq) > ($1, $2)
                 AND (tx_id, seq) < ($4, $5)
               ORDER BY tx_id, seq
               LIMIT $3"#,
            after.tx_id(),
            after.seq(),
            limit.min(i64::MAX as usize) as i64,
            horizon.tx_id(),
            horizon.seq()
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|row| self.decode(row)).collect()
    }

    /// [`EventLog::read_all`] for a bulk replay: the same events, each read lean
    /// ([`ScannedEvent`]: no metadata, the payload left in its stored text for the reader to
    /// decode only where it wants).
    #[tracing::instrument(skip(self))]
    pub async fn scan(&self, after: Position, limit: usize) -> Result<Vec<ScannedEvent>, Error> {
        let horizon = self.horizon().await?;
        let rows = sqlx::query!(
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, event_type, schema_version,
                      payload::text AS "payload!", recorded_at
               FROM events
               WHERE (tx_id, seq) > ($1, $2)
                 AND (tx_id, seq) < ($4, $5)
               ORDER BY tx_id, seq
               LIMIT $3"#,
            after.tx_id(),
            after.seq(),
            limit.min(i64::MAX as usize) as i64,
            horizon.tx_id(),
            horizon.seq()
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ScannedEvent {
                position: Position::new(row.tx_id, row.seq),
                event_id: row.event_id,
                stream_type: row.stream_type,
                stream_id: row.stream_id,
                event_type: row.event_type,
                schema_version: row.schema_version,
                payload: row.payload,
                recorded_at: row.recorded_at,
            })
            .collect())
    }

    /// Whether events after `after` exist that [`EventLog::read_all`] cannot return yet,
    /// because an older transaction is still open.
    pub async fn has_held_back_events(&self, after: Position) -> Result<bool, Error> {
        let horizon = self.horizon().await?;
        let held = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM events
                              WHERE (tx_id, seq) > ($1, $2) AND (tx_id, seq) >= ($3, $4))
                      AS "held!""#,
            after.tx_id(),
            after.seq(),
            horizon.tx_id(),
            horizon.seq()
        )
        .fetch_one(self.pool())
        .await?;
        Ok(held)
    }

    /// The position of the last event readers can see now ([`Position::START`] if none).
    pub async fn head(&self) -> Result<Position, Error> {
        let horizon = self.horizon().await?;
        let head = sqlx::query!(
            r#"SELECT tx_id, seq FROM events
               WHERE (tx_id, seq) < ($1, $2)
               ORDER BY tx_id DESC, seq DESC LIMIT 1"#,
            horizon.tx_id(),
            horizon.seq()
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(head.map_or(Position::START, |row| Position::new(row.tx_id, row.seq)))
    }

    /// Whether `position` may have been handed out by this log: its transaction id is below
    /// the next one the database will assign (in the current era). A position beyond that was
    /// returned by no append, so waiting for it to become visible would be waiting for nothing.
    pub async fn may_have_issued(&self, position: Position) -> Result<bool, Error> {
        Ok(sqlx::query_scalar!(
            r#"SELECT $1::bigint < pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                                  + events_tx_offset() AS "issued!""#,
            position.tx_id()
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// The read horizon as a position: every event before it is committed (and visible to
    /// any read that starts after this call returns), and no event can ever be added before
    /// it. Fails with [`Error::HotStandby`] on a server in recovery.
    ///
    /// Readers ask for it first and then read below it, in a second statement: a transaction
    /// that ends between the two then holds nothing back (see `events_settled_horizon` in the
    /// migrations), where a horizon computed inside the reading statement must wait for it.
    pub async fn horizon(&self) -> Result<Position, Error> {
        let horizon = sqlx::query_scalar!(r#"SELECT events_settled_horizon() AS "horizon!""#)
            .fetch_one(self.pool())
            .await?;
        Ok(Position::new(horizon, 0))
    }

    fn decode(&self, row: EventRow) -> Result<RecordedEvent, Error> {
        let metadata: Metadata =
            serde_json::from_value(row.metadata).map_err(|err| Error::Corrupt {
                event_id: row.event_id,
                reason: format!("metadata: {err}"),
            })?;
        // The one place stored payloads are upcast: every reader of the log goes through here.
        let (schema_version, payload) =
            domain::upcast::upcast(&row.event_type, row.schema_version, row.payload);
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

/// What holds every reader of the log back: the oldest transaction the read horizon waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderStall {
    /// Its transaction id.
    pub xid: i64,
    /// How long it has been holding readers back: since it started (or was prepared) when the
    /// database says, otherwise since this node first saw it doing so.
    pub age: std::time::Duration,
    pub cause: StallCause,
}

/// What kind of transaction holds readers back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallCause {
    /// A prepared (two-phase) transaction, in any database of the server, waiting for
    /// `COMMIT PREPARED` or `ROLLBACK PREPARED`.
    Prepared { gid: String, database: String },
    /// A transaction of a session (in this database, or one whose database or role this
    /// connection may not see).
    Session {
        pid: i32,
        database: Option<String>,
        role: Option<String>,
    },
    /// A transaction the server tells nothing about to this role.
    Unknown,
}

impl std::fmt::Display for ReaderStall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.age.as_secs_f64();
        match &self.cause {
            StallCause::Prepared { gid, database } => write!(
                f,
                "prepared transaction '{gid}' in database {database} (xid {}), prepared {secs:.0} s ago: \
                 COMMIT PREPARED or ROLLBACK PREPARED it",
                self.xid
            ),
            StallCause::Session {
                pid,
                database,
                role,
            } => write!(
                f,
                "transaction {} of session {pid} (database {}, role {}), open {secs:.0} s",
                self.xid,
                database.as_deref().unwrap_or("?"),
                role.as_deref().unwrap_or("?"),
            ),
            StallCause::Unknown => write!(
                f,
                "transaction {} (not visible to this role), seen holding readers back for {secs:.0} s",
                self.xid
            ),
        }
    }
}

impl EventLog {
    /// The transaction the read horizon waits for, if any, with its age: a prepared
    /// transaction anywhere on the server, a long transaction of this database, or one of
    /// another role whose database is hidden all stall every projection and tail.
    pub async fn reader_stall(&self) -> Result<Option<ReaderStall>, Error> {
        // Every transaction holds an exclusive lock on its own id (a prepared one too, with
        // no session). The oldest that may write to this database is what the read horizon
        // waits for; a session positively known to run in another database is left out, as
        // `events_read_horizon()` does. A session's oldest id is its top-level transaction's.
        let row = sqlx::query!(
            r#"SELECT l.transactionid::text::bigint AS "xid!",
                      p.gid AS "gid?", p.database::text AS "prepared_in?",
                      EXTRACT(EPOCH FROM now() - p.prepared)::float8 AS "prepared_secs?",
                      l.pid AS "pid?", a.datname::text AS "database?", a.usename::text AS "role?",
                      EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS "running_secs?"
               FROM pg_locks AS l
               LEFT JOIN pg_prepared_xacts AS p ON p.transaction = l.transactionid
               LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
               WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
                 AND l.pid IS DISTINCT FROM pg_backend_pid()
                 AND NOT (a.backend_xid IS NOT NULL
                          AND a.datid IS DISTINCT FROM
                              (SELECT oid FROM pg_database WHERE datname = current_database()))
               ORDER BY age(l.transactionid) DESC
               LIMIT 1"#
        )
        .fetch_optional(self.pool())
        .await?;
        let mut seen = self
            .inner
            .stall_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(row) = row else {
            *seen = None;
            return Ok(None);
        };
        let first_seen = match *seen {
            Some((xid, since)) if xid == row.xid => since,
            _ => {
                let now = std::time::Instant::now();
                *seen = Some((row.xid, now));
                now
            }
        };
        let (cause, known_secs) = match (row.gid, row.pid) {
            (Some(gid), _) => (
                StallCause::Prepared {
                    gid,
                    database: row.prepared_in.unwrap_or_default(),
                },
                row.prepared_secs,
            ),
            (None, Some(pid)) => (
                StallCause::Session {
                    pid,
                    database: row.database,
                    role: row.role,
                },
                row.running_secs,
            ),
            (None, None) => (StallCause::Unknown, None),
        };
        let age = known_secs.map_or_else(
            || first_seen.elapsed(),
            |secs| std::time::Duration::from_secs_f64(secs.max(0.0)),
        );
        Ok(Some(ReaderStall {
            xid: row.xid,
            age,
            cause,
        }))
    }
}

impl EventLog {
    /// Up to `limit` events of streams of `stream_type` before `below` (normally the read
    /// horizon, so the set read never changes), ordered by stream and version, after `after`
    /// (a stream id and version). Each call is one short statement: a replay reads the log in
    /// batches without holding a transaction open (see `projections::inline::rebuild`).
    pub async fn read_streams_of_type_below(
        &self,
        stream_type: &str,
        below: Position,
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
                 AND (tx_id, seq) < ($5, $6)
               ORDER BY stream_id, stream_version
               LIMIT $4"#,
            stream_type,
            after_stream,
            after_version,
            limit.min(i64::MAX as usize) as i64,
            below.tx_id(),
            below.seq()
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|row| self.decode(row)).collect()
    }

    /// Every event at or after `from` that `conn` sees, ordered by stream and version: what a
    /// replay of the events before `from` has not applied. Read on the caller's connection.
    pub async fn read_from_in(
        &self,
        conn: &mut sqlx::PgConnection,
        from: Position,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events
               WHERE (tx_id, seq) >= ($1, $2)
               ORDER BY stream_id, stream_version"#,
            from.tx_id(),
            from.seq()
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

/// Reads a page of filtered events in one direction, below the read horizon.
macro_rules! filtered_page {
    ($log:expr, $filter:expr, $after:expr, $limit:expr, $horizon:expr, $cmp:literal, $dir:literal) => {
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
               AND (tx_id, seq) < ($13, $14)
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
            $filter.up_to.map(|p: Position| p.seq()),
            $horizon.tx_id(),
            $horizon.seq()
        )
        .fetch_all($log.pool())
        .await?
    };
}

impl EventLog {
    /// Up to `limit` events matching `filter`, after `after` in the chosen direction. Both
    /// directions read only below the read horizon, like [`EventLog::read_all`]: no event can
    /// ever commit before a position already handed out, so paging from a cursor — forward, or
    /// backward through a newest-first history — never misses an event that commits late (it
    /// appears above the first page, to a reader who starts again from the top).
    pub async fn read_filtered(
        &self,
        filter: &EventFilter,
        after: Option<Position>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let horizon = self.horizon().await?;
        let rows = if newest_first {
            filtered_page!(self, filter, after, limit, horizon, "<", "DESC")
        } else {
            filtered_page!(self, filter, after, limit, horizon, ">", "ASC")
        };
        rows.into_iter().map(|row| self.decode(row)).collect()
    }
}

impl EventLog {
    /// The events among `event_ids` that readers can see now (below the read horizon, like
    /// every read), in log order; unknown ids are left out.
    pub async fn read_by_ids(&self, event_ids: &[Uuid]) -> Result<Vec<RecordedEvent>, Error> {
        let horizon = self.horizon().await?;
        let rows = sqlx::query_as!(
            EventRow,
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at
               FROM events
               WHERE event_id = ANY($1) AND (tx_id, seq) < ($2, $3)
               ORDER BY tx_id, seq"#,
            event_ids,
            horizon.tx_id(),
            horizon.seq()
        )
        .fetch_all(self.pool())
        .await?;
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
