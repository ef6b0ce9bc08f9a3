//! Eras: keeping positions increasing when the transaction-id counter goes back.
//!
//! An event's `tx_id` is its transaction's id plus the offset of the current era (the one row
//! of `events_era`), and the read horizon is shifted by the same offset. Within a cluster the
//! offset never changes and positions follow transaction ids. A dump restored into a fresh
//! cluster (a move to new hardware or to a managed database, a logical-replication
//! switch-over) restarts the counter below the stored `tx_id`s: without a new era the whole
//! history would sit above the read horizon, invisible, and new events would sort before it.
//! [`ensure_positions_increase`] detects that and raises the offset so that every new `tx_id`
//! sorts after every stored one.

use sqlx::PgPool;

use crate::Error;

/// What [`ensure_positions_increase`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraRaised {
    /// The largest stored `tx_id`.
    pub newest_stored: i64,
    /// The next transaction id this cluster will assign.
    pub next_xid: i64,
    pub old_offset: i64,
    pub new_offset: i64,
}

/// Makes sure new events sort after every stored one: if the largest stored `tx_id` is not
/// below what the next transaction would get, starts a new era (raises the offset). Run at
/// start and at migrate, before anything reads or appends. Returns what it raised, if it had
/// to; the usual case costs one cheap query and takes no lock.
///
/// The raise happens under `LOCK TABLE events IN EXCLUSIVE MODE`, which waits for appends in
/// progress to end and keeps new ones out (readers carry on) until the new offset commits. An
/// appender that waited behind the lock takes its statement snapshot after getting its own lock
/// (READ COMMITTED), so its `tx_id` default reads the new offset.
pub async fn ensure_positions_increase(pool: &PgPool) -> Result<Option<EraRaised>, Error> {
    if !behind(pool).await? {
        return Ok(None);
    }
    let mut tx = pool.begin().await?;
    sqlx::query!("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    // A new statement, so a new snapshot: it sees every append that committed before the lock.
    let row = sqlx::query!(
        r#"SELECT (SELECT max(tx_id) FROM events) AS newest,
                  pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "oldest_running!",
                  pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS "next_xid!",
                  (SELECT tx_offset FROM events_era) AS "offset!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    let Some(newest) = row
        .newest
        .filter(|newest| *newest >= row.next_xid + row.offset)
    else {
        // Another node raised it meanwhile.
        tx.rollback().await?;
        return Ok(None);
    };
    // Any transaction still running may append later with its (old) id: the new offset puts
    // even the oldest one after every stored event.
    let new_offset = newest + 1 - row.oldest_running;
    sqlx::query!(
        "UPDATE events_era SET tx_offset = $1, raised_at = now()",
        new_offset
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let raised = EraRaised {
        newest_stored: newest,
        next_xid: row.next_xid,
        old_offset: row.offset,
        new_offset,
    };
    tracing::warn!(
        newest_stored = raised.newest_stored,
        next_xid = raised.next_xid,
        old_offset = raised.old_offset,
        new_offset = raised.new_offset,
        "NEW LOG ERA: this database's transaction ids restarted below the stored events \
         (a restore into another cluster, or a switch-over); positions now continue after \
         the stored ones"
    );
    Ok(Some(raised))
}

/// Whether the next transaction's `tx_id` would not sort after every stored event.
async fn behind(pool: &PgPool) -> Result<bool, Error> {
    let behind = sqlx::query_scalar!(
        r#"SELECT COALESCE((SELECT max(tx_id) FROM events)
                           >= pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                              + events_tx_offset(), false) AS "behind!""#
    )
    .fetch_one(pool)
    .await?;
    Ok(behind)
}
