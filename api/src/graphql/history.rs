//! Time travel (SPEC §5): an item or workspace as it was at a log position or an instant,
//! folded from its events rather than read from the read model. Who may look is decided by
//! today's membership of the workspace.

use async_graphql::{Context, OneofObject};
use chrono::{DateTime, Utc};
use domain::{Item as ItemState, UserId, Workspace as WorkspaceState};
use eventlog::EventLog;
use eventlog::aggregates::AsOf;
use projections::queries::WorkspaceRow;
use uuid::Uuid;

use super::types::{Item, Workspace, rights};
use crate::authz::{self, Grant, Read};
use crate::cache::reads;
use crate::error::ApiError;

/// A point in history: exactly one of a log position or an instant.
#[derive(OneofObject)]
pub enum AsOfInput {
    /// Just after the event at this log position (as returned by a mutation).
    Position(String),
    /// As things stood at this instant.
    Time(DateTime<Utc>),
}

impl AsOfInput {
    fn parse(self) -> Result<AsOf, ApiError> {
        Ok(match self {
            AsOfInput::Position(text) => {
                AsOf::Position(text.parse().map_err(|err: eventlog::InvalidPosition| {
                    ApiError::BadInput(err.to_string())
                })?)
            }
            AsOfInput::Time(time) => AsOf::Time(time),
        })
    }
}

/// The item as of `as_of`; `NOT_FOUND` before it was created or for non-members.
pub async fn item(
    ctx: &Context<'_>,
    reader: Uuid,
    id: Uuid,
    as_of: AsOfInput,
) -> async_graphql::Result<Item> {
    let log = ctx.data::<EventLog>()?;
    let not_found = || ApiError::NotFound("item");
    let (workspace_id, item) = fold_item(log, id, as_of.parse()?)
        .await?
        .ok_or_else(not_found)?;
    reads::workspace(ctx, workspace_id);
    authz::content_of(rights(ctx)?, reader, workspace_id, "item").await?;
    Ok(item)
}

/// The item as it was at `as_of`, folded from its events, with its workspace; `None` before
/// it was created. Says nothing about who may see it.
pub async fn fold_item(
    log: &EventLog,
    id: Uuid,
    as_of: AsOf,
) -> Result<Option<(Uuid, Item)>, ApiError> {
    let loaded = log.load_as_of::<ItemState>(id, as_of).await?;
    let item = loaded
        .updated_at
        .and_then(|at| Item::from_state(id, &loaded.state, loaded.version, at));
    Ok(item.map(|item| (item.workspace(), item)))
}

/// The workspace as of `as_of`; `NOT_FOUND` before it was created or for non-members.
pub async fn workspace(
    ctx: &Context<'_>,
    reader: Uuid,
    id: Uuid,
    as_of: AsOfInput,
) -> async_graphql::Result<Workspace> {
    let log = ctx.data::<EventLog>()?;
    let loaded = log
        .load_as_of::<WorkspaceState>(id, as_of.parse()?)
        .await
        .map_err(ApiError::from)?;
    let state = &loaded.state;
    let not_found = || ApiError::NotFound("workspace");
    let viewer_role = match authz::workspace(rights(ctx)?, reader, id, Read::Content).await? {
        Grant::Member(role) => role.as_str().to_string(),
        Grant::Support | Grant::Analyst => return Err(not_found().into()),
    };
    if !state.exists() {
        return Err(not_found().into());
    }
    let row = WorkspaceRow {
        id,
        name: state.name().ok_or_else(not_found)?.as_str().to_string(),
        region: state.region().ok_or_else(not_found)?.as_str().to_string(),
        plan: state.plan().ok_or_else(not_found)?.as_str().to_string(),
        trial_ends_at: state.trial_ends_at().ok_or_else(not_found)?,
        created_at: state.created_at().ok_or_else(not_found)?,
        updated_at: loaded.updated_at.ok_or_else(not_found)?,
        version: loaded.version as i64,
        // The reader's role today: it is today's membership that lets them look.
        viewer_role: state
            .role_of(UserId::from_uuid(reader))
            .map_or(viewer_role, |r| r.as_str().to_string()),
    };
    Ok(Workspace(row))
}
