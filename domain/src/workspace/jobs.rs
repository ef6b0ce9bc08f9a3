//! Background jobs as the workspace's audit log sees them: the system records a job that died;
//! owners, admins and SUPPORT staff run it again.

use super::{Workspace, WorkspaceEvent};
use crate::context::{Actor, Context};
use crate::error::DomainError;
use crate::values::{Role, StaffRole};

impl Workspace {
    /// Recorded once per death: a job retried and dead again has more runs.
    pub(super) fn record_job_dead(
        &self,
        job_id: uuid::Uuid,
        kind: String,
        caused_by: uuid::Uuid,
        attempts: u32,
        error: String,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
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

    /// `staff_roles` are the actor's global staff roles: SUPPORT staff need not be members.
    pub(super) fn retry_job(
        &self,
        job_id: uuid::Uuid,
        staff_roles: &[StaffRole],
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.core()?;
        let support =
            matches!(ctx.actor, Actor::User(_)) && staff_roles.contains(&StaffRole::Support);
        if !support && !ctx.actor.is_system() {
            self.member_with(ctx, &[Role::Owner, Role::Admin], "retry jobs")?;
        }
        Ok(vec![WorkspaceEvent::JobRetried { job_id }])
    }
}
