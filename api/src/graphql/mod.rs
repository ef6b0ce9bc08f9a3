//! The GraphQL schema: its root types and how it is built.

use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema};
use eventlog::EventLog;

use crate::config::Environment;
use crate::error::{ApiError, ErrorCodes};

/// Chronicle's GraphQL schema.
pub type ChronicleSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema served at `/graphql`. Introspection is off in production.
pub fn build_schema(log: EventLog, environment: Environment) -> ChronicleSchema {
    let builder = Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(ErrorCodes)
        .data(log);
    match environment {
        Environment::Development => builder.finish(),
        Environment::Production => builder.disable_introspection().finish(),
    }
}

/// The schema as SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .finish()
        .sdl()
}

/// Read-only entry points.
pub struct Query;

#[Object]
impl Query {
    /// The position of the newest event in the log that readers can see now (an opaque string
    /// that sorts like the log; empty log: `"0000…"`). Positions are the log's consistency
    /// tokens: every mutation will return the one it wrote.
    async fn log_position(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let log = ctx.data::<EventLog>()?;
        let head = log.head().await.map_err(ApiError::from)?;
        Ok(head.to_string())
    }

    /// The version of the Chronicle server answering.
    async fn server_version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}
