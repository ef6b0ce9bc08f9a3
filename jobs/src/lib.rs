//! Background jobs (SPEC §7): apalis workers on the same PostgreSQL (apalis-postgres, its tables
//! in the schema `apalis`, set up by [`setup`]), fed by the job-dispatch projection
//! ([`dispatch`]), which turns events into jobs in the same transaction as it moves its
//! checkpoint, keyed by (handler, event id) so that a replay, a restart or a second dispatcher
//! never enqueues a job twice. Workers ([`worker`]) retry a failing job with exponential backoff
//! and jitter ([`retry`]) until it is dead. A handler records what it did as an event through the
//! application's write path ([`Recorder`]), under a unique key in the same transaction, so
//! at-least-once delivery still gives exactly-once effects.
//!
//! Jobs: the invite email ([`invite_email`], sent over SMTP by [`mail`]), the referral reward
//! ([`referral_reward`]), the weekly summary ([`weekly_summary`], with its schedule) and exports
//! ([`export`]: CSV and PDF files of a workspace's items, stored in PostgreSQL).

pub mod dispatch;
pub mod export;
pub mod failed;
pub mod invite_email;
pub mod mail;
pub mod referral_reward;
pub mod retry;
pub mod weekly_summary;
pub mod worker;

use futures::future::BoxFuture;
use uuid::Uuid;

pub use export::{CompletedExport, FailedExport};
pub use invite_email::InviteTokens;

/// An error a job's handler returns (and apalis stores as the job's last error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong running jobs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("job storage: {0}")]
    Storage(#[from] apalis_postgres::Error),
    #[error(transparent)]
    Projection(#[from] projections::Error),
    #[error(transparent)]
    Log(#[from] eventlog::Error),
    #[error("mail: {0}")]
    Mail(String),
    #[error("job configuration: {0}")]
    Config(String),
}

/// Applies apalis-postgres's own migrations (schema `apalis`, with its own migration history,
/// so they never mix with Chronicle's). Idempotent; run by `chronicle migrate` and at start.
pub async fn setup(pool: &sqlx::PgPool) -> Result<(), Error> {
    apalis_postgres::PostgresStorage::setup(pool).await?;
    Ok(())
}

/// An invite email handed to the mail server, to be recorded as the `InviteEmailSent` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentInvite {
    pub workspace_id: Uuid,
    pub invite_id: Uuid,
    /// The `InviteCreated` event the job ran for (the new event's causation).
    pub cause: Uuid,
    pub message_id: String,
}

/// A job that failed for good, to be recorded as the `JobDied` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    pub workspace_id: Uuid,
    pub job_id: Uuid,
    /// Its queue.
    pub kind: String,
    /// The event it ran for.
    pub cause: Uuid,
    pub attempts: u32,
    pub error: String,
}

/// A referral to reward, to be decided and recorded on the referrer (`ReferralRewarded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralClaim {
    pub claim: domain::referral::Claim,
    /// The `ItemCreated` event the job ran for (the new event's causation).
    pub cause: Uuid,
    pub correlation_id: Option<Uuid>,
}

/// A trial extension a referral earned, to be recorded as `TrialExtended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialExtension {
    pub workspace_id: Uuid,
    pub referred_user: Uuid,
    pub days: u32,
    /// The `ItemCreated` event the job ran for.
    pub cause: Uuid,
    pub correlation_id: Option<Uuid>,
}

/// A weekly summary handed to the mail server, to be recorded as `WeeklySummarySent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSummary {
    pub workspace_id: Uuid,
    /// The event the job ran for (the workspace's `WorkspaceCreated`).
    pub cause: Uuid,
    pub summary: domain::WeeklySummary,
}

/// Records the effects of jobs as events, through the application's write path (the aggregate
/// decides; the event and its unique effect key are written in one transaction). Recording an
/// effect already recorded is not an error and writes nothing.
pub trait Recorder: Send + Sync + 'static {
    fn invite_email_sent<'a>(&'a self, sent: &'a SentInvite)
    -> BoxFuture<'a, Result<(), BoxError>>;

    /// Records that a job failed for good (the workspace's audit log shows it).
    fn job_dead<'a>(&'a self, dead: &'a DeadJob) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Decides a referral on the referrer and records the reward if it earns one now; returns
    /// the decision (a reward recorded before is `AlreadyRewarded`, with its workspaces).
    fn referral_rewarded<'a>(
        &'a self,
        claim: &'a ReferralClaim,
    ) -> BoxFuture<'a, Result<domain::referral::Decision, BoxError>>;

    /// Extends a workspace's trial for a referral; returns whether it was extended now (not
    /// before, and still on trial).
    fn trial_extended<'a>(
        &'a self,
        extension: &'a TrialExtension,
    ) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// Records that a weekly summary went out.
    fn weekly_summary_sent<'a>(
        &'a self,
        sent: &'a SentSummary,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Records that an export's file is written (`ExportCompleted`, naming the file). Refused
    /// (an error) when the export is already completed.
    fn export_completed<'a>(
        &'a self,
        completed: &'a CompletedExport,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Records that an export cannot be made (`ExportFailed`).
    fn export_failed<'a>(&'a self, failed: &'a FailedExport)
    -> BoxFuture<'a, Result<(), BoxError>>;
}
