//! The heads of streams this node appended to, so that the next append to such a stream needs
//! no read of its head (one round trip instead of two).
//!
//! A head is remembered only once the append that wrote it committed, and a committed head is
//! a fact for ever: the log is append-only, so version `n` of a stream keeps its hash. An append
//! expecting exactly version `n` of a stream whose remembered head is version `n` chains to that
//! hash without asking the database; should another node have extended the stream meanwhile,
//! the unique (stream, version) key refuses the insert as a conflict, exactly as after a read.
//! Any other expectation reads the head.

use uuid::Uuid;

/// Streams remembered at most (the least recently used are forgotten first).
const CAPACITY: u64 = 100_000;

/// A stream's last committed event: what the next append chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    pub(crate) stream_id: Uuid,
    pub(crate) stream_type: String,
    pub(crate) version: u64,
    pub(crate) hash: Vec<u8>,
}

impl StreamHead {
    /// The type of the stream.
    pub fn stream_type(&self) -> &str {
        &self.stream_type
    }
}

/// The remembered heads (see the module docs).
pub(crate) struct Heads(moka::sync::Cache<Uuid, StreamHead>);

impl Heads {
    pub(crate) fn new() -> Heads {
        Heads(moka::sync::Cache::new(CAPACITY))
    }

    /// The head of `stream_id` if it is remembered at exactly `version` and of `stream_type`.
    pub(crate) fn at(
        &self,
        stream_id: Uuid,
        stream_type: &str,
        version: u64,
    ) -> Option<StreamHead> {
        self.0
            .get(&stream_id)
            .filter(|head| head.version == version && head.stream_type == stream_type)
    }

    /// Remembers `head`, which a committed transaction wrote.
    pub(crate) fn remember(&self, head: StreamHead) {
        self.0.insert(head.stream_id, head);
    }
}
