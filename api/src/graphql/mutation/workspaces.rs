//! Workspace mutations: create, rename, upgrade, member roles and removal.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use domain::{Aggregate, UserId, WorkspaceCommand, WorkspaceId, WorkspaceName};
use eventlog::StreamRef;
use projections::queries;
use serde::Serialize;
use uuid::Uuid;

use super::{Written, handles};
use crate::error::ApiError;
use crate::graphql::ids::{Kind, decode, encode};
use crate::graphql::query::caller;
use crate::graphql::types::{Member, Region, Role, Workspace, lane};

/// A new workspace.
#[derive(InputObject, Serialize)]
pub struct CreateWorkspaceInput {
    /// 1–100 characters.
    pub name: String,
    /// Where its data lives; cannot change later.
    pub region: Region,
}

/// The workspace after a mutation.
#[derive(SimpleObject)]
pub struct WorkspacePayload {
    /// The workspace as it is now.
    pub workspace: Workspace,
    /// The log position written (null when nothing changed): a consistency token.
    pub position: Option<String>,
}

/// A membership after a role change.
#[derive(SimpleObject)]
pub struct MemberPayload {
    /// The member with their new role.
    pub member: Member,
    /// The log position written (null when nothing changed).
    pub position: Option<String>,
}

/// A membership ended.
#[derive(SimpleObject)]
pub struct RemoveMemberPayload {
    /// The workspace left.
    pub workspace_id: ID,
    /// Who is no longer a member.
    pub removed_user_id: ID,
    /// The id the membership had (a `Member` node): drop it from a normalised cache.
    pub removed_member_id: ID,
    /// The log position written.
    pub position: Option<String>,
}

/// Workspace mutations.
#[derive(Default)]
pub struct WorkspaceMutations;

#[Object]
impl WorkspaceMutations {
    /// Creates a workspace with the caller as its owner, on a 14-day trial.
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkspaceInput,
    ) -> async_graphql::Result<WorkspacePayload> {
        caller(ctx)?;
        let name = WorkspaceName::parse(&input.name)
            .map_err(domain::DomainError::from)
            .map_err(ApiError::from)?;
        let workspace_id = WorkspaceId::new();
        let command = WorkspaceCommand::Create {
            workspace_id,
            name,
            region: input.region.into(),
        };
        let written = run(
            ctx,
            "createWorkspace",
            &input,
            workspace_id.as_uuid(),
            command,
        )
        .await?;
        payload(ctx, written).await
    }

    /// Renames a workspace (owners and admins).
    async fn rename_workspace(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
    ) -> async_graphql::Result<WorkspacePayload> {
        caller(ctx)?;
        let workspace_id = decode(Kind::Workspace, &id)?;
        let parsed = WorkspaceName::parse(&name)
            .map_err(domain::DomainError::from)
            .map_err(ApiError::from)?;
        let written = run(
            ctx,
            "renameWorkspace",
            &(&id, &name),
            workspace_id,
            WorkspaceCommand::Rename { name: parsed },
        )
        .await?;
        payload(ctx, written).await
    }

    /// Moves a workspace to the PRO plan, lifting the trial lock (owners).
    async fn upgrade_plan(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WorkspacePayload> {
        caller(ctx)?;
        let workspace_id = decode(Kind::Workspace, &id)?;
        let written = run(
            ctx,
            "upgradePlan",
            &id,
            workspace_id,
            WorkspaceCommand::UpgradePlan,
        )
        .await?;
        payload(ctx, written).await
    }

    /// Changes a member's role. Owners change anyone; admins change non-owners and cannot make
    /// owners; the last owner cannot be demoted.
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
        role: Role,
    ) -> async_graphql::Result<MemberPayload> {
        caller(ctx)?;
        let workspace = decode(Kind::Workspace, &workspace_id)?;
        let member = decode(Kind::User, &user_id)?;
        let command = WorkspaceCommand::ChangeMemberRole {
            user_id: UserId::from_uuid(member),
            role: role.into(),
        };
        let input = (&workspace_id, &user_id, domain::Role::from(role).as_str());
        let written = run(ctx, "changeMemberRole", &input, workspace, command).await?;
        let row = queries::member(lane(ctx)?, workspace, member)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("member"))?;
        Ok(MemberPayload {
            member: Member(row),
            position: written.position,
        })
    }

    /// Removes a member; any member may remove themself (leave). The last owner cannot leave.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<RemoveMemberPayload> {
        caller(ctx)?;
        let workspace = decode(Kind::Workspace, &workspace_id)?;
        let member = decode(Kind::User, &user_id)?;
        let command = WorkspaceCommand::RemoveMember {
            user_id: UserId::from_uuid(member),
        };
        let written = run(
            ctx,
            "removeMember",
            &(&workspace_id, &user_id),
            workspace,
            command,
        )
        .await?;
        Ok(RemoveMemberPayload {
            workspace_id: encode(Kind::Workspace, workspace),
            removed_user_id: encode(Kind::User, member),
            removed_member_id: crate::graphql::ids::encode_member(workspace, member),
            position: written.position,
        })
    }
}

/// Decides `command` on the workspace and writes the outcome, once per idempotency key.
async fn run(
    ctx: &Context<'_>,
    operation: &str,
    input: &impl Serialize,
    workspace_id: Uuid,
    command: WorkspaceCommand,
) -> async_graphql::Result<Written> {
    run_for(ctx, operation, input, workspace_id, command, workspace_id).await
}

/// Like [`run`], recording `subject` (the entity the mutation is about, e.g. a new invite) as
/// what was written.
pub(super) async fn run_for(
    ctx: &Context<'_>,
    operation: &str,
    input: &impl Serialize,
    workspace_id: Uuid,
    command: WorkspaceCommand,
    subject: Uuid,
) -> async_graphql::Result<Written> {
    let h = handles(ctx)?;
    let user = h.req.user()?.user_id;
    let written = h
        .writes
        .once(h.req, operation, input, async |conn| {
            let loaded = h
                .writes
                .log()
                .load::<domain::Workspace>(workspace_id)
                .await?;
            let actor = UserId::from_uuid(user);
            let role = loaded.state.role_of(actor);
            let events = loaded.state.decide(command, &h.domain_context(user))?;
            // The actor's real role: the one they hold, or, for a creator or someone accepting
            // an invite, the one this change gives them (never a role they do not have).
            let role = role.or_else(|| {
                events
                    .iter()
                    .fold(loaded.state.clone(), |state, event| state.evolve(event))
                    .role_of(actor)
            });
            let stream = StreamRef {
                stream_type: domain::Workspace::STREAM_TYPE,
                stream_id: workspace_id,
                workspace_id: Some(workspace_id),
            };
            let metadata = h.req.metadata(Some(user), role.map(|r| r.as_str()));
            let position = h
                .writes
                .append(conn, &stream, loaded.expected_version(), events, &metadata)
                .await?;
            Ok(Written {
                id: subject,
                position: position.map(|a| a.position().to_string()),
            })
        })
        .await?;
    Ok(written)
}

pub(super) async fn payload(
    ctx: &Context<'_>,
    written: Written,
) -> async_graphql::Result<WorkspacePayload> {
    let caller = crate::graphql::query::caller(ctx)?;
    let row = queries::workspace(lane(ctx)?, written.id, caller)
        .await
        .map_err(ApiError::from)?;
    Ok(WorkspacePayload {
        workspace: Workspace(row.ok_or(ApiError::NotFound("workspace"))?),
        position: written.position,
    })
}
