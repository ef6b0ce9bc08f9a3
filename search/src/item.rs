//! What the index holds: one [`ItemDoc`] per live item, and the [`Change`]s that update it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The status that hides an item from searches unless the filter asks for it explicitly.
pub const ARCHIVED: &str = "ARCHIVED";

/// An item as the search index knows it: everything needed to match, filter, sort and show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemDoc {
    /// The item's id: the index holds at most one document per id.
    pub id: Uuid,
    /// The workspace (tenant) the item belongs to.
    pub workspace_id: Uuid,
    /// Searchable, and highlighted whole in hits.
    pub title: String,
    /// Searchable, and highlighted as a fragment in hits.
    pub body: String,
    /// Searchable word by word, filterable and counted (facets) as exact values. Kept as a set:
    /// duplicates are dropped.
    pub tags: Vec<String>,
    /// `DRAFT`, `ACTIVE`/`PUBLISHED` or [`ARCHIVED`]; any string is accepted.
    pub status: String,
    /// The item's author, filterable.
    pub author_id: Uuid,
    /// Filterable and sortable, to the nanosecond (years 1678 to 2261).
    pub created_at: DateTime<Utc>,
    /// Filterable and sortable, to the nanosecond (years 1678 to 2261).
    pub updated_at: DateTime<Utc>,
}

/// One update of the index, applied in order by [`SearchIndex::apply`](crate::SearchIndex::apply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Adds the item, replacing any document with the same id.
    Upsert(ItemDoc),
    /// Removes the item with this id, if the index has it.
    Delete(Uuid),
}
