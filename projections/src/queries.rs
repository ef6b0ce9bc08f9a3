//! Reads of the inline read models, scoped by membership: a row of a workspace the reader is
//! not a member of is never returned (callers answer `NOT_FOUND`, revealing nothing).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::Error;

/// A row of `users`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub referral_code: String,
    pub staff_roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A row of `workspaces`, with the reader's role in it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub name: String,
    pub region: String,
    pub plan: String,
    pub trial_ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub viewer_role: String,
}

/// A row of `members`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub workspace_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// A row of `invites`.
#[derive(Debug, Clone, PartialEq)]
pub struct InviteRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub email: String,
    pub role: String,
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A row of `exports`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub format: String,
    pub filter: serde_json::Value,
    pub status: String,
    pub requested_by: Uuid,
    pub row_count: Option<i64>,
    pub size_bytes: Option<i64>,
    pub file_id: Option<Uuid>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A row of `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub status: String,
    pub author_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// Which items a list returns.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub status: Option<String>,
    /// Items carrying all of these tags.
    pub tags: Vec<String>,
    pub author_id: Option<Uuid>,
}

impl ItemFilter {
    /// Whether every item passes.
    pub fn restricts_nothing(&self) -> bool {
        self.status.is_none() && self.tags.is_empty() && self.author_id.is_none()
    }
}

impl From<&domain::ExportFilter> for ItemFilter {
    /// The items an export holds.
    fn from(filter: &domain::ExportFilter) -> ItemFilter {
        ItemFilter {
            status: filter.status.map(|s| s.as_str().to_string()),
            tags: filter.tags.iter().map(|t| t.as_str().to_string()).collect(),
            author_id: filter.author_id.map(|a| a.as_uuid()),
        }
    }
}

/// The sort of an item list; ties are broken by id, so pages are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOrder {
    CreatedAsc,
    CreatedDesc,
    UpdatedAsc,
    UpdatedDesc,
    TitleAsc,
    TitleDesc,
}

impl ItemOrder {
    /// The same order, the other way round (for reading a page backward).
    pub fn reversed(self) -> ItemOrder {
        match self {
            ItemOrder::CreatedAsc => ItemOrder::CreatedDesc,
            ItemOrder::CreatedDesc => ItemOrder::CreatedAsc,
            ItemOrder::UpdatedAsc => ItemOrder::UpdatedDesc,
            ItemOrder::UpdatedDesc => ItemOrder::UpdatedAsc,
            ItemOrder::TitleAsc => ItemOrder::TitleDesc,
            ItemOrder::TitleDesc => ItemOrder::TitleAsc,
        }
    }
}

/// Where a page starts: the sort key and id of the last item of the previous page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ItemCursor {
    Time(DateTime<Utc>, Uuid),
    Title(String, Uuid),
}

impl ItemRow {
    /// This row's cursor under `order`.
    pub fn cursor(&self, order: ItemOrder) -> ItemCursor {
        match order {
            ItemOrder::CreatedAsc | ItemOrder::CreatedDesc => {
                ItemCursor::Time(self.created_at, self.id)
            }
            ItemOrder::UpdatedAsc | ItemOrder::UpdatedDesc => {
                ItemCursor::Time(self.updated_at, self.id)
            }
            ItemOrder::TitleAsc | ItemOrder::TitleDesc => {
                ItemCursor::Title(self.title.clone(), self.id)
            }
        }
    }
}

/// A user by id.
pub async fn user(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UserRow>, Error> {
    Ok(sqlx::query_as!(
        UserRow,
        "SELECT id, email, display_name, referral_code, staff_roles, created_at FROM users WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?)
}

/// A user by referral code.
pub async fn user_by_referral_code(
    db: impl PgExecutor<'_>,
    code: &str,
) -> Result<Option<UserRow>, Error> {
    Ok(sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, display_name, referral_code, staff_roles, created_at
           FROM users WHERE referral_code = $1"#,
        code
    )
    .fetch_optional(db)
    .await?)
}

/// The reader's role in a workspace (`None`: not a member, or no such workspace).
pub async fn member_role(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT role FROM members WHERE workspace_id = $1 AND user_id = $2",
        workspace_id,
        user_id
    )
    .fetch_optional(db)
    .await?)
}

/// Like [`member_role`], inside a write's transaction: the membership row is share-locked
/// until the transaction ends, so a concurrent role change or removal (which updates or deletes
/// the row) either waits for the write or is seen by it.
pub async fn member_role_locked(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT role FROM members WHERE workspace_id = $1 AND user_id = $2 FOR SHARE",
        workspace_id,
        user_id
    )
    .fetch_optional(conn)
    .await?)
}

/// A workspace the reader is a member of.
pub async fn workspace(
    db: impl PgExecutor<'_>,
    id: Uuid,
    reader: Uuid,
) -> Result<Option<WorkspaceRow>, Error> {
    Ok(sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.id, w.name, w.region, w.plan, w.trial_ends_at, w.created_at, w.updated_at, w.version,
                  m.role AS viewer_role
           FROM workspaces w JOIN members m ON m.workspace_id = w.id AND m.user_id = $2
           WHERE w.id = $1"#,
        id,
        reader
    )
    .fetch_optional(db)
    .await?)
}

/// One page of a list sorted by a two-column key (`$k1`, `$k2`, ties impossible): the rows of
/// `$select … WHERE <scope condition on $1>` after the cursor `$2`, `$3` (of SQL type
/// `$cursor_type`; none: from the start) in ascending key order — or, `$backward`, those
/// before it in descending order (the caller turns the page around) — at most `$4`.
macro_rules! keyset_page {
    ($db:expr, $row:ty, $backward:expr, $select:literal, $k1:literal, $k2:literal,
     $cursor_type:literal, $scope:expr, $after:expr, $limit:expr) => {{
        let (after_key, after_id) = $after.unzip();
        let args = ($scope, after_key, after_id, $limit);
        if $backward {
            keyset_query!(
                $db,
                $row,
                $select,
                $k1,
                $k2,
                $cursor_type,
                "<",
                "DESC",
                args
            )
        } else {
            keyset_query!($db, $row, $select, $k1, $k2, $cursor_type, ">", "ASC", args)
        }
    }};
}

/// [`keyset_page!`] in one direction: keys `$cmp` the cursor, sorted `$dir`.
macro_rules! keyset_query {
    ($db:expr, $row:ty, $select:literal, $k1:literal, $k2:literal, $cursor_type:literal,
     $cmp:literal, $dir:literal, $args:expr) => {
        sqlx::query_as!(
            $row,
            $select
                + " AND ($2::"
                + $cursor_type
                + " IS NULL OR ("
                + $k1
                + ", "
                + $k2
                + ") "
                + $cmp
                + " ($2, $3)) ORDER BY "
                + $k1
                + " "
                + $dir
                + ", "
                + $k2
                + " "
                + $dir
                + " LIMIT $4",
            $args.0,
            $args.1,
            $args.2,
            $args.3
        )
        .fetch_all($db)
        .await?
    };
}

/// The workspaces the reader is a member of, by name then id, after `after` (name, id); or,
/// `backward`, before it, nearest first.
pub async fn workspaces_of(
    db: impl PgExecutor<'_>,
    reader: Uuid,
    after: Option<(String, Uuid)>,
    backward: bool,
    limit: i64,
) -> Result<Vec<WorkspaceRow>, Error> {
    Ok(keyset_page!(
        db,
        WorkspaceRow,
        backward,
        "SELECT w.id, w.name, w.region, w.plan, w.trial_ends_at, w.created_at, w.updated_at,
                w.version, m.role AS viewer_role
         FROM workspaces w JOIN members m ON m.workspace_id = w.id AND m.user_id = $1
         WHERE true",
        "w.name",
        "w.id",
        "text",
        reader,
        after,
        limit
    ))
}

/// How many workspaces the reader is a member of.
pub async fn count_workspaces_of(db: impl PgExecutor<'_>, reader: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM members WHERE user_id = $1"#,
        reader
    )
    .fetch_one(db)
    .await?)
}

/// Members of a workspace, by join time then user id, after `after` (joined_at, user id); or,
/// `backward`, before it, nearest first.
pub async fn members(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    backward: bool,
    limit: i64,
) -> Result<Vec<MemberRow>, Error> {
    Ok(keyset_page!(
        db,
        MemberRow,
        backward,
        "SELECT workspace_id, user_id, role, joined_at FROM members WHERE workspace_id = $1",
        "joined_at",
        "user_id",
        "timestamptz",
        workspace_id,
        after,
        limit
    ))
}

/// How many members a workspace has.
pub async fn count_members(db: impl PgExecutor<'_>, workspace_id: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM members WHERE workspace_id = $1"#,
        workspace_id
    )
    .fetch_one(db)
    .await?)
}

/// An item in a workspace the reader is a member of.
pub async fn item(
    db: impl PgExecutor<'_>,
    id: Uuid,
    reader: Uuid,
) -> Result<Option<ItemRow>, Error> {
    Ok(sqlx::query_as!(
        ItemRow,
        r#"SELECT i.id, i.workspace_id, i.title, i.body, i.tags, i.status, i.author_id, i.created_at,
                  i.updated_at, i.version
           FROM items i JOIN members m ON m.workspace_id = i.workspace_id AND m.user_id = $2
           WHERE i.id = $1"#,
        id,
        reader
    )
    .fetch_optional(db)
    .await?)
}

/// The items of one workspace among `ids` (in no particular order): search hits, read back
/// from the read model (the caller has checked membership).
pub async fn items_by_ids(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<ItemRow>, Error> {
    Ok(sqlx::query_as!(
        ItemRow,
        r#"SELECT id, workspace_id, title, body, tags, status, author_id, created_at, updated_at,
                  version
           FROM items WHERE workspace_id = $1 AND id = ANY($2)"#,
        workspace_id,
        ids
    )
    .fetch_all(db)
    .await?)
}

/// The largest `limit` [`items`] reads with a statement PostgreSQL plans once per connection:
/// an API page (at most 100 items) plus one.
pub const ITEMS_PLANNED_ONCE_MAX: i64 = 101;

/// One page of a workspace's items (the caller has checked membership).
///
/// Without a filter, and for a page of at most [`ITEMS_PLANNED_ONCE_MAX`] items, the statement is
/// one PostgreSQL can plan once and reuse: its only plan is a walk of the workspace's index for
/// the order, from the cursor, so a generic plan is as good as a custom one for any workspace. The limit is a constant in a subquery (a `LIMIT $n` alone is estimated
/// at a tenth of the workspace's rows, so the generic plan always looked dearer and every call
/// was planned anew: 0.116 ms of planning against 0.102 ms of execution); the outer `LIMIT $n`
/// stops the walk after the page. There is one statement with and one without a cursor, since an
/// optional cursor (`$n IS NULL OR ...`) cannot bound a generic plan's index scan.
///
/// A filtered page keeps being planned for its parameters: a tag filter may be best served by
/// the tags' GIN index, depending on the tags, and a generic plan of the optional filters
/// (`$n IS NULL OR ...`) estimates them so selective that it looks dearer than any custom plan.
macro_rules! items_page {
    ($db:expr, $column:literal, $cmp:literal, $dir:literal, $key_type:literal,
     $workspace:expr, $filter:expr, $after_key:expr, $after_id:expr, $limit:expr) => {{
        // `LIMIT 101` below is `ITEMS_PLANNED_ONCE_MAX` (a statement must be one literal).
        let planned_once = $filter.restricts_nothing() && $limit <= ITEMS_PLANNED_ONCE_MAX;
        match ($after_key.as_ref().zip($after_id), planned_once) {
            (None, true) => sqlx::query_as!(
                ItemRow,
                r#"SELECT id AS "id!", workspace_id AS "workspace_id!", title AS "title!",
                          body AS "body!", tags AS "tags!", status AS "status!",
                          author_id AS "author_id!", created_at AS "created_at!",
                          updated_at AS "updated_at!", version AS "version!"
                   FROM (SELECT id, workspace_id, title, body, tags, status, author_id, created_at,
                                updated_at, version
                         FROM items
                         WHERE workspace_id = $1
                         ORDER BY "# + $column + " " + $dir + ", id " + $dir + "
                         LIMIT 101) AS page
                   LIMIT $2",
                $workspace,
                $limit
            )
            .fetch_all($db)
            .await?,
            (Some((key, id)), true) => sqlx::query_as!(
                ItemRow,
                r#"SELECT id AS "id!", workspace_id AS "workspace_id!", title AS "title!",
                          body AS "body!", tags AS "tags!", status AS "status!",
                          author_id AS "author_id!", created_at AS "created_at!",
                          updated_at AS "updated_at!", version AS "version!"
                   FROM (SELECT id, workspace_id, title, body, tags, status, author_id, created_at,
                                updated_at, version
                         FROM items
                         WHERE workspace_id = $1 AND ("# + $column + ", id) " + $cmp + " ($2, $3)
                         ORDER BY " + $column + " " + $dir + ", id " + $dir + "
                         LIMIT 101) AS page
                   LIMIT $4",
                $workspace,
                key,
                id,
                $limit
            )
            .fetch_all($db)
            .await?,
            (_, false) => sqlx::query_as!(
                ItemRow,
                "SELECT id, workspace_id, title, body, tags, status, author_id, created_at, updated_at, version
                 FROM items
                 WHERE workspace_id = $1
                   AND ($2::text IS NULL OR status = $2)
                   AND tags @> $3::text[]
                   AND ($4::uuid IS NULL OR author_id = $4)
                   AND ($5::" + $key_type + " IS NULL OR (" + $column + ", id) " + $cmp + " ($5, $6))
                 ORDER BY " + $column + " " + $dir + ", id " + $dir + "
                 LIMIT $7",
                $workspace,
                $filter.status.as_deref(),
                &$filter.tags,
                $filter.author_id,
                $after_key,
                $after_id,
                $limit
            )
            .fetch_all($db)
            .await?,
        }
    }};
}

/// Up to `limit` items of a workspace matching `filter`, in `order`, after `after`.
pub async fn items(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    filter: &ItemFilter,
    order: ItemOrder,
    after: Option<ItemCursor>,
    limit: i64,
) -> Result<Vec<ItemRow>, Error> {
    use ItemOrder as O;
    let (time, title, id) = match after {
        Some(ItemCursor::Time(at, id)) => (Some(at), None, Some(id)),
        Some(ItemCursor::Title(title, id)) => (None, Some(title), Some(id)),
        None => (None, None, None),
    };
    // A cursor of the other kind than the order (a client mixing pages) starts from the top.
    Ok(match order {
        O::CreatedAsc => items_page!(
            db,
            "created_at",
            ">",
            "ASC",
            "timestamptz",
            workspace_id,
            filter,
            time,
            id,
            limit
        ),
        O::CreatedDesc => items_page!(
            db,
            "created_at",
            "<",
            "DESC",
            "timestamptz",
            workspace_id,
            filter,
            time,
            id,
            limit
        ),
        O::UpdatedAsc => items_page!(
            db,
            "updated_at",
            ">",
            "ASC",
            "timestamptz",
            workspace_id,
            filter,
            time,
            id,
            limit
        ),
        O::UpdatedDesc => items_page!(
            db,
            "updated_at",
            "<",
            "DESC",
            "timestamptz",
            workspace_id,
            filter,
            time,
            id,
            limit
        ),
        O::TitleAsc => items_page!(
            db,
            "title",
            ">",
            "ASC",
            "text",
            workspace_id,
            filter,
            title,
            id,
            limit
        ),
        O::TitleDesc => items_page!(
            db,
            "title",
            "<",
            "DESC",
            "text",
            workspace_id,
            filter,
            title,
            id,
            limit
        ),
    })
}

/// One membership.
pub async fn member(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<Option<MemberRow>, Error> {
    Ok(sqlx::query_as!(
        MemberRow,
        "SELECT workspace_id, user_id, role, joined_at FROM members WHERE workspace_id = $1 AND user_id = $2",
        workspace_id,
        user_id
    )
    .fetch_optional(db)
    .await?)
}

/// A workspace's invites, oldest first, after `after` (created_at, id); or, `backward`,
/// before it, nearest first.
pub async fn invites(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    backward: bool,
    limit: i64,
) -> Result<Vec<InviteRow>, Error> {
    Ok(keyset_page!(
        db,
        InviteRow,
        backward,
        "SELECT id, workspace_id, email, role, status, expires_at, created_at FROM invites
         WHERE workspace_id = $1",
        "created_at",
        "id",
        "timestamptz",
        workspace_id,
        after,
        limit
    ))
}

/// How many invites a workspace has sent (whatever they became).
pub async fn count_invites(db: impl PgExecutor<'_>, workspace_id: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM invites WHERE workspace_id = $1"#,
        workspace_id
    )
    .fetch_one(db)
    .await?)
}

/// The invite a secret token (by its hash) belongs to.
pub async fn invite_by_token_hash(
    db: impl PgExecutor<'_>,
    token_hash: &str,
) -> Result<Option<InviteRow>, Error> {
    Ok(sqlx::query_as!(
        InviteRow,
        r#"SELECT id, workspace_id, email, role, status, expires_at, created_at FROM invites
           WHERE token_hash = $1"#,
        token_hash
    )
    .fetch_optional(db)
    .await?)
}

/// One invite of a workspace.
pub async fn invite(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<InviteRow>, Error> {
    Ok(sqlx::query_as!(
        InviteRow,
        r#"SELECT id, workspace_id, email, role, status, expires_at, created_at FROM invites
           WHERE workspace_id = $1 AND id = $2"#,
        workspace_id,
        id
    )
    .fetch_optional(db)
    .await?)
}

/// A workspace's exports, oldest first, after `after` (created_at, id); or, `backward`,
/// before it, nearest first.
pub async fn exports(
    db: impl PgExecutor<'_>,
    workspace_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    backward: bool,
    limit: i64,
) -> Result<Vec<ExportRow>, Error> {
    Ok(keyset_page!(
        db,
        ExportRow,
        backward,
        "SELECT id, workspace_id, format, filter, status, requested_by, row_count, size_bytes,
                file_id, error, created_at, completed_at, expires_at
         FROM exports WHERE workspace_id = $1",
        "created_at",
        "id",
        "timestamptz",
        workspace_id,
        after,
        limit
    ))
}

/// How many exports a workspace has asked for (whatever they became).
pub async fn count_exports(db: impl PgExecutor<'_>, workspace_id: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM exports WHERE workspace_id = $1"#,
        workspace_id
    )
    .fetch_one(db)
    .await?)
}

/// Exports by id, whatever their workspace (the caller decides who may see each).
pub async fn exports_with_ids(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<ExportRow>, Error> {
    Ok(sqlx::query_as!(
        ExportRow,
        r#"SELECT id, workspace_id, format, filter, status, requested_by, row_count, size_bytes,
                  file_id, error, created_at, completed_at, expires_at
           FROM exports
           WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await?)
}

/// One export by id, whatever its workspace (the caller decides who may see it).
pub async fn export(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ExportRow>, Error> {
    Ok(exports_with_ids(db, &[id]).await?.pop())
}

/// A user by normalised (lower-cased) email.
pub async fn user_by_email(
    db: impl PgExecutor<'_>,
    email_normalized: &str,
) -> Result<Option<UserRow>, Error> {
    Ok(sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, display_name, referral_code, staff_roles, created_at
           FROM users WHERE email_normalized = $1"#,
        email_normalized
    )
    .fetch_optional(db)
    .await?)
}

/// Users by id (those that exist).
pub async fn users_by_ids(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<UserRow>, Error> {
    Ok(sqlx::query_as!(
        UserRow,
        r#"SELECT id, email, display_name, referral_code, staff_roles, created_at
           FROM users WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await?)
}

/// A workspace's activity counts (`activity` projection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub events: i64,
    pub items_created: i64,
    pub items_deleted: i64,
    pub last_event_at: Option<DateTime<Utc>>,
}

/// The activity counts of a workspace (zero if the projection has seen none of its events).
pub async fn activity(db: impl PgExecutor<'_>, workspace_id: Uuid) -> Result<ActivityRow, Error> {
    let row = sqlx::query_as!(
        ActivityRow,
        r#"SELECT events, items_created, items_deleted, last_event_at AS "last_event_at?"
           FROM workspace_activity WHERE workspace_id = $1"#,
        workspace_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.unwrap_or(ActivityRow {
        events: 0,
        items_created: 0,
        items_deleted: 0,
        last_event_at: None,
    }))
}

// --- Lookups by id for `node`/`nodes` ------------------------------------------------------
// These read rows whatever the reader's rights: the API's authorization module decides, row by
// row, what the caller may see of them (`api::authz`).

/// Items by id, any workspace.
pub async fn items_with_ids(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<ItemRow>, Error> {
    Ok(sqlx::query_as!(
        ItemRow,
        r#"SELECT id, workspace_id, title, body, tags, status, author_id, created_at, updated_at,
                  version
           FROM items WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await?)
}

/// Workspaces by id, each with `reader`'s role (empty when not a member).
pub async fn workspaces_with_ids(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    reader: Uuid,
) -> Result<Vec<WorkspaceRow>, Error> {
    Ok(sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.id, w.name, w.region, w.plan, w.trial_ends_at, w.created_at, w.updated_at,
                  w.version, COALESCE(m.role, '') AS "viewer_role!"
           FROM workspaces w LEFT JOIN members m ON m.workspace_id = w.id AND m.user_id = $2
           WHERE w.id = ANY($1)"#,
        ids,
        reader
    )
    .fetch_all(db)
    .await?)
}

/// Invites by id, any workspace.
pub async fn invites_with_ids(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<InviteRow>, Error> {
    Ok(sqlx::query_as!(
        InviteRow,
        r#"SELECT id, workspace_id, email, role, status, expires_at, created_at FROM invites
           WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(db)
    .await?)
}

/// Memberships by (workspace, user) pairs (`workspaces[i]`, `users[i]`).
pub async fn members_with_ids(
    db: impl PgExecutor<'_>,
    workspaces: &[Uuid],
    users: &[Uuid],
) -> Result<Vec<MemberRow>, Error> {
    Ok(sqlx::query_as!(
        MemberRow,
        r#"SELECT m.workspace_id, m.user_id, m.role, m.joined_at
           FROM members m JOIN UNNEST($1::uuid[], $2::uuid[]) AS k(workspace_id, user_id)
             ON m.workspace_id = k.workspace_id AND m.user_id = k.user_id"#,
        workspaces,
        users
    )
    .fetch_all(db)
    .await?)
}

/// `reader`'s role in each of `workspaces` they are a member of.
pub async fn roles_in(
    db: impl PgExecutor<'_>,
    reader: Uuid,
    workspaces: &[Uuid],
) -> Result<Vec<(Uuid, String)>, Error> {
    let rows = sqlx::query!(
        r#"SELECT workspace_id, role FROM members WHERE user_id = $1 AND workspace_id = ANY($2)"#,
        reader,
        workspaces
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.workspace_id, row.role))
        .collect())
}

/// Which of `users` share at least one workspace with `reader`.
pub async fn co_members(
    db: impl PgExecutor<'_>,
    reader: Uuid,
    users: &[Uuid],
) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT DISTINCT other.user_id AS "user_id!"
           FROM members mine JOIN members other ON other.workspace_id = mine.workspace_id
           WHERE mine.user_id = $1 AND other.user_id = ANY($2)"#,
        reader,
        users
    )
    .fetch_all(db)
    .await?)
}

/// A workspace as staff find it across tenants (no role of the reader's in it).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceListingRow {
    pub id: Uuid,
    pub name: String,
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub members: i64,
}

/// Workspaces whose id is `id`, whose name contains `name_part` (any case), or that have a member
/// with the email `email_normalized`, by name then id, after `after` (name, id).
pub async fn find_workspaces(
    db: impl PgExecutor<'_>,
    id: Option<Uuid>,
    name_part: &str,
    email_normalized: &str,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<WorkspaceListingRow>, Error> {
    let (after_name, after_id) = after.unzip();
    let pattern = format!("%{}%", escape_like(name_part));
    Ok(sqlx::query_as!(
        WorkspaceListingRow,
        r#"SELECT w.id, w.name, w.plan, w.created_at,
                  (SELECT count(*) FROM members c WHERE c.workspace_id = w.id) AS "members!"
           FROM workspaces w
           WHERE (w.id = $1
                  OR w.name ILIKE $2
                  OR w.id IN (SELECT m.workspace_id FROM members m JOIN users u ON u.id = m.user_id
                               WHERE u.email_normalized = $3))
             AND ($4::text IS NULL OR (w.name, w.id) > ($4, $5))
           ORDER BY w.name, w.id
           LIMIT $6"#,
        id,
        pattern,
        email_normalized,
        after_name,
        after_id,
        limit
    )
    .fetch_all(db)
    .await?)
}

/// `text` as a `LIKE` pattern matching itself only (`%`, `_` and `\` escaped).
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
