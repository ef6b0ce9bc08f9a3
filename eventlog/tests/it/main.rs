//! Event log tests against a real PostgreSQL (one fresh database per test).

mod aggregates;
mod append;
mod batching;
mod gaps;
mod restart;
mod restore;
mod tail;
mod verify;

use eventlog::{EventLog, Metadata, NewEvent, StreamRef};
use pgcluster::TestDatabase;
use serde_json::json;
use uuid::Uuid;

pub async fn setup() -> (TestDatabase, EventLog) {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let log = EventLog::new(db.pool().clone());
    (db, log)
}

pub fn item_stream(id: Uuid) -> StreamRef {
    StreamRef {
        stream_type: "item",
        stream_id: id,
        workspace_id: Some(Uuid::nil()),
    }
}

/// A realistic event with a fresh id.
pub fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "ItemRetitled".into(),
        schema_version: 1,
        payload: json!({ "from": format!("title {n}"), "to": format!("title {}", n + 1) }),
        metadata: Metadata {
            request_id: Some(format!("req-{n}")),
            client_ip: Some("127.0.0.1".into()),
            ..Metadata::system("tests")
        },
    }
}
