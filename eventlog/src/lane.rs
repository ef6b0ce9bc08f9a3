//! A lane for one-statement work (the GraphQL resolvers' reads, [`crate::EventLog::append`]): a
//! pooled connection goes from one statement to the next without sqlx's check on its way back
//! to the pool.
//!
//! sqlx sends a round trip (a `Sync`, answered by `ReadyForQuery`) whenever a connection goes
//! back to its pool, and spawns a task to do it; no option turns it off. For a request that runs
//! one statement that is half its round trips. What the check is for: a statement whose future
//! was dropped midway (a request's timeout, a client gone) can leave the connection mid-answer,
//! and the check drains or closes it. A statement that *completed* leaves the connection at a
//! message boundary, and sqlx waits for the server's `ReadyForQuery` before it sends the next
//! statement on it, so nothing is lost by skipping the check for those.
//!
//! So the lane keeps a connection whose statement completed without error, for the next
//! statement to take, and lets every other one go back to the pool as before: one that failed,
//! and one whose statement was dropped midway (its future owned it). Connections are the pool's:
//! the lane is bounded by [`Lane::new`]'s capacity, and a connection kept by it is one the pool
//! counts as in use. A connection goes back to the pool when it has been kept for
//! [`KEEP_FOR`] without use (then the pool checks it, and checks it again before handing it out
//! if it sat idle there as long) and once it has served for [`SERVE_FOR`] (so the pool's
//! lifetime and idle rules still apply to it), and every kept connection goes back as soon as
//! the pool closes.
//!
//! The cost is the server pool's own (see `api::database::pool_options`): a connection that
//! PostgreSQL dropped while the lane kept it fails the one statement it is next given, then goes
//! back to the pool, which closes it.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Error, Execute, Executor, PgConnection, PgPool, Postgres, SqlStr};

/// How long a connection is kept without use before it goes back to the pool.
pub const KEEP_FOR: Duration = Duration::from_secs(1);

/// How long a connection serves through the lane before it goes back to the pool.
pub const SERVE_FOR: Duration = Duration::from_secs(60);

/// How often the lane gives back the connections it kept for too long without use.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The lane; see the module docs. Clones share the kept connections.
#[derive(Clone)]
pub struct Lane {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("kept", &self.kept())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

struct Inner {
    pool: PgPool,
    /// Newest last.
    kept: Mutex<Vec<Kept>>,
    capacity: usize,
}

struct Kept {
    conn: PoolConnection<Postgres>,
    /// When its last statement completed.
    since: Instant,
    /// When the lane took it from the pool.
    taken: Instant,
}

impl Lane {
    /// A lane over `pool` keeping up to `capacity` connections between statements. Call within
    /// a Tokio runtime: it starts the task that gives back connections kept too long.
    pub fn new(pool: PgPool, capacity: usize) -> Lane {
        let inner = Arc::new(Inner {
            pool,
            kept: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Lane { inner }
    }

    /// Runs `statement` on a connection of the lane (or a new one from the pool), and keeps the
    /// connection for the next statement if `statement` completed without error. A transaction
    /// must not outlive `statement` (sqlx's `Transaction` rolls back when dropped; a bare
    /// `BEGIN` left open would pass to the next statement).
    pub async fn run<T, E: From<Error>>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let (mut conn, taken) = match self.take_kept() {
            Some(kept) => (kept.conn, kept.taken),
            None => (self.inner.pool.acquire().await?, Instant::now()),
        };
        let done = statement(&mut conn).await;
        if done.is_ok() {
            self.keep(conn, taken);
        }
        // Otherwise `conn` is dropped here: back to the pool, which checks it.
        done
    }

    /// How many connections the lane keeps now.
    pub fn kept(&self) -> usize {
        self.inner.lock().len()
    }

    /// The newest kept connection, unless it has been kept too long (then it and the older
    /// ones go back to the pool).
    fn take_kept(&self) -> Option<Kept> {
        let mut kept = self.inner.lock();
        let newest = kept.pop()?;
        if newest.since.elapsed() < KEEP_FOR {
            return Some(newest);
        }
        let stale = std::mem::take(&mut *kept);
        drop(kept);
        drop((newest, stale));
        None
    }

    fn keep(&self, conn: PoolConnection<Postgres>, taken: Instant) {
        if self.inner.pool.is_closed() || taken.elapsed() >= SERVE_FOR {
            return;
        }
        let mut kept = self.inner.lock();
        if kept.len() < self.inner.capacity {
            kept.push(Kept {
                conn,
                since: Instant::now(),
                taken,
            });
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        // A panic while holding the lock leaves a list of whole connections behind.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives back the connections kept without use for too long; all of them once the pool is
    /// closing.
    fn sweep(&self) {
        let mut kept = self.lock();
        let stale = if self.pool.is_closed() {
            std::mem::take(&mut *kept)
        } else {
            // Oldest first: the stale ones are a prefix.
            let first_fresh = kept.partition_point(|k| k.since.elapsed() >= KEEP_FOR);
            kept.drain(..first_fresh).collect()
        };
        drop(kept);
        drop(stale);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let kept = std::mem::take(self.kept.get_mut().unwrap_or_else(|p| p.into_inner()));
        if tokio::runtime::Handle::try_current().is_err() {
            // No runtime to give them back on (sqlx spawns a task for it): close them.
            for k in kept {
                drop(k.conn.detach());
            }
        }
    }
}

async fn sweep(inner: Weak<Inner>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.sweep();
    }
}

/// Statements through the lane. Results are collected before they are yielded: the lane serves
/// bounded reads (pages, rows by id, counts), not streams.
impl<'l> Executor<'l> for &'l Lane {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        'l: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let all = self.run(async move |conn| conn.fetch_many(query).try_collect::<Vec<_>>().await);
        futures::stream::once(all)
            .map_ok(|all| futures::stream::iter(all.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<PgRow>, Error>>
    where
        'l: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(self.run(async move |conn| conn.fetch_all(query).await))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        'l: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(self.run(async move |conn| conn.fetch_optional(query).await))
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<PgQueryResult, Error>>
    where
        'l: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        Box::pin(self.run(async move |conn| conn.execute(query).await))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, Error>>
    where
        'l: 'e,
    {
        Box::pin(self.run(async move |conn| conn.prepare_with(sql, parameters).await))
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, Error>>
    where
        'l: 'e,
    {
        Box::pin(self.run(async move |conn| conn.describe(sql).await))
    }
}
