//! Whether a GraphQL request reached execution. GraphQL over HTTP answers a request that
//! failed before it — its document did not parse or validate, its variables did not coerce,
//! its operation could not be chosen — differently from one whose execution raised errors
//! (see [`crate::http`]); async-graphql reports both as errors in a response, so the HTTP
//! handler gives each request an [`Execution`], and the root types, wrapped in [`Root`], mark
//! it as they resolve a field.
//!
//! A request whose execution resolved no root field (`{ __typename }`, or every field left
//! out by `@skip`) is never marked; it cannot have raised an error either, and a response
//! without errors executed.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, resolve_container};
use async_graphql::{Context, ContextSelectionSet, ObjectType, OutputType, Positioned};
use async_graphql::{Response, ServerResult, Value};

/// Set once the request's operation starts executing.
#[derive(Debug, Default)]
pub struct Execution(AtomicBool);

impl Execution {
    pub fn new() -> Arc<Execution> {
        Arc::default()
    }

    /// Whether the request that got `response` reached execution: it resolved a root field,
    /// or it raised no error (see the module docs).
    pub fn reached(&self, response: &Response) -> bool {
        self.0.load(Ordering::Acquire) || response.errors.is_empty()
    }
}

/// A root type (`Query`, `Mutation`) as served: the same type to GraphQL, marking the
/// request's [`Execution`] (when it has one) as each of its fields is resolved.
#[derive(Default)]
pub struct Root<T>(pub T);

impl<T: ObjectType> OutputType for Root<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        resolve_container(ctx, self).await
    }
}

impl<T: ObjectType> ContainerType for Root<T> {
    fn is_empty() -> bool {
        T::is_empty()
    }

    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        if let Some(execution) = ctx.data_opt::<Arc<Execution>>() {
            execution.0.store(true, Ordering::Release);
        }
        self.0.resolve_field(ctx).await
    }
}

impl<T: ObjectType> ObjectType for Root<T> {}
