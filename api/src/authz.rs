//! Who may read what (SPEC §2, §8): the one place where the API decides a caller's rights
//! over a workspace, for every resolver, subscription and HTTP route. Writes are decided by
//! the aggregates in `domain` (which are given the caller's role from here, see
//! [`role_for_write`]); reads are decided by [`workspace`] and [`log`].
//!
//! | what | OWNER | ADMIN | MEMBER | VIEWER | SUPPORT staff | ANALYST staff | anyone else |
//! |---|---|---|---|---|---|---|---|
//! | workspace, members, items, search, item history, `itemChanged`, exports (`exports`, `Export` nodes, the `/exports/{id}` download) | yes | yes | yes | yes | – | – | `NOT_FOUND` |
//! | invites | yes | yes | `FORBIDDEN` | `FORBIDDEN` | – | – | `NOT_FOUND` |
//! | audit log | yes | yes | `FORBIDDEN` | `FORBIDDEN` | with a recorded reason | – | `NOT_FOUND` |
//! | failed background jobs (`failedJobs`, `FailedJob` nodes, `retryJob`) | yes | yes | `FORBIDDEN` | `FORBIDDEN` | yes | – | `NOT_FOUND` |
//! | verify the audit trail | yes | `FORBIDDEN` | `FORBIDDEN` | `FORBIDDEN` | yes | – | `NOT_FOUND` |
//! | the raw log (`events`, its subscription, `/events.ndjson`) | in clear | in clear | `FORBIDDEN` | `FORBIDDEN` | – | pseudonymised | `NOT_FOUND` |
//! | a user (by id, `node`) | themself, and anyone sharing a workspace with them |||||||
//! | find workspaces across tenants (`workspaceDirectory`, the console's finder) | `FORBIDDEN` | `FORBIDDEN` | `FORBIDDEN` | `FORBIDDEN` | yes | yes | `FORBIDDEN` |
//! | use the console at all ([`may_use_console`]; then each page reads as above) | yes | yes | no (in no workspace) | no | yes | yes | no |
//!
//! The raw log carries what the audit log shows — client addresses, user agents, request ids,
//! staff reasons, invitees' emails — so it is readable by exactly those who may read the
//! audit log in clear (owners and admins), and by ANALYST staff only pseudonymised. Members
//! and viewers follow their workspace through the typed queries and `itemChanged` instead.
//! A caller who is both a member and staff gets whichever of the two grants the read.

use std::collections::{HashMap, HashSet};

use domain::{DomainError, Role, StaffRole};
use projections::queries;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::ApiError;
use crate::remembered::Remembered;

/// The notice a node sends when a membership changes (a member added, their role changed,
/// removed; the read models rebuilt).
pub use projections::inline::MEMBERS_CHANGED;

/// Members' roles remembered at most (the least recently used are forgotten first).
const ROLES_CAPACITY: u64 = 100_000;
/// How long a role is remembered without being read again.
const ROLES_REMEMBERED_FOR: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Where reads' rights are decided from: the read models, and the members' roles this node
/// remembers when it follows the log's notices (see [`crate::remembered`]; a role is then
/// served from memory until a change of any membership is heard of: this node forgets at the
/// commit of its own changes, other nodes when the notice arrives). Writes never use what is
/// remembered: they lock the membership row ([`role_for_write`]).
#[derive(Clone)]
pub struct Rights {
    pool: PgPool,
    roles: Option<Remembered<(Uuid, Uuid), Role>>,
}

impl Rights {
    /// Rights read from `pool` every time.
    pub fn new(pool: PgPool) -> Rights {
        Rights { pool, roles: None }
    }

    /// These rights, with members' roles remembered while `log` brings every membership
    /// change's notice.
    pub fn remembering_roles(self, log: &eventlog::EventLog) -> Rights {
        let roles = Remembered::follow(log, MEMBERS_CHANGED, ROLES_CAPACITY, ROLES_REMEMBERED_FOR);
        Rights {
            roles: Some(roles),
            ..self
        }
    }

    /// This node changed a membership: forget every role remembered, at once.
    pub fn forget_roles(&self) {
        if let Some(roles) = &self.roles {
            roles.forget_all();
        }
    }

    /// The database rights are read from.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `user_id`'s role in `workspace_id`, if a member.
    async fn member_role(
        &self,
        workspace_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<Role>, ApiError> {
        let read = async {
            queries::member_role(&self.pool, workspace_id, user_id)
                .await?
                .as_deref()
                .map(stored_role)
                .transpose()
        };
        match &self.roles {
            Some(roles) => roles.get_or_read((workspace_id, user_id), read).await,
            None => read.await,
        }
    }
}

/// A kind of read of one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The workspace itself, its members and content (its exports too): any member.
    Content,
    /// Its invites (emails of people not yet members): owners and admins.
    Invites,
    /// Its audit history: owners and admins; SUPPORT staff with a reason.
    AuditLog,
    /// Recomputing its hash chains: owners; SUPPORT staff.
    AuditTrail,
    /// Its raw events: owners and admins in clear; ANALYST staff pseudonymised.
    Events,
    /// Its failed background jobs, seen and retried: owners and admins; SUPPORT staff.
    Jobs,
}

/// How a read was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// As a member with this role: everything the read covers, in clear.
    Member(Role),
    /// As SUPPORT staff: the caller must give a reason, which is recorded.
    Support,
    /// As ANALYST staff: personal data must be pseudonymised.
    Analyst,
}

impl Grant {
    /// Whether what is read must be pseudonymised.
    pub fn pseudonymised(self) -> bool {
        self == Grant::Analyst
    }
}

/// Decides whether `user_id` may make the read `what` of `workspace_id`: `NOT_FOUND` for
/// anyone who may not know the workspace exists, `FORBIDDEN` for members whose role is not
/// enough.
pub async fn workspace(
    rights: &Rights,
    user_id: Uuid,
    workspace_id: Uuid,
    what: Read,
) -> Result<Grant, ApiError> {
    let role = rights.member_role(workspace_id, user_id).await?;
    let staff = match role {
        Some(role) if member_may(role, what) => Vec::new(),
        _ => staff_roles(&rights.pool, user_id).await?,
    };
    decide(role, &staff, what)
}

/// [`Read::Content`] of the workspace that holds something else the caller asked for (an
/// item): `NOT_FOUND` names that thing, so a stranger learns nothing about the workspace.
pub async fn content_of(
    rights: &Rights,
    user_id: Uuid,
    workspace_id: Uuid,
    thing: &'static str,
) -> Result<Role, ApiError> {
    match workspace(rights, user_id, workspace_id, Read::Content).await {
        Ok(Grant::Member(role)) => Ok(role),
        Ok(_) | Err(ApiError::NotFound(_)) => Err(ApiError::NotFound(thing)),
        Err(err) => Err(err),
    }
}

/// Whether a member with `role` may make the read `what`.
pub fn member_may(role: Role, what: Read) -> bool {
    use Role::{Admin, Owner};
    match what {
        Read::Content => true,
        Read::Invites | Read::AuditLog | Read::Events | Read::Jobs => {
            matches!(role, Owner | Admin)
        }
        Read::AuditTrail => role == Owner,
    }
}

/// The rule itself, without IO (see the table in the module's documentation): a member's role
/// first, then a staff role, else refused.
fn decide(role: Option<Role>, staff: &[StaffRole], what: Read) -> Result<Grant, ApiError> {
    if let Some(role) = role
        && member_may(role, what)
    {
        return Ok(Grant::Member(role));
    }
    match what {
        Read::AuditLog | Read::AuditTrail | Read::Jobs if staff.contains(&StaffRole::Support) => {
            return Ok(Grant::Support);
        }
        Read::Events if staff.contains(&StaffRole::Analyst) => return Ok(Grant::Analyst),
        _ => {}
    }
    if role.is_none() {
        return Err(ApiError::NotFound("workspace"));
    }
    let refusal = match what {
        Read::Content => "only members read the workspace",
        Read::Invites => "only owners and admins see invites",
        Read::AuditLog => "only owners and admins read the audit log",
        Read::AuditTrail => "only owners and support staff verify the audit trail",
        Read::Jobs => "only owners, admins and support staff see and retry failed jobs",
        Read::Events => {
            "the raw event log is audit data: only owners and admins read it (members follow items, itemHistory and itemChanged)"
        }
    };
    Err(ApiError::Domain(DomainError::forbidden(refusal)))
}

/// A caller's standing towards many workspaces at once, for reads of many objects by id
/// (`nodes`): their role in each they belong to, and their staff roles. Each object is then
/// decided by the same rule as [`workspace`].
pub struct Standing {
    roles: HashMap<Uuid, Role>,
    staff: Vec<StaffRole>,
}

impl Standing {
    /// Loads `user_id`'s standing towards `workspaces` (two queries, however many).
    pub async fn load(
        pool: &PgPool,
        user_id: Uuid,
        workspaces: &[Uuid],
    ) -> Result<Standing, ApiError> {
        let mut roles = HashMap::new();
        for (workspace_id, role) in queries::roles_in(pool, user_id, workspaces).await? {
            roles.insert(workspace_id, stored_role(&role)?);
        }
        Ok(Standing {
            roles,
            staff: staff_roles(pool, user_id).await?,
        })
    }

    /// Decides the read `what` of `workspace_id`, as [`workspace`] does.
    pub fn may(&self, workspace_id: Uuid, what: Read) -> Result<Grant, ApiError> {
        decide(self.roles.get(&workspace_id).copied(), &self.staff, what)
    }

    /// Decides a read of an event of the raw log, as [`log`] does: one of a workspace, or
    /// one of no workspace (a user's), which only ANALYST staff read.
    pub fn may_read_event(&self, workspace_id: Option<Uuid>) -> Result<Grant, ApiError> {
        match workspace_id {
            Some(workspace_id) => self.may(workspace_id, Read::Events),
            None if self.staff.contains(&StaffRole::Analyst) => Ok(Grant::Analyst),
            None => Err(ApiError::NotFound("event")),
        }
    }
}

/// Whether someone with the staff roles `staff` and the workspace roles `roles` may use the
/// console at all (SPEC §1): staff, and those who may read a workspace's audit log (its owners
/// and admins). What each page then shows is decided read by read, as for any client.
pub fn may_use_console(staff: &[StaffRole], roles: &[Role]) -> bool {
    !staff.is_empty() || roles.iter().any(|role| member_may(*role, Read::AuditLog))
}

/// Decides whether `user_id` may find workspaces across tenants (by name, id or a member's
/// email): SUPPORT and ANALYST staff, who then read inside one only as [`workspace`] allows.
pub async fn directory(pool: &PgPool, user_id: Uuid) -> Result<(), ApiError> {
    if staff_roles(pool, user_id).await?.is_empty() {
        let refusal = DomainError::forbidden("only staff find workspaces across tenants");
        return Err(ApiError::Domain(refusal));
    }
    Ok(())
}

/// Which of `users` the caller may see: themself, and anyone sharing a workspace with them.
pub async fn visible_users(
    pool: &PgPool,
    user_id: Uuid,
    users: &[Uuid],
) -> Result<HashSet<Uuid>, ApiError> {
    let mut visible: HashSet<Uuid> = queries::co_members(pool, user_id, users)
        .await?
        .into_iter()
        .collect();
    if users.contains(&user_id) {
        visible.insert(user_id);
    }
    Ok(visible)
}

/// Decides a read of the raw log, of one workspace or (`None`) of every workspace, which only
/// ANALYST staff may do.
pub async fn log(
    rights: &Rights,
    user_id: Uuid,
    workspace_id: Option<Uuid>,
) -> Result<Grant, ApiError> {
    match workspace_id {
        Some(workspace_id) => workspace(rights, user_id, workspace_id, Read::Events).await,
        None if staff_roles(&rights.pool, user_id)
            .await?
            .contains(&StaffRole::Analyst) =>
        {
            Ok(Grant::Analyst)
        }
        None => Err(ApiError::BadInput(
            "give a workspace: only ANALYST staff read across workspaces".into(),
        )),
    }
}

/// What a write appends to, which decides how its role is held (see [`role_for_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appends {
    /// It starts a new stream (creates an aggregate).
    NewStream,
    /// It extends a stream that exists.
    ExistingStream,
}

/// The caller's role in the workspace, for deciding a write made on `conn` (`NOT_FOUND`, as
/// `missing`, for non-members). The membership row must stay share-locked until the
/// transaction ends, so that a role change or removal committed meanwhile is seen (the write
/// is refused with `CONFLICT`, and a retry is decided with the new role) and one not yet
/// committed waits for this write: either way the old role never writes after the change is
/// acknowledged. A write that starts a stream locks it here, in one round trip. One that
/// extends a stream must not: its events insert must be the first write of its transaction (a
/// row lock would take a transaction id before it), so it reads the role without a lock here
/// and [`confirm_role`] locks and checks it once the events are written.
pub async fn role_for_write(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
    missing: &'static str,
    appends: Appends,
) -> Result<Role, ApiError> {
    let role = match appends {
        Appends::NewStream => {
            queries::member_role_locked(&mut *conn, workspace_id, user_id).await?
        }
        Appends::ExistingStream => queries::member_role(&mut *conn, workspace_id, user_id).await?,
    };
    role.as_deref()
        .map(stored_role)
        .transpose()?
        .ok_or(ApiError::NotFound(missing))
}

/// Confirms, at the end of a write's transaction, that the caller still holds the `role`
/// [`role_for_write`] gave, and keeps it locked until the transaction ends (nothing to do when
/// it was locked already).
pub async fn confirm_role(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
    role: Role,
    appends: Appends,
) -> Result<(), ApiError> {
    if appends == Appends::NewStream {
        return Ok(());
    }
    let now = queries::member_role_locked(conn, workspace_id, user_id).await?;
    if now.as_deref() == Some(role.as_str()) {
        return Ok(());
    }
    Err(ApiError::Domain(DomainError::conflict(
        "your role in this workspace changed while this was being written; try again",
    )))
}

/// The caller's global staff roles.
pub async fn staff_roles(pool: &PgPool, user_id: Uuid) -> Result<Vec<StaffRole>, ApiError> {
    let user = queries::user(pool, user_id).await?;
    Ok(user
        .iter()
        .flat_map(|u| &u.staff_roles)
        .filter_map(|r| r.parse().ok())
        .collect())
}

fn stored_role(text: &str) -> Result<Role, ApiError> {
    text.parse().map_err(|_| {
        ApiError::Internal(anyhow::anyhow!(
            "the read model holds an unknown role {text}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_READ: [Read; 6] = [
        Read::Content,
        Read::Invites,
        Read::AuditLog,
        Read::AuditTrail,
        Read::Events,
        Read::Jobs,
    ];

    fn outcome(role: Option<Role>, staff: &[StaffRole], what: Read) -> &'static str {
        match decide(role, staff, what) {
            Ok(Grant::Member(_)) => "member",
            Ok(Grant::Support) => "support",
            Ok(Grant::Analyst) => "analyst",
            Err(ApiError::NotFound(_)) => "not found",
            Err(ApiError::Domain(DomainError::Forbidden { .. })) => "forbidden",
            Err(_) => "other",
        }
    }

    #[test]
    fn the_console_is_for_staff_and_for_owners_and_admins() {
        use Role::{Admin, Member, Owner, Viewer};
        assert!(may_use_console(&[StaffRole::Support], &[]));
        assert!(may_use_console(&[StaffRole::Analyst], &[Viewer]));
        assert!(may_use_console(&[], &[Viewer, Owner]));
        assert!(may_use_console(&[], &[Admin]));
        assert!(!may_use_console(&[], &[Member, Viewer]));
        assert!(!may_use_console(&[], &[]));
    }

    #[test]
    fn the_table_in_the_module_documentation_holds() {
        let rows: [(Option<Role>, &[StaffRole], [&str; 6]); 7] = [
            (Some(Role::Owner), &[], ["member"; 6]),
            (
                Some(Role::Admin),
                &[],
                [
                    "member",
                    "member",
                    "member",
                    "forbidden",
                    "member",
                    "member",
                ],
            ),
            (
                Some(Role::Member),
                &[],
                [
                    "member",
                    "forbidden",
                    "forbidden",
                    "forbidden",
                    "forbidden",
                    "forbidden",
                ],
            ),
            (
                Some(Role::Viewer),
                &[],
                [
                    "member",
                    "forbidden",
                    "forbidden",
                    "forbidden",
                    "forbidden",
                    "forbidden",
                ],
            ),
            (
                None,
                &[StaffRole::Support],
                [
                    "not found",
                    "not found",
                    "support",
                    "support",
                    "not found",
                    "support",
                ],
            ),
            (
                None,
                &[StaffRole::Analyst],
                [
                    "not found",
                    "not found",
                    "not found",
                    "not found",
                    "analyst",
                    "not found",
                ],
            ),
            (None, &[], ["not found"; 6]),
        ];
        for (role, staff, expected) in rows {
            let actual = EVERY_READ.map(|what| outcome(role, staff, what));
            assert_eq!(actual, expected, "role {role:?}, staff {staff:?}");
        }
    }

    #[test]
    fn a_member_who_is_also_staff_gets_the_stronger_grant() {
        let staff = [StaffRole::Support, StaffRole::Analyst];
        assert_eq!(outcome(Some(Role::Viewer), &staff, Read::Events), "analyst");
        assert_eq!(
            outcome(Some(Role::Member), &staff, Read::AuditLog),
            "support"
        );
        assert_eq!(outcome(Some(Role::Owner), &staff, Read::Events), "member");
        assert_eq!(
            outcome(Some(Role::Member), &staff, Read::Invites),
            "forbidden"
        );
    }
}
