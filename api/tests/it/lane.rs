//! The log's lane (`eventlog::Lane`; the resolvers' reads and `EventLog::append` go through it):
//! a statement that completed leaves its connection to the next one without going back to the
//! pool (so without the pool's check); a statement that failed or was dropped midway gives its
//! connection back to the pool, and the next statement gets its own answer; kept connections go
//! back to the pool after a second without use, when the pool closes, and beyond the lane's
//! capacity.

use std::time::Duration;

use api::database::Lane;
use pgcluster::TestDatabase;
use sqlx::PgPool;

use crate::pool::{backend_pid, settled};

/// A server pool of `size` connections and a lane over it keeping up to `capacity`.
async fn lane(size: u32, capacity: usize) -> (TestDatabase, PgPool, Lane) {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let pool = api::database::pool_options()
        .max_connections(size)
        .connect_with(db.options().clone())
        .await
        .expect("connect the server's pool");
    let lane = Lane::new(pool.clone(), capacity);
    (db, pool, lane)
}

#[tokio::test]
async fn a_completed_statement_leaves_its_connection_to_the_next_without_the_pool() {
    let (_db, pool, lane) = lane(1, 1).await;

    let first = backend_pid(&lane).await.unwrap();
    // Kept by the lane, not back in the pool (which would have checked it).
    assert_eq!((lane.kept(), pool.num_idle()), (1, 0));
    let second = backend_pid(&lane).await.unwrap();
    assert_eq!(first, second);
    let rows: Vec<i32> = sqlx::query_scalar("SELECT generate_series(1, 3)")
        .fetch_all(&lane)
        .await
        .unwrap();
    assert_eq!(rows, [1, 2, 3]);
    assert_eq!(lane.kept(), 1);
}

#[tokio::test]
async fn a_statement_dropped_midway_gives_its_connection_back_and_the_next_gets_its_own_answer() {
    let (_db, pool, lane) = lane(1, 1).await;
    backend_pid(&lane).await.unwrap();

    // The request's time runs out while the statement is being answered.
    let slow = sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.5)").fetch_one(&lane);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow)
            .await
            .is_err()
    );
    assert_eq!(lane.kept(), 0, "a connection left mid-answer is not kept");

    // The next statement (on the same connection, drained by the pool's check, or a new one)
    // gets its own answer, not the abandoned one's.
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&lane)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(lane.kept(), 1);
    settled(&pool).await;
}

#[tokio::test]
async fn a_failed_statement_gives_its_connection_back_to_the_pool() {
    let (_db, pool, lane) = lane(1, 1).await;

    let failed = sqlx::query_scalar::<_, i32>("SELECT 1 / 0")
        .fetch_one(&lane)
        .await;
    assert!(failed.is_err());
    assert_eq!(lane.kept(), 0);
    settled(&pool).await;
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&lane)
        .await
        .unwrap();
    assert_eq!(answer, 42);
}

#[tokio::test]
async fn a_connection_kept_a_second_without_use_goes_back_to_the_pool() {
    let (_db, pool, lane) = lane(1, 1).await;
    backend_pid(&lane).await.unwrap();
    assert_eq!(lane.kept(), 1);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lane.kept(), 0);
    settled(&pool).await;
    assert_eq!(pool.num_idle(), 1);
}

#[tokio::test]
async fn a_connection_the_database_dropped_while_kept_fails_one_statement_at_most() {
    let (db, pool, lane) = lane(1, 1).await;
    let dropped = backend_pid(&lane).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(dropped)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(ended);

    // The kept connection is handed out as it is: its statement fails...
    assert!(backend_pid(&lane).await.is_err());
    assert_eq!(lane.kept(), 0);
    settled(&pool).await;
    // ...and the next statement runs on a new connection.
    let next = backend_pid(&lane).await.expect("a new connection");
    assert_ne!(next, dropped);
}

#[tokio::test]
async fn the_lane_keeps_no_more_than_its_capacity() {
    let (_db, pool, lane) = lane(3, 1).await;

    let slow = || sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_sleep(0.2)").fetch_one(&lane);
    let (a, b, c) = tokio::join!(slow(), slow(), slow());
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 1, 1));
    assert_eq!(lane.kept(), 1);
    for _ in 0..300 {
        if pool.num_idle() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.num_idle(), 2, "the others went back to the pool");
}

#[tokio::test]
async fn closing_the_pool_takes_back_what_the_lane_kept() {
    let (_db, pool, lane) = lane(2, 2).await;
    let (a, b) = tokio::join!(backend_pid(&lane), backend_pid(&lane));
    a.unwrap();
    b.unwrap();
    assert!(lane.kept() >= 1);

    tokio::time::timeout(Duration::from_secs(5), pool.close())
        .await
        .expect("the pool closes while the lane keeps connections");
    assert_eq!(lane.kept(), 0);
    assert!(
        backend_pid(&lane).await.is_err(),
        "a closed pool serves nothing"
    );
}
