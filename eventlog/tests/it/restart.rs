//! Acknowledged events survive PostgreSQL stopping, cleanly or abruptly.

use eventlog::{EventLog, ExpectedVersion, Position};
use pgcluster::{Cluster, Lifetime};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::{event, item_stream};

#[tokio::test]
async fn events_survive_a_restart_and_a_crash_of_postgresql() {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let mut cluster = tokio::task::spawn_blocking({
        let data = dir.path().join("data");
        move || Cluster::start(&data, Lifetime::Temporary)
    })
    .await
    .unwrap()
    .unwrap();
    let connect = |url: String| async move {
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap()
    };
    let pool = connect(cluster.url("postgres")).await;
    eventlog::MIGRATOR.run(&pool).await.unwrap();
    let log = EventLog::new(pool.clone());
    let stream = item_stream(Uuid::now_v7());
    let before = vec![event(1), event(2)];
    log.append(&stream, ExpectedVersion::NoStream, &before)
        .await
        .unwrap();
    pool.close().await;

    cluster.stop().unwrap();
    cluster.restart().unwrap();
    let pool = connect(cluster.url("postgres")).await;
    let log = EventLog::new(pool.clone());
    let ids = |events: Vec<eventlog::RecordedEvent>| {
        events.into_iter().map(|e| e.event_id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(log.read_all(Position::START, 10).await.unwrap()),
        before.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );

    // An immediate shutdown is a crash: no checkpoint, recovery from the WAL on start.
    let after = event(3);
    log.append(
        &stream,
        ExpectedVersion::Exact(2),
        std::slice::from_ref(&after),
    )
    .await
    .unwrap();
    pool.close().await;
    cluster.crash().unwrap();
    cluster.restart().unwrap();
    let pool = connect(cluster.url("postgres")).await;
    let log = EventLog::new(pool);
    let stored = ids(log.read_stream(stream.stream_id).await.unwrap());
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2], after.event_id);
    assert_eq!(log.verify(None).await.unwrap().first_broken, None);
}
