//! `append`: event log append throughput and latency next to raw single-row inserts.
//!
//! Each appender is a user editing an item: it appends one event at a time to its own stream,
//! expecting the version its previous append returned, and waits for the commit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use eventlog::{EventLog, ExpectedVersion};
use uuid::Uuid;

use crate::latency::{Latencies, millis};
use crate::pgbench::Baseline;
use crate::report::{self, Context};
use crate::rounds::{self, ROUNDS};
use crate::sample;
use crate::server::Server;

/// The concurrency levels measured; the target applies to the last.
const CONCURRENCY: [usize; 2] = [1, 32];
/// Unmeasured work before each measurement, on both sides (fills caches, opens connections).
const WARM_UP: Duration = Duration::from_secs(2);
/// The bar: append throughput at 32 appenders as a fraction of raw insert TPS.
const TARGET_RATIO: f64 = 0.8;

#[derive(clap::Args)]
pub struct Args {
    /// How long each measurement runs (per concurrency level, for each side).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// The figures of one concurrency level, its rounds taken as one.
struct Row {
    appenders: usize,
    /// The mean over the rounds.
    appends_per_second: f64,
    /// Every append of every round.
    latencies: Latencies,
    /// The mean over the rounds.
    raw_tps: f64,
    /// Each round's appends per second ÷ raw insert TPS, in the order measured.
    ratios: Vec<f64>,
}

impl Row {
    fn new(appenders: usize, appends: Vec<(f64, Latencies)>, raw: Vec<f64>) -> Row {
        let ratios = appends
            .iter()
            .zip(&raw)
            .map(|((per_second, _), raw_tps)| per_second / raw_tps)
            .collect();
        let appends_per_second = mean(appends.iter().map(|(per_second, _)| *per_second));
        Row {
            appenders,
            appends_per_second,
            latencies: Latencies::pooled(appends.into_iter().map(|(_, latencies)| latencies)),
            raw_tps: mean(raw.iter().copied()),
            ratios,
        }
    }

    /// The ratio the verdict is on: the median of the rounds'.
    fn ratio(&self) -> f64 {
        rounds::median(&self.ratios)
    }
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = values.len().max(1) as f64;
    values.sum::<f64>() / n
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds.max(1));
    let database = server.create_database().await?;
    let log = EventLog::new(database.pool.clone());
    let baseline = Baseline::prepare(server, &database).await?;
    let context = Context::gather(server, &database).await?;

    let mut rows = Vec::new();
    for appenders in CONCURRENCY {
        let (appends, raw) = rounds::alternate(
            async || {
                database.checkpoint().await;
                eprintln!("append: {appenders} appender(s), {}s", duration.as_secs());
                measure(&log, appenders, duration).await
            },
            async || {
                database.checkpoint().await;
                eprintln!("pgbench: {appenders} client(s), {}s", duration.as_secs());
                baseline.tps(appenders, WARM_UP, duration).await
            },
        )
        .await?;
        rows.push(Row::new(appenders, appends, raw));
    }

    drop(log);
    server.drop_database(database).await?;

    let section = render(&context, &rows, duration);
    println!("{section}");
    report::write_section(&args.out, "append", &section)?;
    eprintln!("wrote the append section of {}", args.out.display());
    Ok(())
}

/// Appends per second and their latencies with `appenders` concurrent appenders.
async fn measure(
    log: &EventLog,
    appenders: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let items = (0..appenders).map(|_| Item::new()).collect();
    let (items, _) = append_for(log, items, WARM_UP).await?;
    let started = Instant::now();
    let (_, latencies) = append_for(log, items, duration).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = Latencies::new(latencies);
    Ok((latencies.count() as f64 / elapsed, latencies))
}

/// Runs one appender per item until `duration` has passed; returns the items (at their new
/// versions) and every append's latency.
async fn append_for(
    log: &EventLog,
    items: Vec<Item>,
    duration: Duration,
) -> anyhow::Result<(Vec<Item>, Vec<Duration>)> {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| tokio::spawn(item.edit_until(log.clone(), deadline)))
        .collect();
    let mut items = Vec::with_capacity(tasks.len());
    let mut latencies = Vec::new();
    for task in tasks {
        let (item, item_latencies) = task.await.context("an appender panicked")??;
        items.push(item);
        latencies.extend(item_latencies);
    }
    Ok((items, latencies))
}

/// An item being edited by one appender.
struct Item {
    id: Uuid,
    /// The stream's version: the number of events appended so far.
    version: u64,
}

impl Item {
    fn new() -> Item {
        Item {
            id: Uuid::now_v7(),
            version: 0,
        }
    }

    /// Appends edits one after the other until `deadline`, returning each append's latency.
    async fn edit_until(
        mut self,
        log: EventLog,
        deadline: Instant,
    ) -> anyhow::Result<(Item, Vec<Duration>)> {
        let stream = sample::item_stream(self.id);
        let mut latencies = Vec::new();
        while Instant::now() < deadline {
            let event = sample::event(self.id, self.version + 1);
            let started = Instant::now();
            let appended = log
                .append(&stream, ExpectedVersion::Exact(self.version), &[event])
                .await
                .with_context(|| format!("appending to item {}", self.id))?;
            latencies.push(started.elapsed());
            self.version = appended.stream_version;
        }
        Ok((self, latencies))
    }
}

/// The section of `BENCHMARKS.md`.
fn render(context: &Context, rows: &[Row], duration: Duration) -> String {
    let (payload, metadata) = sample::sizes();
    let mut out = format!(
        "## Event log append vs. raw insert (`append`)\n\n{}\n\
         Each append is one `EventLog::append` of one event ({payload} bytes of JSON payload + \
         {metadata} bytes of metadata) to the appender's own item stream with \
         `ExpectedVersion::Exact`: one insert that commits on its own (the node remembers the head it wrote last, so it reads none), then the node's notifier announces the append to other nodes with a `pg_notify` of its own (coalesced when appends come faster than it can send). The raw baseline is pgbench \
         (`-M prepared`, one thread per client up to 2) inserting the same row, one per \
         transaction, into `raw_events`, a copy of `events` with the same columns, keys and \
         indexes. Each measurement runs {}s after a {}s warm-up and a `CHECKPOINT`; the two \
         sides are measured in {ROUNDS} rounds per concurrency level, the appends first in the \
         first round and pgbench first in the next, alternately. Rates are the rounds' means, \
         p50 and p99 are over every append of the rounds, and the verdict is on the median of \
         the rounds' ratios.\n\n\
         | concurrency | append/s | p50 | p99 | raw insert TPS (pgbench) | append / raw (median) | rounds |\n\
         |---:|---:|---:|---:|---:|---:|---|\n",
        context.markdown(),
        duration.as_secs(),
        WARM_UP.as_secs(),
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {:.0} | {:.2} | {} |\n",
            row.appenders,
            row.appends_per_second,
            millis(row.latencies.percentile(0.50)),
            millis(row.latencies.percentile(0.99)),
            row.raw_tps,
            row.ratio(),
            rounds::listed(&row.ratios),
        ));
    }
    if let Some(last) = rows.last() {
        let verdict = if last.ratio() >= TARGET_RATIO {
            "met"
        } else {
            "not met"
        };
        out.push_str(&format!(
            "\nTarget: append throughput at {} appenders ≥ {TARGET_RATIO} × raw insert TPS — \
             **{verdict}** ({:.2}). The target is the foundation issue's; it leaves room within \
             SPEC §10's `createItem` bar (≥ 0.5 × raw at 32 clients) for the rest of the \
             request path.\n",
            last.appenders,
            last.ratio(),
        ));
    }
    out
}
