//! Full-text search over items (SPEC §5): a [tantivy] index in a local directory, fed by a
//! projection of the event log and queried by the GraphQL `search` resolver. This crate knows
//! nothing of the database or the log: it stores [`ItemDoc`]s, applies [`Change`]s with an
//! opaque checkpoint, and answers [`SearchQuery`]s.
//!
//! # Storage and checkpoints
//!
//! [`SearchIndex::apply`] stages the changes (an upsert deletes the id's term, then adds the
//! document) and commits them with the checkpoint as tantivy's *commit payload*, which is
//! written in the same `meta.json` that publishes the new segments: a crash leaves either
//! both or neither. After the commit the reader is reloaded, so a search that starts after
//! `apply` returns (or after [`SearchIndex::checkpoint`] shows the new checkpoint) sees the
//! changes. A [`Bulk`] ([`SearchIndex::bulk`]) holds the writer to stage changes over
//! several steps and commit them in several commits, each with its checkpoint and under the
//! same rule (a rebuild feeds the index this way, reading the log while tantivy indexes).
//! [`SearchIndex::open`] reports whether it reopened an index (with its checkpoint) or
//! had to create one, replacing an unusable one if needed ([`Opened`]).
//!
//! # Schema
//!
//! See `src/schema.rs` for the fields. In short: `title`, `body` and the tags' words
//! (`tag_words`) are analysed text; the id, workspace, author, status and exact tags are raw
//! keywords; status, dates, the id (as two `u64`s) and each item's set of tags (one joined
//! value, `src/tag_sets.rs`) are also fast fields (columns), so filtering, sorting and facet
//! counting never load stored documents. The stored fields only serve [`SearchIndex::get`]
//! and the highlights of a page's hits.
//!
//! One analyzer (split on non-alphanumerics, lowercase, ASCII folding) turns both documents
//! and the user's text into words, so `Café` finds `cafe` and the reverse.
//!
//! # Queries
//!
//! The user's text is never given to tantivy's query parser: its syntax (`title:x`, quotes,
//! `AND`, `-`, `*`...) would let users write failing or expensive queries. The text is
//! analysed into plain words instead (punctuation and symbols vanish, at most [`MAX_WORDS`]
//! distinct words are kept), and the query is built from them (`src/matching.rs`):
//!
//! - each word must match (AND) in the title, the tags or the body: exactly, as a prefix when
//!   it is the last word (as you type), or with typos (one edit from 5 characters, two from 9,
//!   transpositions counting as one) through tantivy's Levenshtein automata;
//! - a word scores by its best match, on constant tiers (exact > prefix > typo; within each,
//!   title > tags > body) plus the exact term's BM25 scaled below one tier, so exact matches
//!   always outrank typos and title matches outrank body-only ones;
//! - the workspace (always), the tags and the author are required terms adding no score.
//!
//! Two custom clauses (`src/clauses.rs`) keep this cheap: a word marks each document it
//! matches with its best alternative, one byte per document, reading every alternative's
//! postings once (its prefix and typo automata built once for its three fields), so a search
//! walks those marks instead of merging nine scorers at every document; and a filter matching
//! a whole segment (a big workspace) is dropped from the intersection instead of being checked
//! for every document.
//!
//! A custom collector (`src/collector.rs`) then makes one pass over the matches, reading fast
//! fields: it applies the status and date filters, counts the total and the facets, and keeps
//! the first `first + 1` hits after the cursor in the requested order, ties broken by id
//! (cursors: `src/cursor.rs`) — or, read backward, the first `first + 1` before it in the
//! reversed order, every key's bits inverted. The documents are shared out in contiguous runs
//! between threads, one per core, whatever the segments' sizes (`src/parallel.rs`), and their
//! results merged. Status facets count matches of every status (disjunctive faceting: a client
//! can show how many archived items its text matches); tag facets count the matches of the
//! whole filter. Only the page's stored titles and bodies are loaded, to
//! highlight them (`src/highlight.rs`) with the same matching rules as the query, so typo and
//! prefix matches are highlighted too.
//!
//! Text without words matches everything the filter allows; ordering by relevance then orders
//! by last update, newest first.

mod clauses;
mod collector;
mod cursor;
mod error;
mod highlight;
mod index;
mod item;
mod matching;
mod parallel;
mod query;
mod schema;
mod tag_sets;

pub use error::Error;
pub use index::{Bulk, Opened, SearchIndex};
pub use item::{ARCHIVED, Change, ItemDoc};
pub use matching::MAX_WORDS;
pub use query::{Hit, MAX_PAGE_SIZE, Order, SearchFilter, SearchQuery, SearchResults};
