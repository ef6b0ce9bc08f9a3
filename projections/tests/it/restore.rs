//! Projections across a move of the database (SPEC §4): a dump restored into a fresh cluster
//! restarts the transaction-id counter below every stored position and checkpoint.

use eventlog::EventLog;
use pgcluster::{Cluster, TestDatabase};
use uuid::Uuid;

use crate::{Node, SERIAL, assert_activity_matches_the_log, create_item, searchable};

async fn cluster() -> Cluster {
    tokio::task::spawn_blocking(|| Cluster::temporary(&[]))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn projections_resume_from_their_checkpoints_after_a_restore_into_a_fresh_cluster() {
    let _turn = SERIAL.lock().await;
    let (old_cluster, new_cluster) = (cluster().await, cluster().await);
    let old = TestDatabase::create_in(&old_cluster, Some(&eventlog::MIGRATOR)).await;
    // This cluster has lived longer than the one it moves to.
    sqlx::raw_sql(
        "DO $$ BEGIN FOR i IN 1..3000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$",
    )
    .execute(old.pool())
    .await
    .unwrap();
    let log = EventLog::new(old.pool().clone());
    let dir = tempfile::tempdir().unwrap();
    let workspace = Uuid::now_v7();
    let mut node = Node::start(&log, dir.path());
    for n in 0..20 {
        create_item(&log, workspace, n).await;
    }
    node.catch_up(&log).await;
    node.kill();

    let new = old.dump_and_restore(&old_cluster, &new_cluster).await;
    eventlog::ensure_positions_increase(new.pool())
        .await
        .unwrap()
        .expect("a new era");
    let log = EventLog::new(new.pool().clone());
    for n in 20..30 {
        create_item(&log, workspace, n).await;
    }
    // The node comes back with its search index (checkpoint from before the move) and the
    // restored activity checkpoint: both must apply the new events, and only those.
    let mut node = Node::start(&log, dir.path());
    node.catch_up(&log).await;
    assert_activity_matches_the_log(&log).await;
    assert_eq!(searchable(&node.store, workspace), 30);
    node.kill();
}
