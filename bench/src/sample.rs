//! The event every benchmark writes: a user editing an item, with the metadata a real request
//! carries. The Rust side and the pgbench baseline store the same JSON.

use eventlog::{Actor, Metadata, NewEvent, StreamRef};
use serde_json::{Value, json};
use uuid::Uuid;

/// The tenant all benchmark streams belong to.
pub const WORKSPACE: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0001);
/// The user making every edit.
const EDITOR: Uuid = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0002);

/// The stream of one item.
pub fn item_stream(item_id: Uuid) -> StreamRef {
    StreamRef {
        stream_type: "item",
        stream_id: item_id,
        workspace_id: Some(WORKSPACE),
    }
}

/// The event that brings `item_id` to `version` (1 creates it, later ones edit it).
pub fn event(item_id: Uuid, version: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: if version == 1 {
            "ItemCreated"
        } else {
            "ItemEdited"
        }
        .into(),
        schema_version: 1,
        payload: payload(item_id, version),
        metadata: metadata(Uuid::now_v7()),
    }
}

/// The item's content after the edit that brings it to `version`.
pub fn payload(item_id: Uuid, version: u64) -> Value {
    json!({
        "item_id": item_id,
        "title": format!("Reconcile Q3 vendor invoices (revision {version})"),
        "body": "Match open invoices against the purchase orders; flag gaps over 50 EUR.",
        "tags": ["finance", "q3", "vendors", "review"],
    })
}

/// The context of one request, identified by `request`.
pub fn metadata(request: Uuid) -> Metadata {
    Metadata {
        request_id: Some(format!("req-{}", request.simple())),
        correlation_id: Some(request),
        client_ip: Some("203.0.113.42".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".into()),
        operation_name: Some("UpdateItem".into()),
        ..Metadata::for_actor(Actor::User {
            id: EDITOR,
            role: Some("editor".into()),
        })
    }
}

/// The stored sizes of one event's payload and metadata, in bytes of JSON.
pub fn sizes() -> (usize, usize) {
    let item = Uuid::now_v7();
    let payload = payload(item, 2).to_string().len();
    let metadata = serde_json::to_string(&metadata(item)).map_or(0, |json| json.len());
    (payload, metadata)
}
