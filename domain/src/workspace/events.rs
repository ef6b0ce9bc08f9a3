//! What may be asked of a workspace and what happens to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::exports::{ExportFile, ExportFilter};
use crate::aggregate::DomainEvent;
use crate::ids::{ExportId, InviteId, UserId, WorkspaceId};
use crate::values::{Email, ExportFormat, Plan, Region, Role, StaffRole, WorkspaceName};
use crate::weekly::IsoWeek;

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
    /// Records that the weekly summary of `summary.week` went to the owners (system only: the
    /// weekly-summary job). Recording a week again is not an error and changes nothing.
    RecordWeeklySummarySent {
        /// The week, its figures and the email.
        summary: WeeklySummary,
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
        /// Which items it contains.
        filter: ExportFilter,
    },
    /// Records that an export file was produced (system only).
    CompleteExport {
        /// The export.
        export_id: ExportId,
        /// The file written.
        file: ExportFile,
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
    /// The weekly summary of a week went to the workspace's owners (by the weekly-summary job).
    WeeklySummarySent {
        /// The week, its figures and the email.
        #[serde(flatten)]
        summary: WeeklySummary,
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
        /// Which items it contains (events recorded before filters existed: all of them).
        #[serde(default)]
        filter: ExportFilter,
    },
    /// An export file is ready.
    ExportCompleted {
        /// The export.
        export_id: ExportId,
        /// How many items it contains.
        row_count: u64,
        /// The file's size in bytes.
        #[serde(default)]
        size_bytes: u64,
        /// The stored file (the export job's run that wrote it).
        #[serde(default)]
        file_id: uuid::Uuid,
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
            Self::WeeklySummarySent { .. } => "WeeklySummarySent",
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

/// A weekly summary as sent: the week, what it counted and the email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklySummary {
    /// The ISO week summarised.
    pub week: IsoWeek,
    /// Items created in the week.
    pub items_created: u64,
    /// Items changed in the week (title, body, tags, status; not counting archiving).
    pub items_updated: u64,
    /// Items archived in the week.
    pub items_archived: u64,
    /// Members who joined in the week.
    pub members_joined: u64,
    /// How many owners it was sent to.
    pub recipients: u32,
    /// The email's `Message-ID`, derived from the workspace and the week.
    pub message_id: String,
}
