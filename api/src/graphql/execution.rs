//! Whether a GraphQL request reached execution. GraphQL over HTTP answers a request that
//! failed before it — its document did not parse or validate, its variables did not coerce,
//! its operation could not be chosen — differently from one whose execution raised errors
//! (see [`crate::http`]); async-graphql reports both as errors in a response, so the HTTP
//! handler gives each request an [`Execution`] and [`mark`] notes when it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::extensions::ExtensionContext;

/// Set once the request's operation starts executing.
#[derive(Debug, Default)]
pub struct Execution(AtomicBool);

impl Execution {
    pub fn new() -> Arc<Execution> {
        Arc::default()
    }

    /// Whether the request reached execution.
    pub fn started(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Marks the request's [`Execution`] (when it has one) as execution begins.
pub fn mark(ctx: &ExtensionContext<'_>) {
    if let Some(execution) = ctx.data_opt::<Arc<Execution>>() {
        execution.0.store(true, Ordering::Release);
    }
}
