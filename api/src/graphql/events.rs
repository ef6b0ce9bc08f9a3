//! The event stream for analysts and members (SPEC §1, §8 `events`): the log in position
//! order, filtered, paged by position. Members read their own workspace's events; ANALYST
//! staff read any workspace's, with personal data (emails, names, addresses) replaced by stable
//! pseudonyms.

use async_graphql::{ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};
use eventlog::{EventFilter, Position, RecordedEvent};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use crate::error::ApiError;

/// Which events to return.
#[derive(InputObject, Default)]
pub struct EventsFilter {
    /// One workspace's events (required unless you are ANALYST staff).
    pub workspace_id: Option<ID>,
    /// Only streams of this type: `user`, `workspace` or `item`.
    pub stream_type: Option<String>,
    /// Only this stream (an aggregate's UUID).
    pub stream_id: Option<Uuid>,
    /// Only these event types.
    pub event_types: Option<Vec<String>>,
    /// After this position (exclusive): where a previous reader stopped.
    pub after_position: Option<String>,
    /// Up to this position (inclusive).
    pub up_to_position: Option<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

/// An event as stored in the log.
#[derive(SimpleObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
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
        let filter = EventFilter {
            workspace_id,
            stream_id: self.stream_id,
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

/// Replaces personal data by keyed, stable pseudonyms.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

/// Payload and metadata fields that hold personal data.
const PERSONAL: &[&str] = &["email", "display_name", "client_ip", "user_agent"];

impl Pseudonymizer {
    pub fn new(key: Vec<u8>) -> Pseudonymizer {
        Pseudonymizer { key }
    }

    /// A stable pseudonym for `value` (the same input gives the same pseudonym, across
    /// queries and nodes; emails compare case-insensitively).
    pub fn pseudonym(&self, field: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(value.trim().to_lowercase().as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        let prefix = if field == "email" { "email" } else { "anon" };
        format!("{prefix}-{}", &digest[..16])
    }

    /// The event as a reader sees it: with personal data replaced when `pseudonymise`.
    pub fn present(&self, event: RecordedEvent, pseudonymise: bool) -> Event {
        let event = Event::from(event);
        if pseudonymise {
            self.event(event)
        } else {
            event
        }
    }

    /// The event with personal data replaced.
    pub fn event(&self, mut event: Event) -> Event {
        let renamed_user = event.event_type == "UserRenamed";
        self.scrub(&mut event.payload.0, renamed_user);
        self.scrub(&mut event.metadata.0, false);
        event
    }

    fn scrub(&self, value: &mut Value, names_in_from_to: bool) {
        if let Value::Object(map) = value {
            for (key, field) in map.iter_mut() {
                let personal = PERSONAL.contains(&key.as_str())
                    || (names_in_from_to && (key == "from" || key == "to"));
                match field {
                    Value::String(text) if personal => *text = self.pseudonym(key, text),
                    other => self.scrub(other, false),
                }
            }
        } else if let Value::Array(items) = value {
            items.iter_mut().for_each(|item| self.scrub(item, false));
        }
    }
}

impl From<RecordedEvent> for Event {
    fn from(e: RecordedEvent) -> Self {
        Event {
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

/// The caller's reading rights for `workspace_id`: `Ok(false)` a member (real data),
/// `Ok(true)` ANALYST staff (pseudonymised); otherwise the workspace does not exist for them.
pub async fn access(
    pool: &sqlx::PgPool,
    user_id: Uuid,
    workspace_id: Option<Uuid>,
) -> Result<bool, ApiError> {
    use projections::queries;
    if let Some(workspace_id) = workspace_id
        && queries::member_role(pool, workspace_id, user_id)
            .await?
            .is_some()
    {
        return Ok(false);
    }
    let user = queries::user(pool, user_id).await?;
    let analyst = user.is_some_and(|u| {
        u.staff_roles
            .iter()
            .any(|r| r == domain::StaffRole::Analyst.as_str())
    });
    match (analyst, workspace_id) {
        (true, _) => Ok(true),
        (false, Some(_)) => Err(ApiError::NotFound("workspace")),
        (false, None) => Err(ApiError::BadInput(
            "give a workspace: only ANALYST staff read across workspaces".into(),
        )),
    }
}
