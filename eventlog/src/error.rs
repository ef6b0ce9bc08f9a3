//! The event log's error type.

use uuid::Uuid;

use crate::ExpectedVersion;

/// What can go wrong talking to the event log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream is not at the version the caller expected (someone else wrote first).
    #[error("stream {stream_id} was changed by someone else (expected {expected})")]
    Conflict {
        stream_id: Uuid,
        expected: ExpectedVersion,
        /// The stream's version when it is known (`None`: a concurrent append won the race).
        actual: Option<u64>,
    },
    /// An event id in the batch is already stored (inside a caller's transaction, which is
    /// now aborted; [`crate::EventLog::append`] turns this into a no-op result instead).
    #[error("event {0} is already stored")]
    DuplicateEvent(Uuid),
    /// Some but not all of a batch's event ids are already stored: not a retry of one append.
    #[error("the batch mixes stored and new event ids")]
    PartialDuplicate,
    /// A stream id is already used by a stream of another type.
    #[error("stream {stream_id} is a `{actual}` stream, not `{requested}`")]
    StreamTypeMismatch {
        stream_id: Uuid,
        requested: String,
        actual: String,
    },
    /// An append with no events.
    #[error("nothing to append")]
    EmptyAppend,
    /// A stored event could not be decoded.
    #[error("stored event {event_id} is unreadable: {reason}")]
    Corrupt { event_id: Uuid, reason: String },
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// The constraint-violation cases the database reports for concurrent appends.
    pub(crate) fn from_insert(
        err: sqlx::Error,
        stream_id: Uuid,
        expected: ExpectedVersion,
        first_event: Uuid,
    ) -> Error {
        if let sqlx::Error::Database(db) = &err {
            match db.constraint() {
                Some("events_stream_version_key") => {
                    return Error::Conflict {
                        stream_id,
                        expected,
                        actual: None,
                    };
                }
                Some("events_event_id_key") => return Error::DuplicateEvent(first_event),
                _ => {}
            }
        }
        Error::Database(err)
    }
}
