//! `activity`: per-workspace activity counts (`workspace_activity`), an asynchronous projection
//! of shared tables, run by one node at a time (see [`crate::runner`]).
//!
//! [`rebuild`] builds a new copy of the table beside the live one (in the schema
//! `projection_rebuild`, with the same SQL: the table name is resolved through `search_path`),
//! catches up, then swaps it in atomically: readers see the old table until the swap and the
//! new one after it, never an empty or partial one.

use eventlog::{EventLog, Position, RecordedEvent};
use sqlx::{Acquire, PgConnection};

use crate::runner::{Projection, Scope, SharedCheckpoint, hooks};
use crate::{Error, shadow};

/// The projection's name.
pub const NAME: &str = "activity";
const CHECKPOINT: SharedCheckpoint = SharedCheckpoint::new(NAME);
/// Events per transaction while rebuilding.
const REBUILD_BATCH: usize = 5_000;

/// The `activity` projection.
pub struct Activity {
    log: EventLog,
}

impl Activity {
    pub fn new(log: EventLog) -> Activity {
        Activity { log }
    }
}

impl Projection for Activity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn scope(&self) -> Scope {
        Scope::Shared
    }

    async fn checkpoint(&self) -> Result<Position, Error> {
        CHECKPOINT.load(self.log.pool()).await
    }

    async fn apply(&self, after: Position, events: &[RecordedEvent]) -> Result<(), Error> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut tx = self.log.pool().begin().await?;
        CHECKPOINT.lock_at(&mut tx, after).await?;
        apply_effects(&mut tx, events).await?;
        hooks::before_commit(NAME)?;
        CHECKPOINT.store(&mut tx, last.position).await?;
        tx.commit().await?;
        // Readers waiting on any node for this projection to reach a position look again.
        self.log.announce_progress();
        Ok(())
    }
}

/// Adds `events` to `workspace_activity` (whichever one `search_path` finds first).
async fn apply_effects(conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), Error> {
    // One statement for the whole batch: the events' workspaces, types and times as arrays.
    let (mut workspaces, mut created, mut deleted, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for event in events {
        let Some(workspace_id) = event.workspace_id else {
            continue;
        };
        workspaces.push(workspace_id);
        created.push(i64::from(event.event_type == "ItemCreated"));
        deleted.push(i64::from(event.event_type == "ItemDeleted"));
        times.push(event.recorded_at);
    }
    if workspaces.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"INSERT INTO workspace_activity AS a
               (workspace_id, events, items_created, items_deleted, last_event_at)
           SELECT workspace_id, count(*), sum(created), sum(deleted), max(at)
           FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[])
                AS e(workspace_id, created, deleted, at)
           GROUP BY workspace_id
           ON CONFLICT (workspace_id) DO UPDATE SET
               events = a.events + EXCLUDED.events,
               items_created = a.items_created + EXCLUDED.items_created,
               items_deleted = a.items_deleted + EXCLUDED.items_deleted,
               last_event_at = greatest(a.last_event_at, EXCLUDED.last_event_at)"#,
        &workspaces,
        &created,
        &deleted,
        &times
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rebuilds `workspace_activity` from position 0 beside the live table, then swaps it in.
/// `progress` is told the number of events applied so far. Returns the events applied.
pub async fn rebuild(log: &EventLog, mut progress: impl FnMut(u64)) -> Result<u64, Error> {
    let mut conn = log.pool().acquire().await?;
    shadow::create(&mut conn, &["workspace_activity"]).await?;
    let mut after = Position::START;
    let mut applied = 0;
    // Most of the log, in batches, while the live copy keeps serving and following.
    while let Some(n) = rebuild_batch(log, &mut conn, &mut after).await? {
        applied += n;
        progress(applied);
    }
    // The swap: hold the live checkpoint (the leader waits), apply what came meanwhile, move
    // the new table in and the checkpoint to where it stands.
    let mut tx = conn.begin().await?;
    CHECKPOINT.lock(&mut tx).await?;
    while let Some(n) = rebuild_batch(log, &mut tx, &mut after).await? {
        applied += n;
        progress(applied);
    }
    sqlx::raw_sql(
        "DROP TABLE public.workspace_activity;
         ALTER TABLE projection_rebuild.workspace_activity SET SCHEMA public;",
    )
    .execute(&mut *tx)
    .await?;
    CHECKPOINT.store(&mut tx, after).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Applies the next batch after `after` to the rebuild copy; `None` when none is readable.
async fn rebuild_batch(
    log: &EventLog,
    conn: &mut PgConnection,
    after: &mut Position,
) -> Result<Option<u64>, Error> {
    let events = log.read_all(*after, REBUILD_BATCH).await?;
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let mut tx = conn.begin().await?;
    shadow::write_here(&mut tx).await?;
    apply_effects(&mut tx, &events).await?;
    tx.commit().await?;
    *after = last.position;
    Ok(Some(events.len() as u64))
}
