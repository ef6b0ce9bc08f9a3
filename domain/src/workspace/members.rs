//! Members: changing roles and removing members, under one rule of who manages whom.

use super::{Workspace, WorkspaceEvent};
use crate::context::Context;
use crate::error::DomainError;
use crate::ids::UserId;
use crate::values::Role;

impl Workspace {
    pub(super) fn change_member_role(
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

    pub(super) fn remove_member(
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
}

/// The one rule for acting on another member (changing their role, removing them): owners
/// act on anyone; admins on members and viewers only (never on another admin or an owner, so
/// an admin cannot demote an admin and then remove them); everyone on themself.
fn manages(actor: UserId, actor_role: Role, target: UserId, target_role: Role) -> bool {
    actor == target
        || actor_role == Role::Owner
        || (actor_role == Role::Admin && matches!(target_role, Role::Member | Role::Viewer))
}
