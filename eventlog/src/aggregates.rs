//! Domain aggregates on streams: loading an aggregate's state by folding its stream, and
//! turning the events its `decide` returned into events to append.

use chrono::{DateTime, Utc};
use domain::{Aggregate, DomainEvent};
use uuid::Uuid;

use crate::{
    Error, EventLog, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, ScannedEvent,
};

/// An aggregate's state as of the end of its stream (or of the point asked for).
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream's version (0 when the stream does not exist).
    pub version: u64,
    /// When the last event folded in was recorded.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A point in the log's history to read an aggregate at (time travel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Just after the event at (or the last one before) this position.
    Position(Position),
    /// As things stood at this instant: every event recorded then or earlier.
    Time(DateTime<Utc>),
}

impl AsOf {
    fn includes(self, event: &RecordedEvent) -> bool {
        match self {
            AsOf::Position(position) => event.position <= position,
            AsOf::Time(time) => event.recorded_at <= time,
        }
    }
}

impl<A> Loaded<A> {
    /// The expected version for appending what was decided on this state.
    pub fn expected_version(&self) -> ExpectedVersion {
        match self.version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        }
    }
}

impl EventLog {
    /// Folds the stream `stream_id` into an `A`. A stream of another type reads as absent, so
    /// an id of the wrong kind finds nothing.
    pub async fn load<A: Aggregate>(&self, stream_id: Uuid) -> Result<Loaded<A>, Error> {
        let events = self.read_stream(stream_id).await?;
        fold(&events, None)
    }

    /// Folds the stream as it was at `as_of` (time travel).
    pub async fn load_as_of<A: Aggregate>(
        &self,
        stream_id: Uuid,
        as_of: AsOf,
    ) -> Result<Loaded<A>, Error> {
        let events = self.read_stream(stream_id).await?;
        fold(&events, Some(as_of))
    }
}

/// Folds recorded events of one stream (as of `as_of`, if given) into an aggregate.
pub fn fold<A: Aggregate>(
    events: &[RecordedEvent],
    as_of: Option<AsOf>,
) -> Result<Loaded<A>, Error> {
    let absent = || Loaded {
        state: A::default(),
        version: 0,
        updated_at: None,
    };
    let mut loaded = absent();
    for recorded in events {
        if recorded.stream_type != A::STREAM_TYPE {
            return Ok(absent());
        }
        if as_of.is_some_and(|as_of| !as_of.includes(recorded)) {
            break;
        }
        let event = decode::<A::Event>(recorded)?;
        loaded.state = loaded.state.evolve(&event);
        loaded.version = recorded.stream_version;
        loaded.updated_at = Some(recorded.recorded_at);
    }
    Ok(loaded)
}

/// Reads a recorded event as a domain event.
pub fn decode<E: DomainEvent>(recorded: &RecordedEvent) -> Result<E, Error> {
    let decoded = E::from_stored(
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    );
    decoded.map_err(|err| corrupt_recorded(recorded, err))
}

/// [`decode`], consuming the recorded event: its payload is read in place, not copied (what
/// a reader of millions of events, such as a rebuild, saves).
pub fn decode_owned<E: DomainEvent>(mut recorded: RecordedEvent) -> Result<E, Error> {
    let payload = std::mem::take(&mut recorded.payload);
    let decoded = E::from_stored(&recorded.event_type, recorded.schema_version, payload);
    decoded.map_err(|err| corrupt_recorded(&recorded, err))
}

impl ScannedEvent {
    /// The event as a domain event, decoded straight from its stored text (upcast if it is of
    /// an older schema version).
    pub fn decode<E: DomainEvent>(&self) -> Result<E, Error> {
        let decoded = E::from_stored_json(&self.event_type, self.schema_version, &self.payload);
        decoded.map_err(|err| corrupt(self.event_id, &self.event_type, self.schema_version, err))
    }
}

/// The error for a stored event that does not decode.
fn corrupt(event_id: Uuid, event_type: &str, schema_version: i32, err: serde_json::Error) -> Error {
    Error::Corrupt {
        event_id,
        reason: format!("{event_type} v{schema_version}: {err}"),
    }
}

/// [`corrupt`] for a recorded event.
fn corrupt_recorded(recorded: &RecordedEvent, err: serde_json::Error) -> Error {
    corrupt(
        recorded.event_id,
        &recorded.event_type,
        recorded.schema_version,
        err,
    )
}

/// The decided events as events to append, each with a fresh id and the same metadata.
pub fn to_new_events<E: DomainEvent>(events: &[E], metadata: &Metadata) -> Vec<NewEvent> {
    events
        .iter()
        .map(|event| {
            let (event_type, payload) = event.to_parts();
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.to_string(),
                schema_version: E::schema_version(event_type),
                payload,
                metadata: metadata.clone(),
            }
        })
        .collect()
}
