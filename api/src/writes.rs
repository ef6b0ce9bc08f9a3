//! The write path every mutation takes: decided events are appended and applied to the inline
//! read models in one transaction, at most once per idempotency key, and announced (and
//! counted, for `/metrics`) after the commit.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use domain::DomainEvent;
use eventlog::aggregates::to_new_events;
use eventlog::{Appended, EventLog, ExpectedVersion, Metadata, StreamRef};
use projections::inline::{self, AnyEvent, Envelope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::error::ApiError;
use crate::request::RequestContext;

/// The time rules are decided at: the system's clock, moved ahead by the node's configured
/// offset (tests of time-bound rules, such as the trial lock, use a node that lives in the
/// future, or move its clock on). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds ahead of the system's clock.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock running `offset` ahead of the system's.
    pub fn with_offset(offset: chrono::Duration) -> Clock {
        Clock {
            offset_ms: Arc::new(AtomicI64::new(offset.num_milliseconds())),
        }
    }

    /// The time now.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock on by `by` (tests: time passes without waiting for it).
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

tokio::task_local! {
    /// What the transaction [`Writes::run`] or [`Writes::once`] runs appended so far.
    static APPENDED: RefCell<Vec<Appended>>;
}

/// Appends and applies events; see the module docs.
#[derive(Clone)]
pub struct Writes {
    log: EventLog,
    clock: Clock,
    /// Counts the events of every committed transaction (`/metrics`), when set.
    appended: Option<prometheus::IntCounter>,
    /// Told when a committed transaction appended to a workspace (which may have changed a
    /// membership), when set.
    rights: Option<crate::authz::Rights>,
}

impl Writes {
    pub fn new(log: EventLog) -> Writes {
        Writes::with_clock_offset(log, chrono::Duration::zero())
    }

    /// Writes whose clock runs `offset` ahead of the system's (tests of time-bound rules, such
    /// as the trial lock, use a node that lives in the future).
    pub fn with_clock_offset(log: EventLog, offset: chrono::Duration) -> Writes {
        Writes::with_clock(log, Clock::with_offset(offset))
    }

    /// Writes deciding time-bound rules by `clock`.
    pub fn with_clock(log: EventLog, clock: Clock) -> Writes {
        Writes {
            log,
            clock,
            appended: None,
            rights: None,
        }
    }

    /// These writes, counting the events each committed transaction appended into `counter`.
    pub fn counting_appends(self, counter: prometheus::IntCounter) -> Writes {
        Writes {
            appended: Some(counter),
            ..self
        }
    }

    /// These writes, making `rights` forget the roles it remembers whenever a committed
    /// transaction appended to a workspace's stream (where memberships change).
    pub fn forgetting_roles(self, rights: crate::authz::Rights) -> Writes {
        Writes {
            rights: Some(rights),
            ..self
        }
    }

    /// The time rules are decided at.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The clock rules are decided by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Runs `body` in a transaction and commits it. With an `Idempotency-Key`, a retry (same
    /// caller, same key, same `operation` and `input`) returns the first result without running
    /// `body` again — also when the two race; the same key with other input is refused.
    pub async fn once<R, F>(
        &self,
        req: &RequestContext,
        operation: &str,
        input: &impl Serialize,
        body: F,
    ) -> Result<R, ApiError>
    where
        R: Serialize + DeserializeOwned,
        F: AsyncFnOnce(&mut PgConnection) -> Result<R, ApiError>,
    {
        let Some(key) = req.idempotency_key()? else {
            return self.run(body).await;
        };
        let scope = req
            .principal
            .map_or_else(|| "anonymous".to_string(), |p| p.user_id.to_string());
        let request_hash = request_hash(operation, input)?;
        if let Some(stored) = self.stored(&scope, key, &request_hash).await? {
            return Ok(stored);
        }

        let mut tx = self.log.pool().begin().await.map_err(internal)?;
        let (outcome, appended) =
            noting_appends(run_and_record(&mut tx, body, &scope, key, &request_hash)).await;
        let committed = match outcome {
            Ok(result) => tx.commit().await.map(|()| result).map_err(internal),
            Err(err) => Err(err),
        };
        match committed {
            Ok(result) => {
                self.committed(&appended);
                Ok(result)
            }
            // A concurrent request with the same key may have won: then this is its retry.
            Err(err) => match self.stored(&scope, key, &request_hash).await? {
                Some(stored) => Ok(stored),
                None => Err(err),
            },
        }
    }

    /// Runs `body` in a transaction, commits it and announces what it appended.
    pub async fn run<R, F>(&self, body: F) -> Result<R, ApiError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<R, ApiError>,
    {
        let mut tx = self.log.pool().begin().await.map_err(internal)?;
        let (result, appended) = noting_appends(body(&mut tx)).await;
        let result = result?;
        tx.commit().await.map_err(internal)?;
        self.committed(&appended);
        Ok(result)
    }

    /// After a commit that appended `appended`: tell the log, and count the events.
    fn committed(&self, appended: &[Appended]) {
        self.log.committed(appended);
        let to_workspace = |a: &Appended| {
            a.head.as_ref().is_some_and(|head| {
                head.stream_type() == <domain::Workspace as domain::Aggregate>::STREAM_TYPE
            })
        };
        if let Some(rights) = &self.rights
            && appended.iter().any(to_workspace)
        {
            rights.forget_roles();
        }
        if let Some(counter) = &self.appended {
            let events: usize = appended.iter().map(|a| a.positions.len()).sum();
            counter.inc_by(events as u64);
        }
    }

    /// The stored result for a key, if the key was used; an error if it was used for other input.
    async fn stored<R: DeserializeOwned>(
        &self,
        scope: &str,
        key: &str,
        request_hash: &[u8],
    ) -> Result<Option<R>, ApiError> {
        let row = sqlx::query!(
            "SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
            scope,
            key
        )
        .fetch_optional(self.log.pool())
        .await
        .map_err(internal)?;
        match row {
            None => Ok(None),
            Some(row) if row.request_hash != request_hash => Err(ApiError::IdempotencyMismatch),
            Some(row) => Ok(Some(
                serde_json::from_value(row.response).map_err(internal)?,
            )),
        }
    }

    /// Appends `events` to `stream` and applies them to the inline read models, inside the
    /// caller's transaction. Returns what was written (`None`: nothing to write): its
    /// [`Appended::position`] is the mutation's consistency token.
    pub async fn append<E>(
        &self,
        conn: &mut PgConnection,
        stream: &StreamRef,
        expected: ExpectedVersion,
        events: Vec<E>,
        metadata: &Metadata,
    ) -> Result<Option<Appended>, ApiError>
    where
        E: DomainEvent + Into<AnyEvent>,
    {
        if events.is_empty() {
            return Ok(None);
        }
        let appended = self
            .log
            .append_in(conn, stream, expected, &to_new_events(&events, metadata))
            .await?;
        let first_version = appended.stream_version + 1 - events.len() as u64;
        let recorded_at = appended.recorded_at;
        // Outside `run` and `once` (operator commands) nothing is noted.
        let _ = APPENDED.try_with(|noted| noted.borrow_mut().push(appended.clone()));
        for (i, event) in events.into_iter().enumerate() {
            let event = event.into();
            let envelope = Envelope {
                stream_id: stream.stream_id,
                stream_version: first_version + i as u64,
                recorded_at,
                event: &event,
            };
            inline::apply(conn, envelope)
                .await
                .map_err(unique_violation_as_conflict)?;
        }
        Ok(Some(appended))
    }
}

/// Runs `work` and returns, with its output, what it appended through [`Writes::append`].
async fn noting_appends<T>(work: impl Future<Output = T>) -> (T, Vec<Appended>) {
    APPENDED
        .scope(RefCell::new(Vec::new()), async {
            let output = work.await;
            (output, APPENDED.with(RefCell::take))
        })
        .await
}

async fn run_and_record<R, F>(
    conn: &mut PgConnection,
    body: F,
    scope: &str,
    key: &str,
    request_hash: &[u8],
) -> Result<R, ApiError>
where
    R: Serialize,
    F: AsyncFnOnce(&mut PgConnection) -> Result<R, ApiError>,
{
    let result = body(conn).await?;
    let response = serde_json::to_value(&result).map_err(internal)?;
    sqlx::query!(
        "INSERT INTO idempotency_keys (scope, key, request_hash, response) VALUES ($1, $2, $3, $4)",
        scope,
        key,
        request_hash,
        response
    )
    .execute(&mut *conn)
    .await
    .map_err(internal)?;
    Ok(result)
}

/// Deletes idempotency keys recorded more than `retention` ago (a retry after that runs the
/// mutation again), in statements of at most `batch` rows so that no long transaction holds the
/// log's read horizon back; how many were deleted.
pub async fn prune(
    pool: &sqlx::PgPool,
    retention: chrono::Duration,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let retention_secs = retention.num_seconds() as f64;
    let limit = i64::from(batch.max(1));
    crate::pruning::in_batches(limit, move || async move {
        let deleted = sqlx::query!(
            r#"
            DELETE FROM idempotency_keys k
             WHERE k.created_at < now() - make_interval(secs => $1)
               AND (k.scope, k.key) IN (
                   SELECT scope, key FROM idempotency_keys
                    WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)
            "#,
            retention_secs,
            limit
        )
        .execute(pool)
        .await?;
        Ok(deleted.rows_affected())
    })
    .await
}

fn request_hash(operation: &str, input: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    let input = serde_json::to_vec(input).map_err(internal)?;
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(&input);
    Ok(hasher.finalize().to_vec())
}

/// A read-model unique key (say, an email already registered) is the client's conflict.
fn unique_violation_as_conflict(err: projections::Error) -> ApiError {
    if let projections::Error::Database(sqlx::Error::Database(db)) = &err {
        match db.constraint() {
            Some("users_email_key") => {
                return ApiError::Domain(domain::DomainError::conflict(
                    "this email is already registered",
                ));
            }
            Some("users_referral_code_key") => {
                return ApiError::Domain(domain::DomainError::conflict(
                    "referral code taken; try again",
                ));
            }
            _ => {}
        }
    }
    ApiError::ReadModel(err)
}

fn internal(err: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Internal(err.into())
}
