//! `jobs`: how soon an event's job starts, and how many jobs the workers get through.
//!
//! The real background side runs in the harness's process: `api::background::start` (the
//! `jobs-dispatch` projection and the job workers, exactly as `chronicle worker` starts them),
//! once for "one worker process" and twice, each with its own connection pool, for "two". The
//! job measured is the invite email: its event is appended with the event log, and its job finds
//! no invite in the read model and ends after one indexed read, so it is close to a no-op.
//!
//! - Latency: events are appended one at a time, a fixed interval apart (so the figure is the
//!   path's latency, not a backlog's); a job's start is the `lock_at` apalis writes when a
//!   worker takes it, and its event's time is `recorded_at`, both from this machine's clock.
//! - Throughput: a batch of jobs is enqueued at once into stopped workers, the workers are
//!   started, and the time until every job is done gives jobs per second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use api::background;
use api::config::Config;
use api::shutdown::{Draining, Tasks};
use api::writes::Clock;
use domain::{Email, InviteId, Role, WorkspaceEvent};
use eventlog::aggregates::to_new_events;
use eventlog::{EventLog, ExpectedVersion, Metadata, StreamRef};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::latency::{Latencies, millis};
use crate::report::{self, Context};
use crate::server::{Database, Server};

/// SPEC §10: event → job started, p50.
const TARGET_P50: Duration = Duration::from_millis(50);
/// Connections per worker process (as the `chronicle` binary's pool would give it).
const POOL_SIZE: u32 = 16;

#[derive(clap::Args)]
pub struct Args {
    /// Events appended for the latency measurement (per worker-process count).
    #[arg(long, default_value_t = 300)]
    events: usize,
    /// Time between two appended events, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Jobs enqueued for the throughput measurement (per worker-process count).
    #[arg(long, default_value_t = 3000)]
    jobs: usize,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// The figures of one worker-process count.
struct Row {
    processes: usize,
    latencies: Latencies,
    jobs_per_second: f64,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut context = None;
    for processes in [1, 2] {
        let database = server.create_database().await?;
        jobs::setup(&database.pool).await?;
        if context.is_none() {
            context = Some(Context::gather(server, &database).await?);
        }
        let log = EventLog::new(database.pool.clone());

        // Throughput first: the jobs wait in the queue before any worker runs.
        eprintln!("jobs: {} jobs, {processes} worker process(es)", args.jobs);
        enqueue(&database, args.jobs).await?;
        let started = Instant::now();
        let nodes = start(&database, processes).await?;
        wait_until_done(&database, args.jobs).await?;
        let jobs_per_second = args.jobs as f64 / started.elapsed().as_secs_f64();

        eprintln!(
            "jobs: {} events {}ms apart, {processes} worker process(es)",
            args.events, args.interval_ms
        );
        let latencies = latencies(&log, &database, args).await?;
        nodes.stop().await;
        drop(log);
        server.drop_database(database).await?;
        rows.push(Row {
            processes,
            latencies,
            jobs_per_second,
        });
    }
    let context = context.context("no run")?;
    let section = render(&context, args, &rows);
    println!("{section}");
    report::write_section(&args.out, "jobs", &section)?;
    eprintln!("wrote the jobs section of {}", args.out.display());
    Ok(())
}

/// Background sides running in this process, stopped when done.
struct Nodes(Vec<(Draining, Tasks)>);

impl Nodes {
    /// Stops them as SIGTERM would: workers finish their jobs, then every task ends.
    async fn stop(self) {
        for (draining, tasks) in self.0 {
            draining.begin();
            tasks.stop(Duration::from_secs(5)).await;
        }
    }
}

/// Starts `processes` background sides (dispatcher and workers), each on a pool of its own.
async fn start(database: &Database, processes: usize) -> anyhow::Result<Nodes> {
    let config = Config::from_lookup(|_| None).context("the default configuration")?;
    let mut nodes = Vec::new();
    for n in 0..processes {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(&database.url)
            .await?;
        let log = EventLog::new(pool);
        let clock = Clock::with_offset(chrono::Duration::zero());
        let (draining, mut tasks) = (Draining::default(), Tasks::default());
        let node = format!("bench-{n}");
        background::start(&config, &log, clock, &node, &draining, &mut tasks).await?;
        nodes.push((draining, tasks));
    }
    Ok(Nodes(nodes))
}

/// Enqueues `count` invite-email jobs for invites that do not exist (each run is one read).
async fn enqueue(database: &Database, count: usize) -> anyhow::Result<()> {
    let jobs: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            serde_json::to_vec(&jobs::invite_email::InviteEmail {
                origin: jobs::worker::Origin {
                    event_id: Uuid::now_v7(),
                    workspace_id: Uuid::now_v7(),
                    correlation_id: None,
                },
                invite_id: Uuid::now_v7(),
            })
        })
        .collect::<Result<_, _>>()?;
    let keys: Vec<String> = (0..count).map(|_| Uuid::now_v7().to_string()).collect();
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  priority, idempotency_key)
         SELECT apalis.generate_ulid(), $1, job, 'Pending', 0, 8, now(), 0, key
         FROM UNNEST($2::bytea[], $3::text[]) AS j(job, key)",
    )
    .bind(jobs::invite_email::QUEUE)
    .bind(&jobs)
    .bind(&keys)
    .execute(&database.pool)
    .await
    .context("enqueueing the jobs")?;
    Ok(())
}

async fn done(database: &Database) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
    )
    .bind(jobs::invite_email::QUEUE)
    .fetch_one(&database.pool)
    .await?)
}

async fn wait_until_done(database: &Database, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while done(database).await? < count as i64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the jobs did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Appends `args.events` `InviteCreated` events, one every `args.interval_ms`, waits for their
/// jobs, and returns each job's start after its event.
async fn latencies(log: &EventLog, database: &Database, args: &Args) -> anyhow::Result<Latencies> {
    let before = done(database).await?;
    let workspace = Uuid::now_v7();
    let stream = StreamRef {
        stream_type: "workspace",
        stream_id: workspace,
        workspace_id: Some(workspace),
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    for n in 0..args.events {
        ticks.tick().await;
        let event = WorkspaceEvent::InviteCreated {
            invite_id: InviteId::from_uuid(Uuid::now_v7()),
            email: Email::parse(&format!("guest{n}@example.com"))?,
            role: Role::Member,
            token_hash: format!("hash-{n}"),
            expires_at: chrono::Utc::now() + chrono::Duration::days(7),
        };
        let expected = if n == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(n as u64)
        };
        log.append(
            &stream,
            expected,
            &to_new_events(&[event], &Metadata::system("bench")),
        )
        .await?;
    }
    wait_until_done(database, before as usize + args.events).await?;
    let micros: Vec<i64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM j.lock_at - e.recorded_at) * 1000000)::bigint
         FROM events e JOIN apalis.jobs j
           ON j.job_type = $1 AND j.idempotency_key = e.event_id::text
         WHERE e.stream_id = $2",
    )
    .bind(jobs::invite_email::QUEUE)
    .bind(workspace)
    .fetch_all(&database.pool)
    .await?;
    anyhow::ensure!(micros.len() == args.events, "a job is missing");
    Ok(Latencies::new(
        micros
            .into_iter()
            .map(|m| Duration::from_micros(m.max(0) as u64))
            .collect(),
    ))
}

/// The section of `BENCHMARKS.md`.
fn render(context: &Context, args: &Args, rows: &[Row]) -> String {
    let mut out = format!(
        "## Background jobs: event → job started, jobs per second (`jobs`)\n\n{}\n\
         The background side is `api::background::start` — the `jobs-dispatch` projection \
         (woken by the log's notifications) and the job workers (woken by apalis-postgres's \
         insert notifications), as `chronicle worker` runs them — started in the harness's \
         process once, or twice with a connection pool each for two worker processes (both \
         dispatchers compete for leadership; both processes' workers share the queue). \
         **Workers, the load generator and PostgreSQL share the machine's cores.** \
         The job is the invite email for an invite that is not in the read model: one indexed \
         read, then done — a near no-op. Latency: {} `InviteCreated` events appended one every \
         {} ms; from the event's `recorded_at` to the `lock_at` apalis writes when a worker \
         takes its job. Throughput: {} jobs enqueued before the workers start, until all are \
         done.\n\n\
         | worker processes | event → job started p50 | p99 | jobs/s |\n\
         |---:|---:|---:|---:|\n",
        context.markdown(),
        args.events,
        args.interval_ms,
        args.jobs,
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} |\n",
            row.processes,
            millis(row.latencies.percentile(0.50)),
            millis(row.latencies.percentile(0.99)),
            row.jobs_per_second,
        ));
    }
    let worst = rows
        .iter()
        .map(|r| r.latencies.percentile(0.50))
        .max()
        .unwrap_or_default();
    let verdict = if worst <= TARGET_P50 {
        "met"
    } else {
        "not met"
    };
    out.push_str(&format!(
        "\nTarget (SPEC §10): event → job started p50 ≤ {} — **{verdict}** ({}).\n",
        millis(TARGET_P50),
        millis(worst),
    ));
    out
}
