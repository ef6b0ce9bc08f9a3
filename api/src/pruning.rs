//! Forgetting what is no longer needed, on a schedule (SPEC §9): refresh tokens and sessions
//! long over, throttle counters past their window, idempotency keys past their retention, the
//! files of exports past their 24 hours.
//! Every deletion runs in short statements of a bounded number of rows ([`in_batches`]), so
//! pruning never holds a long transaction (which would pin the event log's read horizon and
//! hold every reader back) nor many locks at once.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Pruned};
use crate::config::Pruning;

/// Runs [`prune`] every `pruning.interval` until `stop` is cancelled (every node does; a pass
/// that finds nothing costs a few index look-ups). A pass under way is finished first.
pub(crate) async fn prune_periodically(
    auth: Auth,
    pool: PgPool,
    pruning: Pruning,
    stop: CancellationToken,
) {
    let start = tokio::time::Instant::now() + pruning.interval;
    let mut ticks = tokio::time::interval_at(start, pruning.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        match prune(&auth, &pool, &pruning).await {
            Ok(pruned) => tracing::debug!(?pruned, "pruned"),
            Err(err) => tracing::warn!(error = ?err, "pruning failed; trying again next time"),
        }
    }
}

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    pub auth: Pruned,
    pub idempotency_keys: u64,
    /// Chunks of export files.
    pub export_chunks: u64,
}

/// One pruning pass: refresh tokens and sessions past `pruning.session_retention`, throttle
/// rows past their window, idempotency keys past `pruning.idempotency_retention`, the files of
/// expired exports and the leftovers of export runs that did not complete, each deleted
/// in short statements of at most `pruning.batch` rows.
pub async fn prune(auth: &Auth, pool: &PgPool, pruning: &Pruning) -> anyhow::Result<PruneReport> {
    let auth = auth
        .prune(pruning.session_retention, pruning.batch)
        .await
        .map_err(anyhow::Error::new)?;
    let idempotency_keys =
        crate::writes::prune(pool, pruning.idempotency_retention, pruning.batch).await?;
    let limit = i64::from(pruning.batch.max(1));
    let now = chrono::Utc::now();
    let export_chunks = in_batches(limit, || jobs::export::prune_chunks(pool, now, limit)).await?;
    Ok(PruneReport {
        auth,
        idempotency_keys,
        export_chunks,
    })
}

/// Runs `delete` — one statement deleting at most `limit` rows and returning how many it
/// deleted — until a statement deletes fewer than `limit`. Returns the total.
pub(crate) async fn in_batches<E, Delete, Deleted>(limit: i64, mut delete: Delete) -> Result<u64, E>
where
    Delete: FnMut() -> Deleted,
    Deleted: Future<Output = Result<u64, E>>,
{
    let mut total = 0;
    loop {
        let deleted = delete().await?;
        total += deleted;
        if (deleted as i64) < limit {
            return Ok(total);
        }
    }
}
