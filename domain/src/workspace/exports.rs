//! Exports: a member asks for one; the export job completes or fails it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Workspace, WorkspaceEvent};
use crate::context::Context;
use crate::error::DomainError;
use crate::ids::{ExportId, UserId};
use crate::values::{ExportFormat, ItemStatus, Role, Tag};

/// How long a completed export can be downloaded, in hours.
pub const EXPORT_TTL_HOURS: i64 = 24;

/// Which of the workspace's items an export contains: those matching every given condition
/// (the `items` query's filter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFilter {
    /// Only items with this status.
    #[serde(default)]
    pub status: Option<ItemStatus>,
    /// Only items carrying all of these tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Only items created by this user.
    #[serde(default)]
    pub author_id: Option<UserId>,
}

/// A file the export job wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportFile {
    /// The stored file (the job run that wrote it).
    pub file_id: Uuid,
    /// How many items it contains.
    pub row_count: u64,
    /// Its size in bytes.
    pub size_bytes: u64,
}

/// Where an export stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportStatus {
    /// Being produced.
    Pending,
    /// Produced; downloadable until `expires_at`.
    Completed {
        /// How many items it contains.
        row_count: u64,
        /// When it stops being downloadable.
        expires_at: DateTime<Utc>,
    },
    /// Could not be produced.
    Failed {
        /// Why.
        reason: String,
    },
}

/// An export of a workspace's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The file format.
    pub format: ExportFormat,
    /// The member who asked for it.
    pub requested_by: UserId,
    /// Where it stands.
    pub status: ExportStatus,
}

impl Export {
    /// Whether the file can be downloaded at `now`.
    pub fn is_downloadable(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, ExportStatus::Completed { expires_at, .. } if now < expires_at)
    }
}

impl Workspace {
    pub(super) fn request_export(
        &self,
        export_id: ExportId,
        format: ExportFormat,
        filter: ExportFilter,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        let (requested_by, _) = self.member_with(
            ctx,
            &[Role::Owner, Role::Admin, Role::Member],
            "request exports",
        )?;
        self.unlocked(ctx, "exports")?;
        if self.exports.contains_key(&export_id) {
            return Err(DomainError::conflict("the export already exists"));
        }
        Ok(vec![WorkspaceEvent::ExportRequested {
            export_id,
            format,
            requested_by,
            filter,
        }])
    }

    pub(super) fn finish_export(
        &self,
        export_id: ExportId,
        outcome: Result<ExportFile, String>,
        ctx: &Context,
    ) -> Result<Vec<WorkspaceEvent>, DomainError> {
        self.require_system(ctx)?;
        let export = self
            .exports
            .get(&export_id)
            .ok_or(DomainError::not_found("export"))?;
        match (&export.status, outcome) {
            // A failed export may still complete when its job is retried.
            (ExportStatus::Pending | ExportStatus::Failed { .. }, Ok(file)) => {
                Ok(vec![WorkspaceEvent::ExportCompleted {
                    export_id,
                    row_count: file.row_count,
                    size_bytes: file.size_bytes,
                    file_id: file.file_id,
                    expires_at: ctx.now + Duration::hours(EXPORT_TTL_HOURS),
                }])
            }
            (ExportStatus::Pending, Err(reason)) => {
                Ok(vec![WorkspaceEvent::ExportFailed { export_id, reason }])
            }
            (ExportStatus::Completed { .. }, _) => {
                Err(DomainError::conflict("the export has already completed"))
            }
            (ExportStatus::Failed { .. }, Err(_)) => {
                Err(DomainError::conflict("the export has already failed"))
            }
        }
    }
}
