//! The background side of a node: the job-dispatch projection and the job workers (SPEC §7),
//! run by `chronicle serve` (unless `CHRONICLE_WORKERS=0`) and by `chronicle worker`, and the
//! write path through which jobs record what they did.

use std::sync::Arc;

use domain::referral::Decision;
use domain::{
    Aggregate, DomainEvent, ExportId, InviteId, User, UserCommand, UserId, Workspace,
    WorkspaceCommand,
};
use eventlog::{EventLog, Metadata, Position, StreamRef};
use futures::future::BoxFuture;
use jobs::dispatch::Dispatch;
use jobs::export::{ExportJob, Exports};
use jobs::invite_email::{InviteEmail, InviteMail};
use jobs::mail::Mailer;
use jobs::referral_reward::{ReferralReward, ReferralRewards};
use jobs::weekly_summary::{self, WeeklySummaries, WeeklySummaryJob};
use jobs::worker::{self, Services, WorkerSettings};
use jobs::{
    BoxError, CompletedExport, DeadJob, FailedExport, InviteTokens, Recorder, ReferralClaim,
    SentInvite, SentSummary, TrialExtension,
};
use projections::inline::AnyEvent;
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
/// The name under which system events written by the export job are recorded.
const EXPORT_ACTOR: &str = "export-job";
/// The name under which the worker records a job's death.
const JOB_WORKER_ACTOR: &str = "job-worker";
/// The name under which the referral-reward job records rewards and trial extensions.
const REFERRAL_ACTOR: &str = "referral-reward-job";
/// The name under which the weekly-summary job records the summaries sent.
const WEEKLY_SUMMARY_ACTOR: &str = "weekly-summary-job";
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
    let writes = Writes::with_clock(log.clone(), clock.clone());
    let recorder: Arc<dyn Recorder> = Arc::new(JobEffects { writes });
    let mail = Arc::new(InviteMail {
        pool: pool.clone(),
        mailer: mailer.clone(),
        tokens: invite_tokens(&pool).await?,
        public_url: config.public_url.clone(),
        recorder: recorder.clone(),
    });
    let exports = Arc::new(Exports {
        pool: pool.clone(),
        recorder: recorder.clone(),
    });
    let rewards = Arc::new(ReferralRewards {
        pool: pool.clone(),
        recorder: recorder.clone(),
        max_rewards: config.max_referral_rewards,
    });
    let summaries = Arc::new(WeeklySummaries {
        pool: pool.clone(),
        mailer,
        public_url: config.public_url.clone(),
        recorder: recorder.clone(),
    });
    let services = Services {
        pool: pool.clone(),
        recorder,
    };
    let settings = WorkerSettings {
        name: node.to_string(),
        retry: config.job_retry,
        poll_interval: config.job_poll_interval,
        heartbeat_interval: config.job_heartbeat_interval,
        shutdown_timeout: config.shutdown.timeout,
    };
    let (dispatched, _) = watch::channel(Position::START);
    let dispatch = Dispatch::new(log.clone(), config.job_retry);
    let log = log.clone();
    tasks.spawn(|stop| runner::run_until(log, dispatch, dispatched, stop));
    let (interval, retry) = (config.weekly_summary_interval, config.job_retry);
    tasks.spawn(move |stop| {
        weekly_summary::run_schedule(pool, interval, move || clock.now(), retry, stop)
    });
    let (to_invite, to_reward, to_export) = (services.clone(), services.clone(), services.clone());
    let (invite_settings, reward_settings, export_settings) =
        (settings.clone(), settings.clone(), settings.clone());
    let stop = draining.token();
    let (invites_stop, rewards_stop, exports_stop) = (stop.clone(), stop.clone(), stop.clone());
    tasks.spawn(|_| worker::run::<InviteEmail>(mail, to_invite, invite_settings, invites_stop));
    tasks.spawn(|_| {
        worker::run::<ReferralReward>(rewards, to_reward, reward_settings, rewards_stop)
    });
    tasks.spawn(|_| worker::run::<ExportJob>(exports, to_export, export_settings, exports_stop));
    tasks.spawn(|_| worker::run::<WeeklySummaryJob>(summaries, services, settings, stop));
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

/// Where a job records: the system actor's name, the causing event and its correlation id.
struct Acting<'a> {
    actor: &'a str,
    cause: uuid::Uuid,
    correlation_id: Option<uuid::Uuid>,
}

impl Acting<'static> {
    /// The referral-reward job acting for `cause`.
    fn referral(cause: uuid::Uuid, correlation_id: Option<uuid::Uuid>) -> Acting<'static> {
        Acting {
            actor: REFERRAL_ACTOR,
            cause,
            correlation_id,
        }
    }
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
        let acting = Acting {
            actor,
            cause,
            correlation_id: None,
        };
        self.record_on::<Workspace>(workspace_id, Some(workspace_id), &acting, |_| command())
            .await
            .map(|_| ())
    }

    /// Decides the command `command` makes of the current state of aggregate `A`'s stream
    /// `stream_id` as the system, and appends what it decides in one transaction with its
    /// read models; returns the state decided on and the events appended.
    async fn record_on<A>(
        &self,
        stream_id: uuid::Uuid,
        workspace_id: Option<uuid::Uuid>,
        acting: &Acting<'_>,
        command: impl Fn(&A) -> A::Command,
    ) -> Result<(A, Vec<A::Event>), ApiError>
    where
        A: Aggregate,
        A::Event: DomainEvent + Into<AnyEvent> + Clone,
        ApiError: From<domain::DomainError>,
    {
        let mut metadata = Metadata::system(acting.actor);
        metadata.causation_id = Some(acting.cause);
        metadata.correlation_id = acting.correlation_id;
        let stream = StreamRef {
            stream_type: A::STREAM_TYPE,
            stream_id,
            workspace_id,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = self.writes.log().load::<A>(stream_id).await?;
            let ctx = domain::Context::system(self.writes.now(), acting.actor);
            let events = loaded.state.decide(command(&loaded.state), &ctx)?;
            let appended = events.clone();
            let outcome = self
                .writes
                .run(async |tx| {
                    self.writes
                        .append(tx, &stream, loaded.expected_version(), events, &metadata)
                        .await
                })
                .await;
            match outcome {
                // Another write to the stream came between: decide again on the new state
                // (so an unrelated write cannot make a job run, and mail, again; and a
                // referrer's rewards are counted one at a time).
                Err(ApiError::Log(eventlog::Error::Conflict { .. }))
                    if attempt < RECORD_ATTEMPTS => {}
                Err(err) => return Err(err),
                Ok(_) => return Ok((loaded.state, appended)),
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

    fn referral_rewarded<'a>(
        &'a self,
        claim: &'a ReferralClaim,
    ) -> BoxFuture<'a, Result<Decision, BoxError>> {
        Box::pin(async move {
            let acting = Acting::referral(claim.cause, claim.correlation_id);
            let referrer = claim.claim.referrer.as_uuid();
            let (state, _) = self
                .record_on::<User>(referrer, None, &acting, |_| UserCommand::RewardReferral {
                    claim: claim.claim.clone(),
                })
                .await
                .map_err(job_error)?;
            // The decision the appended event (if any) came from.
            Ok(state.decide_referral(&claim.claim))
        })
    }

    fn trial_extended<'a>(
        &'a self,
        extension: &'a TrialExtension,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let acting = Acting::referral(extension.cause, extension.correlation_id);
            let workspace = extension.workspace_id;
            let (_, events) = self
                .record_on::<Workspace>(workspace, Some(workspace), &acting, |_| {
                    WorkspaceCommand::ExtendTrial {
                        days: extension.days,
                        referred_user: UserId::from_uuid(extension.referred_user),
                    }
                })
                .await
                .map_err(job_error)?;
            Ok(!events.is_empty())
        })
    }

    fn weekly_summary_sent<'a>(
        &'a self,
        sent: &'a SentSummary,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.record(sent.workspace_id, WEEKLY_SUMMARY_ACTOR, sent.cause, || {
                WorkspaceCommand::RecordWeeklySummarySent {
                    summary: sent.summary.clone(),
                }
            })
            .await
            .map_err(job_error)
        })
    }

    fn export_completed<'a>(
        &'a self,
        completed: &'a CompletedExport,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.record(
                completed.workspace_id,
                EXPORT_ACTOR,
                completed.cause,
                || WorkspaceCommand::CompleteExport {
                    export_id: ExportId::from_uuid(completed.export_id),
                    file: completed.file,
                },
            )
            .await
            .map_err(job_error)
        })
    }

    fn export_failed<'a>(
        &'a self,
        failed: &'a FailedExport,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.record(failed.workspace_id, EXPORT_ACTOR, failed.cause, || {
                WorkspaceCommand::FailExport {
                    export_id: ExportId::from_uuid(failed.export_id),
                    reason: failed.reason.clone(),
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
