//! Running asynchronous projections behind the log (SPEC §5).
//!
//! A [`Projection`] applies events in log order and stores, atomically with their effect, the
//! position of the last one applied (its checkpoint); so after a crash it resumes exactly where
//! its last effect ends, with no event missing or applied twice. [`run`] feeds it from a
//! [`eventlog::Tail`] (woken by the log's notifications, polling only as a fallback), in
//! batches of whatever is readable, and publishes its progress for `minPosition` waits.
//! [`run_until`] does the same until told to stop, and stops between batches, never in one.
//!
//! A [`Scope::Shared`] projection writes tables every node reads, so only one node runs it: the
//! one holding a PostgreSQL advisory lock named after it. The lock lives with a connection, so
//! when the leader dies its lock is released and another node takes over within
//! [`LEADER_RETRY`]. Should two nodes ever apply at once (a leader cut off from the database
//! while its transaction is still open), the checkpoint guard in [`SharedCheckpoint`] refuses
//! the second one. A [`Scope::NodeLocal`] projection (the search index) runs on every node.

use std::future::Future;
use std::time::Duration;

use eventlog::{EventLog, Position, RecordedEvent};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// How often a node that is not the leader tries to become it, and how often the leader
/// checks it still is.
pub const LEADER_RETRY: Duration = Duration::from_secs(1);
/// The most events applied in one batch (one transaction or one index commit).
const MAX_BATCH: usize = 5_000;
/// How long to wait before restarting a projection that failed.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Where a projection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On one node at a time (it writes shared tables).
    Shared,
    /// On every node (it keeps node-local state).
    NodeLocal,
}

/// A read model maintained behind the log.
pub trait Projection: Send + Sync + 'static {
    /// Its name, as `chronicle projections` shows it.
    fn name(&self) -> &'static str;
    fn scope(&self) -> Scope;
    /// The position of the last event whose effect is stored ([`Position::START`] if none).
    fn checkpoint(&self) -> impl Future<Output = Result<Position, Error>> + Send;
    /// Applies `events` (the events following `after`, in log order) and moves the checkpoint
    /// from `after` to the last one, atomically: either every effect and the new checkpoint
    /// are stored, or nothing is. A checkpoint no longer at `after` means another runner
    /// moved it: [`Error::Fenced`], and nothing is applied.
    fn apply(
        &self,
        after: Position,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Runs `projection` for as long as the returned future is polled: waits to lead it if it is
/// shared, then applies the log from its checkpoint on, publishing each checkpoint reached in
/// `progress`. Failures are logged and the projection restarts from its stored checkpoint.
pub async fn run<P: Projection>(log: EventLog, projection: P, progress: watch::Sender<Position>) {
    run_until(log, projection, progress, CancellationToken::new()).await
}

/// Like [`run`], until `stop` is cancelled: then it returns between two batches (a batch being
/// applied is finished and its checkpoint stored first) and gives up or never takes the
/// leadership of a shared projection, so another node takes over.
pub async fn run_until<P: Projection>(
    log: EventLog,
    projection: P,
    progress: watch::Sender<Position>,
    stop: CancellationToken,
) {
    let name = projection.name();
    while !stop.is_cancelled() {
        let outcome = match projection.scope() {
            Scope::NodeLocal => follow(&log, &projection, &progress, &stop).await,
            Scope::Shared => lead(&log, &projection, &progress, &stop).await,
        };
        if let Err(err) = outcome {
            tracing::warn!(projection = name, error = %err, "projection stopped; restarting");
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(RESTART_DELAY) => {}
        }
    }
    tracing::debug!(projection = name, "projection stopped for the shutdown");
}

/// Becomes the leader of a shared projection, then follows the log while leading.
async fn lead<P: Projection>(
    log: &EventLog,
    projection: &P,
    progress: &watch::Sender<Position>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let mut leadership = tokio::select! {
        leadership = Leadership::acquire(log.pool(), projection.name()) => leadership?,
        _ = stop.cancelled() => return Ok(()),
    };
    tracing::info!(projection = projection.name(), "leading the projection");
    tokio::select! {
        outcome = follow(log, projection, progress, stop) => outcome,
        lost = leadership.watch() => Err(lost),
    }
}

/// Applies the log to `projection` from its checkpoint on, until `stop` is cancelled.
async fn follow<P: Projection>(
    log: &EventLog,
    projection: &P,
    progress: &watch::Sender<Position>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let start = projection.checkpoint().await?;
    progress.send_replace(start);
    let mut tail = log.tail(start);
    loop {
        let after = tail.position();
        let first = tokio::select! {
            event = tail.next() => event?,
            _ = stop.cancelled() => return Ok(()),
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && !tail.at_end_of_read() {
            match tail.try_next().await? {
                Some(event) => batch.push(event),
                None => break,
            }
        }
        projection.apply(after, &batch).await?;
        progress.send_replace(tail.position());
    }
}

/// The advisory lock that makes this node the leader of a shared projection, held by a
/// connection of its own.
struct Leadership {
    conn: PgConnection,
}

impl Leadership {
    /// Waits until this node holds the projection's lock.
    async fn acquire(pool: &PgPool, name: &str) -> Result<Leadership, Error> {
        let options = pool.connect_options();
        let options = &*options;
        loop {
            let mut conn = PgConnection::connect_with(options).await?;
            let locked: bool = sqlx::query_scalar!(
                r#"SELECT pg_try_advisory_lock(hashtextextended('chronicle.projection.' || $1, 0)) AS "locked!""#,
                name
            )
            .fetch_one(&mut conn)
            .await?;
            if locked {
                return Ok(Leadership { conn });
            }
            drop(conn);
            tokio::time::sleep(LEADER_RETRY).await;
        }
    }

    /// Returns (an error) when the lock's connection is lost.
    async fn watch(&mut self) -> Error {
        loop {
            tokio::time::sleep(LEADER_RETRY).await;
            if let Err(err) = self.conn.ping().await {
                return Error::Database(err);
            }
        }
    }
}

/// The checkpoint row of a shared projection in `projection_checkpoints`.
pub struct SharedCheckpoint {
    name: &'static str,
}

impl SharedCheckpoint {
    pub const fn new(name: &'static str) -> SharedCheckpoint {
        SharedCheckpoint { name }
    }

    /// The stored checkpoint.
    pub async fn load(&self, pool: &PgPool) -> Result<Position, Error> {
        let row = sqlx::query!(
            "SELECT tx_id, seq FROM projection_checkpoints WHERE name = $1 AND node = ''",
            self.name
        )
        .fetch_optional(pool)
        .await?;
        Ok(row.map_or(Position::START, |r| Position::new(r.tx_id, r.seq)))
    }

    /// Locks the checkpoint row in `conn`'s transaction and returns it. Take this lock before
    /// touching the projection's tables, so every writer locks in the same order.
    pub async fn lock(&self, conn: &mut PgConnection) -> Result<Position, Error> {
        sqlx::query!(
            "INSERT INTO projection_checkpoints (name, node) VALUES ($1, '') ON CONFLICT DO NOTHING",
            self.name
        )
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query!(
            "SELECT tx_id, seq FROM projection_checkpoints WHERE name = $1 AND node = '' FOR UPDATE",
            self.name
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Position::new(row.tx_id, row.seq))
    }

    /// Like [`SharedCheckpoint::lock`], checking the checkpoint is still at `expected`:
    /// [`Error::Fenced`] if another runner (or a rebuild) moved it.
    pub async fn lock_at(&self, conn: &mut PgConnection, expected: Position) -> Result<(), Error> {
        if self.lock(conn).await? != expected {
            return Err(Error::Fenced {
                projection: self.name,
            });
        }
        Ok(())
    }

    /// Moves the (locked) checkpoint to `position` in `conn`'s transaction.
    pub async fn store(&self, conn: &mut PgConnection, position: Position) -> Result<(), Error> {
        sqlx::query!(
            "UPDATE projection_checkpoints SET tx_id = $2, seq = $3, updated_at = now()
             WHERE name = $1 AND node = ''",
            self.name,
            position.tx_id(),
            position.seq()
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Records where a node-local projection stands on `node`, for status and for other nodes.
pub async fn report_local(
    pool: &PgPool,
    name: &str,
    node: &str,
    position: Position,
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO projection_checkpoints (name, node, tx_id, seq) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name, node) DO UPDATE
         SET tx_id = EXCLUDED.tx_id, seq = EXCLUDED.seq, updated_at = now()",
        name,
        node,
        position.tx_id(),
        position.seq()
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A projection's standing, as `chronicle projections status` shows it.
#[derive(Debug, Clone)]
pub struct Standing {
    pub name: String,
    /// Empty for a shared projection.
    pub node: String,
    pub position: Position,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Events in the log after its position.
    pub lag: u64,
}

/// Every projection's recorded standing, and its lag behind the log.
pub async fn standings(log: &EventLog) -> Result<Vec<Standing>, Error> {
    standings_capped(log, u64::MAX).await
}

/// [`standings`] with each lag counted no further than `cap` (counting is a scan of the log
/// after the checkpoint: what is read often, such as metrics, bounds it).
pub async fn standings_capped(log: &EventLog, cap: u64) -> Result<Vec<Standing>, Error> {
    let rows = sqlx::query!(
        "SELECT name, node, tx_id, seq, updated_at FROM projection_checkpoints ORDER BY name, node"
    )
    .fetch_all(log.pool())
    .await?;
    let mut standings = Vec::with_capacity(rows.len());
    for row in rows {
        let position = Position::new(row.tx_id, row.seq);
        standings.push(Standing {
            lag: log.count_after_capped(position, cap).await?,
            name: row.name,
            node: row.node,
            position,
            updated_at: row.updated_at,
        });
    }
    Ok(standings)
}

/// Test hooks: a test can make a projection fail after it has applied a batch's effect and
/// before it stores the checkpoint, as a crash there would (the effect is then rolled back
/// with the transaction, or never committed to the index). Only with the `test-hooks` feature,
/// which only this crate's tests enable: the release binary has no way to arm them.
pub mod hooks {
    use crate::Error;

    #[cfg(feature = "test-hooks")]
    static FAIL_NEXT_COMMIT: std::sync::Mutex<Vec<&'static str>> =
        std::sync::Mutex::new(Vec::new());

    /// Makes the next commit of `projection` in this process fail (once).
    #[cfg(feature = "test-hooks")]
    pub fn fail_next_commit(projection: &'static str) {
        FAIL_NEXT_COMMIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(projection);
    }

    /// The projections whose next commit will fail.
    #[cfg(feature = "test-hooks")]
    pub fn armed() -> Vec<&'static str> {
        FAIL_NEXT_COMMIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fails if a test armed a crash of `projection` here.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn before_commit(projection: &'static str) -> Result<(), Error> {
        let mut armed = FAIL_NEXT_COMMIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match armed.iter().position(|name| *name == projection) {
            Some(at) => {
                armed.remove(at);
                Err(Error::Crashed { projection })
            }
            None => Ok(()),
        }
    }

    /// Nothing to fail without the `test-hooks` feature.
    #[cfg(not(feature = "test-hooks"))]
    #[inline(always)]
    pub(crate) fn before_commit(_projection: &'static str) -> Result<(), Error> {
        Ok(())
    }
}
