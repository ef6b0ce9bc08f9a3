//! Live tailing across "nodes" (separate log handles with their own listeners).

use std::time::Duration;

use eventlog::{EventFilter, EventLog, ExpectedVersion, Position};
use serde_json::json;
use uuid::Uuid;

use crate::{event, item_stream, setup};

/// Long enough that a test only passes if a notification, not polling, woke the tail.
const NO_POLLING: Duration = Duration::from_secs(120);
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_tail_catches_up_then_follows_appends_from_another_node() {
    let (db, node_a) = setup().await;
    let node_b = EventLog::new(db.pool().clone());
    let history = event(0);
    node_b
        .append(
            &item_stream(Uuid::now_v7()),
            ExpectedVersion::NoStream,
            std::slice::from_ref(&history),
        )
        .await
        .unwrap();

    let mut tail = node_a.tail(Position::START).with_poll_interval(NO_POLLING);
    assert_eq!(tail.next().await.unwrap().event_id, history.event_id);
    // Let node A's listener subscribe before the live append.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let live = event(1);
    let waiting = tokio::spawn(async move { tokio::time::timeout(PATIENCE, tail.next()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    node_b
        .append(
            &item_stream(Uuid::now_v7()),
            ExpectedVersion::NoStream,
            std::slice::from_ref(&live),
        )
        .await
        .unwrap();
    let got = waiting
        .await
        .unwrap()
        .expect("woken by the notification")
        .unwrap();
    assert_eq!(got.event_id, live.event_id);
}

#[tokio::test]
async fn a_tail_survives_its_listener_connection_being_killed() {
    let (db, node_a) = setup().await;
    let node_b = EventLog::new(db.pool().clone());
    let mut tail = node_a.tail(Position::START).with_poll_interval(NO_POLLING);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert!(
        !killed.is_empty(),
        "the listeners' connections were found and killed"
    );

    for n in 0..3 {
        let e = event(n);
        node_b
            .append(
                &item_stream(Uuid::now_v7()),
                ExpectedVersion::NoStream,
                std::slice::from_ref(&e),
            )
            .await
            .unwrap();
        let got = tokio::time::timeout(PATIENCE, tail.next())
            .await
            .expect("tail woke after reconnect")
            .unwrap();
        assert_eq!(got.event_id, e.event_id);
    }
}

/// Every reader upcasts through `domain::upcast`, whoever built the log handle: a
/// `UserSignedUp` stored at schema version 1 (no `referred_by`) reads as version 2.
#[tokio::test]
async fn old_schema_versions_are_upcast_on_read_by_every_reader() {
    let (_db, log) = setup().await;
    let mut old = event(0);
    old.event_type = "UserSignedUp".into();
    old.schema_version = 1;
    old.payload = json!({ "user_id": Uuid::nil(), "email": "ada@example.com",
                          "display_name": "Ada", "referral_code": "ADA123" });
    let stream = item_stream(Uuid::now_v7());
    log.append(&stream, ExpectedVersion::NoStream, &[old])
        .await
        .unwrap();

    let filter = EventFilter {
        workspace_id: stream.workspace_id,
        ..Default::default()
    };
    for read in [
        log.read_stream(stream.stream_id).await.unwrap(),
        log.read_all(Position::START, 10).await.unwrap(),
        log.read_filtered(&filter, None, false, 10).await.unwrap(),
        log.read_filtered(&filter, None, true, 10).await.unwrap(),
        vec![log.tail(Position::START).next().await.unwrap()],
    ] {
        assert_eq!(read[0].schema_version, 2);
        assert_eq!(read[0].payload["referred_by"], serde_json::Value::Null);
        assert_eq!(read[0].payload["display_name"], "Ada");
    }
    // Upcasting happens on read only: the stored event and its hash are untouched.
    assert_eq!(log.verify(None).await.unwrap().first_broken, None);
}
