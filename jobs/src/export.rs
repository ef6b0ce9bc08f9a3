//! The export job: on `ExportRequested`, the workspace's items matching the export's filter are
//! written as CSV ([`csv`]) or PDF ([`pdf`]) into PostgreSQL, and the export is recorded as
//! completed (`ExportCompleted`, with its row count and size) or, when it cannot be made,
//! failed (`ExportFailed`, with a reason members can read).
//!
//! Items are read in keyset pages of [`PAGE_SIZE`] (oldest first; [`queries::items`]), each
//! its own short query, and the file is written as it grows in chunks of [`CHUNK_BYTES`]
//! (`export_chunks`), each insert its own short transaction. Nothing holds a transaction open
//! across the export: a long one would hold every log reader back (SPEC §4). So an export holds
//! one page of items and about one chunk in memory however many items there are (a PDF also
//! its page being filled and a few bytes per PDF page written: see [`pdf`]). Items changed
//! while the export runs appear as they were when their page was read; none is skipped or
//! repeated (the keyset is creation time and id).
//!
//! # Exactly one file, exactly one `ExportCompleted`
//!
//! Each run of the job writes its chunks under a fresh run id, and names that run as the
//! export's file in `ExportCompleted` (`file_id`), appended through the write path: the
//! aggregate refuses to complete an export twice, and the inline read model records the file
//! id in the same transaction as the event. A download reads only the chunks of that run. So:
//!
//! - killed before it completes (`kill -9` of the worker), a run leaves chunks no export
//!   names; the job comes back (apalis returns a dead worker's job to the queue), a new run
//!   writes the whole file again under its own id, completes, and deletes the chunks of every
//!   other run of the export;
//! - killed after the completing transaction committed, the run comes back, finds the export
//!   completed and does nothing (the other runs' chunks are deleted by that check too);
//! - two runs at once (a worker thought dead but still alive): both write, one completes, the
//!   other is refused (the export is already completed) and deletes its own chunks.
//!
//! Whatever the interleaving, one `ExportCompleted` is recorded and one set of chunks is the
//! file; leftovers of a crash are never served and are deleted by the next run of the export
//! (and by [`prune_chunks`], which also deletes the files of expired exports).

pub mod csv;
pub mod pdf;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{ExportFile, ExportFilter, ExportFormat};
use projections::queries::{self, ItemCursor, ItemOrder};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::worker::{Job, Origin};
use crate::{BoxError, Recorder};

/// The queue (apalis `job_type`) of exports.
pub const QUEUE: &str = "chronicle.export";
/// Items read per query.
pub const PAGE_SIZE: i64 = 500;
/// Bytes per stored chunk of a file.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Between the tags of an item in one cell.
const TAG_SEPARATOR: &str = "; ";

/// The job's arguments, taken from the `ExportRequested` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    /// The `ExportRequested` event and its workspace.
    #[serde(flatten)]
    pub origin: Origin,
    pub export_id: Uuid,
    pub format: ExportFormat,
    pub filter: ExportFilter,
}

impl Job for ExportJob {
    const QUEUE: &'static str = QUEUE;
    type Runner = Exports;

    fn origin(&self) -> Origin {
        self.origin
    }

    async fn run(&self, exports: &Exports) -> Result<String, BoxError> {
        Ok(match exports.run(self).await? {
            Outcome::Completed { rows, bytes } => {
                format!("export written: {rows} items, {bytes} bytes")
            }
            Outcome::AlreadyCompleted => "export completed before; nothing to do".into(),
            Outcome::Unknown => "export not found; not written".into(),
        })
    }

    /// A dead export job leaves its export failed, with a reason members can read.
    async fn died(&self, exports: &Exports) {
        let failed = FailedExport {
            workspace_id: self.origin.workspace_id,
            export_id: self.export_id,
            cause: self.origin.event_id,
            reason: "the export could not be produced; ask an admin to retry the job".into(),
        };
        if let Err(record) = exports.recorder.export_failed(&failed).await {
            tracing::error!(error = %record, "could not record the failed export");
        }
    }
}

/// An export completed by the job, to be recorded as the `ExportCompleted` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedExport {
    pub workspace_id: Uuid,
    pub export_id: Uuid,
    /// The `ExportRequested` event (the new event's causation).
    pub cause: Uuid,
    pub file: ExportFile,
}

/// An export the job could not make, to be recorded as the `ExportFailed` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedExport {
    pub workspace_id: Uuid,
    pub export_id: Uuid,
    /// The `ExportRequested` event (the new event's causation).
    pub cause: Uuid,
    /// Why, in words members may read.
    pub reason: String,
}

/// What the export job needs.
pub struct Exports {
    pub pool: PgPool,
    pub recorder: Arc<dyn Recorder>,
}

/// What a run of the job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written and recorded as completed.
    Completed { rows: u64, bytes: u64 },
    /// Completed before (by an earlier run, or one running at the same time): nothing to do.
    AlreadyCompleted,
    /// The export is not in the read model (it never will be): nothing to do.
    Unknown,
}

/// An item as the export files show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportItem {
    pub id: Uuid,
    pub title: String,
    pub status: String,
    pub tags: Vec<String>,
    /// The author's display name.
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub body: String,
}

/// Times in files: RFC 3339, UTC, to the second.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Exports {
    /// Writes the file of `job`'s export unless it is done already, and records the outcome.
    pub async fn run(&self, job: &ExportJob) -> Result<Outcome, BoxError> {
        let Some(export) = queries::export(&self.pool, job.export_id).await? else {
            return Ok(Outcome::Unknown);
        };
        if export.status == "COMPLETED" {
            delete_other_runs(&self.pool, job.export_id, export.file_id).await?;
            return Ok(Outcome::AlreadyCompleted);
        }
        let run_id = Uuid::new_v4();
        let mut file = Chunks::new(self.pool.clone(), job.export_id, run_id);
        let written = match job.format {
            ExportFormat::Csv => self.write_csv(job, &mut file).await,
            ExportFormat::Pdf => self.write_pdf(job, &export, &mut file).await,
        };
        let rows = match written {
            Ok(rows) => rows,
            Err(err) => {
                file.discard().await?;
                return Err(err);
            }
        };
        let bytes = file.finish();
        let completed = CompletedExport {
            workspace_id: job.origin.workspace_id,
            export_id: job.export_id,
            cause: job.origin.event_id,
            file: ExportFile {
                file_id: run_id,
                row_count: rows,
                size_bytes: bytes,
            },
        };
        match self.recorder.export_completed(&completed).await {
            Ok(()) => {
                delete_other_runs(&self.pool, job.export_id, Some(run_id)).await?;
                Ok(Outcome::Completed { rows, bytes })
            }
            Err(err) => {
                // Completed meanwhile by another run? Then this run's file is not the one.
                let now = queries::export(&self.pool, job.export_id).await?;
                match now {
                    Some(export) if export.status == "COMPLETED" => {
                        delete_other_runs(&self.pool, job.export_id, export.file_id).await?;
                        Ok(Outcome::AlreadyCompleted)
                    }
                    _ => {
                        delete_run(&self.pool, job.export_id, run_id).await?;
                        Err(err)
                    }
                }
            }
        }
    }

    /// Writes the CSV file; the number of items in it.
    async fn write_csv(&self, job: &ExportJob, file: &mut Chunks) -> Result<u64, BoxError> {
        let mut buffer = Vec::with_capacity(CHUNK_BYTES);
        csv::header(&mut buffer);
        let mut rows = 0;
        let mut items = ItemPages::new(&self.pool, job);
        while let Some(page) = items.next().await? {
            for item in &page {
                csv::item(&mut buffer, item);
                if buffer.len() >= CHUNK_BYTES {
                    file.write(&buffer).await?;
                    buffer.clear();
                }
            }
            rows += page.len() as u64;
        }
        file.write(&buffer).await?;
        Ok(rows)
    }

    /// Writes the PDF file, page by page as they fill; the number of items in it.
    async fn write_pdf(
        &self,
        job: &ExportJob,
        export: &queries::ExportRow,
        file: &mut Chunks,
    ) -> Result<u64, BoxError> {
        let workspace = sqlx::query_scalar!(
            "SELECT name FROM workspaces WHERE id = $1",
            job.origin.workspace_id
        )
        .fetch_one(&self.pool)
        .await?;
        let title = format!(
            "{workspace}: items, exported {}",
            export.created_at.format("%Y-%m-%d %H:%M UTC")
        );
        let mut table = pdf::PdfTable::new(&title);
        let mut rows = 0;
        let mut items = ItemPages::new(&self.pool, job);
        while let Some(page) = items.next().await? {
            rows += page.len() as u64;
            // Laying out and compressing pages is CPU work: off the async threads.
            table = tokio::task::spawn_blocking(move || {
                for item in &page {
                    table.push(item);
                }
                table
            })
            .await?;
            if table.pending() >= CHUNK_BYTES {
                file.write(&table.take()).await?;
            }
        }
        let tail = tokio::task::spawn_blocking(move || table.finish()).await?;
        file.write(&tail).await?;
        Ok(rows)
    }
}

/// The items of an export, page by page.
struct ItemPages<'a> {
    pool: &'a PgPool,
    workspace_id: Uuid,
    filter: queries::ItemFilter,
    after: Option<ItemCursor>,
    done: bool,
    /// Display names of the authors met so far (a workspace's members: a bounded set).
    authors: HashMap<Uuid, String>,
}

impl<'a> ItemPages<'a> {
    fn new(pool: &'a PgPool, job: &ExportJob) -> ItemPages<'a> {
        ItemPages {
            pool,
            workspace_id: job.origin.workspace_id,
            filter: queries::ItemFilter {
                status: job.filter.status.map(|s| s.as_str().to_string()),
                tags: job
                    .filter
                    .tags
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect(),
                author_id: job.filter.author_id.map(|a| a.as_uuid()),
            },
            after: None,
            done: false,
            authors: HashMap::new(),
        }
    }

    /// The next page, `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<ExportItem>>, BoxError> {
        if self.done {
            return Ok(None);
        }
        let rows = queries::items(
            self.pool,
            self.workspace_id,
            &self.filter,
            ItemOrder::CreatedAsc,
            self.after.take(),
            PAGE_SIZE,
        )
        .await?;
        self.done = (rows.len() as i64) < PAGE_SIZE;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(last.cursor(ItemOrder::CreatedAsc));
        let unknown: Vec<Uuid> = rows
            .iter()
            .map(|r| r.author_id)
            .filter(|a| !self.authors.contains_key(a))
            .collect();
        if !unknown.is_empty() {
            for user in queries::users_by_ids(self.pool, &unknown).await? {
                self.authors.insert(user.id, user.display_name);
            }
        }
        Ok(Some(
            rows.into_iter()
                .map(|row| ExportItem {
                    author: self
                        .authors
                        .get(&row.author_id)
                        .cloned()
                        .unwrap_or_else(|| row.author_id.to_string()),
                    id: row.id,
                    title: row.title,
                    status: row.status,
                    tags: row.tags,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    body: row.body,
                })
                .collect(),
        ))
    }
}

/// A file being written to `export_chunks` under one run id, chunk by chunk, each chunk
/// inserted (and committed) on its own.
struct Chunks {
    pool: PgPool,
    export_id: Uuid,
    run_id: Uuid,
    next: i32,
    size: u64,
}

impl Chunks {
    fn new(pool: PgPool, export_id: Uuid, run_id: Uuid) -> Chunks {
        Chunks {
            pool,
            export_id,
            run_id,
            next: 0,
            size: 0,
        }
    }

    /// Appends `bytes` to the file, in chunks of at most [`CHUNK_BYTES`].
    async fn write(&mut self, bytes: &[u8]) -> Result<(), sqlx::Error> {
        for chunk in bytes.chunks(CHUNK_BYTES) {
            sqlx::query!(
                "INSERT INTO export_chunks (export_id, run_id, chunk_no, bytes) VALUES ($1, $2, $3, $4)",
                self.export_id,
                self.run_id,
                self.next,
                chunk
            )
            .execute(&self.pool)
            .await?;
            self.next += 1;
            self.size += chunk.len() as u64;
        }
        Ok(())
    }

    /// The file's size, all written.
    fn finish(self) -> u64 {
        self.size
    }

    /// Deletes what was written.
    async fn discard(self) -> Result<(), sqlx::Error> {
        delete_run(&self.pool, self.export_id, self.run_id).await
    }
}

/// Deletes the chunks run `run_id` wrote for export `export_id`.
async fn delete_run(pool: &PgPool, export_id: Uuid, run_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM export_chunks WHERE export_id = $1 AND run_id = $2",
        export_id,
        run_id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the chunks of every run of export `export_id` but `file_id`'s.
async fn delete_other_runs(
    pool: &PgPool,
    export_id: Uuid,
    file_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM export_chunks WHERE export_id = $1 AND run_id IS DISTINCT FROM $2",
        export_id,
        file_id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Chunk `chunk_no` of the file `file_id` of export `export_id` (`None` past its end).
pub async fn chunk(
    pool: &PgPool,
    export_id: Uuid,
    file_id: Uuid,
    chunk_no: i32,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT bytes FROM export_chunks WHERE export_id = $1 AND run_id = $2 AND chunk_no = $3",
        export_id,
        file_id,
        chunk_no
    )
    .fetch_optional(pool)
    .await
}

/// Deletes at most `limit` chunks no one will download again: those of exports that expired
/// before `now`, and those of runs that did not complete a completed export (a run killed
/// midway). Chunks of exports still pending or failed are left alone: a run may be writing
/// them. Returns how many were deleted.
pub async fn prune_chunks(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM export_chunks
         WHERE (export_id, run_id, chunk_no) IN (
             SELECT c.export_id, c.run_id, c.chunk_no
             FROM export_chunks c JOIN exports e ON e.id = c.export_id
             WHERE e.expires_at < $1
                OR (e.status = 'COMPLETED' AND c.run_id IS DISTINCT FROM e.file_id)
             LIMIT $2)",
        now,
        limit
    )
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
