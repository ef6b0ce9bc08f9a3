//! The read side (SPEC §5): tables and indexes derived from the event log.
//!
//! [`inline`] keeps the tables frontends query (users, workspaces, members, items) up to date in
//! the same transaction as the append of the events they reflect, so a client always reads its
//! own writes; [`inline::rebuild`] replays the whole log into them and yields the same tables.
//! Asynchronous projections (search index, job dispatch) will live here too.

pub mod audit;
pub mod inline;
pub mod queries;

/// What can go wrong applying events to read models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] eventlog::Error),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}
