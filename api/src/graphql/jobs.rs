//! Background jobs as the API shows them: failed jobs (retrying or dead) of a workspace, to
//! owners, admins and SUPPORT staff (`authz::Read::Jobs`), and running one again.

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ids::{self, Kind, decode};
use super::pagination::{Counted, Page, TotalCount, encode_cursor};
use super::query::caller;
use super::types::{pool, rights};
use domain::{Aggregate, UserId, Workspace, WorkspaceCommand};
use eventlog::StreamRef;

use crate::authz::{self, Read};
use crate::error::ApiError;
use crate::request::RequestContext;
use crate::writes::Writes;

/// What the API needs of the jobs' settings: the key invite tokens are derived from
/// (`inviteMember`), and the retry policy (`retryJob`).
pub struct JobSettings {
    pub invite_tokens: ::jobs::InviteTokens,
    pub retry: ::jobs::retry::RetryPolicy,
}

/// A background job whose last run failed: it waits for its retry, or, its runs used up, it
/// is dead until retried (`retryJob`). As a `Node`, `node`/`nodes` find it with the rights of
/// `failedJobs`, and only while it is failed: once it runs again its id is not found, like
/// any unknown id.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct FailedJob {
    #[graphql(skip)]
    pub job_id: Uuid,
    /// What the job does (its queue), e.g. `chronicle.invite-email`.
    pub kind: String,
    /// The workspace it works for.
    pub workspace_id: ID,
    /// The event that caused it (see `events` or `auditLog`).
    pub caused_by_event_id: ID,
    /// Runs so far.
    pub attempts: i32,
    /// Runs allowed before it is dead.
    pub max_attempts: i32,
    /// Whether it will not run again unless retried.
    pub dead: bool,
    /// What its last run failed with.
    pub last_error: Option<String>,
    /// When its last run ended.
    pub failed_at: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl FailedJob {
    /// Global id (what `retryJob` takes).
    pub(crate) async fn id(&self) -> ID {
        ids::encode(Kind::Job, self.job_id)
    }
}

impl From<jobs::failed::FailedJob> for FailedJob {
    fn from(job: jobs::failed::FailedJob) -> FailedJob {
        FailedJob {
            job_id: job.id,
            dead: job.dead(),
            kind: job.queue,
            workspace_id: ids::encode(Kind::Workspace, job.workspace_id),
            caused_by_event_id: ids::encode(Kind::Event, job.event_id),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            last_error: job.last_error,
            failed_at: job.failed_at,
        }
    }
}

/// `failedJobs`: see [`super::query::Query`].
pub async fn failed_jobs(
    ctx: &Context<'_>,
    workspace_id: ID,
    page: Page<'_>,
) -> async_graphql::Result<Connection<String, FailedJob, TotalCount>> {
    let user_id = caller(ctx)?;
    let workspace_id = decode(Kind::Workspace, &workspace_id)?;
    let pool = pool(ctx)?;
    authz::workspace(rights(ctx)?, user_id, workspace_id, Read::Jobs).await?;
    let read = |after, backward, limit| async move {
        let jobs = jobs::failed::list(pool, workspace_id, after, backward, limit).await;
        jobs.map_err(anyhow::Error::from)
    };
    let cursor = |job: &jobs::failed::FailedJob| encode_cursor(&job.id);
    let count = TotalCount(Counted::FailedJobs(workspace_id));
    Ok(page.load(read, cursor, FailedJob::from, count).await?)
}

/// The result of `retryJob`.
#[derive(SimpleObject)]
pub struct RetryJobPayload {
    /// The job, as it stood when retried.
    pub job: FailedJob,
    /// The log position written (the `JobRetried` event).
    pub position: Option<String>,
}

/// Job mutations.
#[derive(Default)]
pub struct JobMutations;

#[Object]
impl JobMutations {
    /// Runs a failed job again now (retrying or dead), with a fresh allowance of runs: owners
    /// and admins of its workspace, and SUPPORT staff.
    async fn retry_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The failed job's global id: `FailedJob.id`, from `failedJobs` or `node` (the same id both give)."
        )]
        id: ID,
    ) -> async_graphql::Result<RetryJobPayload> {
        let user_id = caller(ctx)?;
        let id = decode(Kind::Job, &id)?;
        let pool = pool(ctx)?;
        let internal = |err: sqlx::Error| ApiError::Internal(err.into());
        let job = jobs::failed::find(pool, id)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound("failed job"))?;
        match authz::workspace(rights(ctx)?, user_id, job.workspace_id, Read::Jobs).await {
            Err(ApiError::NotFound(_)) => return Err(ApiError::NotFound("failed job").into()),
            other => other?,
        };
        let policy = *ctx.data::<jobs::retry::RetryPolicy>()?;
        let staff_roles = authz::staff_roles(pool, user_id).await?;
        let (req, writes) = (ctx.data::<RequestContext>()?, ctx.data::<Writes>()?);
        let workspace_id = job.workspace_id;
        // The `JobRetried` event and the job's new state commit together.
        let position = writes
            .once(req, "retryJob", &id, async |conn| {
                let loaded = writes.log().load::<Workspace>(workspace_id).await?;
                let actor = UserId::from_uuid(user_id);
                let role = loaded.state.role_of(actor);
                let command = WorkspaceCommand::RetryJob {
                    job_id: id,
                    staff_roles,
                };
                let events = loaded
                    .state
                    .decide(command, &domain::Context::user(writes.now(), actor))?;
                let stream = StreamRef {
                    stream_type: Workspace::STREAM_TYPE,
                    stream_id: workspace_id,
                    workspace_id: Some(workspace_id),
                };
                let metadata = req.metadata(Some(user_id), role.map(|r| r.as_str()));
                let position = writes
                    .append(conn, &stream, loaded.expected_version(), events, &metadata)
                    .await?;
                if !jobs::failed::retry(&mut *conn, id, policy)
                    .await
                    .map_err(internal)?
                {
                    return Err(ApiError::Domain(domain::DomainError::conflict(
                        "the job is no longer failed: it is running or done",
                    )));
                }
                Ok(position.map(|a| a.position().to_string()))
            })
            .await?;
        tracing::info!(job_id = %id, event_id = %job.event_id, %user_id, "job retried");
        Ok(RetryJobPayload {
            job: job.into(),
            position,
        })
    }
}
