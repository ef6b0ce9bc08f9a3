//! Mutations: each parses its input at the boundary, lets an aggregate decide, and writes the
//! events through [`crate::writes::Writes`] (append + inline read models, idempotent). Each
//! returns the log position it wrote: pass it as a consistency token.

mod accounts;
mod exports;
mod invites;
mod items;
mod workspaces;

use async_graphql::{Context, MergedObject};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::request::RequestContext;
use crate::writes::Writes;

pub use accounts::AccountMutations;
pub use exports::ExportMutations;
pub use invites::InviteMutations;
pub use items::ItemMutations;
pub use workspaces::WorkspaceMutations;

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    AccountMutations,
    WorkspaceMutations,
    InviteMutations,
    ItemMutations,
    ExportMutations,
    crate::graphql::jobs::JobMutations,
);

/// What a mutation wrote, as stored for idempotent retries: the entity and the position.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Written {
    id: Uuid,
    /// `None` when nothing changed (a no-op such as renaming to the same name).
    position: Option<String>,
}

/// The per-request handles every mutation needs.
struct Handles<'a> {
    req: &'a RequestContext,
    writes: &'a Writes,
}

fn handles<'a>(ctx: &Context<'a>) -> async_graphql::Result<Handles<'a>> {
    Ok(Handles {
        req: ctx.data::<RequestContext>()?,
        writes: ctx.data::<Writes>()?,
    })
}

impl Handles<'_> {
    /// The domain context for an action by `user` now.
    fn domain_context(&self, user: Uuid) -> domain::Context {
        domain::Context::user(self.writes.now(), domain::UserId::from_uuid(user))
    }
}
