//! Invites: owners and admins invite by email; the invitee accepts with the secret token.

use async_graphql::{Context, ID, Object, SimpleObject};
use domain::{Email, InviteId, UserId, WorkspaceCommand};
use projections::queries;
use sha2::{Digest, Sha256};

use super::handles;
use super::workspaces::{WorkspacePayload, payload, run_for};
use crate::error::ApiError;
use crate::graphql::ids::{Kind, decode};
use crate::graphql::query::caller;
use crate::graphql::types::{Invite, Role, lane};

/// A new invite.
#[derive(SimpleObject)]
pub struct InviteMemberPayload {
    /// The invite.
    pub invite: Invite,
    /// The secret the invitee accepts with (`acceptInvite`). Shown once: null when this answer
    /// is an idempotent replay.
    pub token: Option<String>,
    /// The log position written.
    pub position: Option<String>,
}

/// An invite revoked.
#[derive(SimpleObject)]
pub struct RevokeInvitePayload {
    /// The invite, now revoked.
    pub invite: Invite,
    /// The log position written.
    pub position: Option<String>,
}

/// Invite mutations.
#[derive(Default)]
pub struct InviteMutations;

#[Object]
impl InviteMutations {
    /// Invites someone by email (owners and admins; only owners invite owners). Refused with
    /// `FEATURE_LOCKED` once the workspace's trial has ended.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        email: String,
        role: Role,
    ) -> async_graphql::Result<InviteMemberPayload> {
        caller(ctx)?;
        let workspace = decode(Kind::Workspace, &workspace_id)?;
        let parsed = Email::parse(&email).map_err(|e| ApiError::Domain(e.into()))?;
        let invite_id = InviteId::new();
        // Derived, not random: the invite-email job derives it again to mail it.
        let token = ctx.data::<jobs::InviteTokens>()?.token(invite_id.as_uuid());
        let command = WorkspaceCommand::InviteMember {
            invite_id,
            email: parsed,
            role: role.into(),
            token_hash: token_hash(&token),
        };
        let input = (&workspace_id, &email, domain::Role::from(role).as_str());
        let written = run_for(
            ctx,
            "inviteMember",
            &input,
            workspace,
            command,
            invite_id.as_uuid(),
        )
        .await?;
        let row = queries::invite(lane(ctx)?, workspace, written.id)
            .await
            .map_err(ApiError::from)?;
        Ok(InviteMemberPayload {
            invite: Invite(row.ok_or(ApiError::NotFound("invite"))?),
            token: (written.id == invite_id.as_uuid()).then_some(token),
            position: written.position,
        })
    }

    /// Joins the workspace an invite is for, as the signed-in user whose email it was sent to.
    async fn accept_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] token: String,
    ) -> async_graphql::Result<WorkspacePayload> {
        let h = handles(ctx)?;
        let user = h.req.user()?.user_id;
        let hash = token_hash(&token);
        let db = lane(ctx)?;
        let invite = queries::invite_by_token_hash(db, &hash)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("invite"))?;
        let me = queries::user(db, user)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
        let command = WorkspaceCommand::AcceptInvite {
            invite_id: InviteId::from_uuid(invite.id),
            token_hash: hash,
            user_id: UserId::from_uuid(user),
            email: Email::parse(&me.email).map_err(|e| ApiError::Domain(e.into()))?,
        };
        // The token is secret: the idempotency record hashes the invite id instead.
        let written = run_for(
            ctx,
            "acceptInvite",
            &invite.id,
            invite.workspace_id,
            command,
            invite.workspace_id,
        )
        .await?;
        payload(ctx, written).await
    }

    /// Revokes a pending invite (owners and admins).
    async fn revoke_invite(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        invite_id: ID,
    ) -> async_graphql::Result<RevokeInvitePayload> {
        caller(ctx)?;
        let workspace = decode(Kind::Workspace, &workspace_id)?;
        let invite = decode(Kind::Invite, &invite_id)?;
        let command = WorkspaceCommand::RevokeInvite {
            invite_id: InviteId::from_uuid(invite),
        };
        let written = run_for(
            ctx,
            "revokeInvite",
            &(&workspace_id, &invite_id),
            workspace,
            command,
            invite,
        )
        .await?;
        let row = queries::invite(lane(ctx)?, workspace, invite)
            .await
            .map_err(ApiError::from)?;
        Ok(RevokeInvitePayload {
            invite: Invite(row.ok_or(ApiError::NotFound("invite"))?),
            position: written.position,
        })
    }
}

/// What is stored of a token: its sha256, hex.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
