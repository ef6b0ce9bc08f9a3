//! The server's pool (`api::database::pool_options`) hands out a connection that was checked on
//! its way back less than a second ago without checking it again: a connection the database
//! dropped in that window fails one statement at most, and one idle for longer is checked (and
//! replaced) before it is handed out.

use std::time::Duration;

use pgcluster::TestDatabase;
use sqlx::PgPool;

/// A pool of one connection, as the server makes them.
async fn server_pool(db: &TestDatabase) -> PgPool {
    api::database::pool_options()
        .max_connections(1)
        .connect_with(db.options().clone())
        .await
        .expect("connect the server's pool")
}

/// The backend serving the statement.
pub(crate) async fn backend_pid<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db)
        .await
}

/// Waits until no connection of `pool` is out: each is back in it or closed (sqlx returns a
/// connection in a task of its own, checking it on the way).
pub(crate) async fn settled(pool: &PgPool) {
    for _ in 0..300 {
        if pool.num_idle() as u32 == pool.size() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a connection never came back to the pool");
}

/// Ends backend `pid` from another connection and waits until it is gone.
async fn terminate(db: &TestDatabase, pid: i32) {
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(db.pool())
        .await
        .expect("terminate the backend");
    assert!(ended, "backend {pid} did not end");
}

/// A server pool of one connection that PostgreSQL has just dropped, back in the pool: the
/// database, the pool and the dropped backend.
async fn with_a_dropped_connection() -> (TestDatabase, PgPool, i32) {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let pool = server_pool(&db).await;
    let dropped = backend_pid(&pool).await.unwrap();
    settled(&pool).await;
    terminate(&db, dropped).await;
    (db, pool, dropped)
}

#[tokio::test]
async fn a_connection_the_database_dropped_fails_one_statement_at_most() {
    let (_db, pool, dropped) = with_a_dropped_connection().await;

    // Within the second, the dead connection may be handed out: its statement fails...
    let first = backend_pid(&pool).await;
    assert_ne!(first.as_ref().ok(), Some(&dropped));
    settled(&pool).await;
    // ...and it is closed, so the next statement runs on a new connection.
    let second = backend_pid(&pool).await.expect("a new connection");
    assert_ne!(second, dropped);
}

#[tokio::test]
async fn a_connection_idle_for_over_a_second_is_checked_before_it_is_handed_out() {
    let (_db, pool, dropped) = with_a_dropped_connection().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let next = backend_pid(&pool).await.expect("a checked connection");
    assert_ne!(next, dropped);
}
