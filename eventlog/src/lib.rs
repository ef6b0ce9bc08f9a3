//! The PostgreSQL event log: the single source of truth of Chronicle (SPEC §3, §4).
//!
//! Events are appended to streams (one per aggregate) with an expected version, atomically and
//! idempotently (an event id is stored at most once). Each stream is a hash chain, so editing a
//! stored event by hand is detected by [`EventLog::verify`]. The whole log is read in an order
//! that never skips an event whose transaction commits late (see [`Position`]), and readers on
//! every node are woken by `pg_notify` after each append ([`Tail`]), polling only as a fallback.
//! Every read upcasts old payload versions in one place (`domain::upcast`), so no reader can
//! see a stored payload in an old shape. Positions keep increasing across a restore into
//! another cluster (see [`ensure_positions_increase`]).
//!
//! This crate knows nothing of the business: payloads are JSON. [`aggregates`] connects the
//! domain's aggregates to streams.

pub mod aggregates;
mod append;
mod era;
mod error;
mod event;
mod hash;
mod heads;
pub mod lane;
mod position;
mod read;
mod tail;
mod verify;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, watch};

pub use era::{EraRaised, ensure_positions_increase};
pub use error::Error;
pub use event::{
    Actor, Appended, ExpectedVersion, Metadata, NewEvent, RecordedEvent, ScannedEvent, StreamRef,
};
pub use heads::StreamHead;
pub use lane::Lane;
pub use position::{InvalidPosition, Position};
pub use read::{EventFilter, ReaderStall, StallCause};
pub use tail::Tail;
pub use verify::{BrokenLink, VerifyReport};

/// Chronicle's database schema (all crates' tables), applied by `chronicle migrate` and at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The `pg_notify` channel appends are announced on.
const CHANNEL: &str = "chronicle_events";
/// The `pg_notify` channel nodes tell each other other things on: each payload reaches every
/// node's [`EventLog::notices`] (see [`EventLog::notify_nodes`]).
const NOTICES: &str = "chronicle_notices";

/// A handle to the log. Cheap to clone; clones share one listener and one notifier.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// One-statement work on the pool's connections without sqlx's check between statements.
    lane: Lane,
    /// The transaction last seen holding readers back, and since when (its age when the
    /// database does not tell it: another role's transaction).
    stall_seen: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
    /// Bumped whenever the log may have grown: a local append or a notification.
    wake: watch::Sender<u64>,
    /// Whether this node's notification connection is up (LISTENing): while it is down, an
    /// append on another node is seen only by polling.
    listening: watch::Sender<bool>,
    /// Payloads received on the notices channel.
    notices: tokio::sync::broadcast::Sender<String>,
    /// Heads of streams this node appended to (see [`heads`]).
    heads: heads::Heads,
    /// Asks the notifier task to announce an append to other nodes.
    announce: mpsc::Sender<()>,
    /// Dropped with the last handle, which stops the background tasks.
    _shutdown: watch::Sender<()>,
}

impl EventLog {
    /// A log on `pool`. Starts (on the current tokio runtime) the listener that wakes this
    /// node's readers when any node appends, and the notifier that tells the other nodes.
    ///
    /// Run [`ensure_positions_increase`] on the database once before (at start and at migrate).
    pub fn new(pool: PgPool) -> EventLog {
        let (wake, _) = watch::channel(0);
        let (listening, _) = watch::channel(false);
        let (notices, _) = tokio::sync::broadcast::channel(64);
        let (announce, announcements) = mpsc::channel(1);
        let (shutdown, shutdown_rx) = watch::channel(());
        tokio::spawn(tail::notify_other_nodes(pool.clone(), announcements));
        tokio::spawn(tail::listen(
            pool.clone(),
            tail::Listeners {
                wake: wake.clone(),
                listening: listening.clone(),
                notices: notices.clone(),
            },
            shutdown_rx,
        ));
        // Half the pool at most: the rest serves transactions, tails and jobs.
        let lane = Lane::new(
            pool.clone(),
            pool.options().get_max_connections() as usize / 2,
        );
        EventLog {
            inner: Arc::new(Inner {
                pool,
                lane,
                stall_seen: std::sync::Mutex::new(None),
                wake,
                listening,
                notices,
                heads: heads::Heads::new(),
                announce,
                _shutdown: shutdown,
            }),
        }
    }

    /// The connection pool the log uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The lane for one-statement work on the pool's connections (see [`Lane`]): appends, and
    /// the GraphQL resolvers' reads.
    pub fn lane(&self) -> &Lane {
        &self.inner.lane
    }

    /// Wakes this node's readers and announces the append to other nodes. Call after
    /// committing a transaction that used [`EventLog::append_in`].
    pub fn announce_append(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
        // A full channel means an announcement is already pending: it will cover this one.
        let _ = self.inner.announce.try_send(());
    }

    /// After a transaction that appended with [`EventLog::append_in`] committed: remembers the
    /// heads it wrote (the next append to those streams needs no read of their heads) and
    /// announces the append ([`EventLog::announce_append`]). Never call it before the commit
    /// succeeded.
    pub fn committed<'a>(&self, appended: impl IntoIterator<Item = &'a Appended>) {
        for head in appended.into_iter().filter_map(|a| a.head.as_ref()) {
            self.inner.heads.remember(head.clone());
        }
        self.announce_append();
    }

    /// Announces, on every node, that something derived from the log moved on (a shared
    /// projection's checkpoint), so that whoever waits for it looks again. It travels with
    /// append announcements: tails it wakes find nothing new and sleep again.
    pub fn announce_progress(&self) {
        self.announce_append();
    }

    /// Changes whenever an append or progress is announced, by this node or another (or the
    /// notification connection reconnected): wait on it, then look.
    pub fn announcements(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }

    /// Whether this node hears of other nodes' appends as they happen (its notification
    /// connection is up), and changes when that does. While it is `false`, this node learns of
    /// them only by polling, so what it derived from the log may be behind without knowing.
    pub fn listening(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.listening.subscribe()
    }

    /// The notices other nodes (and this one) send with [`EventLog::notify_nodes`] from now on,
    /// while the notification connection is up ([`EventLog::listening`]): one that is sent
    /// while it is down is lost, so a receiver must not rely on having heard everything then.
    /// A receiver that lags behind more than 64 notices gets a `Lagged` error instead.
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.notices.subscribe()
    }

    /// Tells every node `payload` (at most a few hundred bytes) when the transaction of `conn`
    /// commits, and not if it rolls back.
    pub async fn notify_nodes(conn: &mut sqlx::PgConnection, payload: &str) -> Result<(), Error> {
        sqlx::query!("SELECT pg_notify($1, $2)", NOTICES, payload)
            .execute(conn)
            .await?;
        Ok(())
    }
}
