//! The weekly summary as the workspace records it: once per week (the weekly-summary job's
//! effect; see [`crate::weekly`]).

use std::collections::BTreeSet;

use super::{WeeklySummary, Workspace, WorkspaceEvent};
use crate::context::Context;
use crate::error::{DomainError, ValidationError};
use crate::weekly::IsoWeek;

impl Workspace {
    /// The weeks whose summary went to the owners.
    pub fn summarized_weeks(&self) -> &BTreeSet<IsoWeek> {
        &self.summarized_weeks
    }

    /// Records a summary once: a week recorded before records nothing (a job run twice).
    pub(super) fn record_weekly_summary_sent(
        &self,
        summary: WeeklySummary,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.require_system(ctx)?;
        if self.summarized_weeks.contains(&summary.week) {
            return Ok(vec![]);
        }
        if summary.message_id.trim().is_empty() {
            return Err(ValidationError::new("message_id", "must not be empty").into());
        }
        if summary.week.end() > ctx.now {
            return Err(
                ValidationError::new("week", "a week is summarised once it has ended").into(),
            );
        }
        Ok(vec![WorkspaceEvent::WeeklySummarySent { summary }])
    }
}
