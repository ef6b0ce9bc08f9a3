//! What this node knows of the log's newest positions, per scope: the node-local projection the
//! response cache checks its entries against (SPEC §6).
//!
//! A [`Freshness`] follows the log with a [`Tail`] (gap-safe: an event is seen only once every
//! position before it is settled) from where the log stood when the node started, and keeps, for
//! every workspace and every user, the position of the newest event that touched it. A
//! workspace is touched by its own events, which include every membership and role change; a
//! user by their own stream (renames, staff roles) and by any change of their memberships. A
//! scope not touched since the start has the start position.
//!
//! It vouches for what it knows only while its notification connection is up and it has read
//! everything that the last notification (or local append) announced, with nothing held back
//! behind the read horizon: otherwise another node may have written (and acknowledged)
//! something it has not seen, and a cached answer could be stale. An event held back by an
//! older open transaction (a projection's, another writer's) is announced when it commits, but
//! the commit of the transaction that holds it back may announce nothing, so the follower
//! looks again soon instead of vouching.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use domain::WorkspaceEvent;
use eventlog::aggregates::decode;
use eventlog::{EventLog, Position, RecordedEvent, Tail};
use tokio::sync::watch;
use uuid::Uuid;

/// How long the follower waits for a notification before looking anyway. It vouches for
/// nothing without the notification connection, so this only bounds how fast it catches up
/// after a lost notification.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long it waits before reading again after the log could not be read.
const RETRY: Duration = Duration::from_millis(200);
/// How soon it looks again while an open transaction holds events back (doubling up to
/// [`POLL_INTERVAL`]).
const HELD_BACK_RETRY: Duration = Duration::from_millis(5);

/// Something an answer can depend on, whose changes all go through the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A workspace: its settings, members and roles, invites, items and history.
    Workspace(Uuid),
    /// A user: their profile, staff roles and which workspaces they belong to.
    User(Uuid),
}

/// This node's knowledge of the newest position of every scope.
#[derive(Clone)]
pub struct Freshness {
    inner: Arc<Inner>,
}

struct Inner {
    /// The position the follower started from: every scope's position until it is touched.
    start: Position,
    newest: RwLock<HashMap<Scope, Position>>,
    /// How far the follower has read.
    applied: watch::Sender<Position>,
    /// The announcement count the follower had seen when it last read everything readable.
    drained: AtomicU64,
    /// Set for good when an event could not be understood: the follower cannot tell what it
    /// touched, so it never vouches again (a bug to fix, logged as an error).
    blind: std::sync::atomic::AtomicBool,
    announcements: watch::Receiver<u64>,
    listening: watch::Receiver<bool>,
}

impl Freshness {
    /// Starts following `log` from its current head.
    pub async fn start(log: &EventLog) -> Result<Freshness, eventlog::Error> {
        let start = log.head().await?;
        let (applied, _) = watch::channel(start);
        let announcements = log.announcements();
        let freshness = Freshness {
            inner: Arc::new(Inner {
                start,
                newest: RwLock::new(HashMap::new()),
                applied,
                // Never equal to an announcement count before the first read.
                drained: AtomicU64::new(u64::MAX),
                blind: std::sync::atomic::AtomicBool::new(false),
                announcements,
                listening: log.listening(),
            }),
        };
        tokio::spawn(freshness.clone().follow(log.clone(), log.tail(start)));
        Ok(freshness)
    }

    /// Whether this node knows of every event appended so far, as far as it can tell: its
    /// notification connection is up and it has read everything announced.
    pub fn vouches(&self) -> bool {
        let inner = &self.inner;
        *inner.listening.borrow()
            && !inner.blind.load(Ordering::Acquire)
            && inner.drained.load(Ordering::Acquire) == *inner.announcements.borrow()
    }

    /// The position of the newest event this node has seen touch `scope`.
    pub fn newest(&self, scope: Scope) -> Position {
        self.read_newest()
            .get(&scope)
            .copied()
            .unwrap_or(self.inner.start)
    }

    /// Whether every scope in `seen` still has the position recorded with it.
    pub fn unchanged(&self, seen: &[(Scope, Position)]) -> bool {
        let newest = self.read_newest();
        seen.iter().all(|(scope, position)| {
            newest.get(scope).copied().unwrap_or(self.inner.start) == *position
        })
    }

    /// How far this node has read the log.
    pub fn applied(&self) -> Position {
        *self.inner.applied.borrow()
    }

    /// Waits, up to `wait`, until this node has read the log up to `position`.
    pub async fn reaches(&self, position: Position, wait: Duration) -> bool {
        let mut applied = self.inner.applied.subscribe();
        let reached = applied.wait_for(|applied| *applied >= position);
        matches!(tokio::time::timeout(wait, reached).await, Ok(Ok(_)))
    }

    fn read_newest(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Scope, Position>> {
        // A panic while holding the lock left a map that is still valid (inserts only).
        self.inner
            .newest
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn follow(self, log: EventLog, mut tail: Tail) {
        let mut announcements = self.inner.announcements.clone();
        let mut held_back_delay = HELD_BACK_RETRY;
        loop {
            // Note the count before reading, so an announcement during the read is not
            // taken as read.
            let announced = *announcements.borrow_and_update();
            let read = match self.read_all(&mut tail).await {
                Ok(()) => log.has_held_back_events(tail.position()).await,
                Err(err) => Err(err),
            };
            match read {
                Ok(false) => {
                    held_back_delay = HELD_BACK_RETRY;
                    self.inner.drained.store(announced, Ordering::Release);
                    tokio::select! {
                        _ = announcements.changed() => {}
                        _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                }
                Ok(true) => {
                    // Something announced may be behind the horizon: no vouching until it
                    // is read.
                    tokio::time::sleep(held_back_delay).await;
                    held_back_delay = (held_back_delay * 2).min(POLL_INTERVAL);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the cache's log follower cannot read the log; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
            if Arc::strong_count(&self.inner) == 1 {
                // Nobody holds this node's freshness any more.
                return;
            }
        }
    }

    /// Reads every event readable now.
    async fn read_all(&self, tail: &mut Tail) -> Result<(), eventlog::Error> {
        while let Some(event) = tail.try_next().await? {
            let Some(touched) = touched(&event) else {
                tracing::error!(position = %event.position, event_type = %event.event_type,
                    "cannot tell what an event touched: the response cache stops serving");
                self.inner.blind.store(true, Ordering::Release);
                continue;
            };
            if !touched.is_empty() {
                let mut newest = self
                    .inner
                    .newest
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                for scope in touched {
                    newest.insert(scope, event.position);
                }
            }
            self.inner.applied.send_replace(event.position);
        }
        Ok(())
    }
}

/// The scopes an event touches (`None` if it cannot be decoded).
fn touched(event: &RecordedEvent) -> Option<Vec<Scope>> {
    let mut scopes = Vec::with_capacity(2);
    if let Some(workspace_id) = event.workspace_id {
        scopes.push(Scope::Workspace(workspace_id));
    }
    if event.stream_type == <domain::User as domain::Aggregate>::STREAM_TYPE {
        scopes.push(Scope::User(event.stream_id));
    }
    if let Some(user_id) = membership_of(event)? {
        scopes.push(Scope::User(user_id));
    }
    Some(scopes)
}

/// The user whose memberships the event changes, if it does (`None` if it cannot be decoded).
fn membership_of(event: &RecordedEvent) -> Option<Option<Uuid>> {
    if !matches!(
        event.event_type.as_str(),
        "WorkspaceCreated" | "MemberAdded" | "MemberRoleChanged" | "MemberRemoved"
    ) {
        return Some(None);
    }
    let user_id = match decode::<WorkspaceEvent>(event) {
        Ok(WorkspaceEvent::WorkspaceCreated { owner, .. }) => owner,
        Ok(
            WorkspaceEvent::MemberAdded { user_id, .. }
            | WorkspaceEvent::MemberRoleChanged { user_id, .. }
            | WorkspaceEvent::MemberRemoved { user_id, .. },
        ) => user_id,
        Ok(_) => return Some(None),
        Err(err) => {
            tracing::error!(error = %err, "cannot decode a membership event");
            return None;
        }
    };
    Some(Some(user_id.as_uuid()))
}
