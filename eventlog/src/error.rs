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
    /// The database is a hot standby (in recovery): the read horizon cannot be computed there,
    /// so the log is not read at all rather than read wrongly.
    #[error(
        "the event log is not read on a server in recovery (hot standby); read from the primary"
    )]
    HotStandby,
    /// An append to an existing stream in a transaction that had already written (or taken
    /// its transaction id): per-stream versions follow the log's order only when such an
    /// append is the transaction's first write. The transaction is aborted.
    #[error(
        "an append to an existing stream must be the first write of its transaction \
         (append first, then write the rest)"
    )]
    NotFirstWrite,
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

/// SQLSTATE raised by the read horizon functions on a hot standby.
const HOT_STANDBY: &str = "CH001";
/// SQLSTATE raised by `events_check_first_write()` in the append statement.
const NOT_FIRST_WRITE: &str = "CH002";

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Error {
        if let sqlx::Error::Database(db) = &err {
            match db.code().as_deref() {
                Some(HOT_STANDBY) => return Error::HotStandby,
                Some(NOT_FIRST_WRITE) => return Error::NotFirstWrite,
                _ => {}
            }
        }
        Error::Database(err)
    }
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
        Error::from(err)
    }
}
