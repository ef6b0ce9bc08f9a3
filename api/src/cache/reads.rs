//! What an operation read, recorded as it runs, so that the response cache knows what its
//! answer depends on: the workspaces and users whose data it shows ([`Scope`]), the instant
//! until which a clock-dependent value holds (a trial that ends, an invite that expires), or
//! that it must not be cached at all (it read something the log does not describe, such as
//! the job queue, or it has an effect, such as a staff member's recorded look).
//!
//! Resolvers call the functions below with their context; outside a cached request they do
//! nothing. [`check_root_fields`] makes caching opt-in per root field: an answer is cached only
//! when every root field it selects is listed in [`CACHEABLE_ROOTS`], whose resolvers record what
//! they read.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use async_graphql::Context;
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::freshness::Scope;

/// The `Query` fields whose answers may be cached: each records what it reads. Any other root
/// field (`events`, `failedJobs`, `logPosition`, every mutation and subscription) makes the
/// answer uncacheable; so does `verifyAuditTrail`, whose point is to see what no event says
/// (rows edited behind the log's back).
pub const CACHEABLE_ROOTS: &[&str] = &[
    "me",
    "workspace",
    "workspaces",
    "invites",
    "exports",
    "item",
    "items",
    "search",
    "auditLog",
    "itemHistory",
    "node",
    "nodes",
    "serverVersion",
    "__typename",
    "__schema",
    "__type",
];

/// What one operation read so far.
#[derive(Debug, Default)]
pub struct Reads(Mutex<Recorded>);

/// What an operation read, once it has run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The scopes whose data the answer shows.
    pub scopes: BTreeSet<Scope>,
    /// The answer holds until then (a clock-dependent value changes).
    pub until: Option<DateTime<Utc>>,
    /// Why the answer must not be cached, if it must not.
    pub uncacheable: Option<&'static str>,
    /// Whether it read this node's search index (which follows the log asynchronously).
    pub search_index: bool,
}

impl Reads {
    fn record(&self, change: impl FnOnce(&mut Recorded)) {
        // Recording never panics, so a poisoned lock still holds consistent data.
        change(
            &mut self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
    }

    /// What was recorded.
    pub fn recorded(&self) -> Recorded {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

fn reads<'a>(ctx: &Context<'a>) -> Option<&'a Reads> {
    ctx.data_opt::<Arc<Reads>>().map(Arc::as_ref)
}

/// The answer shows data of `workspace_id` (its settings, members, content or history).
pub fn workspace(ctx: &Context<'_>, workspace_id: Uuid) {
    if let Some(reads) = reads(ctx) {
        reads.record(|r| {
            r.scopes.insert(Scope::Workspace(workspace_id));
        });
    }
}

/// The answer shows data of the user `user_id` (their profile, roles or memberships).
pub fn user(ctx: &Context<'_>, user_id: Uuid) {
    if let Some(reads) = reads(ctx) {
        reads.record(|r| {
            r.scopes.insert(Scope::User(user_id));
        });
    }
}

/// The answer shows `workspace_id`'s items as this node's search index has them.
pub fn search_index(ctx: &Context<'_>, workspace_id: Uuid) {
    if let Some(reads) = reads(ctx) {
        reads.record(|r| {
            r.scopes.insert(Scope::Workspace(workspace_id));
            r.search_index = true;
        });
    }
}

/// The answer shows a value that changes by itself at `instant` (when a trial ends, when an
/// invite expires); it holds until then.
pub fn until(ctx: &Context<'_>, instant: DateTime<Utc>) {
    if let Some(reads) = reads(ctx) {
        reads.record(|r| r.until = Some(r.until.map_or(instant, |until| until.min(instant))));
    }
}

/// The answer must not be cached, because of `why`.
pub fn uncacheable(ctx: &Context<'_>, why: &'static str) {
    if let Some(reads) = reads(ctx) {
        reads.record(|r| {
            r.uncacheable.get_or_insert(why);
        });
    }
}

/// Marks the answer uncacheable unless `operation` is a query whose every root field, its
/// fragments' included, is listed in [`CACHEABLE_ROOTS`] (checked before execution; no
/// operation: the request cannot execute). A root field that `@skip` or `@include` would
/// leave out counts all the same. Each fragment is looked at once, so the walk is linear in
/// the document whatever its fragments spread.
pub fn check_root_fields(
    reads: &Reads,
    document: &ExecutableDocument,
    operation: Option<&OperationDefinition>,
) {
    if !operation.is_some_and(|operation| only_cacheable_roots(document, operation)) {
        reads.record(|r| {
            r.uncacheable
                .get_or_insert("a root field that is not cached");
        });
    }
}

fn only_cacheable_roots(document: &ExecutableDocument, operation: &OperationDefinition) -> bool {
    if operation.ty != OperationType::Query {
        return false;
    }
    let mut sets = vec![&operation.selection_set.node];
    let mut spread = HashSet::new();
    while let Some(set) = sets.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    if !CACHEABLE_ROOTS.contains(&field.node.name.node.as_str()) {
                        return false;
                    }
                }
                Selection::InlineFragment(fragment) => {
                    sets.push(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(fragment) => {
                    let name = &fragment.node.fragment_name.node;
                    if spread.insert(name) {
                        match document.fragments.get(name) {
                            Some(fragment) => sets.push(&fragment.node.selection_set.node),
                            None => return false,
                        }
                    }
                }
            }
        }
    }
    true
}
