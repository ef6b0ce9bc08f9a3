//! The search request and its results, as callers see them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The largest page a search returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One page of a search in one workspace.
#[derive(Clone, Debug)]
pub struct SearchQuery {
    /// Only this workspace's items are ever returned.
    pub workspace_id: Uuid,
    /// Plain words, never query syntax. Every word must match the title, the body or a tag,
    /// tolerating typos; the last word also matches as a prefix. Text without any word
    /// (empty, only punctuation or emoji) matches every item that passes the filter.
    pub text: String,
    /// Restrictions on status, tags, author and dates.
    pub filter: SearchFilter,
    /// The order of the hits.
    pub order: Order,
    /// How many hits to return, at most [`MAX_PAGE_SIZE`].
    pub first: usize,
    /// Return the hits after this one: a [`Hit::cursor`] of a search with the same order.
    pub after: Option<String>,
    /// Read the other way: the `first` hits just *before* `after` (or the last `first` hits
    /// of all, without a cursor). They still come in the order's sequence, and
    /// [`SearchResults::has_more`] then tells whether hits precede them. Keys are unique, so
    /// a backward page is exactly the page a forward read would have given there.
    pub backward: bool,
    /// Whether to count the facets ([`SearchResults::status_facets`] and
    /// [`SearchResults::tag_facets`], left empty otherwise). A search that needs none is
    /// cheaper: it neither reads the matches' tag sets nor counts them.
    pub facets: bool,
}

/// Restrictions on which items match. The default restricts nothing but hides archived items.
#[derive(Clone, Debug, Default)]
pub struct SearchFilter {
    /// Statuses to return. `None` or an empty list means every status except
    /// [`ARCHIVED`](crate::ARCHIVED): archived items only come back when asked for by name.
    pub statuses: Option<Vec<String>>,
    /// Exact tags the item must all have.
    pub tags: Vec<String>,
    /// The item's author.
    pub author_id: Option<Uuid>,
    /// Created at or after this instant.
    pub created_from: Option<DateTime<Utc>>,
    /// Created strictly before this instant.
    pub created_to: Option<DateTime<Utc>>,
    /// Last updated at or after this instant.
    pub updated_from: Option<DateTime<Utc>>,
    /// Last updated strictly before this instant.
    pub updated_to: Option<DateTime<Utc>>,
}

/// The order of hits; ties are always broken by item id, ascending, so pages are stable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Best match first. Without words to match, this is [`Order::UpdatedDesc`].
    #[default]
    Relevance,
    /// Newest first.
    CreatedDesc,
    /// Oldest first.
    CreatedAsc,
    /// Most recently updated first.
    UpdatedDesc,
    /// Least recently updated first.
    UpdatedAsc,
}

impl Order {
    /// The order actually applied: relevance means nothing when there are no words.
    pub(crate) fn effective(self, has_words: bool) -> Order {
        match self {
            Order::Relevance if !has_words => Order::UpdatedDesc,
            order => order,
        }
    }

    pub(crate) fn sorts_by_creation(self) -> bool {
        matches!(self, Order::CreatedAsc | Order::CreatedDesc)
    }

    pub(crate) fn sorts_by_update(self) -> bool {
        matches!(self, Order::UpdatedAsc | Order::UpdatedDesc)
    }
}

/// A page of hits, with counts over every match.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResults {
    /// How many items match the text and the whole filter (not just this page).
    pub total: u64,
    /// This page's hits, in order.
    pub hits: Vec<Hit>,
    /// Whether more hits lie beyond the page in the direction it was read: after its last
    /// hit, or, [`SearchQuery::backward`], before its first.
    pub has_more: bool,
    /// Items per status among those matching the text and the filter *except its statuses*,
    /// so that a client can show how many archived (or draft...) items it would get by
    /// changing the status filter. Most frequent first, then by name.
    pub status_facets: Vec<(String, u64)>,
    /// Items per tag among those matching the text and the whole filter (like `total`).
    /// Every tag present is listed; most frequent first, then by name.
    pub tag_facets: Vec<(String, u64)>,
}

/// One matching item.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The item's id.
    pub id: Uuid,
    /// The relevance score when hits are ordered by relevance (with words to match), `0.0`
    /// otherwise. Only comparable within one search.
    pub score: f32,
    /// The whole title, HTML-escaped, with matched words in `<b>…</b>`.
    pub title_highlight: String,
    /// A fragment of about 150 characters of the body around the best cluster of matched words
    /// (or its start), HTML-escaped, with matched words in `<b>…</b>` and `…` where cut.
    pub body_highlight: String,
    /// Pass as [`SearchQuery::after`] to get the hits that follow this one.
    pub cursor: String,
}
