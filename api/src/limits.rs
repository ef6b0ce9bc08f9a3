//! Abuse limits (SPEC §8): query depth and complexity (enforced by async-graphql, lists weighted
//! by their page size), aliases (counted here), operations per batch, body size (enforced in
//! [`crate::http`]), execution time (here, for HTTP and WebSocket alike), WebSocket connections
//! and operations (in [`crate::websocket`]), and the bounded wait for a consistency token
//! (SPEC §5). All configurable, with safe defaults.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult};

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `CHRONICLE_MAX_DEPTH`: deepest selection nesting.
    pub max_depth: usize,
    /// `CHRONICLE_MAX_COMPLEXITY`: fields counted over the whole query, lists weighted.
    pub max_complexity: usize,
    /// `CHRONICLE_MAX_ALIASES`: aliased fields in one document.
    pub max_aliases: usize,
    /// `CHRONICLE_MAX_BATCH`: operations in one batched request.
    pub max_batch: usize,
    /// `CHRONICLE_MAX_BODY_BYTES`: request body size.
    pub max_body_bytes: usize,
    /// `CHRONICLE_REQUEST_TIMEOUT_MS`: time to answer before giving up.
    pub request_timeout: Duration,
    /// `CHRONICLE_CONSISTENCY_WAIT_MS`: how long a query given `minPosition` waits for what it
    /// reads to reflect that position before answering `NOT_YET_CONSISTENT`.
    pub consistency_wait: Duration,
    /// `CHRONICLE_MAX_CONSISTENCY_WAITS`: `minPosition` waits running at once on this node;
    /// past it a wait is answered `NOT_YET_CONSISTENT` at once, so waits can never starve the
    /// database pool.
    pub max_consistency_waits: usize,
    /// `CHRONICLE_MAX_WS_OPERATIONS`: operations running at once on one WebSocket.
    pub max_ws_operations: usize,
    /// `CHRONICLE_MAX_WS_CONNECTIONS_PER_USER`: WebSockets one user keeps open on this node.
    pub max_ws_connections_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 15,
            max_complexity: 5_000,
            max_aliases: 30,
            max_batch: 10,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(15),
            consistency_wait: Duration::from_secs(2),
            max_consistency_waits: 64,
            max_ws_operations: 100,
            max_ws_connections_per_user: 10,
        }
    }
}

/// Refuses documents with more aliased fields than `max` (they multiply work cheaply).
pub fn check_aliases(document: &ExecutableDocument, max: usize) -> ServerResult<()> {
    let operations = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node);
    let fragments = document
        .fragments
        .values()
        .map(|f| &f.node.selection_set.node);
    let aliases: usize = operations.chain(fragments).map(count_aliases).sum();
    if aliases > max {
        return Err(ServerError::new(
            format!("the query uses {aliases} aliases; at most {max} are allowed"),
            None,
        ));
    }
    Ok(())
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Bounds the execution of every query and mutation, over HTTP and over a WebSocket alike: one
/// that runs longer than `limit` is answered with an `INTERNAL` "took too long" error (its
/// resolvers are dropped), whose source is [`TimedOut`].
pub async fn within(limit: Duration, execution: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, execution).await {
        Ok(response) => response,
        Err(_) => {
            let mut error = ServerError::new("the request took too long", None);
            error.source = Some(Arc::new(TimedOut));
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", crate::error::Code::Internal.as_str());
            Response::from_errors(vec![error])
        }
    }
}

/// The source of the error [`within`] answers with: HTTP answers a request that ran out of
/// time differently (504).
#[derive(Debug)]
pub struct TimedOut;

/// Whether `response` is [`within`]'s answer to an execution that ran out of time.
pub fn timed_out(response: &Response) -> bool {
    response
        .errors
        .iter()
        .any(|error| error.source::<TimedOut>().is_some())
}
