//! The plan and the trial: a new workspace is on a trial that locks some features when it
//! ends; an owner upgrades; referral rewards extend it.

use chrono::{DateTime, Duration, Utc};

use super::{Workspace, WorkspaceEvent};
use crate::context::Context;
use crate::error::{DomainError, ValidationError};
use crate::ids::UserId;
use crate::values::Plan;

/// Length of the free trial of a new workspace, in days.
pub const TRIAL_DAYS: i64 = 14;
/// The largest trial extension accepted at once, in days.
pub const MAX_TRIAL_EXTENSION_DAYS: u32 = 365;

impl Workspace {
    pub(super) fn extend_trial(
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
}

/// The trial lock rule: a `TRIAL` workspace is locked from the end of its trial on. (For
/// callers that hold a workspace's plan and trial end rather than its state, e.g. read models.)
pub fn trial_locked(plan: Plan, trial_ends_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    plan == Plan::Trial && now >= trial_ends_at
}
