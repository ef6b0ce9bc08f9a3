//! The GraphQL object and enum types, over read-model rows.

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, SubsecRound, Utc};
use projections::queries::{self, InviteRow, ItemRow, MemberRow, UserRow, WorkspaceRow};

use crate::cache::reads;
use sqlx::PgPool;

use super::ids::{Kind, encode};
use super::loaders::UserLoader;
use super::pagination::{self, Counted, Page, TotalCount};
use crate::error::ApiError;

/// A member's role in a workspace.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize)]
#[graphql(remote = "domain::Role")]
pub enum Role {
    /// Everything, including billing and deleting the workspace; at least one per workspace.
    Owner,
    /// Manages members (except owners) and content.
    Admin,
    /// Creates content and edits their own.
    Member,
    /// Reads only.
    Viewer,
}

/// A workspace's plan.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize)]
#[graphql(remote = "domain::Plan")]
pub enum Plan {
    /// Free for 14 days; then exports and invites lock until upgraded.
    Trial,
    /// Paid: nothing locks.
    Pro,
}

/// Where a workspace's data lives; fixed at creation.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize)]
#[graphql(remote = "domain::Region")]
pub enum Region {
    /// The European Union.
    Eu,
    /// The United States.
    Us,
}

/// An item's lifecycle status.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize)]
#[graphql(remote = "domain::ItemStatus")]
pub enum ItemStatus {
    /// Not yet published.
    Draft,
    /// Published.
    Active,
    /// Put away; restorable.
    Archived,
}

/// Parses a value the read model stored from a domain enum's `as_str`.
pub(super) fn stored<T: std::str::FromStr>(value: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| {
        ApiError::Internal(anyhow::anyhow!(
            "read model holds an unknown value `{value}`"
        ))
    })
}

/// The server's pool, for what needs a pool of its own (the job queue's reads, staff roles);
/// read statements go through [`lane`].
pub(crate) fn pool<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a PgPool> {
    Ok(ctx.data::<crate::writes::Writes>()?.log().pool())
}

/// Where the resolvers' read statements run: the pool's connections, handed from one completed
/// statement to the next (see [`crate::database::Lane`]).
pub(crate) fn lane<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a crate::database::Lane> {
    Ok(ctx.data::<crate::writes::Writes>()?.log().lane())
}

/// Where the request's rights are decided from.
pub(crate) fn rights<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a crate::authz::Rights> {
    ctx.data::<crate::authz::Rights>()
}

/// The user `id` (who must exist: ids come from the read models), batched with the other
/// users the request resolves.
pub(super) async fn user(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<User> {
    let row = ctx
        .data::<UserLoader>()?
        .load_one(id)
        .await
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("cannot load users: {err}")))?;
    let caller = ctx.data::<crate::request::RequestContext>()?.principal;
    let row = row.ok_or(ApiError::NotFound("user"))?;
    reads::user(ctx, row.id);
    let is_caller = caller.is_some_and(|caller| caller.user_id == row.id);
    Ok(User { row, is_caller })
}

/// A person with an account.
#[derive(Clone)]
pub struct User {
    pub row: UserRow,
    /// Whether the caller is this user (who alone sees some fields).
    pub is_caller: bool,
}

#[Object]
impl User {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::User, self.row.id)
    }
    /// Email address as given at sign-up (unique, compared case-insensitively).
    async fn email(&self) -> &str {
        &self.row.email
    }
    /// Name shown to others.
    async fn display_name(&self) -> &str {
        &self.row.display_name
    }
    /// The code others can sign up with to reward this user: shown to this user only (null
    /// for everyone else).
    async fn referral_code(&self) -> Option<&str> {
        self.is_caller.then_some(self.row.referral_code.as_str())
    }
    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// The global staff roles this user holds (SUPPORT reads any workspace's audit history
    /// with a recorded reason; ANALYST reads event streams pseudonymised): shown to this user
    /// only (empty for everyone else).
    async fn staff_roles(&self) -> Vec<StaffRole> {
        if !self.is_caller {
            return Vec::new();
        }
        self.row
            .staff_roles
            .iter()
            .filter_map(|r| r.parse::<domain::StaffRole>().ok())
            .map(StaffRole::from)
            .collect()
    }
}

/// A global staff role (not tied to a workspace; granted with `chronicle staff grant`).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::StaffRole")]
pub enum StaffRole {
    /// Reads any workspace's audit history, giving a reason that is recorded.
    Support,
    /// Reads event streams of any workspace, with personal data pseudonymised.
    Analyst,
}

/// A tenant: members and their content.
#[derive(Clone)]
pub struct Workspace(pub WorkspaceRow);

#[Object]
impl Workspace {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Workspace, self.0.id)
    }
    /// Activity counts, kept by the asynchronous `activity` projection: they follow the log
    /// by a moment, so pass a mutation's `position` as `minPosition` to wait for its effect.
    async fn activity(
        &self,
        ctx: &Context<'_>,
        min_position: Option<String>,
    ) -> async_graphql::Result<WorkspaceActivity> {
        use super::query::{ReadModel, consistent};
        reads::uncacheable(ctx, "activity follows the log asynchronously");
        consistent(ctx, min_position.as_deref(), ReadModel::Activity).await?;
        let row = queries::activity(lane(ctx)?, self.0.id)
            .await
            .map_err(ApiError::from)?;
        Ok(WorkspaceActivity {
            events: row.events,
            items_created: row.items_created,
            items_deleted: row.items_deleted,
            last_event_at: row.last_event_at,
        })
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Where the data lives.
    async fn region(&self) -> async_graphql::Result<Region> {
        Ok(stored::<domain::Region>(&self.0.region)?.into())
    }
    /// Current plan.
    async fn plan(&self) -> async_graphql::Result<Plan> {
        Ok(stored::<domain::Plan>(&self.0.plan)?.into())
    }
    /// When the trial ends (or ended).
    async fn trial_ends_at(&self) -> DateTime<Utc> {
        self.0.trial_ends_at
    }
    /// True when the trial has ended without an upgrade: exports and invites are refused
    /// (`FEATURE_LOCKED`) until `upgradePlan`.
    async fn locked(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let plan = stored::<domain::Plan>(&self.0.plan)?;
        let now = ctx.data::<crate::writes::Writes>()?.now();
        let locked = domain::workspace::trial_locked(plan, self.0.trial_ends_at, now);
        if !locked {
            // Without any write, the trial ends then.
            reads::until(ctx, self.0.trial_ends_at);
        }
        Ok(locked)
    }
    /// The caller's role here.
    async fn viewer_role(&self) -> async_graphql::Result<Role> {
        Ok(stored::<domain::Role>(&self.0.viewer_role)?.into())
    }
    /// When the workspace was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the workspace (name, plan, members…) last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Number of changes so far (the event stream's version).
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Members, oldest first (by join time, then user id); `totalCount` counts them all.
    #[graphql(complexity = "super::pagination::complexity(first.or(last), child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(desc = "The last members (of the list, or before `before`): page backward.")]
        last: Option<i32>,
        #[graphql(desc = "Only members before this cursor (with `last`).")] before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Member, TotalCount>> {
        let page = Page::either_way(first, after.as_deref(), last, before.as_deref())?;
        let (db, workspace_id) = (lane(ctx)?, self.0.id);
        let read =
            |after, backward, limit| queries::members(db, workspace_id, after, backward, limit);
        let cursor = |row: &MemberRow| pagination::encode_cursor(&(row.joined_at, row.user_id));
        let count = TotalCount(Counted::Members(workspace_id));
        Ok(page.load(read, cursor, Member, count).await?)
    }
}

/// A user's membership of a workspace.
#[derive(Clone)]
pub struct Member(pub MemberRow);

#[Object]
impl Member {
    /// Global id (of this membership: the workspace and the user).
    pub(crate) async fn id(&self) -> ID {
        super::ids::encode_member(self.0.workspace_id, self.0.user_id)
    }
    /// The member.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        user(ctx, self.0.user_id).await
    }
    /// Their role.
    async fn role(&self) -> async_graphql::Result<Role> {
        Ok(stored::<domain::Role>(&self.0.role)?.into())
    }
    /// When they joined.
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
}

/// Where an invite stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum InviteStatus {
    /// Waiting to be accepted.
    Pending,
    /// Accepted: the invitee is a member.
    Accepted,
    /// Withdrawn by an owner or admin.
    Revoked,
    /// Not accepted within 7 days.
    Expired,
}

/// An invitation to join a workspace.
#[derive(Clone)]
pub struct Invite(pub InviteRow);

#[Object]
impl Invite {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Invite, self.0.id)
    }
    /// Who is invited.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// The role they will have.
    async fn role(&self) -> async_graphql::Result<Role> {
        Ok(stored::<domain::Role>(&self.0.role)?.into())
    }
    /// Where the invite stands now.
    async fn status(&self, ctx: &Context<'_>) -> async_graphql::Result<InviteStatus> {
        let now = ctx.data::<crate::writes::Writes>()?.now();
        Ok(match self.0.status.as_str() {
            "ACCEPTED" => InviteStatus::Accepted,
            "REVOKED" => InviteStatus::Revoked,
            _ if now >= self.0.expires_at => InviteStatus::Expired,
            _ => {
                reads::until(ctx, self.0.expires_at);
                InviteStatus::Pending
            }
        })
    }
    /// When it stops being acceptable.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// When it was sent.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A piece of content in a workspace.
#[derive(Clone)]
pub struct Item {
    pub(crate) row: ItemRow,
    deleted: bool,
}

impl From<ItemRow> for Item {
    /// A live item (from the read model, which holds no deleted items).
    fn from(row: ItemRow) -> Self {
        Item {
            row,
            deleted: false,
        }
    }
}

impl Item {
    /// An item as it was at some point (time travel), possibly already deleted then.
    pub fn historical(row: ItemRow, deleted: bool) -> Item {
        Item { row, deleted }
    }

    /// The item `id` in `state`, at stream `version`, last changed at `updated_at` (when its
    /// last event was recorded, as the read model has it); `None` before it was created.
    pub fn from_state(
        id: uuid::Uuid,
        state: &domain::Item,
        version: u64,
        updated_at: DateTime<Utc>,
    ) -> Option<Item> {
        let row = ItemRow {
            id,
            workspace_id: state.workspace_id()?.as_uuid(),
            title: state.title()?.as_str().to_string(),
            body: state
                .body()
                .map(|b| b.as_str().to_string())
                .unwrap_or_default(),
            tags: state
                .tags()
                .map(|t| t.iter().map(|tag| tag.as_str().to_string()).collect())
                .unwrap_or_default(),
            status: state.status()?.as_str().to_string(),
            author_id: state.author()?.as_uuid(),
            // At the database's precision, as the read model stores it.
            created_at: state.created_at()?.trunc_subsecs(6),
            updated_at,
            version: version as i64,
        };
        Some(Item::historical(row, state.is_deleted()))
    }

    /// The item's workspace.
    pub fn workspace(&self) -> uuid::Uuid {
        self.row.workspace_id
    }
}

#[Object]
impl Item {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Item, self.row.id)
    }
    /// The workspace it belongs to.
    async fn workspace_id(&self) -> ID {
        encode(Kind::Workspace, self.row.workspace_id)
    }
    /// Title, 1–200 characters.
    async fn title(&self) -> &str {
        &self.row.title
    }
    /// Body text, up to 20,000 characters.
    async fn body(&self) -> &str {
        &self.row.body
    }
    /// Up to 20 tags of 1–40 characters.
    async fn tags(&self) -> &[String] {
        &self.row.tags
    }
    /// Lifecycle status.
    async fn status(&self) -> async_graphql::Result<ItemStatus> {
        Ok(stored::<domain::ItemStatus>(&self.row.status)?.into())
    }
    /// Who created it.
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        user(ctx, self.row.author_id).await
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
    }
    /// True only when read as of a time after its deletion (`item(id, asOf)`).
    async fn deleted(&self) -> bool {
        self.deleted
    }
    /// Number of changes so far: pass it as `expectedVersion` to `updateItem`.
    async fn version(&self) -> i64 {
        self.row.version
    }
}

/// A session: who signed in, and the tokens to use.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuthPayload {
    #[graphql(skip)]
    pub user_id: uuid::Uuid,
    /// Send as `Authorization: Bearer …`; short-lived.
    pub access_token: String,
    /// When the access token expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange for new tokens with `refreshToken`; each works once.
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_token_expires_at: DateTime<Utc>,
}

#[ComplexObject]
impl AuthPayload {
    /// The signed-in user.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let user = user(ctx, self.user_id).await?;
        // The session is the caller's, even before the request carried its token.
        Ok(User {
            is_caller: true,
            ..user
        })
    }
}

impl From<crate::auth::Session> for AuthPayload {
    fn from(session: crate::auth::Session) -> Self {
        AuthPayload {
            user_id: session.user_id,
            access_token: session.access_token,
            access_token_expires_at: session.access_expires_at,
            refresh_token: session.refresh_token,
            refresh_token_expires_at: session.refresh_expires_at,
        }
    }
}

/// The outcome of checking a workspace's hash chains.
#[derive(SimpleObject)]
pub struct AuditVerification {
    /// Events whose links were recomputed.
    pub events_checked: u64,
    /// Streams (workspace, items…) checked.
    pub streams_checked: u64,
    /// True when every link holds: nothing was changed, removed or inserted by hand.
    pub intact: bool,
    /// The earliest event (in log order) whose link is broken, if any.
    pub first_broken: Option<BrokenLink>,
}

/// An event that does not chain to its predecessor.
#[derive(SimpleObject)]
pub struct BrokenLink {
    /// Its log position.
    pub position: String,
    /// Its event id.
    pub event_id: uuid::Uuid,
    /// Its version within its stream.
    pub stream_version: u64,
    /// What does not hold.
    pub reason: String,
}

impl From<eventlog::VerifyReport> for AuditVerification {
    fn from(report: eventlog::VerifyReport) -> Self {
        AuditVerification {
            events_checked: report.events_checked,
            streams_checked: report.streams_checked,
            intact: report.first_broken.is_none(),
            first_broken: report.first_broken.map(|link| BrokenLink {
                position: link.position.to_string(),
                event_id: link.event_id,
                stream_version: link.stream_version,
                reason: link.reason.to_string(),
            }),
        }
    }
}

/// How much has happened in a workspace.
#[derive(SimpleObject)]
pub struct WorkspaceActivity {
    /// Events recorded in the workspace.
    pub events: i64,
    pub items_created: i64,
    pub items_deleted: i64,
    /// When the last one was recorded.
    pub last_event_at: Option<DateTime<Utc>>,
}
