//! Finding workspaces across tenants, for staff (the console's finder, SPEC §1): by name, by id
//! or by a member's email.

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};
use projections::queries::WorkspaceListingRow;

use super::ids::{Kind, encode};
use super::types::{Plan, stored};
use crate::error::ApiError;

/// The longest search accepted, in characters.
pub const MAX_SEARCH: usize = 200;

/// A workspace as staff find it: who it is, not what is in it. Its audit history, trail and
/// log are read with its id through `auditLog`, `verifyAuditTrail` and `events`, where staff
/// rights apply.
#[derive(SimpleObject)]
pub struct WorkspaceListing {
    /// The workspace's global id.
    pub id: ID,
    /// Display name.
    pub name: String,
    /// Current plan.
    pub plan: Plan,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
    /// How many members it has.
    pub member_count: i64,
}

impl WorkspaceListing {
    pub fn from_row(row: WorkspaceListingRow) -> Result<WorkspaceListing, ApiError> {
        Ok(WorkspaceListing {
            id: encode(Kind::Workspace, row.id),
            name: row.name,
            plan: stored::<domain::Plan>(&row.plan)?.into(),
            created_at: row.created_at,
            member_count: row.members,
        })
    }
}
