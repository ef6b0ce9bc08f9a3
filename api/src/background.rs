//! The background side of a node: the job-dispatch projection and the job workers (SPEC §7),
//! run by `chronicle serve` (unless `CHRONICLE_WORKERS=0`) and by `chronicle worker`, and the
//! write path through which jobs record what they did.

use std::sync::Arc;

use domain::{Aggregate, InviteId, Workspace, WorkspaceCommand};
use eventlog::{EventLog, Metadata, Position, StreamRef};
use futures::future::BoxFuture;
use jobs::dispatch::Dispatch;
use jobs::invite_email::InviteMail;
use jobs::mail::Mailer;
use jobs::worker::{self, WorkerSettings};
use jobs::{BoxError, DeadJob, InviteTokens, Recorder, SentInvite};
use projections::runner;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::config::{Config, Environment};
use crate::error::ApiError;
use crate::secrets::shared_secret;
use crate::shutdown::{Draining, Signals, Tasks};
use crate::writes::{Clock, Writes};

/// The name under which system events written by the invite-email job are recorded.
const INVITE_EMAIL_ACTOR: &str = "invite-email-job";
/// The name under which the worker records a job's death.
const JOB_WORKER_ACTOR: &str = "job-worker";
/// How often a job retries recording its effect when the workspace changed meanwhile.
const RECORD_ATTEMPTS: usize = 5;

/// The key invite tokens are derived from (shared by every node through the database).
pub async fn invite_tokens(pool: &PgPool) -> Result<InviteTokens, sqlx::Error> {
    Ok(InviteTokens::new(
        shared_secret(pool, "invite-tokens").await?,
    ))
}

/// Starts the dispatcher and the workers on `log`'s database as tasks of `tasks`: the workers
/// stop taking jobs once `draining` begins (and finish the one they run, or put it back), the
/// dispatcher when the tasks stop. Refuses to start without an SMTP server in production; says
/// at start when development only logs emails.
pub async fn start(
    config: &Config,
    log: &EventLog,
    clock: Clock,
    node: &str,
    draining: &Draining,
    tasks: &mut Tasks,
) -> anyhow::Result<()> {
    let mailer = match (&config.smtp, config.environment) {
        (Some(smtp), _) => Mailer::smtp(smtp, &config.smtp_from)?,
        (None, Environment::Development) => {
            tracing::warn!(
                "no SMTP server configured (CHRONICLE_SMTP_HOST): emails are logged, not sent"
            );
            Mailer::Log
        }
        (None, Environment::Production) => anyhow::bail!(
            "production runs no workers without an SMTP server: set CHRONICLE_SMTP_HOST, \
             or CHRONICLE_WORKERS=0 to run none here"
        ),
    };
    let pool = log.pool().clone();
    let writes = Writes::with_clock(log.clone(), clock);
    let mail = Arc::new(InviteMail {
        pool: pool.clone(),
        mailer,
        tokens: invite_tokens(&pool).await?,
        public_url: config.public_url.clone(),
        recorder: Arc::new(JobEffects { writes }),
    });
    let settings = WorkerSettings {
        name: node.to_string(),
        retry: config.job_retry,
        poll_interval: config.job_poll_interval,
        shutdown_timeout: config.shutdown.timeout,
        ..WorkerSettings::default()
    };
    let (dispatched, _) = watch::channel(Position::START);
    let dispatch = Dispatch::new(log.clone(), config.job_retry);
    let log = log.clone();
    tasks.spawn(|stop| runner::run_until(log, dispatch, dispatched, stop));
    let workers_stop = draining.token();
    tasks.spawn(|_| worker::run_invite_emails(mail, settings, workers_stop));
    tracing::info!(node, "job dispatcher and workers started");
    Ok(())
}

/// `chronicle worker`: runs the dispatcher and the workers until SIGTERM or SIGINT, then stops
/// them (running jobs finish within the shutdown timeout, or go back to the queue).
pub async fn work_until_stopped(config: &Config, log: &EventLog, node: &str) -> anyhow::Result<()> {
    let mut signals = Signals::listen()?;
    let draining = Draining::default();
    let mut tasks = Tasks::default();
    let clock = Clock::with_offset(config.clock_offset);
    start(config, log, clock, node, &draining, &mut tasks).await?;
    tracing::info!(node, "working");
    let signal = signals.next().await;
    tracing::info!(signal, "stopping: workers finish their running jobs");
    draining.begin();
    tasks.stop(config.shutdown.timeout).await;
    Ok(())
}

/// Records the effects of jobs through the write path.
struct JobEffects {
    writes: Writes,
}

impl JobEffects {
    /// Decides `command` on workspace `workspace_id` as the system actor `actor` (with
    /// `cause` as causation) and appends what it decides in one transaction with its read
    /// models.
    async fn record(
        &self,
        workspace_id: uuid::Uuid,
        actor: &str,
        cause: uuid::Uuid,
        command: impl Fn() -> WorkspaceCommand,
    ) -> Result<(), ApiError> {
        let mut metadata = Metadata::system(actor);
        metadata.causation_id = Some(cause);
        let stream = StreamRef {
            stream_type: Workspace::STREAM_TYPE,
            stream_id: workspace_id,
            workspace_id: Some(workspace_id),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = self.writes.log().load::<Workspace>(workspace_id).await?;
            let ctx = domain::Context::system(self.writes.now(), actor);
            let events = loaded.state.decide(command(), &ctx)?;
            let outcome = self
                .writes
                .run(async |tx| {
                    self.writes
                        .append(tx, &stream, loaded.expected_version(), events, &metadata)
                        .await
                })
                .await;
            match outcome {
                // Another write to the workspace came between: decide again on the new state
                // (so an unrelated write cannot make a job run, and mail, again).
                Err(ApiError::Log(eventlog::Error::Conflict { .. }))
                    if attempt < RECORD_ATTEMPTS => {}
                other => return other.map(|_| ()),
            }
        }
    }
}

/// A write-path error as a job's error, with its whole chain.
fn job_error(err: ApiError) -> BoxError {
    BoxError::from(format!("{:#}", anyhow::Error::from(err)))
}

impl Recorder for JobEffects {
    fn invite_email_sent<'a>(
        &'a self,
        sent: &'a SentInvite,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.record(sent.workspace_id, INVITE_EMAIL_ACTOR, sent.cause, || {
                WorkspaceCommand::RecordInviteEmailSent {
                    invite_id: InviteId::from_uuid(sent.invite_id),
                    message_id: sent.message_id.clone(),
                }
            })
            .await
            .map_err(job_error)
        })
    }

    fn job_dead<'a>(&'a self, dead: &'a DeadJob) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.record(dead.workspace_id, JOB_WORKER_ACTOR, dead.cause, || {
                WorkspaceCommand::RecordJobDead {
                    job_id: dead.job_id,
                    kind: dead.kind.clone(),
                    caused_by: dead.cause,
                    attempts: dead.attempts,
                    error: dead.error.clone(),
                }
            })
            .await
            .map_err(job_error)
        })
    }
}
