//! The GraphQL schema: root types, how the schema is built, and the SDL committed as
//! `schema.graphql`.

mod audit;
mod directory;
mod documents;
pub mod events;
pub mod execution;
pub mod exports;
mod history;
pub(crate) mod ids;
pub mod jobs;
pub mod loaders;
mod mutation;
pub mod node;
mod operation;
mod pagination;
pub(crate) mod query;
mod search;
mod served;
mod subscription;
mod types;
mod variables;

use async_graphql::SchemaBuilder;

use crate::auth::Auth;
use crate::authz::Rights;
use crate::config::Environment;
use crate::limits::Limits;
use crate::read_side::ReadSide;
use crate::writes::Writes;

use execution::Root;
pub use mutation::Mutation;
pub use query::Query;
pub use served::ChronicleSchema;
pub use subscription::Subscription;

fn builder() -> SchemaBuilder<Root<Query>, Root<Mutation>, Subscription> {
    served::Schema::build(Root(Query), Root::default(), Subscription)
}

/// Builds the schema served at `/graphql`, with the query-level abuse limits. Introspection
/// and field suggestions ("did you mean …?", which reveal the schema just the same) are off in
/// production.
#[allow(clippy::too_many_arguments)]
pub fn build_schema(
    writes: Writes,
    rights: Rights,
    auth: Auth,
    pseudonymizer: events::Pseudonymizer,
    read_side: ReadSide,
    jobs: jobs::JobSettings,
    environment: Environment,
    limits: &Limits,
) -> ChronicleSchema {
    let per_operation = operation::PerOperation::new(writes.log().clone(), pseudonymizer.clone());
    let builder = builder()
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .data(query::ConsistencyWaits::new(limits.max_consistency_waits))
        .data(writes.log().clone())
        .data(writes)
        .data(rights)
        .data(auth)
        .data(pseudonymizer)
        .data(read_side)
        .data(jobs.invite_tokens)
        .data(jobs.retry)
        .data(*limits);
    let schema = match environment {
        Environment::Development => builder.finish(),
        Environment::Production => builder
            .disable_introspection()
            .disable_suggestions()
            .finish(),
    };
    ChronicleSchema::new(
        schema,
        limits.max_aliases,
        limits.request_timeout,
        per_operation,
    )
}

/// The schema as SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
