//! The read side (SPEC §5): tables and indexes derived from the event log.
//!
//! [`inline`] keeps the tables frontends query (users, workspaces, members, items) up to date in
//! the same transaction as the append of the events they reflect, so a client always reads its
//! own writes; [`inline::rebuild`] replays the whole log into them and yields the same tables.
//! [`runner`] runs the asynchronous projections behind the log, each with its checkpoint:
//! [`activity`] (shared tables, one node at a time) and [`search_index`] (the node-local search
//! index).

pub mod activity;
pub mod audit;
pub mod inline;
pub mod queries;
pub mod runner;
pub mod search_index;
mod shadow;

/// What can go wrong applying events to read models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] eventlog::Error),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Another runner (or a rebuild) moved the projection's checkpoint: this one must reload.
    #[error("the checkpoint of projection {projection} was moved by another runner")]
    Fenced { projection: &'static str },
    #[error(transparent)]
    Search(#[from] search::Error),
    /// A test hook stopped the projection where a crash could.
    #[error("projection {projection} crashed (test hook)")]
    Crashed { projection: &'static str },
    #[error("search index storage: {0}")]
    Storage(#[from] std::io::Error),
}
