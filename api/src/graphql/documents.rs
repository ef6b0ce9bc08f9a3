//! Parsed documents kept by their text. Clients send the same few documents over and over, and
//! parsing one (async-graphql's parser) was about 8 % of an HTTP worker's time serving
//! `items(first: 20)`. Each request gets a copy of its own: execution removes the selections
//! that `@skip` and `@include` leave out, by the request's variables, from its copy.
//!
//! Only the parse is kept: every request's document still goes through the depth, directive
//! and alias limits and through validation.

use std::sync::Arc;

use async_graphql::Request;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The longest document kept, in bytes; longer ones are parsed for each request.
const MAX_KEPT_QUERY: usize = 16 * 1024;

/// The memory the kept documents may take, by [`weight`]'s estimate.
const KEPT_BYTES: u64 = 32 * 1024 * 1024;

/// What [`weight`] counts for one parsed selection, argument, directive or variable
/// definition (a field's parsed form is about 170 bytes, its name another allocation).
const NODE_BYTES: usize = 256;

/// The parsed documents, shared by the node's requests.
#[derive(Clone)]
pub struct Documents {
    parsed: moka::sync::Cache<String, Kept>,
}

#[derive(Clone)]
struct Kept {
    document: Arc<ExecutableDocument>,
    weight: u32,
}

impl Documents {
    pub fn new() -> Documents {
        Documents {
            parsed: moka::sync::Cache::builder()
                .max_capacity(KEPT_BYTES)
                .weigher(|_, kept: &Kept| kept.weight)
                .build(),
        }
    }

    /// Gives `request` its parsed document: a copy of the kept one, or one parsed now (then
    /// kept). A document that does not parse is left for the parser to report.
    pub fn parse(&self, request: &mut Request) {
        if request.query.len() > MAX_KEPT_QUERY {
            return;
        }
        if let Some(kept) = self.parsed.get(request.query.as_str()) {
            request.set_parsed_query(ExecutableDocument::clone(&kept.document));
            return;
        }
        if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
            let kept = Kept {
                weight: weight(&request.query, &document),
                document: Arc::new(document.clone()),
            };
            self.parsed.insert(request.query.clone(), kept);
            request.set_parsed_query(document);
        }
    }
}

impl Default for Documents {
    fn default() -> Documents {
        Documents::new()
    }
}

/// An estimate of the memory a kept document takes: its text, and [`NODE_BYTES`] for each
/// selection, argument, directive and variable definition of its parsed form. Walked without
/// recursion, however deep the document nests.
fn weight(query: &str, document: &ExecutableDocument) -> u32 {
    let mut nodes = 0;
    let mut sets: Vec<&SelectionSet> = Vec::new();
    for (_, operation) in document.operations.iter() {
        nodes += operation.node.variable_definitions.len() + operation.node.directives.len();
        sets.push(&operation.node.selection_set.node);
    }
    for fragment in document.fragments.values() {
        nodes += fragment.node.directives.len();
        sets.push(&fragment.node.selection_set.node);
    }
    while let Some(set) = sets.pop() {
        for selection in &set.items {
            nodes += 1;
            match &selection.node {
                Selection::Field(field) => {
                    nodes += field.node.arguments.len() + field.node.directives.len();
                    sets.push(&field.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => nodes += spread.node.directives.len(),
                Selection::InlineFragment(inline) => {
                    nodes += inline.node.directives.len();
                    sets.push(&inline.node.selection_set.node);
                }
            }
        }
    }
    u32::try_from(query.len() + NODE_BYTES * nodes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap()
    }

    #[test]
    fn the_weight_counts_every_node_of_the_document() {
        let query =
            "query Q($a: Int, $b: Int) { x(n: $a) { y z } ...F ... on T @skip(if: true) { w } }
                     fragment F on T { v(m: 1, k: 2) }";
        // 2 variables; x with 1 argument, y, z, the spread, the inline fragment with 1
        // directive, w; in F, v with 2 arguments.
        let nodes = 2 + (1 + 1) + 1 + 1 + 1 + (1 + 1) + 1 + (1 + 2);
        assert_eq!(
            weight(query, &parsed(query)) as usize,
            query.len() + NODE_BYTES * nodes
        );
    }

    #[test]
    fn a_request_gets_its_own_copy_of_a_kept_document() {
        let documents = Documents::new();
        let query = "{ a b }";
        let mut first = Request::new(query);
        documents.parse(&mut first);
        let mut second = Request::new(query);
        documents.parse(&mut second);
        assert!(documents.parsed.get(query).is_some());
        let kept = first.parsed_query().unwrap().clone();
        let copy = second.parsed_query().unwrap();
        assert_eq!(format!("{kept:?}"), format!("{copy:?}"));
    }

    #[test]
    fn what_does_not_parse_or_is_too_long_is_not_kept() {
        let documents = Documents::new();
        for query in [
            "{ a".to_string(),
            format!("{{ {} }}", "a ".repeat(MAX_KEPT_QUERY)),
        ] {
            let mut request = Request::new(query.as_str());
            documents.parse(&mut request);
            assert!(documents.parsed.get(query.as_str()).is_none());
        }
    }
}
