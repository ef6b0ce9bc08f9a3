//! Behaviour of the search index, through its public API, on real on-disk indexes.

mod facets;
mod filters;
mod highlights;
mod lifecycle;
mod matching;
mod pagination;
mod ranking;
mod support;
