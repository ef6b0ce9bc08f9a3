//! Read-only entry points. Everything is scoped to the caller's memberships: another
//! workspace's ids answer `NOT_FOUND`.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object};
use eventlog::{EventLog, Position};
use projections::queries::{self, InviteRow, ItemCursor, ItemOrder, WorkspaceRow};
use uuid::Uuid;

use super::audit::{self, AuditEntry, AuditFilter};
use super::directory::{self, WorkspaceListing};
use super::events::{self, Event, EventsFilter, Pseudonymizer};
use super::history::{self, AsOfInput};
use super::ids::{GlobalId, Kind, decode};
use super::node::{Node, NodeLoader};
use super::pagination::{Counted, Page, TotalCount, encode_cursor};
use super::search::{self, SearchConnection, SearchFilter, SearchOrder, SearchRequest};
use super::types::{
    AuditVerification, Invite, Item, ItemStatus, User, Workspace, lane, pool, rights,
};
use crate::authz::{self, Grant, Read};
use crate::cache::reads;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::read_side::ReadSide;
use crate::request::RequestContext;

/// Which items to list.
#[derive(InputObject, Default)]
pub struct ItemFilter {
    /// Only items with this status.
    pub status: Option<ItemStatus>,
    /// Only items carrying all of these tags (at most 20).
    #[graphql(validator(max_items = 20))]
    pub tags: Option<Vec<String>>,
    /// Only items created by this user.
    pub author_id: Option<ID>,
}

/// What to sort items by.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ItemOrderField {
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Title, alphabetically (byte order).
    Title,
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum OrderDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// How to sort items; ties are broken by id, so pages never repeat or skip an item.
#[derive(InputObject)]
pub struct ItemOrderBy {
    pub field: ItemOrderField,
    pub direction: OrderDirection,
}

impl ItemOrderBy {
    fn order(&self) -> ItemOrder {
        use ItemOrderField as F;
        use OrderDirection as D;
        match (self.field, self.direction) {
            (F::CreatedAt, D::Asc) => ItemOrder::CreatedAsc,
            (F::CreatedAt, D::Desc) => ItemOrder::CreatedDesc,
            (F::UpdatedAt, D::Asc) => ItemOrder::UpdatedAsc,
            (F::UpdatedAt, D::Desc) => ItemOrder::UpdatedDesc,
            (F::Title, D::Asc) => ItemOrder::TitleAsc,
            (F::Title, D::Desc) => ItemOrder::TitleDesc,
        }
    }
}

fn request<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestContext> {
    ctx.data::<RequestContext>()
}

/// What a read with `minPosition` reads, and so what must have reached the position.
#[derive(Clone, Copy)]
pub(crate) enum ReadModel {
    /// The inline read models, written with each append: the event must be visible here.
    Inline,
    /// This node's search index.
    Search,
    /// The shared `activity` table, whichever node runs its projection.
    Activity,
}

/// The `minPosition` waits this node runs at once, bounded
/// ([`Limits::max_consistency_waits`]): one more is answered `NOT_YET_CONSISTENT` at once.
pub(crate) struct ConsistencyWaits(tokio::sync::Semaphore);

impl ConsistencyWaits {
    pub(crate) fn new(max: usize) -> ConsistencyWaits {
        ConsistencyWaits(tokio::sync::Semaphore::new(max))
    }
}

/// Waits (bounded) until `model` reflects `min_position`, a position some mutation returned:
/// `NOT_YET_CONSISTENT` if it doesn't in time.
pub(crate) async fn consistent(
    ctx: &Context<'_>,
    min_position: Option<&str>,
    model: ReadModel,
) -> async_graphql::Result<()> {
    let header = ctx
        .data_opt::<RequestContext>()
        .and_then(|request| request.min_position.as_deref());
    let Some(token) = min_position.or(header) else {
        return Ok(());
    };
    let position = events::position(token)?;
    let log = ctx.data::<EventLog>()?;
    if !log
        .may_have_issued(position)
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::BadInput(
            "minPosition is beyond the log's head: no write returned it".into(),
        )
        .into());
    }
    let wait = ctx.data::<Limits>()?.consistency_wait;
    let Ok(_permit) = ctx.data::<ConsistencyWaits>()?.0.try_acquire() else {
        tracing::warn!("too many minPosition waits at once: answering NOT_YET_CONSISTENT");
        return Err(ApiError::NotYetConsistent.into());
    };
    let reached = match model {
        ReadModel::Inline => log
            .wait_until_visible(position, wait)
            .await
            .map_err(ApiError::from)?,
        ReadModel::Search => ctx.data::<ReadSide>()?.search_reaches(position, wait).await,
        ReadModel::Activity => ctx
            .data::<ReadSide>()?
            .activity_reaches(position, wait)
            .await
            .map_err(ApiError::from)?,
    };
    if reached {
        Ok(())
    } else {
        Err(ApiError::NotYetConsistent.into())
    }
}

/// A page of audit entries for the events matching `filter`.
async fn audit_page(
    ctx: &Context<'_>,
    filter: &eventlog::EventFilter,
    newest_first: bool,
    page: Page<'_>,
) -> async_graphql::Result<Connection<String, AuditEntry>> {
    let after = page
        .after::<String>()?
        .map(|p| {
            p.parse::<Position>()
                .map_err(|err| ApiError::BadInput(err.to_string()))
        })
        .transpose()?;
    let limit = usize::try_from(page.fetch()).unwrap_or(usize::MAX);
    // A backward page is read the other way from its cursor, then turned around.
    let events = ctx
        .data::<EventLog>()?
        .read_filtered(filter, after, newest_first != page.backward(), limit)
        .await
        .map_err(ApiError::from)?;
    let entries = audit::entries(ctx, events).await?;
    Ok(page.connection(
        entries,
        |entry| encode_cursor(&entry.position),
        |entry| entry,
    ))
}

/// The caller, who must be signed in.
pub(crate) fn caller(ctx: &Context<'_>) -> async_graphql::Result<Uuid> {
    Ok(request(ctx)?.user()?.user_id)
}

/// Read-only entry points.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let user_id = caller(ctx)?;
        let row = queries::user(lane(ctx)?, user_id)
            .await
            .map_err(ApiError::from)?;
        let row = row.ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
        Ok(User {
            row,
            is_caller: true,
        })
    }

    /// A workspace the caller is a member of — now, or as it was at `asOf`.
    async fn workspace(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Read the workspace as it was at this point, folded from its events.")]
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Answer only once this read reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
    ) -> async_graphql::Result<Workspace> {
        let user_id = caller(ctx)?;
        consistent(ctx, min_position.as_deref(), ReadModel::Inline).await?;
        let id = decode(Kind::Workspace, &id)?;
        reads::workspace(ctx, id);
        if let Some(as_of) = as_of {
            return history::workspace(ctx, user_id, id, as_of).await;
        }
        let row = queries::workspace(lane(ctx)?, id, user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Workspace(row.ok_or(ApiError::NotFound("workspace"))?))
    }

    /// The caller's workspaces, by name (then id); `totalCount` counts them all.
    // Each GraphQL argument is a parameter here.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn workspaces(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Answer only once this read reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last workspaces (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only workspaces before this cursor (with `last`).")] before: Option<
            String,
        >,
    ) -> async_graphql::Result<Connection<String, Workspace, TotalCount>> {
        let user_id = caller(ctx)?;
        consistent(ctx, min_position.as_deref(), ReadModel::Inline).await?;
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        // Which workspaces the caller belongs to is the caller's own scope, always recorded.
        let db = lane(ctx)?;
        let read = |after, backward, limit| async move {
            let rows = queries::workspaces_of(db, user_id, after, backward, limit).await?;
            for row in &rows {
                reads::workspace(ctx, row.id);
            }
            Ok::<_, projections::Error>(rows)
        };
        let cursor = |row: &WorkspaceRow| encode_cursor(&(&row.name, row.id));
        let count = TotalCount(Counted::WorkspacesOf(user_id));
        Ok(page.load(read, cursor, Workspace, count).await?)
    }

    /// A workspace's background jobs whose last run failed, oldest first: retrying ones and
    /// dead ones (owners and admins of the workspace; SUPPORT staff). `totalCount` counts the
    /// workspace's failed jobs. Each is also a `Node`.
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn failed_jobs(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last failed jobs (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only failed jobs before this cursor (with `last`).")] before: Option<
            String,
        >,
    ) -> async_graphql::Result<Connection<String, super::jobs::FailedJob, TotalCount>> {
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        super::jobs::failed_jobs(ctx, workspace_id, page).await
    }

    /// A workspace's exports, oldest first (any member): their state, size and error.
    /// `totalCount` counts every export asked for in the workspace, whatever its state.
    // Each GraphQL argument is a parameter here.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn exports(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Answer only once this read reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
        workspace_id: ID,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last exports (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only exports before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, super::exports::Export, TotalCount>> {
        caller(ctx)?;
        consistent(ctx, min_position.as_deref(), ReadModel::Inline).await?;
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        super::exports::exports(ctx, workspace_id, page).await
    }

    /// A workspace's invites, oldest first (owners and admins). `totalCount` counts every
    /// invite sent from the workspace, whatever became of it.
    // Each GraphQL argument is a parameter here.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn invites(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Answer only once this read reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
        workspace_id: ID,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last invites (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only invites before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Invite, TotalCount>> {
        let user_id = caller(ctx)?;
        consistent(ctx, min_position.as_deref(), ReadModel::Inline).await?;
        let workspace_id = decode(Kind::Workspace, &workspace_id)?;
        let db = lane(ctx)?;
        reads::workspace(ctx, workspace_id);
        authz::workspace(rights(ctx)?, user_id, workspace_id, Read::Invites).await?;
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        let read =
            |after, backward, limit| queries::invites(db, workspace_id, after, backward, limit);
        let cursor = |row: &InviteRow| encode_cursor(&(row.created_at, row.id));
        let count = TotalCount(Counted::Invites(workspace_id));
        Ok(page.load(read, cursor, Invite, count).await?)
    }

    /// An item in one of the caller's workspaces — now, or as it was at `asOf` (then also
    /// after its deletion, marked `deleted`).
    async fn item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Read the item as it was at this point, folded from its events.")]
        as_of: Option<AsOfInput>,
        #[graphql(
            desc = "Answer only once this read reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
    ) -> async_graphql::Result<Item> {
        let user_id = caller(ctx)?;
        consistent(ctx, min_position.as_deref(), ReadModel::Inline).await?;
        let id = decode(Kind::Item, &id)?;
        if let Some(as_of) = as_of {
            return history::item(ctx, user_id, id, as_of).await;
        }
        let row = queries::item(lane(ctx)?, id, user_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("item"))?;
        reads::workspace(ctx, row.workspace_id);
        Ok(Item::from(row))
    }

    /// Full-text search of a workspace's items (members only): every word must match the
    /// title, the body or a tag, tolerating typos (one for words of 5+ letters, two for 9+);
    /// the last word also matches as a prefix. The query is plain words, never a query
    /// language. Answered by this node's search index, which follows the log: pass
    /// `minPosition` to wait until it reflects a write. Every order, relevance included, sorts
    /// by a key unique to each hit (score or date, then item id), so pages go both ways:
    /// `first`/`after` or `last`/`before`. Relevance scores depend on the whole index, so a
    /// write between two pages may move a hit across the cursor (in either direction).
    // Each GraphQL argument is a parameter here.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn search(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Answer only once the search index reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
        workspace_id: ID,
        query: String,
        filter: Option<SearchFilter>,
        order_by: Option<SearchOrder>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(
            desc = "The last hits (of all, or before `before`): page backward. Hits keep their order's sequence; as forward, pages neither repeat nor skip a hit while the index does not change."
        )]
        last: Option<i32>,
        #[graphql(desc = "Only hits before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<SearchConnection> {
        let user_id = caller(ctx)?;
        let request = SearchRequest {
            workspace_id,
            query,
            filter,
            order_by,
            first,
            after,
            last,
            before,
            min_position,
        };
        search::search(ctx, user_id, request).await
    }

    /// A workspace's items: filtered, sorted (newest first by default) and paginated.
    // Each GraphQL argument is a parameter here.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn items(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Answer only once this read reflects the given log position (a consistency token a mutation returned)."
        )]
        min_position: Option<String>,
        workspace_id: ID,
        filter: Option<ItemFilter>,
        order_by: Option<ItemOrderBy>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last items (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only items before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Item>> {
        let user_id = caller(ctx)?;
        consistent(ctx, min_position.as_deref(), ReadModel::Inline).await?;
        let workspace_id = decode(Kind::Workspace, &workspace_id)?;
        let db = lane(ctx)?;
        reads::workspace(ctx, workspace_id);
        authz::workspace(rights(ctx)?, user_id, workspace_id, Read::Content).await?;
        let filter = filter.unwrap_or_default();
        let filter = queries::ItemFilter {
            status: filter
                .status
                .map(|s| domain::ItemStatus::from(s).as_str().to_string()),
            tags: filter.tags.unwrap_or_default(),
            author_id: filter
                .author_id
                .map(|id| decode(Kind::User, &id))
                .transpose()?,
        };
        let order = order_by.map_or(ItemOrder::CreatedDesc, |o| o.order());
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        let read_order = if page.backward() {
            order.reversed()
        } else {
            order
        };
        let rows = queries::items(
            db,
            workspace_id,
            &filter,
            read_order,
            page.after::<ItemCursor>()?,
            page.fetch(),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(page.connection(rows, |row| encode_cursor(&row.cursor(order)), Item::from))
    }

    /// A workspace's audit history: who did what, when, from where, with before and after
    /// values; newest first unless `filter.oldestFirst`. For its owners and admins, and for
    /// SUPPORT staff who give a `reason` (their look is recorded in the workspace's history).
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    // Each GraphQL argument is a parameter here.
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        filter: Option<AuditFilter>,
        #[graphql(
            desc = "Why you look: required of SUPPORT staff reading a workspace they are not an owner or admin of; recorded in that workspace's audit log."
        )]
        reason: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last entries (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only entries before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEntry>> {
        let user_id = caller(ctx)?;
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        let workspace_id = decode(Kind::Workspace, &workspace_id)?;
        reads::workspace(ctx, workspace_id);
        let grant = authz::workspace(rights(ctx)?, user_id, workspace_id, Read::AuditLog).await?;
        if grant == Grant::Support {
            audit::record_staff_access(ctx, workspace_id, user_id, reason).await?;
        }
        let filter = filter.unwrap_or_default();
        let log_filter = filter.to_log_filter(Some(workspace_id), None)?;
        audit_page(ctx, &log_filter, !filter.oldest_first, page).await
    }

    /// The history of one item, oldest first (members of its workspace; also once deleted).
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn item_history(
        &self,
        ctx: &Context<'_>,
        id: ID,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last entries (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only entries before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEntry>> {
        let user_id = caller(ctx)?;
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        let item_id = decode(Kind::Item, &id)?;
        let log = ctx.data::<EventLog>()?;
        let loaded = log
            .load::<domain::Item>(item_id)
            .await
            .map_err(ApiError::from)?;
        let workspace_id = loaded
            .state
            .workspace_id()
            .ok_or(ApiError::NotFound("item"))?
            .as_uuid();
        reads::workspace(ctx, workspace_id);
        authz::content_of(rights(ctx)?, user_id, workspace_id, "item").await?;
        let log_filter = eventlog::EventFilter {
            stream_id: Some(item_id),
            ..Default::default()
        };
        audit_page(ctx, &log_filter, false, page).await
    }

    /// The log in position order: a workspace's events for its owners and admins; any
    /// workspace's (or all) for ANALYST staff, with personal data replaced by stable
    /// pseudonyms. Resume from where you stopped with `filter.afterPosition` or the
    /// connection's cursor; page backward from the newest with `last`/`before`.
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventsFilter>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last events (of the log, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only events before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Event>> {
        let user_id = caller(ctx)?;
        let filter = filter.unwrap_or_default();
        let workspace_id = filter
            .workspace_id
            .as_ref()
            .map(|id| decode(Kind::Workspace, id))
            .transpose()?;
        let grant = authz::log(rights(ctx)?, user_id, workspace_id).await?;
        let (log_filter, from) = filter.to_log_filter(workspace_id)?;
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        if page.backward() && from.is_some() {
            return Err(ApiError::BadInput(
                "page backward (`last`, `before`) or from `filter.afterPosition`, not both".into(),
            )
            .into());
        }
        let cursor = page
            .after::<String>()?
            .map(|p| events::position(&p))
            .transpose()?;
        let after = cursor.max(from);
        let limit = usize::try_from(page.fetch()).unwrap_or(usize::MAX);
        let rows = ctx
            .data::<EventLog>()?
            .read_filtered(&log_filter, after, page.backward(), limit)
            .await
            .map_err(ApiError::from)?;
        let pseudonymizer = ctx.data::<Pseudonymizer>()?;
        Ok(page.connection(
            rows,
            |event| encode_cursor(&event.position.to_string()),
            |event| pseudonymizer.present(event, grant),
        ))
    }

    /// Recomputes the hash chains of a workspace's history and reports the first broken link
    /// (the workspace's owners, and SUPPORT staff).
    async fn verify_audit_trail(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
    ) -> async_graphql::Result<AuditVerification> {
        let user_id = caller(ctx)?;
        let workspace_id = decode(Kind::Workspace, &workspace_id)?;
        authz::workspace(rights(ctx)?, user_id, workspace_id, Read::AuditTrail).await?;
        let report = ctx
            .data::<EventLog>()?
            .verify(Some(workspace_id))
            .await
            .map_err(ApiError::from)?;
        Ok(report.into())
    }

    /// Any object by its global id (Relay's object identification). A malformed id, an
    /// unknown id and the id of something the caller may not see are all `NOT_FOUND`, alike.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Node> {
        caller(ctx)?;
        let not_found = || ApiError::NotFound("node");
        let id = super::ids::parse(&id).map_err(|_| not_found())?;
        let node = ctx
            .data::<NodeLoader>()?
            .load_one(id)
            .await
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("cannot load nodes: {err}")))?
            .ok_or_else(not_found)?;
        node.record_read(ctx);
        Ok(node)
    }

    /// Objects by global ids (at most 100), in the order given: `null` for each id that
    /// `node` would refuse. Loaded in one batch.
    #[graphql(complexity = "ids.len().saturating_mul(child_complexity).saturating_add(1)")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(validator(max_items = 100))] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        caller(ctx)?;
        let parsed: Vec<Option<GlobalId>> =
            ids.iter().map(|id| super::ids::parse(id).ok()).collect();
        let found = ctx
            .data::<NodeLoader>()?
            .load_many(parsed.iter().flatten().copied())
            .await
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("cannot load nodes: {err}")))?;
        let nodes: Vec<Option<Node>> = parsed
            .into_iter()
            .map(|id| id.and_then(|id| found.get(&id).cloned()))
            .collect();
        for node in &nodes {
            match node {
                Some(node) => node.record_read(ctx),
                // What is not found (or not visible) now may be later, with no change to
                // anything the answer read.
                None => reads::uncacheable(ctx, "an id that was not found"),
            }
        }
        Ok(nodes)
    }

    /// The position of the newest event in the log that readers can see now (an opaque string
    /// that sorts like the log). Mutations return the position they wrote.
    async fn log_position(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        caller(ctx)?;
        let log = ctx.data::<EventLog>()?;
        let head = log.head().await.map_err(ApiError::from)?;
        Ok(head.to_string())
    }

    /// Workspaces of any tenant whose name contains `search` (any case), whose id it is, or
    /// with a member whose email it is, by name (SUPPORT and ANALYST staff only: the console's
    /// finder). What is inside a workspace stays behind its own rights (`auditLog`,
    /// `verifyAuditTrail`, `events`).
    #[graphql(complexity = "super::pagination::complexity(first, child_complexity)")]
    async fn workspace_directory(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "A name or part of one, a workspace id, or a member's email (at most 200 characters)."
        )]
        search: String,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, WorkspaceListing>> {
        let user_id = caller(ctx)?;
        let pool = pool(ctx)?;
        authz::directory(pool, user_id).await?;
        reads::uncacheable(ctx, "staff look across tenants");
        let search = search.trim();
        if search.is_empty() || search.chars().count() > directory::MAX_SEARCH {
            let message = format!("`search` must be 1 to {} characters", directory::MAX_SEARCH);
            return Err(ApiError::BadInput(message).into());
        }
        let page = Page::new(first, after.as_deref())?;
        // A global id, or the raw UUID logs and the CLI show.
        let id = decode(Kind::Workspace, &ID::from(search))
            .ok()
            .or_else(|| Uuid::parse_str(search).ok());
        let rows = queries::find_workspaces(
            pool,
            id,
            search,
            &search.to_lowercase(),
            page.after()?,
            page.fetch(),
        )
        .await
        .map_err(ApiError::from)?;
        let rows = rows
            .into_iter()
            .map(WorkspaceListing::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.connection(rows, |row| encode_cursor(&(&row.name, &row.id)), |row| row))
    }

    /// The version of the Chronicle server answering (signed-in callers only: it tells an
    /// attacker which known flaws to try).
    async fn server_version(&self, ctx: &Context<'_>) -> async_graphql::Result<&'static str> {
        caller(ctx)?;
        Ok(env!("CARGO_PKG_VERSION"))
    }
}
