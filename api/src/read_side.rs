//! The asynchronous projections a node runs (SPEC §5), and what the API asks of them: the
//! search index to query, waiting for a projection to reach a position (`minPosition`), and
//! how far behind the log each one is (`/readyz`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventlog::{EventLog, Position};
use projections::activity::{self, Activity};
use projections::runner::{self, SharedCheckpoint};
use projections::search_index::{self, SearchProjection, SearchStore};
use tokio::sync::watch;

use crate::shutdown::Tasks;

/// How often a node waiting for a shared projection looks at its checkpoint when no
/// notification came (the projection announces each step it takes; this covers a lost one).
const SHARED_POLL: Duration = Duration::from_millis(500);

/// This node's asynchronous projections.
#[derive(Clone)]
pub struct ReadSide {
    log: EventLog,
    search: Arc<SearchStore>,
    search_progress: watch::Receiver<Position>,
}

impl ReadSide {
    /// Opens the search index in `search_dir` and starts the projections as tasks of `tasks`:
    /// `search` here, and `activity` when this node wins its leadership. `node` names this node
    /// in `projection_checkpoints`.
    pub fn start(
        log: &EventLog,
        search_dir: &Path,
        node: String,
        tasks: &mut Tasks,
    ) -> anyhow::Result<ReadSide> {
        let search = Arc::new(SearchStore::open(search_dir)?);
        let (search_tx, search_progress) = watch::channel(Position::START);
        let projection = SearchProjection::new(search.clone(), log.clone(), node);
        let follower = log.clone();
        tasks.spawn(|stop| runner::run_until(follower, projection, search_tx, stop));
        let (activity_tx, _) = watch::channel(Position::START);
        let activity = Activity::new(log.clone());
        let leader = log.clone();
        tasks.spawn(|stop| runner::run_until(leader, activity, activity_tx, stop));
        Ok(ReadSide {
            log: log.clone(),
            search,
            search_progress,
        })
    }

    /// The search index as it stands.
    pub fn search(&self) -> search_index::IndexHandle {
        self.search.index()
    }

    /// How far this node's search index reflects the log.
    pub fn search_position(&self) -> Position {
        *self.search_progress.borrow()
    }

    /// Waits, up to `wait`, until this node's search index reflects `position`.
    pub async fn search_reaches(&self, position: Position, wait: Duration) -> bool {
        let mut progress = self.search_progress.clone();
        let reached = progress.wait_for(|reached| *reached >= position);
        matches!(tokio::time::timeout(wait, reached).await, Ok(Ok(_)))
    }

    /// Waits, up to `wait`, until the shared `activity` tables reflect `position` (whichever
    /// node runs the projection).
    pub async fn activity_reaches(
        &self,
        position: Position,
        wait: Duration,
    ) -> Result<bool, projections::Error> {
        let checkpoint = SharedCheckpoint::new(activity::NAME);
        let deadline = tokio::time::Instant::now() + wait;
        let mut announcements = self.log.announcements();
        loop {
            announcements.borrow_and_update();
            if checkpoint.load(self.log.pool()).await? >= position {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            // The projection announces its progress; the slow poll covers a lost notification.
            let nap = (deadline - now).min(SHARED_POLL);
            tokio::select! {
                _ = announcements.changed() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// How many events each projection this node depends on is behind the log, counting no
    /// further than `cap`.
    pub async fn lags(&self, cap: u64) -> Result<Vec<(&'static str, u64)>, projections::Error> {
        let search = *self.search_progress.borrow();
        let activity = SharedCheckpoint::new(activity::NAME)
            .load(self.log.pool())
            .await?;
        Ok(vec![
            (
                search_index::NAME,
                self.log.count_after_capped(search, cap).await?,
            ),
            (
                activity::NAME,
                self.log.count_after_capped(activity, cap).await?,
            ),
        ])
    }
}
