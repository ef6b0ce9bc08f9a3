//! The schema as served: async-graphql's schema and every step Chronicle takes around its
//! execution of a request — the kept parsed documents, the alias limit, required variables,
//! each operation's context, the response cache's root-field policy, the execution timeout
//! and the error codes — each calling the module that owns its rule. HTTP, WebSockets and the
//! console all execute through it (it is an async-graphql [`Executor`]).
//!
//! Not an async-graphql extension: with any extension registered, async-graphql runs the
//! extensions' `resolve` hook around every field it resolves (a registry lookup, a boxed
//! future and, for each element of a list, two formatted type names), and an
//! `items(first: 20)` resolves about 150 fields. Without one, it calls the resolvers directly.

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response, ServerResult};
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};

use super::documents::Documents;
use super::execution::Root;
use super::operation::PerOperation;
use super::{Mutation, Query, Subscription, variables};
use crate::cache::{self, Reads};
use crate::{error, limits};

/// async-graphql's schema of Chronicle's root types.
pub type Schema = async_graphql::Schema<Root<Query>, Root<Mutation>, Subscription>;

/// Chronicle's GraphQL schema as served at `/graphql` (see the module docs); cheap to clone.
#[derive(Clone)]
pub struct ChronicleSchema {
    schema: Schema,
    around: Arc<Around>,
}

/// What Chronicle does around each request.
struct Around {
    max_aliases: usize,
    timeout: Duration,
    per_operation: PerOperation,
    documents: Documents,
}

impl ChronicleSchema {
    /// Serves `schema` with the alias limit, the execution timeout and each operation's
    /// context.
    pub(super) fn new(
        schema: Schema,
        max_aliases: usize,
        timeout: Duration,
        per_operation: PerOperation,
    ) -> ChronicleSchema {
        ChronicleSchema {
            schema,
            around: Arc::new(Around {
                max_aliases,
                timeout,
                per_operation,
                documents: Documents::new(),
            }),
        }
    }

    /// The schema as SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }

    /// Readies `request` for execution (over a WebSocket, `session_data` is the connection's),
    /// or refuses it; with the type of the operation it selects, when it parses and can be told.
    fn prepare(
        &self,
        session_data: &Data,
        mut request: Request,
    ) -> ServerResult<(Request, Option<OperationType>)> {
        let around = &self.around;
        around.documents.parse(&mut request);
        let reads = request
            .data
            .get(&TypeId::of::<Arc<Reads>>())
            .and_then(|data| data.downcast_ref::<Arc<Reads>>())
            .cloned();
        let operation_name = request.operation_name.clone();
        let mut operation_type = None;
        // A document that does not parse is left to async-graphql to report.
        if let Ok(document) = request.parsed_query() {
            limits::check_aliases(document, around.max_aliases)?;
            let operation = variables::selected(&document.operations, operation_name.as_deref());
            operation_type = operation.map(|operation| operation.node.ty);
            if let Some(reads) = reads {
                cache::check_root_fields(&reads, document, operation.map(|op| &op.node));
            }
        }
        variables::check_required(&mut request)?;
        let request = around.per_operation.prepare(session_data, request)?;
        Ok((request, operation_type))
    }
}

impl Executor for ChronicleSchema {
    async fn execute(&self, request: Request) -> Response {
        let response = match self.prepare(&Data::default(), request) {
            Ok((request, _)) => {
                limits::within(self.around.timeout, self.schema.execute(request)).await
            }
            Err(err) => Response::from_errors(vec![err]),
        };
        error::assign_codes(response)
    }

    /// Over a WebSocket: a subscription's stream of events, or a query's or mutation's one
    /// answer, within the execution timeout.
    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let session_data = session_data.unwrap_or_default();
        let (request, operation_type) = match self.prepare(&session_data, request) {
            Ok(prepared) => prepared,
            Err(err) => {
                let response = error::assign_codes(Response::from_errors(vec![err]));
                return stream::once(async { response }).boxed();
            }
        };
        let responses = self
            .schema
            .execute_stream_with_session_data(request, session_data);
        if operation_type == Some(OperationType::Subscription) {
            return responses.map(error::assign_codes).boxed();
        }
        let answer = responses
            .into_future()
            .map(|(answer, _)| answer.unwrap_or_default());
        let timeout = self.around.timeout;
        stream::once(async move { error::assign_codes(limits::within(timeout, answer).await) })
            .boxed()
    }
}
