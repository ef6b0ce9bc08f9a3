//! Inline read models: `users`, `workspaces`, `members`, `invites`, `exports`, `items`, and the
//! ledgers of job effects (`invite_emails`, `referral_rewards`, `weekly_summaries`).
//!
//! [`apply`] is the only code that writes these tables. It runs inside the appending
//! transaction (live) and in [`rebuild`] (replay), so both produce the same rows. Every value
//! written comes from the event and its envelope (version, recorded time), never from the
//! clock, which is what makes a rebuild equal to the live tables.

use chrono::{DateTime, Utc};
use domain::{Aggregate, Item, ItemEvent, Tags, User, UserEvent, Workspace, WorkspaceEvent};
use eventlog::aggregates::decode;
use eventlog::{EventLog, RecordedEvent};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use crate::{Error, shadow};

/// A domain event of any aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    User(UserEvent),
    Workspace(WorkspaceEvent),
    Item(ItemEvent),
}

impl From<UserEvent> for AnyEvent {
    fn from(event: UserEvent) -> Self {
        AnyEvent::User(event)
    }
}

impl From<WorkspaceEvent> for AnyEvent {
    fn from(event: WorkspaceEvent) -> Self {
        AnyEvent::Workspace(event)
    }
}

impl From<ItemEvent> for AnyEvent {
    fn from(event: ItemEvent) -> Self {
        AnyEvent::Item(event)
    }
}

impl AnyEvent {
    /// Decodes a recorded event by its stream type; `None` for streams no read model follows.
    pub fn decode(recorded: &RecordedEvent) -> Result<Option<AnyEvent>, eventlog::Error> {
        Ok(match recorded.stream_type.as_str() {
            User::STREAM_TYPE => Some(AnyEvent::User(decode(recorded)?)),
            Workspace::STREAM_TYPE => Some(AnyEvent::Workspace(decode(recorded)?)),
            Item::STREAM_TYPE => Some(AnyEvent::Item(decode(recorded)?)),
            _ => None,
        })
    }
}

/// The notice every node hears when the transaction that changed `members` commits (a member
/// added, their role changed, removed, or the read models rebuilt): nodes that remember roles
/// forget them.
pub const MEMBERS_CHANGED: &str = "members-changed";

/// An event with the envelope fields the read models record.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub recorded_at: DateTime<Utc>,
    pub event: &'a AnyEvent,
}

/// Applies one event to the read models, on the caller's connection (normally inside the
/// transaction that appended it).
pub async fn apply(conn: &mut PgConnection, envelope: Envelope<'_>) -> Result<(), Error> {
    let Envelope {
        stream_id: id,
        stream_version,
        recorded_at: at,
        event,
    } = envelope;
    let version = stream_version as i64;
    match event {
        AnyEvent::User(event) => apply_user(conn, id, version, at, event).await,
        AnyEvent::Workspace(event) => apply_workspace(conn, id, version, at, event).await,
        AnyEvent::Item(event) => apply_item(conn, id, version, at, event).await,
    }
}

async fn apply_user(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    at: DateTime<Utc>,
    event: &UserEvent,
) -> Result<(), Error> {
    match event {
        UserEvent::UserSignedUp {
            user_id: _,
            email,
            display_name,
            referral_code,
            referred_by,
        } => {
            sqlx::query!(
                r#"INSERT INTO users (id, email, email_normalized, display_name, referral_code, referred_by,
                                      created_at, updated_at, version)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)"#,
                id,
                email.as_str(),
                email.normalized(),
                display_name.as_str(),
                referral_code.as_str(),
                referred_by.map(|u| u.as_uuid()),
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::UserRenamed { to, .. } => {
            sqlx::query!(
                "UPDATE users SET display_name = $2, updated_at = $3, version = $4 WHERE id = $1",
                id,
                to.as_str(),
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::StaffRoleGranted { role } => {
            sqlx::query!(
                r#"UPDATE users SET staff_roles = array_append(array_remove(staff_roles, $2), $2),
                                    updated_at = $3, version = $4
                   WHERE id = $1"#,
                id,
                role.as_str(),
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::ReferralRewarded {
            referred_user,
            workspaces,
        } => {
            sqlx::query!(
                "UPDATE users SET updated_at = $2, version = $3 WHERE id = $1",
                id,
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
            let workspaces: Vec<Uuid> = workspaces.iter().map(|w| w.as_uuid()).collect();
            sqlx::query!(
                "INSERT INTO referral_rewards (referred_user, referrer, workspaces, rewarded_at)
                 VALUES ($1, $2, $3, $4)",
                referred_user.as_uuid(),
                id,
                &workspaces,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::StaffRoleRevoked { role } => {
            sqlx::query!(
                r#"UPDATE users SET staff_roles = array_remove(staff_roles, $2), updated_at = $3, version = $4
                   WHERE id = $1"#,
                id,
                role.as_str(),
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn apply_workspace(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    at: DateTime<Utc>,
    event: &WorkspaceEvent,
) -> Result<(), Error> {
    use WorkspaceEvent as E;
    if let E::WorkspaceCreated {
        workspace_id: _,
        name,
        region,
        plan,
        trial_ends_at,
        owner,
        created_at,
    } = event
    {
        sqlx::query!(
            r#"INSERT INTO workspaces (id, name, region, plan, trial_ends_at, created_at, updated_at, version)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
            id,
            name.as_str(),
            region.as_str(),
            plan.as_str(),
            trial_ends_at,
            created_at,
            at,
            version
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            "INSERT INTO members (workspace_id, user_id, role, joined_at) VALUES ($1, $2, 'OWNER', $3)",
            id,
            owner.as_uuid(),
            at
        )
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }

    // Every later event moves the workspace's version; some also change a column or a member.
    let (name, plan, trial_ends_at) = match event {
        E::WorkspaceRenamed { to, .. } => (Some(to.as_str()), None, None),
        E::PlanUpgraded { to, .. } => (None, Some(to.as_str()), None),
        E::TrialExtended { to, .. } => (None, None, Some(*to)),
        _ => (None, None, None),
    };
    sqlx::query!(
        r#"UPDATE workspaces
           SET name = COALESCE($2, name), plan = COALESCE($3, plan),
               trial_ends_at = COALESCE($4, trial_ends_at), updated_at = $5, version = $6
           WHERE id = $1"#,
        id,
        name,
        plan,
        trial_ends_at,
        at,
        version
    )
    .execute(&mut *conn)
    .await?;
    match event {
        E::MemberAdded { user_id, role } => {
            sqlx::query!(
                "INSERT INTO members (workspace_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
                id,
                user_id.as_uuid(),
                role.as_str(),
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::MemberRoleChanged { user_id, to, .. } => {
            sqlx::query!(
                "UPDATE members SET role = $3 WHERE workspace_id = $1 AND user_id = $2",
                id,
                user_id.as_uuid(),
                to.as_str()
            )
            .execute(&mut *conn)
            .await?;
        }
        E::InviteCreated {
            invite_id,
            email,
            role,
            token_hash,
            expires_at,
        } => {
            sqlx::query!(
                r#"INSERT INTO invites (id, workspace_id, email, role, token_hash, status, expires_at,
                                        created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $7)"#,
                invite_id.as_uuid(),
                id,
                email.as_str(),
                role.as_str(),
                token_hash,
                expires_at,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::InviteEmailSent {
            invite_id,
            message_id,
        } => {
            sqlx::query!(
                "INSERT INTO invite_emails (invite_id, workspace_id, message_id, sent_at)
                 VALUES ($1, $2, $3, $4)",
                invite_id.as_uuid(),
                id,
                message_id,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::WeeklySummarySent { summary } => {
            sqlx::query!(
                "INSERT INTO weekly_summaries (workspace_id, week, message_id, sent_at)
                 VALUES ($1, $2, $3, $4)",
                id,
                summary.week.to_string(),
                summary.message_id,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::InviteAccepted { invite_id, .. } | E::InviteRevoked { invite_id } => {
            let status = if matches!(event, E::InviteAccepted { .. }) {
                "ACCEPTED"
            } else {
                "REVOKED"
            };
            sqlx::query!(
                "UPDATE invites SET status = $2, updated_at = $3 WHERE id = $1",
                invite_id.as_uuid(),
                status,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::MemberRemoved { user_id, .. } => {
            sqlx::query!(
                "DELETE FROM members WHERE workspace_id = $1 AND user_id = $2",
                id,
                user_id.as_uuid()
            )
            .execute(&mut *conn)
            .await?;
        }
        E::ExportRequested { .. } | E::ExportCompleted { .. } | E::ExportFailed { .. } => {
            apply_export(conn, id, at, event).await?;
        }
        _ => {}
    }
    if matches!(
        event,
        E::MemberAdded { .. } | E::MemberRoleChanged { .. } | E::MemberRemoved { .. }
    ) {
        EventLog::notify_nodes(conn, MEMBERS_CHANGED).await?;
    }
    Ok(())
}

/// The `exports` row of an export event of workspace `workspace_id`.
async fn apply_export(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    at: DateTime<Utc>,
    event: &WorkspaceEvent,
) -> Result<(), Error> {
    use WorkspaceEvent as E;
    match event {
        E::ExportRequested {
            export_id,
            format,
            requested_by,
            filter,
        } => {
            let filter = serde_json::to_value(filter).expect("a filter serialises");
            sqlx::query!(
                r#"INSERT INTO exports (id, workspace_id, format, filter, status, requested_by,
                                        created_at, updated_at)
                   VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $6)"#,
                export_id.as_uuid(),
                workspace_id,
                format.as_str(),
                filter,
                requested_by.as_uuid(),
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::ExportCompleted {
            export_id,
            row_count,
            size_bytes,
            file_id,
            expires_at,
        } => {
            sqlx::query!(
                r#"UPDATE exports
                   SET status = 'COMPLETED', row_count = $2, size_bytes = $3, file_id = $4,
                       error = NULL, completed_at = $5, expires_at = $6, updated_at = $5
                   WHERE id = $1"#,
                export_id.as_uuid(),
                i64::try_from(*row_count).unwrap_or(i64::MAX),
                i64::try_from(*size_bytes).unwrap_or(i64::MAX),
                file_id,
                at,
                expires_at
            )
            .execute(&mut *conn)
            .await?;
        }
        E::ExportFailed { export_id, reason } => {
            sqlx::query!(
                "UPDATE exports SET status = 'FAILED', error = $2, updated_at = $3 WHERE id = $1",
                export_id.as_uuid(),
                reason,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn apply_item(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    at: DateTime<Utc>,
    event: &ItemEvent,
) -> Result<(), Error> {
    use ItemEvent as E;
    let tag_strings = |tags: &Tags| {
        tags.iter()
            .map(|t| t.as_str().to_string())
            .collect::<Vec<_>>()
    };
    let (title, body, tags, status) = match event {
        E::ItemCreated {
            item_id: _,
            workspace_id,
            title,
            body,
            tags,
            status,
            author,
            created_at,
        } => {
            sqlx::query!(
                r#"INSERT INTO items (id, workspace_id, title, body, tags, status, author_id, created_at, updated_at, version)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
                id,
                workspace_id.as_uuid(),
                title.as_str(),
                body.as_str(),
                &tag_strings(tags),
                status.as_str(),
                author.as_uuid(),
                created_at,
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        E::ItemDeleted { .. } => {
            sqlx::query!("DELETE FROM items WHERE id = $1", id)
                .execute(&mut *conn)
                .await?;
            return Ok(());
        }
        E::ItemRetitled { to, .. } => (Some(to.as_str()), None, None, None),
        E::ItemBodyEdited { to, .. } => (None, Some(to.as_str()), None, None),
        E::ItemRetagged { to, .. } => (None, None, Some(tag_strings(to)), None),
        E::ItemPublished { .. } => (None, None, None, Some(domain::ItemStatus::Active)),
        E::ItemArchived { .. } => (None, None, None, Some(domain::ItemStatus::Archived)),
        E::ItemRestored { to, .. } => (None, None, None, Some(*to)),
    };
    sqlx::query!(
        r#"UPDATE items
           SET title = COALESCE($2, title), body = COALESCE($3, body), tags = COALESCE($4, tags),
               status = COALESCE($5, status), updated_at = $6, version = $7
           WHERE id = $1"#,
        id,
        title,
        body,
        tags.as_deref(),
        status.map(|s| s.as_str()),
        at,
        version
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The inline read models, parents before children.
const TABLES: [&str; 9] = [
    "users",
    "workspaces",
    "members",
    "invites",
    "invite_emails",
    "referral_rewards",
    "weekly_summaries",
    "exports",
    "items",
];
/// Events read per query while rebuilding.
const REBUILD_BATCH: usize = 2_000;

/// Rebuilds the inline read models from the log beside the live tables, then replaces the
/// live rows with the rebuilt ones in one transaction; returns the number of events applied.
/// `progress` hears the number applied so far after each batch.
///
/// 1. Empty copies of the tables are made in the schema `projection_rebuild` (the same SQL
///    writes them: [`apply`] names its tables unqualified, resolved through `search_path`).
/// 2. The events before the read horizon of the moment — a set no commit can change any more —
///    are replayed into the copies, by stream type (users and workspaces before what refers to
///    them), each stream in version order, in batches: each batch is read by one statement and
///    written in one short transaction. No transaction stays open across the replay, so the
///    rebuild never holds the read horizon (and every log reader on every node) back.
/// 3. The swap: the live tables are locked against writers (readers go on reading), the events
///    from the horizon on are applied to the copies, and the live rows are replaced by the
///    copies' rows. Readers see the old rows until the commit, the rebuilt ones after it;
///    writers wait only for this last step.
pub async fn rebuild(log: &EventLog, mut progress: impl FnMut(u64)) -> Result<u64, Error> {
    rebuild_with(log, async |applied| progress(applied)).await
}

/// [`rebuild`], awaiting `after_batch` (with the number applied so far) after each batch is
/// committed — a test can check that readers make progress while a rebuild runs.
#[tracing::instrument(skip_all)]
pub async fn rebuild_with(
    log: &EventLog,
    mut after_batch: impl AsyncFnMut(u64),
) -> Result<u64, Error> {
    let mut conn = log.pool().acquire().await?;
    shadow::create(&mut conn, &TABLES).await?;

    let horizon = log.horizon().await?;
    let mut applied = 0;
    for stream_type in [User::STREAM_TYPE, Workspace::STREAM_TYPE, Item::STREAM_TYPE] {
        let mut after = None;
        loop {
            let batch = log
                .read_streams_of_type_below(stream_type, horizon, after, REBUILD_BATCH)
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some((last.stream_id, last.stream_version));
            let mut tx = conn.begin().await?;
            shadow::write_here(&mut tx).await?;
            applied += replay(&mut tx, &batch).await?;
            tx.commit().await?;
            after_batch(applied).await;
        }
    }

    let mut tx = lock_live_tables(&mut conn).await?;
    shadow::write_here(&mut tx).await?;
    // Appends that committed before the lock: every event from the horizon on. (An append still
    // open writes its read models after the swap, into the rebuilt rows.)
    let mut late = log.read_from_in(&mut tx, horizon).await?;
    let rank = |stream_type: &str| match stream_type {
        User::STREAM_TYPE => 0,
        Workspace::STREAM_TYPE => 1,
        _ => 2,
    };
    late.sort_by_key(|e| rank(&e.stream_type));
    applied += replay(&mut tx, &late).await?;
    let mut swap = String::new();
    for table in TABLES.iter().rev() {
        swap.push_str(&format!("DELETE FROM public.{table};"));
    }
    for table in TABLES {
        swap.push_str(&format!(
            "INSERT INTO public.{table} SELECT * FROM projection_rebuild.{table};
             DROP TABLE projection_rebuild.{table};"
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(swap))
        .execute(&mut *tx)
        .await?;
    EventLog::notify_nodes(&mut tx, MEMBERS_CHANGED).await?;
    tx.commit().await?;
    Ok(applied)
}

/// How long the swap waits for its table locks in one try.
const SWAP_LOCK_TRY: &str = "200ms";
/// How many tries it makes before giving up.
const SWAP_LOCK_TRIES: usize = 300;

/// A transaction on `conn` holding the live tables locked against writers. Writers lock
/// `items` and `members` in either order (an item write that starts a stream share-locks its
/// author's `members` row before it inserts the item; one that extends a stream does it last,
/// see `api::authz::role_for_write`), so no order of taking the tables one by one is safe from
/// a deadlock: each try waits a moment for all of them and, failing that, lets go of those it
/// took (the writers go on) and tries again.
async fn lock_live_tables(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, Error> {
    let live = TABLES
        .iter()
        .rev()
        .map(|t| format!("public.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lock =
        format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TRY}'; LOCK TABLE {live} IN EXCLUSIVE MODE");
    let mut tx = conn.begin().await?;
    let mut tries = 0;
    loop {
        tries += 1;
        // A savepoint: rolling back to it lets go of the locks taken since.
        let mut attempt = tx.begin().await?;
        match sqlx::raw_sql(sqlx::AssertSqlSafe(lock.clone()))
            .execute(&mut *attempt)
            .await
        {
            Ok(_) => {
                attempt.commit().await?;
                break;
            }
            // lock_not_available: a writer holds one of the tables.
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("55P03") && tries < SWAP_LOCK_TRIES =>
            {
                attempt.rollback().await?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    sqlx::raw_sql("SET LOCAL lock_timeout = DEFAULT")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Applies recorded events to the read models on `conn`; returns how many it applied.
async fn replay(conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<u64, Error> {
    let mut applied = 0;
    for recorded in events {
        if let Some(event) = AnyEvent::decode(recorded)? {
            let envelope = Envelope {
                stream_id: recorded.stream_id,
                stream_version: recorded.stream_version,
                recorded_at: recorded.recorded_at,
                event: &event,
            };
            apply(conn, envelope).await?;
            applied += 1;
        }
    }
    Ok(applied)
}
