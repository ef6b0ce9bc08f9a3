//! The workspace aggregate (the tenant): members and their roles, invites, plan and trial,
//! exports and referral rewards. Every permission is decided here from the actor's role in the
//! workspace; a user who is not a member is told the workspace does not exist.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::context::{Actor, Context};
use crate::error::{DomainError, ValidationError};
use crate::ids::{ExportId, InviteId, UserId, WorkspaceId};
use crate::item::Access;
use crate::values::{Email, ExportFormat, Plan, Region, Role, StaffRole, WorkspaceName};

/// Length of the free trial of a new workspace, in days.
pub const TRIAL_DAYS: i64 = 14;
/// How long an invite can be accepted, in days.
pub const INVITE_TTL_DAYS: i64 = 7;
/// How long a completed export can be downloaded, in hours.
pub const EXPORT_TTL_HOURS: i64 = 24;
/// The largest trial extension accepted at once, in days.
pub const MAX_TRIAL_EXTENSION_DAYS: u32 = 365;
/// Shortest reason a staff member may give for reading an audit log.
pub const MIN_STAFF_REASON: usize = 3;
/// Longest such reason.
pub const MAX_STAFF_REASON: usize = 500;

/// What may be asked of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceCommand {
    /// Creates the workspace; the acting user becomes its first owner.
    Create {
        /// The new workspace's id.
        workspace_id: WorkspaceId,
        /// Its name.
        name: WorkspaceName,
        /// Where its data lives (fixed for good).
        region: Region,
    },
    /// Renames the workspace (owner, admin).
    Rename {
        /// The new name.
        name: WorkspaceName,
    },
    /// Moves the workspace from trial to the paid plan (owner).
    UpgradePlan,
    /// Records that a staff member reads the workspace's audit history, and why (SUPPORT
    /// staff, who need not be members). The caller passes the actor's global staff roles.
    RecordStaffAccess {
        /// The acting user's staff roles, as granted by operators.
        staff_roles: Vec<StaffRole>,
        /// Why they look: required, 3–500 characters.
        reason: String,
    },
    /// Extends the trial as a referral reward, once per referred user (system only).
    ExtendTrial {
        /// How many days to add (1–365).
        days: u32,
        /// The referred user whose activity earned the reward.
        referred_user: UserId,
    },
    /// Invites someone by email (owner, admin; only an owner may invite an owner).
    InviteMember {
        /// The new invite's id.
        invite_id: InviteId,
        /// Who is invited.
        email: Email,
        /// The role they will get.
        role: Role,
        /// A hash of the secret token sent to the invitee (never the token itself).
        token_hash: String,
    },
    /// Accepts an invite (the invited user, with the hash of the token they received).
    AcceptInvite {
        /// The invite.
        invite_id: InviteId,
        /// The hash of the presented token.
        token_hash: String,
        /// The accepting user (must be the actor).
        user_id: UserId,
        /// The accepting user's email (must match the invite's, ignoring case).
        email: Email,
    },
    /// Revokes a pending invite (owner, admin).
    RevokeInvite {
        /// The invite.
        invite_id: InviteId,
    },
    /// Records that the invite email went out (system only: the invite-email job). Recording
    /// it again is not an error and changes nothing, so a job run twice records it once.
    RecordInviteEmailSent {
        /// The invite.
        invite_id: InviteId,
        /// The email's `Message-ID`, derived from the invite's event.
        message_id: String,
    },
    /// Records that a background job working for the workspace failed for good (system only:
    /// the job worker). Recording the same death again changes nothing.
    RecordJobDead {
        /// The job.
        job_id: uuid::Uuid,
        /// What it does (its queue).
        kind: String,
        /// The event that caused it.
        caused_by: uuid::Uuid,
        /// Its runs, all failed.
        attempts: u32,
        /// What the last run failed with.
        error: String,
    },
    /// Runs a failed background job again (owner, admin; SUPPORT staff, who need not be
    /// members). The caller passes the actor's global staff roles.
    RetryJob {
        /// The job.
        job_id: uuid::Uuid,
        /// The acting user's staff roles, as granted by operators.
        staff_roles: Vec<StaffRole>,
    },
    /// Changes a member's role.
    ChangeMemberRole {
        /// The member.
        user_id: UserId,
        /// The new role.
        role: Role,
    },
    /// Removes a member, or leaves when the member is the actor.
    RemoveMember {
        /// The member.
        user_id: UserId,
    },
    /// Requests an export of the workspace's items (owner, admin, member).
    RequestExport {
        /// The new export's id.
        export_id: ExportId,
        /// The file format.
        format: ExportFormat,
    },
    /// Records that an export file was produced (system only).
    CompleteExport {
        /// The export.
        export_id: ExportId,
        /// How many items it contains.
        row_count: u64,
    },
    /// Records that an export could not be produced (system only).
    FailExport {
        /// The export.
        export_id: ExportId,
        /// Why, in words safe to show to members.
        reason: String,
    },
}

/// What happened to a workspace. Invites carry a token hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkspaceEvent {
    /// A workspace was created, on trial, with its creator as owner.
    WorkspaceCreated {
        /// The workspace's id.
        workspace_id: WorkspaceId,
        /// Its name.
        name: WorkspaceName,
        /// Its region.
        region: Region,
        /// Its plan (trial).
        plan: Plan,
        /// When the trial ends.
        trial_ends_at: DateTime<Utc>,
        /// The first owner.
        owner: UserId,
        /// When it was created.
        created_at: DateTime<Utc>,
    },
    /// The workspace was renamed.
    WorkspaceRenamed {
        /// The previous name.
        from: WorkspaceName,
        /// The new name.
        to: WorkspaceName,
    },
    /// The plan changed.
    PlanUpgraded {
        /// The previous plan.
        from: Plan,
        /// The new plan.
        to: Plan,
    },
    /// The trial was extended as a referral reward.
    TrialExtended {
        /// The previous trial end.
        from: DateTime<Utc>,
        /// The new trial end.
        to: DateTime<Utc>,
        /// The referred user whose activity earned the reward.
        referred_user: UserId,
    },
    /// Someone was invited.
    InviteCreated {
        /// The invite's id.
        invite_id: InviteId,
        /// Who is invited.
        email: Email,
        /// The role they will get.
        role: Role,
        /// A hash of the secret token.
        token_hash: String,
        /// When the invite stops being acceptable.
        expires_at: DateTime<Utc>,
    },
    /// An invite was accepted (followed by [`WorkspaceEvent::MemberAdded`]).
    InviteAccepted {
        /// The invite.
        invite_id: InviteId,
        /// The user who accepted it.
        user_id: UserId,
    },
    /// An invite was revoked.
    InviteRevoked {
        /// The invite.
        invite_id: InviteId,
    },
    /// The invite email was handed to the mail server (by the invite-email job).
    InviteEmailSent {
        /// The invite.
        invite_id: InviteId,
        /// The email's `Message-ID`.
        message_id: String,
    },
    /// A background job working for the workspace failed for good (it is dead).
    JobDied {
        /// The job.
        job_id: uuid::Uuid,
        /// What it does (its queue).
        kind: String,
        /// The event that caused it.
        caused_by: uuid::Uuid,
        /// Its runs, all failed.
        attempts: u32,
        /// What the last run failed with.
        error: String,
    },
    /// A failed background job was set to run again.
    JobRetried {
        /// The job.
        job_id: uuid::Uuid,
    },
    /// A user became a member.
    MemberAdded {
        /// The new member.
        user_id: UserId,
        /// Their role.
        role: Role,
    },
    /// A member's role changed.
    MemberRoleChanged {
        /// The member.
        user_id: UserId,
        /// The previous role.
        from: Role,
        /// The new role.
        to: Role,
    },
    /// A member left or was removed.
    MemberRemoved {
        /// The former member.
        user_id: UserId,
        /// The role they had.
        role: Role,
    },
    /// An export was requested.
    ExportRequested {
        /// The export's id.
        export_id: ExportId,
        /// The file format.
        format: ExportFormat,
        /// The member who asked for it.
        requested_by: UserId,
    },
    /// An export file is ready.
    ExportCompleted {
        /// The export.
        export_id: ExportId,
        /// How many items it contains.
        row_count: u64,
        /// When it stops being downloadable.
        expires_at: DateTime<Utc>,
    },
    /// An export could not be produced.
    ExportFailed {
        /// The export.
        export_id: ExportId,
        /// Why.
        reason: String,
    },
    /// A SUPPORT staff member read the audit history, giving a reason.
    StaffAccessedAuditLog {
        /// Who.
        user_id: UserId,
        /// Why.
        reason: String,
    },
}

impl DomainEvent for WorkspaceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::WorkspaceCreated { .. } => "WorkspaceCreated",
            Self::WorkspaceRenamed { .. } => "WorkspaceRenamed",
            Self::PlanUpgraded { .. } => "PlanUpgraded",
            Self::TrialExtended { .. } => "TrialExtended",
            Self::InviteCreated { .. } => "InviteCreated",
            Self::InviteAccepted { .. } => "InviteAccepted",
            Self::InviteRevoked { .. } => "InviteRevoked",
            Self::InviteEmailSent { .. } => "InviteEmailSent",
            Self::JobDied { .. } => "JobDied",
            Self::JobRetried { .. } => "JobRetried",
            Self::MemberAdded { .. } => "MemberAdded",
            Self::MemberRoleChanged { .. } => "MemberRoleChanged",
            Self::MemberRemoved { .. } => "MemberRemoved",
            Self::ExportRequested { .. } => "ExportRequested",
            Self::ExportCompleted { .. } => "ExportCompleted",
            Self::ExportFailed { .. } => "ExportFailed",
            Self::StaffAccessedAuditLog { .. } => "StaffAccessedAuditLog",
        }
    }
}

/// Where an invite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InviteStatus {
    /// Waiting to be accepted (check [`Invite::expires_at`] too).
    Pending,
    /// Accepted; cannot be used again.
    Accepted,
    /// Revoked by an owner or admin.
    Revoked,
}

/// An invite to join a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Who is invited.
    pub email: Email,
    /// The role they will get.
    pub role: Role,
    /// A hash of the secret token.
    pub token_hash: String,
    /// When the invite stops being acceptable.
    pub expires_at: DateTime<Utc>,
    /// Where it stands.
    pub status: InviteStatus,
    /// Whether the invite email has been recorded as sent.
    pub email_sent: bool,
}

impl Invite {
    /// Whether the invite is pending and not expired at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.status == InviteStatus::Pending && now < self.expires_at
    }
}

/// Where an export stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportStatus {
    /// Being produced.
    Pending,
    /// Produced; downloadable until `expires_at`.
    Completed {
        /// How many items it contains.
        row_count: u64,
        /// When it stops being downloadable.
        expires_at: DateTime<Utc>,
    },
    /// Could not be produced.
    Failed {
        /// Why.
        reason: String,
    },
}

/// An export of a workspace's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The file format.
    pub format: ExportFormat,
    /// The member who asked for it.
    pub requested_by: UserId,
    /// Where it stands.
    pub status: ExportStatus,
}

impl Export {
    /// Whether the file can be downloaded at `now`.
    pub fn is_downloadable(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, ExportStatus::Completed { expires_at, .. } if now < expires_at)
    }
}

/// The fixed facts of an existing workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Core {
    id: WorkspaceId,
    name: WorkspaceName,
    region: Region,
    plan: Plan,
    created_at: DateTime<Utc>,
    trial_ends_at: DateTime<Utc>,
}

/// A workspace's state, folded from its events. The default value is a workspace that does not
/// exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    core: Option<Core>,
    members: BTreeMap<UserId, Role>,
    invites: BTreeMap<InviteId, Invite>,
    exports: BTreeMap<ExportId, Export>,
    rewarded_referrals: BTreeSet<UserId>,
    /// Dead jobs: how many runs each had when it was recorded dead.
    dead_jobs: BTreeMap<uuid::Uuid, u32>,
    version: i64,
}

impl Workspace {
    /// Whether the workspace has been created.
    pub fn exists(&self) -> bool {
        self.core.is_some()
    }

    /// The workspace's id, once created.
    pub fn id(&self) -> Option<WorkspaceId> {
        self.core.as_ref().map(|c| c.id)
    }

    /// The workspace's name, once created.
    pub fn name(&self) -> Option<&WorkspaceName> {
        self.core.as_ref().map(|c| &c.name)
    }

    /// The workspace's region, once created.
    pub fn region(&self) -> Option<Region> {
        self.core.as_ref().map(|c| c.region)
    }

    /// The workspace's plan, once created.
    pub fn plan(&self) -> Option<Plan> {
        self.core.as_ref().map(|c| c.plan)
    }

    /// When the workspace was created.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.core.as_ref().map(|c| c.created_at)
    }

    /// When the trial ends (or ended).
    pub fn trial_ends_at(&self) -> Option<DateTime<Utc>> {
        self.core.as_ref().map(|c| c.trial_ends_at)
    }

    /// Whether the trial has ended without an upgrade at `now`: invites and exports are then
    /// refused with [`DomainError::FeatureLocked`].
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.core
            .as_ref()
            .is_some_and(|c| trial_locked(c.plan, c.trial_ends_at, now))
    }

    /// Members and their roles.
    pub fn members(&self) -> &BTreeMap<UserId, Role> {
        &self.members
    }

    /// The role of `user_id` in this workspace, if a member.
    pub fn role_of(&self, user_id: UserId) -> Option<Role> {
        self.members.get(&user_id).copied()
    }

    /// The item-level access of `user_id`, if a member: what item commands need.
    pub fn access_of(&self, user_id: UserId) -> Option<Access> {
        let workspace_id = self.id()?;
        let role = self.role_of(user_id)?;
        Some(Access {
            workspace_id,
            user_id,
            role,
        })
    }

    /// How many owners the workspace has.
    pub fn owners_count(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }

    /// All invites, whatever their status.
    pub fn invites(&self) -> &BTreeMap<InviteId, Invite> {
        &self.invites
    }

    /// One invite.
    pub fn invite(&self, invite_id: InviteId) -> Option<&Invite> {
        self.invites.get(&invite_id)
    }

    /// All exports, whatever their status.
    pub fn exports(&self) -> &BTreeMap<ExportId, Export> {
        &self.exports
    }

    /// One export.
    pub fn export(&self, export_id: ExportId) -> Option<&Export> {
        self.exports.get(&export_id)
    }

    /// The referred users whose referral has already extended this workspace's trial.
    pub fn rewarded_referrals(&self) -> &BTreeSet<UserId> {
        &self.rewarded_referrals
    }

    /// The number of events folded into this state.
    pub fn version(&self) -> i64 {
        self.version
    }

    fn core(&self) -> Result<&Core, DomainError> {
        self.core
            .as_ref()
            .ok_or(DomainError::not_found("workspace"))
    }

    /// The acting member and their role. A non-member is told the workspace does not exist;
    /// the system is not a member.
    fn acting_member(&self, ctx: &Context) -> Result<(UserId, Role), DomainError> {
        self.core()?;
        match &ctx.actor {
            Actor::User(user_id) => self
                .role_of(*user_id)
                .map(|role| (*user_id, role))
                .ok_or(DomainError::not_found("workspace")),
            Actor::System { .. } => Err(DomainError::forbidden(
                "this action must be performed by a member",
            )),
        }
    }

    /// The acting member, who must hold one of `allowed`.
    fn member_with(
        &self,
        ctx: &Context,
        allowed: &[Role],
        action: &str,
    ) -> Result<(UserId, Role), DomainError> {
        let (user_id, role) = self.acting_member(ctx)?;
        if allowed.contains(&role) {
            Ok((user_id, role))
        } else {
            Err(DomainError::forbidden(format!(
                "the {role} role cannot {action}"
            )))
        }
    }

    /// Checks the actor is the system. A user who is not a member still learns nothing.
    fn require_system(&self, ctx: &Context) -> Result<&Core, DomainError> {
        let core = self.core()?;
        if ctx.actor.is_system() {
            return Ok(core);
        }
        self.acting_member(ctx)?;
        Err(DomainError::forbidden(
            "only the system can perform this action",
        ))
    }

    fn unlocked(&self, ctx: &Context, feature: &'static str) -> Result<(), DomainError> {
        if self.is_locked(ctx.now) {
            Err(DomainError::FeatureLocked { feature })
        } else {
            Ok(())
        }
    }

    /// A member that is about to stop being an owner must not be the last one.
    fn keep_an_owner(&self, current: Role) -> Result<(), DomainError> {
        if current == Role::Owner && self.owners_count() <= 1 {
            Err(DomainError::LastOwner)
        } else {
            Ok(())
        }
    }

    fn create(
        &self,
        workspace_id: WorkspaceId,
        name: WorkspaceName,
        region: Region,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        if self.exists() {
            return Err(DomainError::conflict("the workspace already exists"));
        }
        let owner = ctx
            .actor
            .user_id()
            .ok_or_else(|| DomainError::forbidden("a workspace must be created by a user"))?;
        Ok(vec![WorkspaceEvent::WorkspaceCreated {
            workspace_id,
            name,
            region,
            plan: Plan::Trial,
            trial_ends_at: ctx.now + Duration::days(TRIAL_DAYS),
            owner,
            created_at: ctx.now,
        }])
    }

    fn extend_trial(
        &self,
        days: u32,
        referred_user: UserId,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        let core = self.require_system(ctx)?;
        if days == 0 || days > MAX_TRIAL_EXTENSION_DAYS {
            return Err(ValidationError::new(
                "days",
                format!("must be between 1 and {MAX_TRIAL_EXTENSION_DAYS}"),
            )
            .into());
        }
        if core.plan != Plan::Trial || self.rewarded_referrals.contains(&referred_user) {
            return Ok(vec![]);
        }
        // An ended trial restarts from now, so the reward always gives `days` usable days.
        let start = core.trial_ends_at.max(ctx.now);
        Ok(vec![WorkspaceEvent::TrialExtended {
            from: core.trial_ends_at,
            to: start + Duration::days(i64::from(days)),
            referred_user,
        }])
    }

    fn record_staff_access(
        &self,
        staff_roles: &[StaffRole],
        reason: String,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.core()?;
        let Actor::User(user_id) = ctx.actor else {
            return Err(DomainError::forbidden(
                "only staff members read audit logs this way",
            ));
        };
        if !staff_roles.contains(&StaffRole::Support) {
            // Not staff: the workspace does not exist for them unless they are a member.
            self.acting_member(ctx)?;
            return Err(DomainError::forbidden(
                "only SUPPORT staff read audit logs with a reason",
            ));
        }
        let reason = reason.trim();
        let length = reason.chars().count();
        if !(MIN_STAFF_REASON..=MAX_STAFF_REASON).contains(&length)
            || reason.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "reason",
                format!("give a reason of {MIN_STAFF_REASON}–{MAX_STAFF_REASON} characters, without control characters"),
            )
            .into());
        }
        Ok(vec![WorkspaceEvent::StaffAccessedAuditLog {
            user_id,
            reason: reason.to_string(),
        }])
    }

    fn invite_member(
        &self,
        invite_id: InviteId,
        email: Email,
        role: Role,
        token_hash: String,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        let (_, actor_role) =
            self.member_with(ctx, &[Role::Owner, Role::Admin], "invite members")?;
        if role == Role::Owner && actor_role != Role::Owner {
            return Err(DomainError::forbidden("only an owner can invite an owner"));
        }
        self.unlocked(ctx, "invites")?;
        if token_hash.trim().is_empty() {
            return Err(ValidationError::new("token_hash", "must not be empty").into());
        }
        if self.invites.contains_key(&invite_id) {
            return Err(DomainError::conflict("the invite already exists"));
        }
        Ok(vec![WorkspaceEvent::InviteCreated {
            invite_id,
            email,
            role,
            token_hash,
            expires_at: ctx.now + Duration::days(INVITE_TTL_DAYS),
        }])
    }

    fn accept_invite(
        &self,
        invite_id: InviteId,
        token_hash: &str,
        user_id: UserId,
        email: &Email,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.core()?;
        if ctx.actor.user_id() != Some(user_id) {
            return Err(DomainError::forbidden(
                "an invite can only be accepted by the invited user",
            ));
        }
        let invite = self
            .invites
            .get(&invite_id)
            .filter(|invite| invite.token_hash == token_hash)
            .ok_or(DomainError::not_found("invite"))?;
        match invite.status {
            InviteStatus::Pending => {}
            InviteStatus::Accepted => {
                return Err(DomainError::conflict(
                    "this invite has already been accepted",
                ));
            }
            InviteStatus::Revoked => {
                return Err(DomainError::conflict("this invite has been revoked"));
            }
        }
        if ctx.now >= invite.expires_at {
            return Err(DomainError::InviteExpired);
        }
        if !invite.email.matches(email) {
            return Err(DomainError::forbidden(
                "this invite was sent to a different email address",
            ));
        }
        if self.members.contains_key(&user_id) {
            return Err(DomainError::conflict(
                "you are already a member of this workspace",
            ));
        }
        Ok(vec![
            WorkspaceEvent::InviteAccepted { invite_id, user_id },
            WorkspaceEvent::MemberAdded {
                user_id,
                role: invite.role,
            },
        ])
    }

    fn revoke_invite(
        &self,
        invite_id: InviteId,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.member_with(ctx, &[Role::Owner, Role::Admin], "revoke invites")?;
        let invite = self
            .invites
            .get(&invite_id)
            .ok_or(DomainError::not_found("invite"))?;
        if invite.status != InviteStatus::Pending {
            return Err(DomainError::conflict(
                "only a pending invite can be revoked",
            ));
        }
        Ok(vec![WorkspaceEvent::InviteRevoked { invite_id }])
    }

    /// Whatever the invite's state now: the mail went out, and the record says so once.
    fn record_invite_email_sent(
        &self,
        invite_id: InviteId,
        message_id: String,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.require_system(ctx)?;
        let invite = self
            .invites
            .get(&invite_id)
            .ok_or(DomainError::not_found("invite"))?;
        if invite.email_sent {
            return Ok(vec![]);
        }
        if message_id.trim().is_empty() {
            return Err(ValidationError::new("message_id", "must not be empty").into());
        }
        Ok(vec![WorkspaceEvent::InviteEmailSent {
            invite_id,
            message_id,
        }])
    }

    fn change_member_role(
        &self,
        user_id: UserId,
        role: Role,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        let (_, actor_role) =
            self.member_with(ctx, &[Role::Owner, Role::Admin], "change member roles")?;
        let (actor_id, _) = self.acting_member(ctx)?;
        let current = self
            .role_of(user_id)
            .ok_or(DomainError::not_found("member"))?;
        if !manages(actor_id, actor_role, user_id, current) {
            return Err(DomainError::forbidden(format!(
                "the {actor_role} role cannot change the role of a member whose role is {current}"
            )));
        }
        if role == Role::Owner && actor_role != Role::Owner {
            return Err(DomainError::forbidden(
                "only an owner can make someone an owner",
            ));
        }
        if current == role {
            return Ok(vec![]);
        }
        self.keep_an_owner(current)?;
        Ok(vec![WorkspaceEvent::MemberRoleChanged {
            user_id,
            from: current,
            to: role,
        }])
    }

    fn remove_member(
        &self,
        user_id: UserId,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        let (actor_id, actor_role) = self.acting_member(ctx)?;
        let current = self
            .role_of(user_id)
            .ok_or(DomainError::not_found("member"))?;
        if !manages(actor_id, actor_role, user_id, current) {
            return Err(DomainError::forbidden(format!(
                "the {actor_role} role cannot remove a member whose role is {current}"
            )));
        }
        self.keep_an_owner(current)?;
        Ok(vec![WorkspaceEvent::MemberRemoved {
            user_id,
            role: current,
        }])
    }

    fn request_export(
        &self,
        export_id: ExportId,
        format: ExportFormat,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        let (requested_by, _) = self.member_with(
            ctx,
            &[Role::Owner, Role::Admin, Role::Member],
            "request exports",
        )?;
        self.unlocked(ctx, "exports")?;
        if self.exports.contains_key(&export_id) {
            return Err(DomainError::conflict("the export already exists"));
        }
        Ok(vec![WorkspaceEvent::ExportRequested {
            export_id,
            format,
            requested_by,
        }])
    }

    fn finish_export(
        &self,
        export_id: ExportId,
        outcome: Result<u64, String>,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.require_system(ctx)?;
        let export = self
            .exports
            .get(&export_id)
            .ok_or(DomainError::not_found("export"))?;
        match (&export.status, outcome) {
            // A failed export may still complete when its job is retried.
            (ExportStatus::Pending | ExportStatus::Failed { .. }, Ok(row_count)) => {
                Ok(vec![WorkspaceEvent::ExportCompleted {
                    export_id,
                    row_count,
                    expires_at: ctx.now + Duration::hours(EXPORT_TTL_HOURS),
                }])
            }
            (ExportStatus::Pending, Err(reason)) => {
                Ok(vec![WorkspaceEvent::ExportFailed { export_id, reason }])
            }
            (ExportStatus::Completed { .. }, _) => {
                Err(DomainError::conflict("the export has already completed"))
            }
            (ExportStatus::Failed { .. }, Err(_)) => {
                Err(DomainError::conflict("the export has already failed"))
            }
        }
    }
}

impl Aggregate for Workspace {
    const STREAM_TYPE: &'static str = "workspace";
    type Command = WorkspaceCommand;
    type Event = WorkspaceEvent;

    fn decide(
        &self,
        command: WorkspaceCommand,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        match command {
            WorkspaceCommand::Create {
                workspace_id,
                name,
                region,
            } => self.create(workspace_id, name, region, ctx),
            WorkspaceCommand::Rename { name } => {
                self.member_with(ctx, &[Role::Owner, Role::Admin], "rename the workspace")?;
                let core = self.core()?;
                if core.name == name {
                    return Ok(vec![]);
                }
                Ok(vec![WorkspaceEvent::WorkspaceRenamed {
                    from: core.name.clone(),
                    to: name,
                }])
            }
            WorkspaceCommand::UpgradePlan => {
                self.member_with(ctx, &[Role::Owner], "upgrade the plan")?;
                let core = self.core()?;
                if core.plan == Plan::Pro {
                    return Err(DomainError::conflict(
                        "the workspace is already on the Pro plan",
                    ));
                }
                Ok(vec![WorkspaceEvent::PlanUpgraded {
                    from: core.plan,
                    to: Plan::Pro,
                }])
            }
            WorkspaceCommand::ExtendTrial {
                days,
                referred_user,
            } => self.extend_trial(days, referred_user, ctx),
            WorkspaceCommand::RecordStaffAccess {
                staff_roles,
                reason,
            } => self.record_staff_access(&staff_roles, reason, ctx),
            WorkspaceCommand::InviteMember {
                invite_id,
                email,
                role,
                token_hash,
            } => self.invite_member(invite_id, email, role, token_hash, ctx),
            WorkspaceCommand::AcceptInvite {
                invite_id,
                token_hash,
                user_id,
                email,
            } => self.accept_invite(invite_id, &token_hash, user_id, &email, ctx),
            WorkspaceCommand::RevokeInvite { invite_id } => self.revoke_invite(invite_id, ctx),
            WorkspaceCommand::RecordInviteEmailSent {
                invite_id,
                message_id,
            } => self.record_invite_email_sent(invite_id, message_id, ctx),
            WorkspaceCommand::RecordJobDead {
                job_id,
                kind,
                caused_by,
                attempts,
                error,
            } => {
                self.require_system(ctx)?;
                if self.dead_jobs.get(&job_id) == Some(&attempts) {
                    return Ok(vec![]);
                }
                Ok(vec![WorkspaceEvent::JobDied {
                    job_id,
                    kind,
                    caused_by,
                    attempts,
                    error,
                }])
            }
            WorkspaceCommand::RetryJob {
                job_id,
                staff_roles,
            } => {
                self.core()?;
                let support = matches!(ctx.actor, Actor::User(_))
                    && staff_roles.contains(&StaffRole::Support);
                if !support && !ctx.actor.is_system() {
                    self.member_with(ctx, &[Role::Owner, Role::Admin], "retry jobs")?;
                }
                Ok(vec![WorkspaceEvent::JobRetried { job_id }])
            }
            WorkspaceCommand::ChangeMemberRole { user_id, role } => {
                self.change_member_role(user_id, role, ctx)
            }
            WorkspaceCommand::RemoveMember { user_id } => self.remove_member(user_id, ctx),
            WorkspaceCommand::RequestExport { export_id, format } => {
                self.request_export(export_id, format, ctx)
            }
            WorkspaceCommand::CompleteExport {
                export_id,
                row_count,
            } => self.finish_export(export_id, Ok(row_count), ctx),
            WorkspaceCommand::FailExport { export_id, reason } => {
                self.finish_export(export_id, Err(reason), ctx)
            }
        }
    }

    fn evolve(mut self, event: &WorkspaceEvent) -> Self {
        self.version += 1;
        match event {
            WorkspaceEvent::WorkspaceCreated {
                workspace_id,
                name,
                region,
                plan,
                trial_ends_at,
                owner,
                created_at,
            } => {
                self.core = Some(Core {
                    id: *workspace_id,
                    name: name.clone(),
                    region: *region,
                    plan: *plan,
                    created_at: *created_at,
                    trial_ends_at: *trial_ends_at,
                });
                self.members.insert(*owner, Role::Owner);
            }
            WorkspaceEvent::WorkspaceRenamed { to, .. } => {
                if let Some(core) = &mut self.core {
                    core.name = to.clone();
                }
            }
            WorkspaceEvent::PlanUpgraded { to, .. } => {
                if let Some(core) = &mut self.core {
                    core.plan = *to;
                }
            }
            WorkspaceEvent::TrialExtended {
                to, referred_user, ..
            } => {
                if let Some(core) = &mut self.core {
                    core.trial_ends_at = *to;
                }
                self.rewarded_referrals.insert(*referred_user);
            }
            WorkspaceEvent::InviteCreated {
                invite_id,
                email,
                role,
                token_hash,
                expires_at,
            } => {
                self.invites.insert(
                    *invite_id,
                    Invite {
                        email: email.clone(),
                        role: *role,
                        token_hash: token_hash.clone(),
                        expires_at: *expires_at,
                        status: InviteStatus::Pending,
                        email_sent: false,
                    },
                );
            }
            WorkspaceEvent::JobDied {
                job_id, attempts, ..
            } => {
                self.dead_jobs.insert(*job_id, *attempts);
            }
            WorkspaceEvent::JobRetried { .. } => {}
            WorkspaceEvent::InviteEmailSent { invite_id, .. } => {
                if let Some(invite) = self.invites.get_mut(invite_id) {
                    invite.email_sent = true;
                }
            }
            WorkspaceEvent::InviteAccepted { invite_id, .. } => {
                if let Some(invite) = self.invites.get_mut(invite_id) {
                    invite.status = InviteStatus::Accepted;
                }
            }
            WorkspaceEvent::InviteRevoked { invite_id } => {
                if let Some(invite) = self.invites.get_mut(invite_id) {
                    invite.status = InviteStatus::Revoked;
                }
            }
            WorkspaceEvent::MemberAdded { user_id, role } => {
                self.members.insert(*user_id, *role);
            }
            WorkspaceEvent::MemberRoleChanged { user_id, to, .. } => {
                self.members.insert(*user_id, *to);
            }
            WorkspaceEvent::MemberRemoved { user_id, .. } => {
                self.members.remove(user_id);
            }
            WorkspaceEvent::ExportRequested {
                export_id,
                format,
                requested_by,
            } => {
                self.exports.insert(
                    *export_id,
                    Export {
                        format: *format,
                        requested_by: *requested_by,
                        status: ExportStatus::Pending,
                    },
                );
            }
            WorkspaceEvent::ExportCompleted {
                export_id,
                row_count,
                expires_at,
            } => {
                if let Some(export) = self.exports.get_mut(export_id) {
                    export.status = ExportStatus::Completed {
                        row_count: *row_count,
                        expires_at: *expires_at,
                    };
                }
            }
            WorkspaceEvent::ExportFailed { export_id, reason } => {
                if let Some(export) = self.exports.get_mut(export_id) {
                    export.status = ExportStatus::Failed {
                        reason: reason.clone(),
                    };
                }
            }
            // A record of a look, not a change of state.
            WorkspaceEvent::StaffAccessedAuditLog { .. } => {}
        }
        self
    }
}

/// The one rule for acting on another member (changing their role, removing them): owners
/// act on anyone; admins on members and viewers only (never on another admin or an owner, so
/// an admin cannot demote an admin and then remove them); everyone on themself.
fn manages(actor: UserId, actor_role: Role, target: UserId, target_role: Role) -> bool {
    actor == target
        || actor_role == Role::Owner
        || (actor_role == Role::Admin && matches!(target_role, Role::Member | Role::Viewer))
}

#[cfg(test)]
mod tests;

/// The trial lock rule: a `TRIAL` workspace is locked from the end of its trial on. (For
/// callers that hold a workspace's plan and trial end rather than its state, e.g. read models.)
pub fn trial_locked(plan: Plan, trial_ends_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    plan == Plan::Trial && now >= trial_ends_at
}
