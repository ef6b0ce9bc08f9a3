//! Appending events to a stream.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::hash::{GENESIS, Hashed};
use crate::{
    Appended, Error, EventLog, ExpectedVersion, NewEvent, Position, StreamHead, StreamRef,
};

/// How often an `ExpectedVersion::Any` append retries after losing a race.
const ANY_VERSION_ATTEMPTS: usize = 16;

impl EventLog {
    /// Appends `events` to `stream` on a connection of the log's [`crate::Lane`], then announces
    /// them.
    ///
    /// The insert (of one row or many) is one atomic statement, and a concurrent append to the
    /// stream is caught by the unique (stream, version) key, so no explicit transaction is
    /// needed: one round trip (two when the node must read the stream's head first) and one
    /// commit. A retry of an append whose events are all stored already (same event ids)
    /// returns the stored positions with `already_stored` set and writes nothing — also when
    /// the two race.
    #[tracing::instrument(skip(self, events), fields(stream = %stream.stream_id, n = events.len()))]
    pub async fn append(
        &self,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Appended, Error> {
        let appended = self
            .lane()
            .run(async |conn| {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self.append_in(conn, stream, expected, events).await {
                        // The insert committed on its own.
                        Ok(appended) => return Ok(appended),
                        Err(err @ (Error::Conflict { .. } | Error::DuplicateEvent(_))) => {
                            // Lost a race, or a retry: maybe to an earlier attempt of this very
                            // append.
                            if let Some(stored) = stored_positions(conn, events).await? {
                                return Ok(stored);
                            }
                            let retry = expected == ExpectedVersion::Any
                                && matches!(err, Error::Conflict { .. })
                                && attempt < ANY_VERSION_ATTEMPTS;
                            if !retry {
                                return Err(err);
                            }
                        }
                        Err(err) => return Err(err),
                    }
                }
            })
            .await?;
        if !appended.already_stored {
            self.committed([&appended]);
        }
        Ok(appended)
    }

    /// Appends `events` to `stream` on the caller's connection — normally inside the caller's
    /// transaction, so that read models are updated atomically with the append. After
    /// committing, call [`EventLog::announce_append`]. On `Conflict` or `DuplicateEvent` the
    /// transaction is aborted and must be rolled back (an event id is never stored twice).
    pub async fn append_in(
        &self,
        conn: &mut PgConnection,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Appended, Error> {
        if events.is_empty() {
            return Err(Error::EmptyAppend);
        }

        // A new stream needs no read: should it exist after all, the unique key on
        // (stream, version 1) refuses the insert as a conflict. Nor does a stream whose head
        // this node wrote at the expected version (see `heads`).
        let head = match expected {
            ExpectedVersion::NoStream => None,
            ExpectedVersion::Exact(version) => {
                match self
                    .inner
                    .heads
                    .at(stream.stream_id, stream.stream_type, version)
                {
                    Some(head) => Some(head),
                    None => read_head(conn, stream.stream_id).await?,
                }
            }
            _ => read_head(conn, stream.stream_id).await?,
        };
        let (current, mut previous_hash) = match head {
            Some(head) if head.stream_type != stream.stream_type => {
                return Err(Error::StreamTypeMismatch {
                    stream_id: stream.stream_id,
                    requested: stream.stream_type.to_string(),
                    actual: head.stream_type,
                });
            }
            Some(head) => (head.version, head.hash),
            None => (0, GENESIS.to_vec()),
        };
        if !expected.admits(current) {
            return Err(Error::Conflict {
                stream_id: stream.stream_id,
                expected,
                actual: Some(current),
            });
        }

        let recorded_at = now_micros();
        // What the first new event links to: checked against the stored head by the insert.
        let chained_to = previous_hash.clone();
        let mut rows = Rows::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let version = current + 1 + i as u64;
            let metadata = serde_json::to_value(&event.metadata).map_err(|err| Error::Corrupt {
                event_id: event.event_id,
                reason: err.to_string(),
            })?;
            let hash = Hashed {
                event_id: event.event_id,
                stream_type: stream.stream_type,
                stream_id: stream.stream_id,
                stream_version: version,
                workspace_id: stream.workspace_id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload: &event.payload,
                metadata: &metadata,
                recorded_at,
            }
            .link(&previous_hash);
            rows.event_ids.push(event.event_id);
            rows.versions.push(version as i64);
            rows.event_types.push(event.event_type.clone());
            rows.schema_versions.push(event.schema_version);
            rows.payloads.push(event.payload.clone());
            rows.metadata.push(metadata);
            rows.hashes.push(hash.clone());
            previous_hash = hash;
        }

        let inserted = insert(conn, stream, &rows, recorded_at, current, &chained_to)
            .await
            .map_err(|err| {
                Error::from_insert(err, stream.stream_id, expected, events[0].event_id)
            })?;
        if inserted.is_empty() {
            // The head it chains to is not stored: another append took the version after it.
            return Err(Error::Conflict {
                stream_id: stream.stream_id,
                expected,
                actual: None,
            });
        }

        let positions = events
            .iter()
            .map(|event| {
                inserted
                    .iter()
                    .find(|row| row.event_id == event.event_id)
                    .map(|row| Position::new(row.tx_id, row.seq))
                    .ok_or(Error::Corrupt {
                        event_id: event.event_id,
                        reason: "insert returned no position".into(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stream_version = current + events.len() as u64;
        Ok(Appended {
            positions,
            stream_version,
            recorded_at,
            already_stored: false,
            head: Some(StreamHead {
                stream_id: stream.stream_id,
                stream_type: stream.stream_type.to_string(),
                version: stream_version,
                hash: previous_hash,
            }),
        })
    }
}

/// A stored event's position, as the insert returns it.
struct Inserted {
    event_id: Uuid,
    tx_id: i64,
    seq: i64,
}

/// Inserts `rows` after the stream's version `current` (0: a new stream), chained to
/// `chained_to`, in one statement; returns nothing when the head it chains to is not stored.
///
/// The first-write check runs once, before any row takes the transaction's id (see
/// `events_check_first_write` in the migrations): extending a stream must be the transaction's
/// first write, or its version could sort before the one it follows. It is written inline, so
/// the PL/pgSQL function (which raises) is called only when the check fails.
///
/// The tx_id is what the column default gives (the transaction id plus the era's offset), with
/// the offset read once per statement (an uncorrelated subquery) rather than by a function per
/// row; like the default, it is read with the statement's snapshot, taken after the insert got
/// its lock, so an append held up by a new era lands in it. A subquery rather than a join: the
/// one-row `events_era` is never analyzed, and a join with its default estimate (1,810 rows)
/// costs the generic plan so high that PostgreSQL planned the statement anew on every call
/// (0.13 ms of 0.3 ms).
///
/// An append that extends a stream inserts nothing unless the head it chains to is stored (a
/// remembered head is then at worst behind: a conflict), so the chain can neither fork nor
/// skip a version.
///
/// One event (what nearly every write appends) goes as scalar parameters: unnesting seven
/// one-element arrays made PostgreSQL's side of an append about a fifth dearer than a plain
/// insert (pgbench, 12-01). A batch goes as column arrays. The two statements differ only in
/// where the rows come from.
async fn insert(
    conn: &mut PgConnection,
    stream: &StreamRef,
    rows: &Rows,
    recorded_at: DateTime<Utc>,
    current: u64,
    chained_to: &[u8],
) -> Result<Vec<Inserted>, sqlx::Error> {
    if let [event_id] = rows.event_ids[..] {
        return sqlx::query_as!(
            Inserted,
            r#"WITH first_write AS MATERIALIZED (
                   SELECT CASE WHEN $12 AND pg_current_xact_id_if_assigned() IS NOT NULL
                               THEN events_check_first_write(true)
                               ELSE true END AS ok)
               INSERT INTO events (tx_id, event_id, stream_type, stream_id, stream_version,
                                   workspace_id, event_type, schema_version, payload, metadata,
                                   recorded_at, hash)
               SELECT pg_current_xact_id()::text::bigint + (SELECT tx_offset FROM events_era),
                      $1::uuid, $2, $3, $6::bigint, $4, $7::text, $8::int, $9::jsonb,
                      $10::jsonb, $5, $11::bytea
               FROM first_write
               WHERE first_write.ok
                 AND (NOT $12 OR EXISTS (SELECT FROM events AS head
                                          WHERE head.stream_id = $3
                                            AND head.stream_version = $13
                                            AND head.hash = $14))
               RETURNING event_id, tx_id, seq"#,
            event_id,
            stream.stream_type,
            stream.stream_id,
            stream.workspace_id,
            recorded_at,
            rows.versions[0],
            rows.event_types[0],
            rows.schema_versions[0],
            rows.payloads[0],
            rows.metadata[0],
            rows.hashes[0],
            current > 0,
            current as i64,
            chained_to,
        )
        .fetch_all(&mut *conn)
        .await;
    }
    sqlx::query_as!(
        Inserted,
        r#"WITH first_write AS MATERIALIZED (
               SELECT CASE WHEN $12 AND pg_current_xact_id_if_assigned() IS NOT NULL
                           THEN events_check_first_write(true)
                           ELSE true END AS ok)
           INSERT INTO events (tx_id, event_id, stream_type, stream_id, stream_version,
                               workspace_id, event_type, schema_version, payload, metadata,
                               recorded_at, hash)
           SELECT pg_current_xact_id()::text::bigint + (SELECT tx_offset FROM events_era),
                  e.event_id, $2, $3,
                  e.stream_version, $4, e.event_type, e.schema_version, e.payload,
                  e.metadata, $5, e.hash
           FROM first_write,
                UNNEST($1::uuid[], $6::bigint[], $7::text[], $8::int[], $9::jsonb[],
                       $10::jsonb[], $11::bytea[])
                AS e(event_id, stream_version, event_type, schema_version, payload, metadata, hash)
           WHERE first_write.ok
             AND (NOT $12 OR EXISTS (SELECT FROM events AS head
                                      WHERE head.stream_id = $3
                                        AND head.stream_version = $13
                                        AND head.hash = $14))
           RETURNING event_id, tx_id, seq"#,
        &rows.event_ids,
        stream.stream_type,
        stream.stream_id,
        stream.workspace_id,
        recorded_at,
        &rows.versions,
        &rows.event_types,
        &rows.schema_versions,
        &rows.payloads,
        &rows.metadata,
        &rows.hashes,
        current > 0,
        current as i64,
        chained_to,
    )
    .fetch_all(&mut *conn)
    .await
}

/// The stream's last stored event, read from the database.
async fn read_head(conn: &mut PgConnection, stream_id: Uuid) -> Result<Option<StreamHead>, Error> {
    let row = sqlx::query!(
        r#"SELECT stream_type, stream_version, hash
                   FROM events WHERE stream_id = $1
                   ORDER BY stream_version DESC LIMIT 1"#,
        stream_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| StreamHead {
        stream_id,
        stream_type: row.stream_type,
        version: row.stream_version as u64,
        hash: row.hash,
    }))
}

/// Column arrays for one multi-row insert.
struct Rows {
    event_ids: Vec<Uuid>,
    versions: Vec<i64>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
    hashes: Vec<Vec<u8>>,
}

impl Rows {
    fn with_capacity(n: usize) -> Rows {
        Rows {
            event_ids: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
            event_types: Vec::with_capacity(n),
            schema_versions: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
        }
    }
}

/// The stored positions of `events` when every one of them is stored already; `None` when none
/// is; an error when only some are.
async fn stored_positions(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> Result<Option<Appended>, Error> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let stored = sqlx::query!(
        r#"SELECT event_id, tx_id, seq, stream_version, recorded_at
           FROM events WHERE event_id = ANY($1)"#,
        &ids
    )
    .fetch_all(&mut *conn)
    .await?;
    if stored.is_empty() {
        return Ok(None);
    }
    if stored.len() != events.len() {
        return Err(Error::PartialDuplicate);
    }
    let mut positions = Vec::with_capacity(ids.len());
    let mut stream_version = 0;
    let recorded_at = stored[0].recorded_at;
    for id in &ids {
        let row = stored
            .iter()
            .find(|row| row.event_id == *id)
            .ok_or(Error::PartialDuplicate)?;
        positions.push(Position::new(row.tx_id, row.seq));
        stream_version = stream_version.max(row.stream_version as u64);
    }
    Ok(Some(Appended {
        positions,
        stream_version,
        recorded_at,
        already_stored: true,
        head: None,
    }))
}

/// The current time at PostgreSQL's precision, so the hashed time is the stored time.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
