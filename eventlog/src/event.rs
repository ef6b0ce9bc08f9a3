//! What goes into the log and what comes out of it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Position, StreamHead};

/// The stream an append targets: the aggregate's type and id, and its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRef {
    pub stream_type: &'static str,
    pub stream_id: Uuid,
    /// The workspace the stream belongs to; `None` only for user-level streams.
    pub workspace_id: Option<Uuid>,
}

/// The version a stream must be at for an append to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (its number of events).
    Exact(u64),
    /// Append whatever the version is.
    Any,
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` (0 = no stream) satisfies this expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
            ExpectedVersion::Any => true,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
            ExpectedVersion::Any => f.write_str("any version"),
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user, with the role they acted in (workspace or staff role), if any.
    User { id: Uuid, role: Option<String> },
    /// The system itself: a job, a projection, an operator's CLI command.
    System { name: String },
}

/// Context stored with every event (SPEC §3): who, why, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_reason: Option<String>,
    /// The id the server gave the request (never the client's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The `X-Request-Id` the client sent, length-capped: kept for correlating with the
    /// client's logs, not trusted as the request's id. Absent in events recorded before it
    /// existed, and when the client sent none (so their stored metadata, and hashes, are
    /// unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Shared by every event that one user action led to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or job that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The GraphQL operation name of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
}

impl Metadata {
    /// Metadata for an action taken by the system itself (`name` says which part).
    pub fn system(name: impl Into<String>) -> Metadata {
        Metadata::for_actor(Actor::System { name: name.into() })
    }

    /// Metadata with only the actor set.
    pub fn for_actor(actor: Actor) -> Metadata {
        Metadata {
            actor,
            staff_reason: None,
            request_id: None,
            client_request_id: None,
            correlation_id: None,
            causation_id: None,
            client_ip: None,
            user_agent: None,
            operation_name: None,
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Appending an event whose id is already stored is a no-op.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub metadata: Metadata,
}

/// An event as stored in the log (with its payload upcast to the current schema version).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: Position,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub workspace_id: Option<Uuid>,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub metadata: Metadata,
    pub recorded_at: DateTime<Utc>,
}

/// An event as [`crate::EventLog::scan`] reads it for a bulk replay (a rebuild): where it is,
/// whose it is and what type, with its payload still in its stored JSON text and without its
/// metadata. [`ScannedEvent::decode`] decodes the payload, upcast, for the
/// events the reader wants, straight from the text.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedEvent {
    pub position: Position,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// The payload as stored: not upcast, and not yet parsed.
    pub payload: String,
    pub recorded_at: DateTime<Utc>,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Positions of the batch's events, in order.
    pub positions: Vec<Position>,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// When the events were recorded (all events of one append share it).
    pub recorded_at: DateTime<Utc>,
    /// True when every event was already stored: nothing was written.
    pub already_stored: bool,
    /// The stream's head after the append (`None` when nothing was written): once the
    /// transaction commits, hand it to [`crate::EventLog::committed`].
    pub head: Option<StreamHead>,
}

impl Appended {
    /// The position of the batch's last event: the consistency token a mutation returns.
    pub fn position(&self) -> Position {
        self.positions.last().copied().unwrap_or(Position::START)
    }
}
