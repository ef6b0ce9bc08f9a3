//! Live tailing across "nodes" (separate log handles with their own listeners).

use std::time::Duration;

use eventlog::{EventLog, ExpectedVersion, Position, Upcaster};
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

#[tokio::test]
async fn old_schema_versions_are_upcast_on_read() {
    fn rename_title(
        event_type: &str,
        version: i32,
        mut payload: serde_json::Value,
    ) -> (i32, serde_json::Value) {
        if event_type == "ItemCreated" && version == 1 {
            if let Some(title) = payload.as_object_mut().and_then(|p| p.remove("name")) {
                payload["title"] = title;
            }
            return (2, payload);
        }
        (version, payload)
    }
    let (db, writer) = setup().await;
    let upcaster: Upcaster = rename_title;
    let reader = EventLog::with_upcaster(db.pool().clone(), upcaster);
    let mut old = event(0);
    old.event_type = "ItemCreated".into();
    old.payload = json!({ "name": "Q3 invoice" });
    let stream = item_stream(Uuid::now_v7());
    writer
        .append(&stream, ExpectedVersion::NoStream, &[old])
        .await
        .unwrap();

    for read in [
        reader.read_stream(stream.stream_id).await.unwrap(),
        reader.read_all(Position::START, 10).await.unwrap(),
    ] {
        assert_eq!(read[0].schema_version, 2);
        assert_eq!(read[0].payload, json!({ "title": "Q3 invoice" }));
    }
    // Upcasting happens on read only: the stored event and its hash are untouched.
    assert_eq!(reader.verify(None).await.unwrap().first_broken, None);
}
