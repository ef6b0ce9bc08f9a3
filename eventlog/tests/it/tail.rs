//! Live tailing across "nodes" (separate log handles with their own listeners).

use std::time::Duration;

use eventlog::{EventFilter, EventLog, ExpectedVersion, Position};
use serde_json::json;
use tokio::sync::{mpsc, watch};
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

    let tail = node_a.tail(Position::START).with_poll_interval(NO_POLLING);
    let mut parked = tail.parked();
    let mut events = follow(tail);
    assert_eq!(
        received(&mut events).await.event_id,
        history.event_id,
        "history first"
    );
    // Node A hears appends, and its tail waits for one: only a notification can wake it now.
    wait_until_listening(&node_a).await;
    wait_until_parked(&node_a, &mut parked).await;

    let live = event(1);
    node_b
        .append(
            &item_stream(Uuid::now_v7()),
            ExpectedVersion::NoStream,
            std::slice::from_ref(&live),
        )
        .await
        .unwrap();
    assert_eq!(received(&mut events).await.event_id, live.event_id);
}

/// The tail's node loses its notification connection (killed by the server) while the tail
/// waits; the node reconnects, and the tail, which polls only every two minutes, is woken by
/// the notifications of appends on another node from then on.
#[tokio::test]
async fn a_tail_survives_its_listener_connection_being_killed() {
    let db = pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await;
    // Node A's connections are named, so that its listener (and no other) can be found.
    let node_a_pool = sqlx::postgres::PgPoolOptions::new()
        .connect_with(
            (*db.pool().connect_options())
                .clone()
                .application_name(NODE_A),
        )
        .await
        .unwrap();
    let node_a = EventLog::new(node_a_pool);
    let node_b = EventLog::new(db.pool().clone());
    let tail = node_a.tail(Position::START).with_poll_interval(NO_POLLING);
    let mut parked = tail.parked();
    let mut events = follow(tail);
    wait_until_listening(&node_a).await;
    let listener = node_a_listener(&db).await.expect("node A listens");
    wait_until_parked(&node_a, &mut parked).await;

    let before = *node_a.announcements().borrow();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(listener)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(killed, "node A's listener connection was killed");
    // It notices (one wake-up), reconnects (another) and listens on a new connection.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let reconnected = node_a_listener(&db)
            .await
            .is_some_and(|pid| pid != listener);
        if reconnected
            && *node_a.listening().borrow()
            && *node_a.announcements().borrow() >= before + 2
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node A never listened again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for n in 0..3 {
        // Every wake-up so far has been read: the tail sleeps until a notification.
        wait_until_parked(&node_a, &mut parked).await;
        let e = event(n);
        node_b
            .append(
                &item_stream(Uuid::now_v7()),
                ExpectedVersion::NoStream,
                std::slice::from_ref(&e),
            )
            .await
            .unwrap();
        assert_eq!(
            received(&mut events).await.event_id,
            e.event_id,
            "round {n}"
        );
    }
}

/// The application name of node A's connections.
const NODE_A: &str = "chronicle test node A";

/// The process id of node A's notification connection, if it has one that is listening.
async fn node_a_listener(db: &pgcluster::TestDatabase) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1
           AND state = 'idle' AND query ILIKE 'LISTEN%'",
    )
    .bind(NODE_A)
    .fetch_optional(db.pool())
    .await
    .unwrap()
}

/// Runs `tail` in a task of its own, passing on what it returns.
fn follow(mut tail: eventlog::Tail) -> mpsc::UnboundedReceiver<eventlog::RecordedEvent> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = tail.next().await {
            if sender.send(event).is_err() {
                return;
            }
        }
    });
    receiver
}

/// The next event the tail returns, within [`PATIENCE`].
async fn received(
    events: &mut mpsc::UnboundedReceiver<eventlog::RecordedEvent>,
) -> eventlog::RecordedEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("the tail was woken")
        .expect("the tail runs")
}

async fn wait_until_listening(log: &EventLog) {
    tokio::time::timeout(PATIENCE, log.listening().wait_for(|up| *up))
        .await
        .expect("the node listens")
        .unwrap();
}

/// Waits until the tail sleeps having read after every announcement `log` has had.
async fn wait_until_parked(log: &EventLog, parked: &mut watch::Receiver<Option<u64>>) {
    let announced = *log.announcements().borrow();
    tokio::time::timeout(
        PATIENCE,
        parked.wait_for(|seen| seen.is_some_and(|seen| seen >= announced)),
    )
    .await
    .expect("the tail waits")
    .unwrap();
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
