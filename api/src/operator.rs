//! What operators do from the command line: grant and revoke staff roles, verify the audit
//! trail. Each change goes through the domain and the log like any other.

use domain::{Aggregate, Email, StaffRole, UserCommand};
use eventlog::{EventLog, Metadata, StreamRef, VerifyReport};
use projections::queries;
use uuid::Uuid;

use crate::error::ApiError;
use crate::graphql::events::Event;
use crate::writes::Writes;

/// Grants (`grant`) or revokes a global staff role of the user with `email`. Returns whether
/// anything changed (granting a held role, or revoking one not held, changes nothing).
pub async fn set_staff_role(
    writes: &Writes,
    email: &str,
    role: StaffRole,
    grant: bool,
) -> Result<bool, ApiError> {
    let email = Email::parse(email).map_err(|err| ApiError::Domain(err.into()))?;
    let pool = writes.log().pool();
    let user = queries::user_by_email(pool, &email.normalized())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let loaded = writes.log().load::<domain::User>(user.id).await?;
    let command = if grant {
        UserCommand::GrantStaffRole { role }
    } else {
        UserCommand::RevokeStaffRole { role }
    };
    let ctx = domain::Context::system(writes.now(), "operator");
    let events = loaded.state.decide(command, &ctx)?;
    let stream = StreamRef {
        stream_type: domain::User::STREAM_TYPE,
        stream_id: user.id,
        workspace_id: None,
    };
    let mut tx = pool
        .begin()
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    let written = writes
        .append(
            &mut tx,
            &stream,
            loaded.expected_version(),
            events,
            &Metadata::system("chronicle staff"),
        )
        .await?;
    tx.commit()
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    writes.log().announce_append();
    Ok(written.is_some())
}

/// A one-paragraph account of a verification, for people.
pub fn describe(report: &VerifyReport) -> String {
    let checked = format!(
        "{} events in {} streams checked",
        report.events_checked, report.streams_checked
    );
    match &report.first_broken {
        None => format!("{checked}: every hash chain is intact."),
        Some(link) => format!(
            "{checked}: BROKEN at position {} (event {}, stream {} version {}): {}.",
            link.position, link.event_id, link.stream_id, link.stream_version, link.reason
        ),
    }
}

/// How `chronicle events export` writes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Ndjson,
    /// A header, then one row per event (payload and metadata as JSON text).
    Csv,
}

/// Writes every event after `after` (optionally of one workspace) to `out`, in log order, in
/// batches: as NDJSON, each line exactly as `/events.ndjson` gives the event to a member (one
/// format, one upcasting path), or as CSV. `progress` hears (events written, events in all)
/// after each batch. Returns the number written and the last position (to resume from).
pub async fn export_events(
    log: &EventLog,
    out: &mut impl std::io::Write,
    format: ExportFormat,
    after: Option<eventlog::Position>,
    workspace: Option<Uuid>,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<(u64, Option<eventlog::Position>)> {
    const BATCH: usize = 5_000;
    let filter = eventlog::EventFilter {
        workspace_id: workspace,
        ..Default::default()
    };
    let total = log.count_after(after, workspace).await?;
    if format == ExportFormat::Csv {
        write!(out, "{}\r\n", Event::CSV_HEADER)?;
    }
    let (mut written, mut last) = (0, after);
    loop {
        let batch = log.read_filtered(&filter, last, false, BATCH).await?;
        let Some(end) = batch.last().map(|e| e.position) else {
            break;
        };
        let full = batch.len() == BATCH;
        written += batch.len() as u64;
        for event in batch {
            match format {
                // The very line `/events.ndjson` writes for the event (unpseudonymised).
                ExportFormat::Ndjson => {
                    serde_json::to_writer(&mut *out, &Event::from(event))?;
                    writeln!(out)?;
                }
                ExportFormat::Csv => {
                    write!(out, "{}\r\n", Event::from(event).csv_row())?;
                }
            }
        }
        last = Some(end);
        progress(written, total.max(written));
        if !full {
            break;
        }
    }
    out.flush()?;
    Ok((written, last))
}

/// A progress line on stderr: done/total, rate and time left, rewritten in place.
pub struct ProgressLine {
    started: std::time::Instant,
}

impl ProgressLine {
    pub fn start() -> ProgressLine {
        ProgressLine {
            started: std::time::Instant::now(),
        }
    }

    pub fn show(&self, done: u64, total: u64) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let eta = total.saturating_sub(done) as f64 / rate.max(1.0);
        eprint!("\r{done}/{total} events, {rate:.0}/s, ETA {eta:.0} s   ");
    }
}

/// The projections `chronicle projections rebuild` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProjectionName {
    Search,
    Activity,
    Inline,
}

impl std::fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProjectionName::Search => projections::search_index::NAME,
            ProjectionName::Activity => projections::activity::NAME,
            ProjectionName::Inline => "inline",
        })
    }
}

/// `chronicle projections status`: a table of every projection's position and lag.
pub async fn projection_status(log: &EventLog) -> anyhow::Result<String> {
    let standings = projections::runner::standings(log).await?;
    let mut table = format!(
        "{:<10} {:<28} {:<34} {:>10}  {}\n",
        "PROJECTION", "NODE", "POSITION", "LAG", "UPDATED"
    );
    table.push_str(&format!(
        "{:<10} {:<28} {:<34} {:>10}  {}\n",
        "inline", "(every node)", "(with each append)", 0, "-"
    ));
    for standing in standings {
        let node = if standing.node.is_empty() {
            "(leader)"
        } else {
            &standing.node
        };
        table.push_str(&format!(
            "{:<10} {:<28} {:<34} {:>10}  {}\n",
            standing.name,
            node,
            standing.position.to_string(),
            standing.lag,
            standing.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    match log.reader_stall().await? {
        Some(stall) => table.push_str(&format!(
            "\nreaders held back for {:.0} s by {stall}\n",
            stall.age.as_secs_f64()
        )),
        None => table.push_str("\nreaders held back by: nothing\n"),
    }
    // The jobs the `jobs-dispatch` projection enqueued, as `chronicle jobs status` shows them.
    table.push_str("\njob queues:\n");
    match jobs_status(log.pool()).await {
        Ok(jobs) => table.push_str(&jobs),
        Err(err) => table.push_str(&format!("unavailable: {err:#}\n")),
    }
    Ok(table)
}

/// The most dead jobs `chronicle jobs status` lists.
const DEAD_JOBS_SHOWN: i64 = 50;

/// `chronicle jobs status`: each queue's jobs by state, then the dead jobs.
pub async fn jobs_status(pool: &sqlx::PgPool) -> anyhow::Result<String> {
    let mut out = format!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "QUEUE", "PENDING", "RUNNING", "RETRYING", "DEAD", "DONE"
    );
    for q in jobs::failed::counts(pool).await? {
        out.push_str(&format!(
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            q.queue, q.pending, q.running, q.retrying, q.dead, q.done
        ));
    }
    let dead = jobs::failed::dead(pool, DEAD_JOBS_SHOWN).await?;
    if !dead.is_empty() {
        out.push_str("\ndead jobs (retry with `chronicle jobs retry ID`):\n");
        for job in dead {
            out.push_str(&format!(
                "{}  {}  workspace {}  event {}  {} runs  {}\n",
                jobs::failed::display_id(job.id),
                job.queue,
                job.workspace_id,
                job.event_id,
                job.attempts,
                job.last_error.as_deref().unwrap_or("-")
            ));
        }
    }
    Ok(out)
}

/// `chronicle jobs retry ID`: runs a failed job again with a fresh allowance of runs, and
/// records it (`JobRetried`, by the system actor `operator`) in the same transaction.
pub async fn retry_job(
    writes: &Writes,
    id: &str,
    policy: jobs::retry::RetryPolicy,
) -> anyhow::Result<()> {
    let job_id =
        jobs::failed::parse_job_id(id).ok_or_else(|| anyhow::anyhow!("`{id}` is not a job id"))?;
    let job = jobs::failed::find(writes.log().pool(), job_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no failed job {id} (not found, or running or done)"))?;
    let stream = StreamRef {
        stream_type: domain::Workspace::STREAM_TYPE,
        stream_id: job.workspace_id,
        workspace_id: Some(job.workspace_id),
    };
    writes
        .run(async |tx| {
            let loaded = writes
                .log()
                .load::<domain::Workspace>(job.workspace_id)
                .await?;
            let command = domain::WorkspaceCommand::RetryJob {
                job_id,
                staff_roles: vec![],
            };
            let ctx = domain::Context::system(writes.now(), "operator");
            let events = loaded.state.decide(command, &ctx)?;
            let mut metadata = Metadata::system("chronicle jobs retry");
            metadata.causation_id = Some(job.event_id);
            writes
                .append(tx, &stream, loaded.expected_version(), events, &metadata)
                .await?;
            if !jobs::failed::retry(&mut *tx, job_id, policy)
                .await
                .map_err(|err| ApiError::Internal(err.into()))?
            {
                return Err(ApiError::Domain(domain::DomainError::conflict(
                    "the job is no longer failed: it is running or done",
                )));
            }
            Ok(())
        })
        .await?;
    tracing::info!(job_id = id, "job retried by an operator");
    Ok(())
}

/// `chronicle projections rebuild NAME`, with a progress line. Returns the events replayed.
pub async fn rebuild(
    log: &EventLog,
    name: ProjectionName,
    search_dir: &std::path::Path,
) -> anyhow::Result<u64> {
    let total = log.count_after(None, None).await?;
    let progress = ProgressLine::start();
    let show = |done: u64| progress.show(done, total.max(done));
    let replayed = match name {
        ProjectionName::Search => projections::search_index::rebuild(log, search_dir, show).await?,
        ProjectionName::Activity => projections::activity::rebuild(log, show).await?,
        ProjectionName::Inline => projections::inline::rebuild(log, show).await?,
    };
    Ok(replayed)
}
