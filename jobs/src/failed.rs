//! Failed jobs and dead letters: a job whose last run failed is `Failed` in `apalis.jobs`;
//! while it has runs left it waits for its retry, and once its runs are used up it is dead and
//! stays so until someone retries it ([`retry`]), with a fresh allowance of runs.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::retry::RetryPolicy;

/// A job whose last run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedJob {
    /// The job's id (a ULID in apalis; the same 128 bits as a UUID).
    pub id: Uuid,
    /// Its handler's queue.
    pub queue: String,
    pub workspace_id: Uuid,
    /// The event that caused it.
    pub event_id: Uuid,
    /// Runs so far.
    pub attempts: i32,
    /// Runs allowed before it is dead.
    pub max_attempts: i32,
    /// What the last run failed with.
    pub last_error: Option<String>,
    /// When the last run ended.
    pub failed_at: Option<DateTime<Utc>>,
}

impl FailedJob {
    /// Whether it will not run again unless retried.
    pub fn dead(&self) -> bool {
        self.attempts >= self.max_attempts
    }
}

/// The apalis id of a job named by `id`.
fn apalis_id(id: Uuid) -> String {
    ulid::Ulid::from(id.as_u128()).to_string()
}

/// A job id as an operator types it: the ULID apalis and the logs show, or its UUID form.
pub fn parse_job_id(text: &str) -> Option<Uuid> {
    job_uuid(text.trim()).or_else(|| text.trim().parse().ok())
}

/// The apalis (ULID) form of a job id, as the logs show it.
pub fn display_id(id: Uuid) -> String {
    apalis_id(id)
}

fn job_uuid(apalis_id: &str) -> Option<Uuid> {
    ulid::Ulid::from_string(apalis_id)
        .ok()
        .map(|ulid| Uuid::from_u128(ulid.0))
}

struct Row {
    id: String,
    job_type: String,
    args: Option<serde_json::Value>,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
    done_at: Option<DateTime<Utc>>,
}

impl Row {
    fn into_failed(self) -> Option<FailedJob> {
        let args = self.args?;
        let uuid = |key: &str| args.get(key)?.as_str()?.parse::<Uuid>().ok();
        Some(FailedJob {
            id: job_uuid(&self.id)?,
            queue: self.job_type,
            workspace_id: uuid("workspace_id")?,
            event_id: uuid("event_id")?,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            last_error: self.last_error,
            failed_at: self.done_at,
        })
    }
}

/// The failed jobs of `workspace_id`, in id (creation) order, after the job `after`; or,
/// `backward`, those before it, nearest first.
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<Uuid>,
    backward: bool,
    limit: i64,
) -> Result<Vec<FailedJob>, sqlx::Error> {
    // Forward, the first sort key orders by id; backward it is null for every row and the
    // second one orders by id, descending. The failed jobs of a workspace are few: sorting
    // them costs nothing next to finding them.
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, job_type, convert_from(job, 'UTF8')::jsonb AS args, attempts, max_attempts,
                  COALESCE(last_result->>'Err', last_result::text) AS last_error,
                  done_at
           FROM apalis.jobs
           WHERE status = 'Failed'
             AND convert_from(job, 'UTF8')::jsonb->>'workspace_id' = $1::text
             AND ($2::text IS NULL OR CASE WHEN $3 THEN id < $2 ELSE id > $2 END)
           ORDER BY CASE WHEN $3 THEN NULL ELSE id END, id DESC
           LIMIT $4"#,
        workspace_id.to_string(),
        after.map(apalis_id),
        backward,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(Row::into_failed).collect())
}

/// How many failed jobs `workspace_id` has (found through the indexed status, like [`list`]).
pub async fn count(pool: &PgPool, workspace_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM apalis.jobs
           WHERE status = 'Failed'
             AND convert_from(job, 'UTF8')::jsonb->>'workspace_id' = $1::text"#,
        workspace_id.to_string()
    )
    .fetch_one(pool)
    .await
}

/// How many jobs of one queue stand where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    pub queue: String,
    /// Waiting for a worker.
    pub pending: i64,
    /// Taken by a worker.
    pub running: i64,
    pub done: i64,
    /// Failed, waiting for their retry.
    pub retrying: i64,
    /// Failed with no runs left.
    pub dead: i64,
}

/// Every queue's counts.
pub async fn counts(pool: &PgPool) -> Result<Vec<QueueCounts>, sqlx::Error> {
    counts_of(pool, &["Pending", "Queued", "Running", "Done", "Failed"]).await
}

/// Every queue's counts of the jobs not done yet (`done` is 0): its depth and its dead jobs,
/// without counting the done jobs that pile up (the status is indexed), cheap enough for
/// `/readyz`.
pub async fn backlog(pool: &PgPool) -> Result<Vec<QueueCounts>, sqlx::Error> {
    counts_of(pool, &["Pending", "Queued", "Running", "Failed"]).await
}

async fn counts_of(pool: &PgPool, statuses: &[&str]) -> Result<Vec<QueueCounts>, sqlx::Error> {
    let statuses: Vec<String> = statuses.iter().map(ToString::to_string).collect();
    sqlx::query_as!(
        QueueCounts,
        r#"SELECT job_type AS "queue!",
                  count(*) FILTER (WHERE status = 'Pending') AS "pending!",
                  count(*) FILTER (WHERE status IN ('Queued', 'Running')) AS "running!",
                  count(*) FILTER (WHERE status = 'Done') AS "done!",
                  count(*) FILTER (WHERE status = 'Failed' AND attempts < max_attempts) AS "retrying!",
                  count(*) FILTER (WHERE status = 'Failed' AND attempts >= max_attempts) AS "dead!"
           FROM apalis.jobs
           WHERE status = ANY($1)
           GROUP BY job_type
           ORDER BY job_type"#,
        &statuses
    )
    .fetch_all(pool)
    .await
}

/// The dead jobs of every workspace, oldest first, at most `limit`.
pub async fn dead(pool: &PgPool, limit: i64) -> Result<Vec<FailedJob>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, job_type, convert_from(job, 'UTF8')::jsonb AS args, attempts, max_attempts,
                  COALESCE(last_result->>'Err', last_result::text) AS last_error,
                  done_at
           FROM apalis.jobs
           WHERE status = 'Failed' AND attempts >= max_attempts
           ORDER BY id
           LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(Row::into_failed).collect())
}

/// The failed job `id`, if it is one.
pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<FailedJob>, sqlx::Error> {
    Ok(with_ids(pool, &[id]).await?.pop())
}

/// The failed jobs among `ids`, whatever their workspace (the caller decides who may see
/// each), in no particular order.
pub async fn with_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<FailedJob>, sqlx::Error> {
    let ids: Vec<String> = ids.iter().copied().map(apalis_id).collect();
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, job_type, convert_from(job, 'UTF8')::jsonb AS args, attempts, max_attempts,
                  COALESCE(last_result->>'Err', last_result::text) AS last_error,
                  done_at
           FROM apalis.jobs
           WHERE id = ANY($1) AND status = 'Failed'"#,
        &ids
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(Row::into_failed).collect())
}

/// Runs failed job `id` again now, with `policy`'s allowance of runs from here. Returns
/// whether there was such a failed job.
pub async fn retry(
    conn: impl sqlx::PgExecutor<'_>,
    id: Uuid,
    policy: RetryPolicy,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "UPDATE apalis.jobs
         SET status = 'Pending', run_at = now(), lock_by = NULL, lock_at = NULL,
             max_attempts = attempts + $2
         WHERE id = $1 AND status = 'Failed'",
        apalis_id(id),
        policy.max_attempts as i32
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_through_uuids() {
        let ulid = ulid::Ulid::generate().to_string();
        assert_eq!(apalis_id(job_uuid(&ulid).unwrap()), ulid);
        let uuid = job_uuid(&ulid).unwrap();
        assert_eq!(parse_job_id(&ulid), Some(uuid));
        assert_eq!(parse_job_id(&uuid.to_string()), Some(uuid));
        assert_eq!(parse_job_id("nonsense"), None);
    }
}
