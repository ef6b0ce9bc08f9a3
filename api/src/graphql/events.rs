//! The event stream for analysts and workspace managers (SPEC §1, §8 `events`): the log in
//! position order, filtered, paged by position. Owners and admins read their workspace's
//! events; ANALYST staff read any workspace's, with personal data replaced by stable
//! pseudonyms (see [`crate::authz`] for who may read what).

use async_graphql::{ComplexObject, ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};
use eventlog::{EventFilter, Position, RecordedEvent};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use super::ids;
use crate::authz::Grant;
use crate::error::ApiError;

/// Which events to return.
#[derive(InputObject, Default)]
pub struct EventsFilter {
    /// One workspace's events (required unless you are ANALYST staff).
    pub workspace_id: Option<ID>,
    /// Only streams of this type: `user`, `workspace` or `item`.
    #[graphql(validator(max_length = 40))]
    pub stream_type: Option<String>,
    /// Only this stream: the global id of a user, workspace or item (a raw UUID is accepted
    /// too, as before global ids were taken here).
    #[graphql(validator(max_length = 160))]
    pub stream_id: Option<ID>,
    /// Only these event types (at most 50).
    #[graphql(validator(max_items = 50))]
    pub event_types: Option<Vec<String>>,
    /// After this position (exclusive): where a previous reader stopped.
    #[graphql(validator(max_length = 64))]
    pub after_position: Option<String>,
    /// Up to this position (inclusive).
    #[graphql(validator(max_length = 64))]
    pub up_to_position: Option<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

/// An event as stored in the log.
#[derive(SimpleObject, serde::Serialize, Clone)]
#[graphql(complex)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Global id (NDJSON lines carry `eventId` only).
    #[serde(skip)]
    #[graphql(skip)]
    pub id: ID,
    /// Its place in the log (opaque, sortable); resume after it with `afterPosition`.
    pub position: String,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub workspace_id: Option<Uuid>,
    /// Past tense: `ItemCreated`, `MemberRoleChanged`…
    pub event_type: String,
    pub schema_version: i32,
    /// What happened (pseudonymised for analysts).
    pub payload: Json<Value>,
    /// Who, from where, why (pseudonymised for analysts).
    pub metadata: Json<Value>,
    pub recorded_at: DateTime<Utc>,
}

#[ComplexObject]
impl Event {
    /// Global id: fetch the event again with `node(id:)`.
    pub(crate) async fn id(&self) -> ID {
        self.id.clone()
    }
}

impl Event {
    /// The header row of the log as CSV (`chronicle events export --format csv`,
    /// `/events.csv`).
    pub const CSV_HEADER: &'static str = "position,event_id,recorded_at,stream_type,stream_id,stream_version,workspace_id,event_type,schema_version,payload,metadata";

    /// The event as a CSV row (RFC 4180, without the line break): payload and metadata as JSON.
    pub fn csv_row(&self) -> String {
        let fields = [
            self.position.clone(),
            self.event_id.to_string(),
            self.recorded_at.to_rfc3339(),
            self.stream_type.clone(),
            self.stream_id.to_string(),
            self.stream_version.to_string(),
            self.workspace_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            self.event_type.clone(),
            self.schema_version.to_string(),
            self.payload.0.to_string(),
            self.metadata.0.to_string(),
        ];
        fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// Parses a client-given position.
pub fn position(text: &str) -> Result<Position, ApiError> {
    text.parse()
        .map_err(|err: eventlog::InvalidPosition| ApiError::BadInput(err.to_string()))
}

impl EventsFilter {
    /// The log filter, and the position to read after.
    pub fn to_log_filter(
        &self,
        workspace_id: Option<Uuid>,
    ) -> Result<(EventFilter, Option<Position>), ApiError> {
        let stream_id = self
            .stream_id
            .as_ref()
            .map(ids::decode_stream)
            .transpose()?;
        let filter = EventFilter {
            workspace_id,
            stream_id,
            event_types: self.event_types.clone(),
            from: self.from,
            to: self.to,
            stream_type: self.stream_type.clone(),
            up_to: self.up_to_position.as_deref().map(position).transpose()?,
            actor_id: None,
        };
        Ok((
            filter,
            self.after_position.as_deref().map(position).transpose()?,
        ))
    }
}

/// Replaces personal data by keyed, stable pseudonyms, for ANALYST staff.
///
/// It works by allow-list: only fields known to be free of personal data pass in clear (ids,
/// roles, plans, statuses, times, counts; in metadata the actor and the ids tying events
/// together). Every other value — emails, names, referral codes, workspace names, item titles,
/// bodies and tags, staff reasons, client addresses, user agents, and any field added later —
/// is replaced by a pseudonym, each string on its own, so a new field is safe until someone
/// decides it is not personal.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

/// Payload fields whose values pass in clear, whatever the event.
const CLEAR_PAYLOAD: &[&str] = &[
    "workspace_id",
    "item_id",
    "invite_id",
    "export_id",
    "user_id",
    "owner",
    "author",
    "requested_by",
    "referred_by",
    "referred_user",
    "workspaces",
    "week",
    "items_created",
    "items_updated",
    "items_archived",
    "members_joined",
    "recipients",
    "region",
    "plan",
    "role",
    "status",
    "format",
    "row_count",
    "trial_ends_at",
    "created_at",
    "expires_at",
    "at",
];

/// Events whose `from` and `to` are a role, plan, status or time (elsewhere they are text).
const CLEAR_FROM_TO: &[&str] = &[
    "PlanUpgraded",
    "TrialExtended",
    "MemberRoleChanged",
    "ItemArchived",
    "ItemRestored",
];

/// Metadata fields whose values pass in clear (the actor is an id, a role or a system part).
const CLEAR_METADATA: &[&str] = &[
    "actor",
    "correlation_id",
    "causation_id",
    "request_id",
    "operation_name",
];

impl Pseudonymizer {
    pub fn new(key: Vec<u8>) -> Pseudonymizer {
        Pseudonymizer { key }
    }

    /// A stable pseudonym for `value` (the same input gives the same pseudonym, across
    /// queries and nodes; compared case-insensitively, so an email matches however it was
    /// typed).
    pub fn pseudonym(&self, field: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(value.trim().to_lowercase().as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        let prefix = if field == "email" { "email" } else { "anon" };
        format!("{prefix}-{}", &digest[..16])
    }

    /// The event as a reader with `grant` sees it: pseudonymised for ANALYST staff.
    pub fn present(&self, event: RecordedEvent, grant: Grant) -> Event {
        let event = Event::from(event);
        if grant.pseudonymised() {
            self.event(event)
        } else {
            event
        }
    }

    /// The event with every value not known to be free of personal data replaced.
    pub fn event(&self, mut event: Event) -> Event {
        let clear_from_to = CLEAR_FROM_TO.contains(&event.event_type.as_str());
        if let Value::Object(payload) = &mut event.payload.0 {
            for (key, value) in payload.iter_mut() {
                let clear = CLEAR_PAYLOAD.contains(&key.as_str())
                    || (clear_from_to && (key == "from" || key == "to"));
                if !clear {
                    self.scrub(key, value);
                }
            }
        } else {
            self.scrub("payload", &mut event.payload.0);
        }
        if let Value::Object(metadata) = &mut event.metadata.0 {
            for (key, value) in metadata.iter_mut() {
                if !CLEAR_METADATA.contains(&key.as_str()) {
                    self.scrub(key, value);
                }
            }
        }
        event
    }

    /// Replaces every string, number and boolean inside `value` by a pseudonym.
    fn scrub(&self, field: &str, value: &mut Value) {
        match value {
            Value::Null => {}
            Value::String(text) => *text = self.pseudonym(field, text),
            Value::Number(_) | Value::Bool(_) => {
                *value = Value::String(self.pseudonym(field, &value.to_string()));
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub(field, item)),
            Value::Object(map) => map.iter_mut().for_each(|(key, item)| self.scrub(key, item)),
        }
    }
}

impl From<RecordedEvent> for Event {
    fn from(e: RecordedEvent) -> Self {
        Event {
            id: ids::encode(ids::Kind::Event, e.event_id),
            position: e.position.to_string(),
            event_id: e.event_id,
            stream_type: e.stream_type,
            stream_id: e.stream_id,
            stream_version: e.stream_version,
            workspace_id: e.workspace_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            payload: Json(e.payload),
            metadata: Json(serde_json::to_value(&e.metadata).unwrap_or(Value::Null)),
            recorded_at: e.recorded_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::DomainEvent;

    /// A misspelt or renamed type here would silently pseudonymise what analysts need in clear.
    #[test]
    fn clear_from_to_names_event_types_the_enums_have() {
        let known = [
            domain::ItemEvent::event_types(),
            domain::WorkspaceEvent::event_types(),
            domain::UserEvent::event_types(),
        ]
        .concat();
        for event_type in super::CLEAR_FROM_TO {
            assert!(known.contains(event_type), "{event_type}");
        }
    }
}
