//! The one async-graphql extension of the schema: every hook Chronicle needs on the way of a
//! request, each calling the module that owns its rule.
//!
//! One extension rather than one per concern: async-graphql runs every registered extension's
//! `resolve` hook around every field it resolves (a boxed future each), so each extension added
//! cost every field of every answer (an `items(first: 20)` resolves about 150 fields).

use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextResolve, NextSubscribe, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerResult, Value, Variables};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::documents::Documents;
use super::operation::PerOperation;
use super::{execution, variables};
use crate::{cache, error, limits};

/// The hooks, with the limits and per-operation handles of a served schema (see
/// [`Hooks::served`]); without them, only what every schema needs (error codes, required
/// variables, marking execution).
#[derive(Clone, Default)]
pub struct Hooks {
    served: Option<Served>,
}

#[derive(Clone)]
struct Served {
    max_aliases: usize,
    timeout: Duration,
    per_operation: PerOperation,
    documents: Documents,
}

impl Hooks {
    /// The hooks of the schema served at `/graphql`: also the kept parsed documents, the
    /// alias limit, the execution timeout, the response cache's root-field policy and each
    /// operation's context.
    pub fn served(max_aliases: usize, timeout: Duration, per_operation: PerOperation) -> Hooks {
        Hooks {
            served: Some(Served {
                max_aliases,
                timeout,
                per_operation,
                documents: Documents::new(),
            }),
        }
    }
}

impl ExtensionFactory for Hooks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for Hooks {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        error::assign_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(error::assign_codes).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Some(served) = &self.served {
            limits::check_aliases(&document, served.max_aliases)?;
        }
        Ok(document)
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(served) = &self.served {
            served.documents.parse(&mut request);
        }
        variables::check_required(&mut request)?;
        if let Some(served) = &self.served {
            request = served.per_operation.prepare(ctx.session_data, request)?;
        }
        next.run(ctx, request).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        execution::mark(ctx);
        match &self.served {
            Some(served) => limits::within(served.timeout, next.run(ctx, operation_name)).await,
            None => next.run(ctx, operation_name).await,
        }
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if self.served.is_some() {
            cache::check_root_field(ctx, &info);
        }
        next.run(ctx, info).await
    }
}
