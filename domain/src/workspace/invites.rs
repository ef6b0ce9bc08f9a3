//! Invites: inviting by email, accepting with the token, revoking, and recording the mail.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Workspace, WorkspaceEvent};
use crate::context::Context;
use crate::error::{DomainError, ValidationError};
use crate::ids::{InviteId, UserId};
use crate::values::{Email, Role};

/// How long an invite can be accepted, in days.
pub const INVITE_TTL_DAYS: i64 = 7;

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

impl Workspace {
    pub(super) fn invite_member(
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

    pub(super) fn accept_invite(
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

    pub(super) fn revoke_invite(
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
    pub(super) fn record_invite_email_sent(
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
}
