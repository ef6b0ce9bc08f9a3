//! Staff access: SUPPORT staff read a workspace's audit log with a recorded reason.

use super::{Workspace, WorkspaceEvent};
use crate::context::{Actor, Context};
use crate::error::{DomainError, ValidationError};
use crate::values::StaffRole;

/// Shortest reason a staff member may give for reading an audit log.
pub const MIN_STAFF_REASON: usize = 3;
/// Longest such reason.
pub const MAX_STAFF_REASON: usize = 500;

impl Workspace {
    pub(super) fn record_staff_access(
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
}
