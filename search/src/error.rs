//! The crate's one error type.

/// What can go wrong opening, updating or querying the search index.
///
/// [`Error::InvalidCursor`] and [`Error::InvalidInput`] are the caller's mistakes (a GraphQL
/// `BAD_USER_INPUT`); every other variant is an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `after` cursor was not produced by a search with the same order, or is not a cursor.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A request or document that can never succeed, e.g. `first` above the page-size limit or
    /// a timestamp the index cannot represent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stored document lacks a field or holds a malformed value: the index is damaged.
    #[error("malformed document in the search index: {0}")]
    MalformedDocument(String),
    /// tantivy failed.
    #[error("search index failure")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The index directory could not be created, read or wiped.
    #[error("search index directory failure")]
    Io(#[from] std::io::Error),
}
