//! Exports as the API shows them: `requestExport` (members and up, refused with
//! `FEATURE_LOCKED` after the trial: the workspace aggregate decides), the `exports` list and
//! the `Export` node (any member, `authz::Read::Content`). The file itself is downloaded from
//! `GET /exports/{id}` ([`crate::downloads`]).

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use domain::{ExportFilter, Tag, UserId};
use projections::queries::{self, ExportRow};

use super::ids::{Kind, decode, encode};
use super::pagination::{Counted, Page, TotalCount, encode_cursor};
use super::query::{ItemFilter, caller};
use super::types::{User, lane, rights, stored, user};
use crate::authz::{self, Read};
use crate::cache::reads;
use crate::error::ApiError;

/// The file format of an export.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::ExportFormat")]
pub enum ExportFormat {
    /// Comma-separated values (RFC 4180, UTF-8), one item per row.
    Csv,
    /// A PDF document with a table of the items.
    Pdf,
}

/// Where an export stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ExportState {
    /// Being produced by a background job.
    Pending,
    /// Produced: downloadable from `downloadUrl` until `expiresAt`.
    Completed,
    /// Produced, but no longer downloadable (24 hours after completion).
    Expired,
    /// Could not be produced (see `error`).
    Failed,
}

/// A CSV or PDF file of a workspace's items, produced in the background.
#[derive(Clone)]
pub struct Export(pub ExportRow);

impl Export {
    /// The state now, by the clock rules are decided by; a completed export's state changes by
    /// itself when it expires (the response cache keeps the answer until then).
    fn state_now(&self, ctx: &Context<'_>) -> async_graphql::Result<ExportState> {
        let now = ctx.data::<crate::writes::Writes>()?.now();
        let state = self.state_at(now);
        if let (ExportState::Completed, Some(expires_at)) = (state, self.0.expires_at) {
            reads::until(ctx, expires_at);
        }
        Ok(state)
    }

    /// The state at `now`.
    fn state_at(&self, now: DateTime<Utc>) -> ExportState {
        match self.0.status.as_str() {
            "FAILED" => ExportState::Failed,
            "COMPLETED" if self.0.expires_at.is_some_and(|at| at <= now) => ExportState::Expired,
            "COMPLETED" => ExportState::Completed,
            _ => ExportState::Pending,
        }
    }
}

#[Object]
impl Export {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Export, self.0.id)
    }
    /// The file format.
    async fn format(&self) -> async_graphql::Result<ExportFormat> {
        Ok(stored::<domain::ExportFormat>(&self.0.format)?.into())
    }
    /// Where it stands now.
    async fn state(&self, ctx: &Context<'_>) -> async_graphql::Result<ExportState> {
        self.state_now(ctx)
    }
    /// The file's size in bytes (once completed).
    async fn size_bytes(&self) -> Option<i64> {
        self.0.size_bytes
    }
    /// How many items it holds (once completed).
    async fn row_count(&self) -> Option<i64> {
        self.0.row_count
    }
    /// Why it could not be produced (when failed).
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Who asked for it.
    async fn requested_by(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        user(ctx, self.0.requested_by).await
    }
    /// When it was asked for.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When its file was ready.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// When it stops being downloadable.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// Where to download it (`GET`, with the bearer token), relative to the API's origin;
    /// null unless completed and not expired.
    async fn download_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok((self.state_now(ctx)? == ExportState::Completed)
            .then(|| format!("/exports/{}", encode(Kind::Export, self.0.id).as_str())))
    }
}

impl ItemFilter {
    /// The filter as an export records it: tags parsed (an invalid one is `BAD_USER_INPUT`).
    pub(crate) fn into_export_filter(self) -> Result<ExportFilter, ApiError> {
        let tags = self
            .tags
            .unwrap_or_default()
            .iter()
            .map(|t| Tag::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::Domain(e.into()))?;
        Ok(ExportFilter {
            status: self.status.map(Into::into),
            tags,
            author_id: self
                .author_id
                .map(|id| decode(Kind::User, &id).map(UserId::from_uuid))
                .transpose()?,
        })
    }
}

/// `exports`: see [`super::query::Query`].
pub async fn exports(
    ctx: &Context<'_>,
    workspace_id: ID,
    page: Page<'_>,
) -> async_graphql::Result<Connection<String, Export, TotalCount>> {
    let user_id = caller(ctx)?;
    let workspace_id = decode(Kind::Workspace, &workspace_id)?;
    let db = lane(ctx)?;
    authz::workspace(rights(ctx)?, user_id, workspace_id, Read::Content).await?;
    reads::workspace(ctx, workspace_id);
    let read = |after, backward, limit| queries::exports(db, workspace_id, after, backward, limit);
    let cursor = |row: &ExportRow| encode_cursor(&(row.created_at, row.id));
    let count = TotalCount(Counted::Exports(workspace_id));
    Ok(page.load(read, cursor, Export, count).await?)
}
