//! Exports: members ask for a file of the workspace's items; a background job writes it.

use async_graphql::{Context, ID, Object, SimpleObject};
use domain::{ExportId, WorkspaceCommand};
use projections::queries;

use super::workspaces::run_for;
use crate::error::ApiError;
use crate::graphql::exports::{Export, ExportFormat};
use crate::graphql::ids::{Kind, decode};
use crate::graphql::query::{ItemFilter, caller};
use crate::graphql::types::lane;

/// A new export.
#[derive(SimpleObject)]
pub struct RequestExportPayload {
    /// The export, `PENDING` until its job has written the file.
    pub export: Export,
    /// The log position written.
    pub position: Option<String>,
}

/// Export mutations.
#[derive(Default)]
pub struct ExportMutations;

#[Object]
impl ExportMutations {
    /// Asks for a CSV or PDF file of the workspace's items matching `filter` (all of them
    /// without), produced in the background: poll `exports` (or `node`) until it is
    /// `COMPLETED`, then download it from its `downloadUrl` within 24 hours. Owners, admins and
    /// members; refused with `FEATURE_LOCKED` once the workspace's trial has ended.
    async fn request_export(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        format: ExportFormat,
        filter: Option<ItemFilter>,
    ) -> async_graphql::Result<RequestExportPayload> {
        caller(ctx)?;
        let workspace = decode(Kind::Workspace, &workspace_id)?;
        let filter = filter.unwrap_or_default().into_export_filter()?;
        let export_id = ExportId::new();
        let input = (
            &workspace_id,
            domain::ExportFormat::from(format).as_str(),
            serde_json::to_value(&filter).map_err(|e| ApiError::Internal(e.into()))?,
        );
        let command = WorkspaceCommand::RequestExport {
            export_id,
            format: format.into(),
            filter,
        };
        let written = run_for(
            ctx,
            "requestExport",
            &input,
            workspace,
            command,
            export_id.as_uuid(),
        )
        .await?;
        let row = queries::export(lane(ctx)?, written.id)
            .await
            .map_err(ApiError::from)?;
        Ok(RequestExportPayload {
            export: Export(row.ok_or(ApiError::NotFound("export"))?),
            position: written.position,
        })
    }
}
