//! Running the workers: one apalis worker per queue on this process, sharing the queues with
//! the workers of every other process (a job is locked by the worker that fetched it).
//!
//! Workers wake on apalis-postgres's insert notifications (new jobs start at once) and also
//! poll every [`WorkerSettings::poll_interval`], which is how a retry whose backoff has passed
//! is picked up (nothing notifies when a `run_at` comes due).
//!
//! On shutdown (the token passed to [`run_invite_emails`] is cancelled) a worker fetches no new
//! job, puts the jobs it fetched but did not start back in the queue (apalis does), and
//! finishes the one it runs; a job still running after [`WorkerSettings::shutdown_timeout`] is
//! abandoned and put back to pending at once ([`hand_back`]), not left for other workers to
//! take back only once this one's heartbeats are missed.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::invite_email::{self, InviteEmail, InviteMail, Outcome};
use crate::retry::{self, RetryPolicy};

/// How often a worker that did not crash but stopped is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This process's name for its workers (each worker adds its queue).
    pub name: String,
    pub retry: RetryPolicy,
    /// The longest a due job (a retry) waits for a worker to look.
    pub poll_interval: Duration,
    /// How often a worker says it is alive; a job locked by a worker silent for
    /// [`MISSED_HEARTBEATS`] intervals goes back to the queue.
    pub heartbeat_interval: Duration,
    /// How long a stopping worker may take to finish the job it runs.
    pub shutdown_timeout: Duration,
}

/// Heartbeats a worker may miss before its jobs are taken back.
pub const MISSED_HEARTBEATS: usize = 3;

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            name: "chronicle".into(),
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Runs the invite-email worker until `stop` is cancelled (see the module docs), restarting it
/// when it stops on its own (say, the database went away).
pub async fn run_invite_emails(
    mail: Arc<InviteMail>,
    settings: WorkerSettings,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let config = Config::default()
            .queue(invite_email::QUEUE)
            .heartbeat_interval(settings.heartbeat_interval)
            .missed_heartbeats(MISSED_HEARTBEATS);
        let pool = mail.pool.clone();
        let storage = PostgresStorage::<InviteEmail>::new(&pool).with_config(config);
        let strategy = Strategy::new()
            .stream(Pubsub::new(pool.clone(), invite_email::QUEUE.to_string()))
            .interval(settings.poll_interval);
        let backend = PollWith::new(storage, strategy);
        // A fresh name for each incarnation: apalis-postgres refuses to register a name
        // whose advisory lock another session (another pooled connection, say that of this
        // worker's previous incarnation) still holds. Jobs locked by a previous incarnation
        // return to the queue once its heartbeats stop.
        let incarnation = uuid::Uuid::new_v4().simple().to_string();
        let name = format!(
            "{}/{}/{}",
            settings.name,
            invite_email::QUEUE,
            &incarnation[..8]
        );
        let worker = WorkerBuilder::new(name.clone())
            .backend(backend)
            .data(mail.clone())
            .data(settings.retry)
            .build(send_invite_email);
        let stopped = stop.clone().cancelled_owned();
        let run = worker.run_until(async move {
            stopped.await;
            Ok::<(), WorkerError>(())
        });
        tokio::pin!(run);
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            () = stop.cancelled() => {
                match tokio::time::timeout(settings.shutdown_timeout, &mut run).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        hand_back(&pool, &name).await;
                        return;
                    }
                }
            }
        };
        match outcome {
            Ok(()) if stop.is_cancelled() => {
                tracing::info!(
                    queue = invite_email::QUEUE,
                    "worker stopped for the shutdown"
                )
            }
            Ok(()) => tracing::warn!(queue = invite_email::QUEUE, "worker stopped; restarting"),
            Err(err) => {
                tracing::warn!(queue = invite_email::QUEUE, error = %err, "worker failed; restarting")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(RESTART_DELAY) => {}
        }
    }
}

/// Puts the jobs worker `name` holds (fetched or running) back to pending, for another worker to
/// run: a job cut short by a shutdown did not fail, so its attempts are not counted.
async fn hand_back(pool: &PgPool, name: &str) {
    let returned = sqlx::query!(
        r#"UPDATE apalis.jobs
              SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL
            WHERE lock_by = $1 AND status IN ('Queued', 'Running')"#,
        name
    )
    .execute(pool)
    .await;
    match returned {
        Ok(done) => tracing::warn!(
            worker = name,
            jobs = done.rows_affected(),
            "the shutdown timeout cut a running job short: put back to pending"
        ),
        Err(err) => tracing::error!(
            worker = name,
            error = %err,
            "could not put the jobs of a stopped worker back: they return once its heartbeats are missed"
        ),
    }
}

/// The invite-email handler: runs the job; on failure, schedules the next attempt.
async fn send_invite_email(
    job: InviteEmail,
    mail: Data<Arc<InviteMail>>,
    retry: Data<RetryPolicy>,
    attempt: Attempt,
    task_id: TaskId,
) -> Result<(), BoxError> {
    let started = std::time::Instant::now();
    let outcome = mail.run(&job).await;
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    let span = tracing::info_span!(
        "job",
        queue = invite_email::QUEUE,
        job_id = %task_id,
        event_id = %job.event_id,
        attempt,
        elapsed_ms = started.elapsed().as_millis() as u64
    );
    let _entered = span.enter();
    match outcome {
        Ok(outcome) => {
            match outcome {
                Outcome::Sent => tracing::info!("invite email sent"),
                Outcome::Logged => tracing::info!("invite email logged (no SMTP server)"),
                Outcome::AlreadySent => tracing::info!("invite email sent before; nothing to do"),
                Outcome::NoLongerPending => {
                    tracing::info!("invite accepted, revoked or expired; not sent")
                }
                Outcome::Unknown => tracing::warn!("invite not found; not sent"),
            }
            Ok(())
        }
        Err(err) => {
            if retry.may_retry(attempt) {
                let delay = retry.delay(attempt);
                retry::schedule(&mail.pool, &task_id.to_string(), delay).await?;
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            } else {
                tracing::error!(error = %err, "job failed for the last time: dead");
                let dead = crate::DeadJob {
                    workspace_id: job.workspace_id,
                    job_id: crate::failed::parse_job_id(&task_id.to_string())
                        .ok_or("a job id that is not a ULID")?,
                    kind: invite_email::QUEUE.to_string(),
                    cause: job.event_id,
                    attempts: attempt,
                    error: err.to_string(),
                };
                if let Err(record) = mail.recorder.job_dead(&dead).await {
                    // The job is dead either way; `failedJobs` shows it.
                    tracing::error!(error = %record, "could not record the dead job");
                }
            }
            Err(err)
        }
    }
}

type BoxError = crate::BoxError;
