//! Running the workers: one apalis worker per queue on this process, sharing the queues with
//! the workers of every other process (a job is locked by the worker that fetched it).
//!
//! Workers wake on apalis-postgres's insert notifications (new jobs start at once) and also
//! poll every [`WorkerSettings::poll_interval`], which is how a retry whose backoff has passed
//! is picked up (nothing notifies when a `run_at` comes due).
//!
//! Every kind of job is a [`Job`]: its queue, the event it ran for ([`Origin`]), and how it runs. One
//! handler ([`handle`]) runs them all: it logs each run's outcome and duration with the job id,
//! the event id and the correlation id, schedules the retry of a failed run, and records the
//! death of a job whose runs are used up.
//!
//! On shutdown (the token passed to [`run`] is cancelled) a worker fetches no new job, puts
//! the jobs it fetched but did not start back in the queue (apalis does), and finishes the one
//! it runs; a job still running after [`WorkerSettings::shutdown_timeout`] is abandoned and put
//! back to pending at once ([`hand_back`]), not left for other workers to take back only once
//! this one's heartbeats are missed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::retry::{self, RetryPolicy};
use crate::{BoxError, Recorder};

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

/// What every job says about where it comes from: stored in its arguments (flattened, so the
/// JSON has `event_id`, `workspace_id` and `correlation_id` at the top, as `failedJobs` reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The event it runs for (the causation of what it records).
    pub event_id: Uuid,
    /// The workspace it works for (where its death is recorded).
    pub workspace_id: Uuid,
    /// The correlation id of that event, if it had one (absent in jobs enqueued before it was
    /// carried).
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
}

/// A kind of job: its arguments (stored as JSON in `apalis.jobs`) and how it runs.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// Its queue (apalis `job_type`), set explicitly (apalis would use the type's name).
    const QUEUE: &'static str;
    /// What its runs need (a mailer, settings…).
    type Runner: Send + Sync + 'static;

    /// Where it comes from.
    fn origin(&self) -> Origin;
    /// Runs it once; on success, says in words what it did (for the log).
    fn run(&self, runner: &Self::Runner) -> impl Future<Output = Result<String, BoxError>> + Send;

    /// Records what its death means beyond the `JobDied` event (an export: that it failed).
    /// Nothing by default.
    fn died(&self, runner: &Self::Runner) -> impl Future<Output = ()> + Send {
        let _ = runner;
        async {}
    }
}

/// What the worker itself needs for every job: the database (to schedule retries) and the
/// recorder (of dead jobs).
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub recorder: Arc<dyn Recorder>,
}

/// Runs the workers of queue `J::QUEUE` until `stop` is cancelled (see the module docs),
/// restarting them when they stop on their own (say, the database went away).
pub async fn run<J: Job>(
    runner: Arc<J::Runner>,
    services: Services,
    settings: WorkerSettings,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let config = Config::default()
            .queue(J::QUEUE)
            .heartbeat_interval(settings.heartbeat_interval)
            .missed_heartbeats(MISSED_HEARTBEATS);
        let pool = services.pool.clone();
        let storage = PostgresStorage::<J>::new(&pool).with_config(config);
        let strategy = Strategy::new()
            .stream(Pubsub::new(pool.clone(), J::QUEUE.to_string()))
            .interval(settings.poll_interval);
        let backend = PollWith::new(storage, strategy);
        // A fresh name for each incarnation: apalis-postgres refuses to register a name
        // whose advisory lock another session (another pooled connection, say that of this
        // worker's previous incarnation) still holds. Jobs locked by a previous incarnation
        // return to the queue once its heartbeats stop.
        let incarnation = Uuid::new_v4().simple().to_string();
        let name = format!("{}/{}/{}", settings.name, J::QUEUE, &incarnation[..8]);
        let worker = WorkerBuilder::new(name.clone())
            .backend(backend)
            .data(runner.clone())
            .data(services.clone())
            .data(settings.retry)
            .build(handle::<J>);
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
                tracing::info!(queue = J::QUEUE, "worker stopped for the shutdown")
            }
            Ok(()) => tracing::warn!(queue = J::QUEUE, "worker stopped; restarting"),
            Err(err) => {
                tracing::warn!(queue = J::QUEUE, error = %err, "worker failed; restarting")
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

/// Every job's handler: runs the job; on failure, schedules the next attempt, or records the
/// job's death when it has none left.
async fn handle<J: Job>(
    job: J,
    runner: Data<Arc<J::Runner>>,
    services: Data<Services>,
    retry: Data<RetryPolicy>,
    attempt: Attempt,
    task_id: TaskId,
) -> Result<(), BoxError> {
    let started = std::time::Instant::now();
    let outcome = job.run(&runner).await;
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    let origin = job.origin();
    let span = tracing::info_span!(
        "job",
        queue = J::QUEUE,
        job_id = %task_id,
        event_id = %origin.event_id,
        correlation_id = origin.correlation_id.map(|id| id.to_string()),
        attempt,
    );
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(outcome) => {
            tracing::info!(outcome = %outcome, elapsed_ms, "job done");
            Ok(())
        }
        Err(err) => {
            if retry.may_retry(attempt) {
                let delay = retry.delay(attempt);
                retry::schedule(&services.pool, &task_id.to_string(), delay).await?;
                tracing::warn!(error = %err, elapsed_ms, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            } else {
                tracing::error!(error = %err, elapsed_ms, "job failed for the last time: dead");
                let dead = crate::DeadJob {
                    workspace_id: origin.workspace_id,
                    job_id: crate::failed::parse_job_id(&task_id.to_string())
                        .ok_or("a job id that is not a ULID")?,
                    kind: J::QUEUE.to_string(),
                    cause: origin.event_id,
                    attempts: attempt,
                    error: err.to_string(),
                };
                if let Err(record) = services.recorder.job_dead(&dead).await {
                    // The job is dead either way; `failedJobs` shows it.
                    tracing::error!(error = %record, "could not record the dead job");
                }
                job.died(&runner).await;
            }
            Err(err)
        }
    }
}
