//! Domain aggregates on streams: loading an aggregate's state by folding its stream, and
//! turning the events its `decide` returned into events to append.

use domain::{Aggregate, DomainEvent};
use uuid::Uuid;

use crate::{Error, EventLog, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent};

/// An aggregate's state as of the end of its stream.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream's version (0 when the stream does not exist).
    pub version: u64,
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

    /// Folds the stream up to and including position `at` (time travel).
    pub async fn load_at<A: Aggregate>(
        &self,
        stream_id: Uuid,
        at: Position,
    ) -> Result<Loaded<A>, Error> {
        let events = self.read_stream(stream_id).await?;
        fold(&events, Some(at))
    }
}

/// Folds recorded events of one stream (up to `until`, if given) into an aggregate.
pub fn fold<A: Aggregate>(
    events: &[RecordedEvent],
    until: Option<Position>,
) -> Result<Loaded<A>, Error> {
    let mut loaded = Loaded {
        state: A::default(),
        version: 0,
    };
    for recorded in events {
        if recorded.stream_type != A::STREAM_TYPE {
            return Ok(Loaded {
                state: A::default(),
                version: 0,
            });
        }
        if until.is_some_and(|until| recorded.position > until) {
            break;
        }
        let event = decode::<A::Event>(recorded)?;
        loaded.state = loaded.state.evolve(&event);
        loaded.version = recorded.stream_version;
    }
    Ok(loaded)
}

/// Reads a recorded event as a domain event.
pub fn decode<E: DomainEvent>(recorded: &RecordedEvent) -> Result<E, Error> {
    E::from_stored(
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    )
    .map_err(|err| Error::Corrupt {
        event_id: recorded.event_id,
        reason: format!(
            "{} v{}: {err}",
            recorded.event_type, recorded.schema_version
        ),
    })
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
