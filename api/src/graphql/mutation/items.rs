//! Item mutations: create, update, archive, restore, delete.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use domain::{
    Access, Aggregate, ItemAction, ItemBody, ItemCommand, ItemId, ItemTitle, Tags, UserId,
    WorkspaceId,
};
use eventlog::StreamRef;
use eventlog::aggregates::Loaded;
use projections::queries;
use serde::Serialize;
use uuid::Uuid;

use super::{Written, handles};
use crate::authz::{self, Appends};
use crate::error::ApiError;
use crate::graphql::ids::{Kind, decode, encode};
use crate::graphql::query::caller;
use crate::graphql::types::{Item, ItemStatus, lane};

/// A new item.
#[derive(InputObject, Serialize)]
pub struct CreateItemInput {
    /// The workspace to create it in.
    pub workspace_id: ID,
    /// 1–200 characters.
    pub title: String,
    /// Up to 20,000 characters; empty by default.
    pub body: Option<String>,
    /// Up to 20 tags of 1–40 characters.
    #[graphql(validator(max_items = 20))]
    pub tags: Option<Vec<String>>,
    /// DRAFT (default) or ACTIVE.
    pub status: Option<ItemStatus>,
}

/// Changes to an item; fields left out stay as they are.
#[derive(InputObject, Serialize)]
pub struct UpdateItemInput {
    /// The item.
    pub id: ID,
    /// The item's `version` the change was made against; if it has changed since, the update
    /// is refused with `CONFLICT`.
    pub expected_version: i64,
    pub title: Option<String>,
    pub body: Option<String>,
    /// Up to 20 tags of 1–40 characters (replacing the item's tags).
    #[graphql(validator(max_items = 20))]
    pub tags: Option<Vec<String>>,
}

/// The item after a mutation.
#[derive(SimpleObject)]
pub struct ItemPayload {
    /// The item as it is now.
    pub item: Item,
    /// The log position written (null when nothing changed): a consistency token.
    pub position: Option<String>,
}

/// An item deleted.
#[derive(SimpleObject)]
pub struct DeleteItemPayload {
    /// The id the item had.
    pub deleted_item_id: ID,
    /// The log position written.
    pub position: Option<String>,
}

/// Item mutations.
#[derive(Default)]
pub struct ItemMutations;

#[Object]
impl ItemMutations {
    /// Creates an item (owners, admins, members).
    async fn create_item(
        &self,
        ctx: &Context<'_>,
        input: CreateItemInput,
    ) -> async_graphql::Result<ItemPayload> {
        caller(ctx)?;
        let workspace_id = decode(Kind::Workspace, &input.workspace_id)?;
        let item_id = ItemId::new();
        let action = ItemAction::Create {
            item_id,
            title: parse(ItemTitle::parse(&input.title))?,
            body: parse(ItemBody::parse(input.body.as_deref().unwrap_or_default()))?,
            tags: parse(Tags::parse(input.tags.clone().unwrap_or_default()))?,
            status: input.status.map_or(domain::ItemStatus::Draft, Into::into),
        };
        let target = Target {
            item_id: item_id.as_uuid(),
            workspace_id: Some(workspace_id),
            expected_version: None,
        };
        let written = run(ctx, "createItem", &input, target, action).await?;
        payload(ctx, written).await
    }

    /// Changes an item's title, body or tags (members: their own items; admins, owners: any).
    async fn update_item(
        &self,
        ctx: &Context<'_>,
        input: UpdateItemInput,
    ) -> async_graphql::Result<ItemPayload> {
        caller(ctx)?;
        let item_id = decode(Kind::Item, &input.id)?;
        let action = ItemAction::Update {
            title: input
                .title
                .as_deref()
                .map(ItemTitle::parse)
                .transpose()
                .map_err(into_api)?,
            body: input
                .body
                .as_deref()
                .map(ItemBody::parse)
                .transpose()
                .map_err(into_api)?,
            tags: input
                .tags
                .clone()
                .map(Tags::parse)
                .transpose()
                .map_err(into_api)?,
        };
        let target = Target {
            item_id,
            workspace_id: None,
            expected_version: Some(input.expected_version),
        };
        let written = run(ctx, "updateItem", &input, target, action).await?;
        payload(ctx, written).await
    }

    /// Archives a draft or active item.
    async fn archive_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> async_graphql::Result<ItemPayload> {
        status_change(
            ctx,
            "archiveItem",
            id,
            expected_version,
            ItemAction::Archive,
        )
        .await
    }

    /// Restores an archived item to the status it had.
    async fn restore_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> async_graphql::Result<ItemPayload> {
        status_change(
            ctx,
            "restoreItem",
            id,
            expected_version,
            ItemAction::Restore,
        )
        .await
    }

    /// Publishes a draft (makes it ACTIVE).
    async fn publish_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> async_graphql::Result<ItemPayload> {
        status_change(
            ctx,
            "publishItem",
            id,
            expected_version,
            ItemAction::Publish,
        )
        .await
    }

    /// Deletes an item. Its history stays in the log.
    async fn delete_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> async_graphql::Result<DeleteItemPayload> {
        let item_id = decode(Kind::Item, &id)?;
        let target = Target {
            item_id,
            workspace_id: None,
            expected_version,
        };
        let (written, _) = run(
            ctx,
            "deleteItem",
            &(&id, expected_version),
            target,
            ItemAction::Delete,
        )
        .await?;
        Ok(DeleteItemPayload {
            deleted_item_id: encode(Kind::Item, written.id),
            position: written.position,
        })
    }
}

async fn status_change(
    ctx: &Context<'_>,
    operation: &str,
    id: ID,
    expected_version: Option<i64>,
    action: ItemAction,
) -> async_graphql::Result<ItemPayload> {
    let item_id = decode(Kind::Item, &id)?;
    let target = Target {
        item_id,
        workspace_id: None,
        expected_version,
    };
    let written = run(ctx, operation, &(&id, expected_version), target, action).await?;
    payload(ctx, written).await
}

/// The item a mutation acts on.
struct Target {
    item_id: Uuid,
    /// Known up front only when creating; otherwise read from the item.
    workspace_id: Option<Uuid>,
    /// The version the client saw, if it says.
    expected_version: Option<i64>,
}

/// Decides `action` on the item with the caller's role in its workspace, and writes the
/// outcome, once per idempotency key. Returns, with what was written, the item as the write
/// left it (`None` when a stored result was returned for a retry, or nothing was written).
async fn run(
    ctx: &Context<'_>,
    operation: &str,
    input: &impl Serialize,
    target: Target,
    action: ItemAction,
) -> async_graphql::Result<(Written, Option<Item>)> {
    let h = handles(ctx)?;
    let user = h.req.user()?.user_id;
    let mut after = None;
    let written = h
        .writes
        .once(h.req, operation, input, async |conn| {
            // A new item's stream is empty: no need to read it.
            let (loaded, appends) = match target.workspace_id {
                Some(_) => (
                    Loaded {
                        state: domain::Item::default(),
                        version: 0,
                        updated_at: None,
                    },
                    Appends::NewStream,
                ),
                None => (
                    h.writes.log().load::<domain::Item>(target.item_id).await?,
                    Appends::ExistingStream,
                ),
            };
            let workspace_id = target
                .workspace_id
                .or_else(|| loaded.state.workspace_id().map(|w| w.as_uuid()))
                .ok_or(ApiError::NotFound("item"))?;
            let missing = match appends {
                Appends::NewStream => "workspace",
                Appends::ExistingStream => "item",
            };
            let role = authz::role_for_write(conn, workspace_id, user, missing, appends).await?;
            if let Some(expected) = target.expected_version
                && expected != loaded.version as i64
            {
                return Err(domain::DomainError::conflict(format!(
                    "the item is at version {}, not {expected}: it changed since you read it",
                    loaded.version
                ))
                .into());
            }
            let access = Access {
                workspace_id: WorkspaceId::from_uuid(workspace_id),
                user_id: UserId::from_uuid(user),
                role,
            };
            let events = loaded
                .state
                .decide(ItemCommand::new(access, action), &h.domain_context(user))?;
            let state = events.iter().fold(loaded.state.clone(), Aggregate::evolve);
            let stream = StreamRef {
                stream_type: domain::Item::STREAM_TYPE,
                stream_id: target.item_id,
                workspace_id: Some(workspace_id),
            };
            let metadata = h.req.metadata(Some(user), Some(role.as_str()));
            let appended = h
                .writes
                .append(conn, &stream, loaded.expected_version(), events, &metadata)
                .await?;
            authz::confirm_role(conn, workspace_id, user, role, appends).await?;
            let position = appended.as_ref().map(|a| a.position().to_string());
            // The payload is the decided state: the read model now holds the same.
            after = match &appended {
                Some(a) => {
                    Item::from_state(target.item_id, &state, a.stream_version, a.recorded_at)
                        .zip(position.clone())
                }
                None => None,
            };
            Ok(Written {
                id: target.item_id,
                position,
            })
        })
        .await?;
    // Only if this very write committed: a retry racing it may have won with another item.
    let after = after
        .filter(|(_, position)| written.position.as_ref() == Some(position))
        .map(|(item, _)| item);
    Ok((written, after))
}

/// The payload of a mutation that leaves the item in place: as the write left it, else (a
/// retry answered from its stored result, a no-op change) as the read model has it now.
async fn payload(
    ctx: &Context<'_>,
    (written, after): (Written, Option<Item>),
) -> async_graphql::Result<ItemPayload> {
    let item = match after {
        Some(item) => item,
        None => {
            let caller = crate::graphql::query::caller(ctx)?;
            let row = queries::item(lane(ctx)?, written.id, caller)
                .await
                .map_err(ApiError::from)?;
            Item::from(row.ok_or(ApiError::NotFound("item"))?)
        }
    };
    Ok(ItemPayload {
        item,
        position: written.position,
    })
}

fn into_api(err: domain::ValidationError) -> ApiError {
    ApiError::Domain(err.into())
}

fn parse<T>(parsed: Result<T, domain::ValidationError>) -> Result<T, ApiError> {
    parsed.map_err(into_api)
}
