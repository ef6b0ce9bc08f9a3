//! Background jobs (SPEC §7): apalis workers on the same PostgreSQL (apalis-postgres, its tables
//! in the schema `apalis`, set up by [`setup`]), fed by the job-dispatch projection
//! ([`dispatch`]), which turns events into jobs in the same transaction as it moves its
//! checkpoint, keyed by (handler, event id) so that a replay, a restart or a second dispatcher
//! never enqueues a job twice. Workers ([`worker`]) retry a failing job with exponential backoff
//! and jitter ([`retry`]) until it is dead. A handler records what it did as an event through the
//! application's write path ([`Recorder`]), under a unique key in the same transaction, so
//! at-least-once delivery still gives exactly-once effects.
//!
//! Jobs so far: the invite email ([`invite_email`], sent over SMTP by [`mail`]).

pub mod dispatch;
pub mod failed;
pub mod invite_email;
pub mod mail;
pub mod retry;
pub mod worker;

use futures::future::BoxFuture;
use uuid::Uuid;

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

/// Records the effects of jobs as events, through the application's write path (the aggregate
/// decides; the event and its unique effect key are written in one transaction). Recording an
/// effect already recorded is not an error and writes nothing.
pub trait Recorder: Send + Sync + 'static {
    fn invite_email_sent<'a>(&'a self, sent: &'a SentInvite)
    -> BoxFuture<'a, Result<(), BoxError>>;

    /// Records that a job failed for good (the workspace's audit log shows it).
    fn job_dead<'a>(&'a self, dead: &'a DeadJob) -> BoxFuture<'a, Result<(), BoxError>>;
}
