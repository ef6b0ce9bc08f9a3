//! `jobs-dispatch`: the projection that turns events into jobs (a shared projection, run by
//! one node at a time; see [`projections::runner`]).
//!
//! Each batch of events is turned into job rows in `apalis.jobs` in the same transaction as
//! the checkpoint moves, so a crash loses no job and commits none without its checkpoint.
//! Every job carries its handler's queue as `job_type` and the causing event's id as
//! idempotency key; apalis-postgres keeps `(job_type, idempotency_key)` unique, and the insert
//! skips a key already there (`ON CONFLICT DO NOTHING`: a unique violation would abort the
//! whole transaction). So a replay from position 0, a restart or a second dispatcher that
//! slipped past leadership never enqueues a job twice.

use domain::WorkspaceEvent;
use eventlog::aggregates::decode;
use eventlog::{EventLog, Position, RecordedEvent};
use projections::runner::{Projection, Scope, SharedCheckpoint};
use sqlx::{Acquire, PgConnection};

use crate::export::{self, ExportJob};
use crate::invite_email::{self, InviteEmail};
use crate::referral_reward;
use crate::retry::RetryPolicy;
use crate::worker::Origin;

/// The projection's name.
pub const NAME: &str = "jobs-dispatch";
const CHECKPOINT: SharedCheckpoint = SharedCheckpoint::new(NAME);
/// Events per transaction when replaying.
const REPLAY_BATCH: usize = 5_000;

/// A job to enqueue: its handler's queue, its arguments (JSON) and its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub queue: &'static str,
    pub args: Vec<u8>,
    pub key: String,
}

impl NewJob {
    /// The job of `queue` with `args` that `event` calls for (keyed by the event).
    fn new(queue: &'static str, event: &RecordedEvent, args: &impl serde::Serialize) -> NewJob {
        NewJob {
            queue,
            args: serde_json::to_vec(args).expect("job arguments serialise"),
            key: event.event_id.to_string(),
        }
    }
}

/// The jobs `event` calls for by itself (the referral reward also depends on the referred
/// user's first workspace: [`referral_reward::enqueue`]).
pub fn jobs_for(event: &RecordedEvent) -> Result<Vec<NewJob>, eventlog::Error> {
    if !matches!(
        event.event_type.as_str(),
        "InviteCreated" | "ExportRequested"
    ) {
        return Ok(vec![]);
    }
    let Some(workspace_id) = event.workspace_id else {
        return Ok(vec![]);
    };
    let origin = Origin {
        event_id: event.event_id,
        workspace_id,
        correlation_id: event.metadata.correlation_id,
    };
    Ok(match decode::<WorkspaceEvent>(event)? {
        WorkspaceEvent::InviteCreated { invite_id, .. } => vec![NewJob::new(
            invite_email::QUEUE,
            event,
            &InviteEmail {
                origin,
                invite_id: invite_id.as_uuid(),
            },
        )],
        WorkspaceEvent::ExportRequested {
            export_id,
            format,
            filter,
            ..
        } => vec![NewJob::new(
            export::QUEUE,
            event,
            &ExportJob {
                origin,
                export_id: export_id.as_uuid(),
                format,
                filter,
            },
        )],
        _ => vec![],
    })
}

/// The `jobs-dispatch` projection.
pub struct Dispatch {
    log: EventLog,
    retry: RetryPolicy,
}

impl Dispatch {
    pub fn new(log: EventLog, retry: RetryPolicy) -> Dispatch {
        Dispatch { log, retry }
    }

    /// Replays the whole log through the dispatcher (as a rebuild would), holding its
    /// checkpoint meanwhile, and leaves the checkpoint where the log ends. Returns the number
    /// of jobs enqueued: zero for events dispatched before.
    pub async fn replay(&self) -> Result<u64, crate::Error> {
        let mut conn = self.log.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        CHECKPOINT.lock(&mut tx).await?;
        let mut after = Position::START;
        let mut enqueued = 0;
        loop {
            let events = self.log.read_all(after, REPLAY_BATCH).await?;
            let Some(last) = events.last() else { break };
            enqueued += enqueue(&mut tx, &events, self.retry).await?;
            after = last.position;
        }
        CHECKPOINT.store(&mut tx, after).await?;
        tx.commit().await?;
        Ok(enqueued)
    }
}

impl Projection for Dispatch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn scope(&self) -> Scope {
        Scope::Shared
    }

    async fn checkpoint(&self) -> Result<Position, projections::Error> {
        CHECKPOINT.load(self.log.pool()).await
    }

    async fn apply(
        &self,
        after: Position,
        events: &[RecordedEvent],
    ) -> Result<(), projections::Error> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut tx = self.log.pool().begin().await?;
        CHECKPOINT.lock_at(&mut tx, after).await?;
        let enqueued = enqueue(&mut tx, events, self.retry).await?;
        CHECKPOINT.store(&mut tx, last.position).await?;
        tx.commit().await?;
        if enqueued > 0 {
            tracing::debug!(enqueued, "jobs enqueued");
        }
        Ok(())
    }
}

/// Inserts the jobs `events` call for, skipping those enqueued before; returns how many were new.
async fn enqueue(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
    retry: RetryPolicy,
) -> Result<u64, projections::Error> {
    let mut enqueued = 0;
    for event in events {
        for job in jobs_for(event)? {
            enqueued += insert(conn, &job, retry).await?;
        }
    }
    enqueued += referral_reward::enqueue(conn, events, retry).await?;
    Ok(enqueued)
}

/// Inserts `job` unless its key is taken in its queue; returns 1 if it was new, else 0.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    job: &NewJob,
    retry: RetryPolicy,
) -> Result<u64, sqlx::Error> {
    let inserted = sqlx::query!(
        r#"INSERT INTO apalis.jobs
               (id, job_type, job, status, attempts, max_attempts, run_at, priority,
                idempotency_key)
           VALUES (apalis.generate_ulid(), $1, $2, 'Pending', 0, $3, now(), 0, $4)
           ON CONFLICT (job_type, idempotency_key) DO NOTHING"#,
        job.queue,
        job.args,
        retry.max_attempts as i32,
        job.key
    )
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected())
}
