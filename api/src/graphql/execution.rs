//! Whether a GraphQL request reached execution. GraphQL over HTTP answers a request that
//! failed before it — its document did not parse or validate, its variables did not coerce,
//! its operation could not be chosen — differently from one whose execution raised errors
//! (see [`crate::http`]); async-graphql reports both as errors in a response, so the HTTP
//! handler gives each request an [`Execution`] and [`MarkExecution`] notes when it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::Response;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};

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
pub struct MarkExecution;

impl ExtensionFactory for MarkExecution {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MarkExecution)
    }
}

#[async_trait::async_trait]
impl Extension for MarkExecution {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(execution) = ctx.data_opt::<Arc<Execution>>() {
            execution.0.store(true, Ordering::Release);
        }
        next.run(ctx, operation_name).await
    }
}
