//! Which sessions this node knows to be going, so that checking an access token's session does
//! not cost a database round trip per request (the response cache's hits would otherwise all
//! wait on one).
//!
//! Ending a session (log-out, a reused refresh token) tells every node in the same transaction
//! ([`ended`], a notice on the log's notification connection). A node remembers a session as
//! going only while its notification connection is up; every notice of an ended session, every
//! change of the connection (a notice may have been lost while it was down) and a lagging
//! receiver forget everything remembered (a new generation), and what a check started before
//! that read is not remembered. A session is therefore trusted from memory only when no end of
//! any session could have been missed since it was read from the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventlog::EventLog;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The notice a node sends when a session ends.
const SESSION_ENDED: &str = "session-ended";
/// Sessions remembered at most (the least recently used are forgotten first).
const CAPACITY: u64 = 100_000;
/// How long a session is remembered without being checked again.
const REMEMBERED_FOR: Duration = Duration::from_secs(15 * 60);

/// Sessions this node knows to be going, by (session, user).
#[derive(Clone)]
pub(super) struct KnownSessions {
    inner: Arc<Inner>,
}

struct Inner {
    going: moka::future::Cache<(Uuid, Uuid), u64>,
    /// Moves on whenever something may have ended a remembered session.
    generation: AtomicU64,
    listening: watch::Receiver<bool>,
}

impl KnownSessions {
    /// Follows `log`'s notices (from now on).
    pub(super) fn follow(log: &EventLog) -> KnownSessions {
        let known = KnownSessions {
            inner: Arc::new(Inner {
                going: moka::future::Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(REMEMBERED_FOR)
                    .build(),
                generation: AtomicU64::new(0),
                listening: log.listening(),
            }),
        };
        tokio::spawn(forget_on_notice(
            Arc::downgrade(&known.inner),
            log.notices(),
            log.listening(),
        ));
        known
    }

    /// Where things stand now: pass it to [`KnownSessions::remember`] after reading a session
    /// from the database.
    pub(super) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Whether the session is known to be going.
    pub(super) async fn is_going(&self, session_id: Uuid, user_id: Uuid) -> bool {
        *self.inner.listening.borrow()
            && self.inner.going.get(&(session_id, user_id)).await == Some(self.generation())
    }

    /// Forgets every session remembered (a new generation).
    pub(super) fn forget_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Remembers that the session was going when it was read at `generation`, unless something
    /// may have ended it since.
    pub(super) async fn remember(&self, session_id: Uuid, user_id: Uuid, generation: u64) {
        if *self.inner.listening.borrow() && self.generation() == generation {
            self.inner
                .going
                .insert((session_id, user_id), generation)
                .await;
        }
    }
}

/// Tells every node, when the transaction of `conn` commits, that a session ended.
pub(super) async fn ended(conn: &mut sqlx::PgConnection) -> Result<(), eventlog::Error> {
    EventLog::notify_nodes(conn, SESSION_ENDED).await
}

/// Moves the generation on at every ended session, every change of the notification
/// connection and every lost notice, until the sessions are dropped.
async fn forget_on_notice(
    inner: std::sync::Weak<Inner>,
    mut notices: broadcast::Receiver<String>,
    mut listening: watch::Receiver<bool>,
) {
    loop {
        let forget = tokio::select! {
            notice = notices.recv() => match notice {
                Ok(notice) => notice == SESSION_ENDED,
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = listening.changed() => {
                if changed.is_err() {
                    return;
                }
                true
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        if forget {
            inner.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}
