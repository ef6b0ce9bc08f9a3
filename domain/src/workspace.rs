//! The workspace aggregate (the tenant): members and their roles, invites, plan and trial,
//! exports and referral rewards. Every permission is decided here from the actor's role in the
//! workspace; a user who is not a member is told the workspace does not exist.

mod events;
mod exports;
mod invites;
mod jobs;
mod members;
mod staff;
mod summary;
mod trial;

pub use events::{WeeklySummary, WorkspaceCommand, WorkspaceEvent};
pub use exports::{EXPORT_TTL_HOURS, Export, ExportFile, ExportFilter, ExportStatus};
pub use invites::{INVITE_TTL_DAYS, Invite, InviteStatus};
pub use staff::{MAX_STAFF_REASON, MIN_STAFF_REASON};
pub use trial::{MAX_TRIAL_EXTENSION_DAYS, TRIAL_DAYS, trial_locked};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use crate::aggregate::Aggregate;
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::ids::{ExportId, InviteId, UserId, WorkspaceId};
use crate::item::Access;
use crate::values::{Plan, Region, Role, WorkspaceName};
use crate::weekly::IsoWeek;

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
    /// The weeks whose summary went to the owners.
    summarized_weeks: BTreeSet<IsoWeek>,
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
            WorkspaceCommand::RecordWeeklySummarySent { summary } => {
                self.record_weekly_summary_sent(summary, ctx)
            }
            WorkspaceCommand::RecordJobDead {
                job_id,
                kind,
                caused_by,
                attempts,
                error,
            } => self.record_job_dead(job_id, kind, caused_by, attempts, error, ctx),
            WorkspaceCommand::RetryJob {
                job_id,
                staff_roles,
            } => self.retry_job(job_id, &staff_roles, ctx),
            WorkspaceCommand::ChangeMemberRole { user_id, role } => {
                self.change_member_role(user_id, role, ctx)
            }
            WorkspaceCommand::RemoveMember { user_id } => self.remove_member(user_id, ctx),
            WorkspaceCommand::RequestExport {
                export_id,
                format,
                filter,
            } => self.request_export(export_id, format, filter, ctx),
            WorkspaceCommand::CompleteExport { export_id, file } => {
                self.finish_export(export_id, Ok(file), ctx)
            }
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
            WorkspaceEvent::WeeklySummarySent { summary } => {
                self.summarized_weeks.insert(summary.week);
            }
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
                ..
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
                ..
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
#[cfg(test)]
mod tests;
