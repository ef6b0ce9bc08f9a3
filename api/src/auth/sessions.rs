//! Which sessions this node knows to be going, so that checking an access token's session does
//! not cost a database round trip per request (the response cache's hits would otherwise all
//! wait on one).
//!
//! Ending a session (log-out, a reused refresh token) tells every node in the same transaction
//! ([`ended`]); see [`crate::remembered`] for when a remembered session is trusted.

use std::time::Duration;

use eventlog::EventLog;
use uuid::Uuid;

use crate::remembered::Remembered;

/// The notice a node sends when a session ends.
const SESSION_ENDED: &str = "session-ended";
/// Sessions remembered at most (the least recently used are forgotten first).
const CAPACITY: u64 = 100_000;
/// How long a session is remembered without being checked again.
const REMEMBERED_FOR: Duration = Duration::from_secs(15 * 60);

/// Sessions this node knows to be going, by (session, user).
pub(super) type KnownSessions = Remembered<(Uuid, Uuid), ()>;

/// Follows `log`'s notices of ended sessions (from now on).
pub(super) fn follow(log: &EventLog) -> KnownSessions {
    Remembered::follow(log, SESSION_ENDED, CAPACITY, REMEMBERED_FOR)
}

/// Tells every node, when the transaction of `conn` commits, that a session ended.
pub(super) async fn ended(conn: &mut sqlx::PgConnection) -> Result<(), eventlog::Error> {
    EventLog::notify_nodes(conn, SESSION_ENDED).await
}
