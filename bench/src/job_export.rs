//! `job-export`: the export job on a large workspace. A workspace gets `--items` items (100,000
//! by default) through the API's write path, then a CSV and a PDF export are requested through
//! GraphQL and written by a real `chronicle worker` process (the binary built beside this one),
//! one worker per export so that each has its own peak. Measured per format: the time from
//! `requestExport` to the export being `COMPLETED` in the read model, the file's size, and the
//! worker's resident set — before the request (idle, after start) and its peak (`VmHWM` from
//! `/proc/PID/status`) once the export completed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::api::writes::Writes;
use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::generate::{self, Generated, Owner};
use crate::report::{self, Context};
use crate::server::{self, Server};

/// How often the harness looks whether the export completed.
const POLL: Duration = Duration::from_millis(20);
/// How long a worker gets to start and fall idle before the export is requested.
const SETTLE: Duration = Duration::from_secs(3);
/// The longest an export may take.
const PATIENCE: Duration = Duration::from_secs(3600);

#[derive(clap::Args)]
pub struct Args {
    /// How many items the workspace holds.
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// One measured export.
struct Row {
    format: &'static str,
    rows: i64,
    bytes: i64,
    elapsed: Duration,
    /// The worker's resident set before the request, and its peak, in KiB.
    idle_kib: u64,
    peak_kib: u64,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let server::Running {
        database,
        context,
        pool,
        address,
        state: _state,
    } = server::run_app(server).await?;
    ::jobs::setup(&database.pool).await?;
    let owner = Owner::sign_up(address, &database.pool, "exporter").await?;
    let writes = Writes::new(eventlog::EventLog::new(database.pool.clone()));
    eprintln!("job-export: generating {} items", args.items);
    let generated = generate::items(&writes, owner.workspace_id, owner.user_id, args.items).await?;
    let in_workspace: i64 =
        sqlx::query_scalar("SELECT count(*) FROM items WHERE workspace_id = $1")
            .bind(owner.workspace_id)
            .fetch_one(&database.pool)
            .await?;
    database.checkpoint().await;

    let worker_bin = std::env::current_exe()?
        .parent()
        .context("the harness's directory")?
        .join("chronicle");
    ensure!(
        worker_bin.exists(),
        "{} is missing: build it with the harness (cargo build -p api -p bench, same profile)",
        worker_bin.display()
    );
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    for format in ["CSV", "PDF"] {
        let data = tempfile::tempdir()?;
        let mut worker = Command::new(&worker_bin)
            .arg("worker")
            .env("DATABASE_URL", &database.url)
            .env("CHRONICLE_DATA_DIR", data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting chronicle worker")?;
        tokio::time::sleep(SETTLE).await;
        let idle_kib = status_kib(&worker, "VmRSS")?;
        eprintln!("job-export: {format}");
        let started = Instant::now();
        let export_id = request(&http, address, &owner, format).await?;
        let (rows_written, bytes) = loop {
            let row: (String, Option<i64>, Option<i64>, Option<String>) = sqlx::query_as(
                "SELECT status, row_count, size_bytes, error FROM exports WHERE id = $1",
            )
            .bind(export_id)
            .fetch_one(&database.pool)
            .await?;
            match row {
                (status, Some(rows), Some(bytes), _) if status == "COMPLETED" => {
                    break (rows, bytes);
                }
                (status, _, _, error) if status == "FAILED" => {
                    bail!("{format} export failed: {error:?}")
                }
                _ => {}
            }
            ensure!(
                started.elapsed() < PATIENCE,
                "the {format} export never completed"
            );
            tokio::time::sleep(POLL).await;
        };
        let elapsed = started.elapsed();
        ensure!(
            rows_written == in_workspace,
            "the {format} export holds {rows_written} of the workspace's {in_workspace} items"
        );
        let peak_kib = status_kib(&worker, "VmHWM")?;
        stop(&mut worker);
        eprintln!(
            "job-export: {format}: {rows_written} rows, {:.1} MB in {elapsed:.1?}; worker RSS {} MiB idle, peak {} MiB",
            bytes as f64 / 1e6,
            idle_kib / 1024,
            peak_kib / 1024
        );
        rows.push(Row {
            format,
            rows: rows_written,
            bytes,
            elapsed,
            idle_kib,
            peak_kib,
        });
    }

    pool.close().await;
    server.drop_database(database).await?;
    let section = render(&context, &generated, &rows);
    println!("{section}");
    report::write_section(&args.out, "job-export", &section)?;
    eprintln!("wrote the job-export section of {}", args.out.display());
    Ok(())
}

/// Requests an export of the whole workspace; its id.
async fn request(
    http: &reqwest::Client,
    address: std::net::SocketAddr,
    owner: &Owner,
    format: &str,
) -> anyhow::Result<Uuid> {
    let body: Value = http
        .post(format!("http://{address}/graphql"))
        .bearer_auth(&owner.token)
        .json(&json!({
            "query": "mutation($w: ID!, $f: ExportFormat!) {
                requestExport(workspaceId: $w, format: $f) { export { id } } }",
            "variables": { "w": owner.workspace, "f": format },
        }))
        .send()
        .await?
        .json()
        .await?;
    let id = body["data"]["requestExport"]["export"]["id"]
        .as_str()
        .with_context(|| format!("requestExport failed: {body}"))?;
    crate::http_api::client::uuid_of(id)
}

/// A `/proc/PID/status` field of `process`, in KiB.
fn status_kib(process: &Child, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.id()))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{}/status", process.id()))
}

fn stop(process: &mut Child) {
    let _ = process.kill();
    let _ = process.wait();
}

fn render(context: &Context, generated: &Generated, rows: &[Row]) -> String {
    let mut out = format!(
        "## Export job: CSV and PDF files of a workspace's items (`job-export`)\n\n{}\n\
         One workspace holds {} items, written through the API's write path ({:.0} items/s; \
         setup, not measured). Each export is requested through GraphQL (`requestExport`, the \
         whole workspace) and written by its own `chronicle worker` process into \
         `export_chunks`; the time runs from the request to the export being `COMPLETED` in the \
         read model (dispatch included). Memory is the worker process's: its resident set once \
         started and idle, and its peak (`VmHWM`). **Harness, worker and PostgreSQL share the \
         machine's cores.** Both files are streamed: items are read in pages of 500 and the \
         file stored in chunks of 256 KiB as it grows; the PDF writes each of its pages out \
         as soon as it is full, keeping only a few bytes per page (object offsets) and the \
         characters used until the end. Build: {}.\n\n\
         | format | items | file | time | items/s | worker RSS idle | worker peak |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        // The command as run: `reproduce_command` assumes a release build.
        if cfg!(debug_assertions) {
            context
                .markdown()
                .replace("cargo run --release", "cargo run")
        } else {
            context.markdown()
        },
        generated.items,
        generated.items_per_second(),
        if cfg!(debug_assertions) {
            "**unoptimised (dev profile)**, harness and worker alike: a release build is faster"
        } else {
            "release"
        },
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} MB | {:.1} s | {:.0} | {} MiB | {} MiB |\n",
            row.format,
            row.rows,
            row.bytes as f64 / 1e6,
            row.elapsed.as_secs_f64(),
            row.rows as f64 / row.elapsed.as_secs_f64(),
            row.idle_kib / 1024,
            row.peak_kib / 1024,
        ));
    }
    out
}
