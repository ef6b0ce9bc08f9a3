//! What every GraphQL operation carries of its own, whether it came over HTTP or a WebSocket:
//! its [`RequestContext`] and its batch loaders (users; nodes, for a signed-in caller). Over HTTP the handler builds the context from
//! the request; over a WebSocket each operation derives its own from the connection's (same
//! caller, same client address) with a fresh request id and correlation id, its own operation
//! name, and the idempotency key it sends in `extensions.idempotencyKey`.

use std::any::TypeId;

use async_graphql::{Request, ServerError, ServerResult, Value};
use eventlog::EventLog;
use uuid::Uuid;

use super::events::Pseudonymizer;
use super::{loaders, node};
use crate::request::{MAX_OPERATION_NAME, RequestContext};

/// Gives each operation its own context and loaders.
#[derive(Clone)]
pub struct PerOperation {
    log: EventLog,
    pseudonymizer: Pseudonymizer,
}

impl PerOperation {
    pub fn new(log: EventLog, pseudonymizer: Pseudonymizer) -> PerOperation {
        PerOperation { log, pseudonymizer }
    }

    /// Gives `request` its context (over a WebSocket: derived from the connection's, in
    /// `session_data`) and loaders.
    pub fn prepare(
        &self,
        session_data: &async_graphql::Data,
        mut request: Request,
    ) -> ServerResult<Request> {
        if request
            .operation_name
            .as_ref()
            .is_some_and(|name| name.len() > MAX_OPERATION_NAME)
        {
            return Err(ServerError::new(
                format!("an operation name holds at most {MAX_OPERATION_NAME} bytes"),
                None,
            ));
        }
        let has_context = request.data.contains_key(&TypeId::of::<RequestContext>());
        let connection = session_data
            .get(&TypeId::of::<RequestContext>())
            .and_then(|data| data.downcast_ref::<RequestContext>());
        if let (false, Some(connection)) = (has_context, connection) {
            let idempotency_key = match request.extensions.0.get("idempotencyKey") {
                Some(Value::String(key)) => Some(key.clone()),
                _ => None,
            };
            let operation = RequestContext {
                request_id: Uuid::now_v7().to_string(),
                correlation_id: Uuid::now_v7(),
                operation_name: request.operation_name.clone(),
                idempotency_key,
                // The upgrade request's header is not a wait for every operation.
                min_position: None,
                ..connection.clone()
            };
            tracing::debug!(request_id = %operation.request_id, "operation over a WebSocket");
            request.data.insert(operation);
        }
        request.data.insert(loaders::users(self.log.lane().clone()));
        let caller = request
            .data
            .get(&TypeId::of::<RequestContext>())
            .and_then(|data| data.downcast_ref::<RequestContext>())
            .and_then(|context| context.principal);
        if let Some(caller) = caller {
            request.data.insert(node::loader(
                self.log.clone(),
                self.pseudonymizer.clone(),
                caller.user_id,
            ));
        }
        Ok(request)
    }
}
