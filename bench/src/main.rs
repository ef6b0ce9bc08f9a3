//! Chronicle's benchmark harness: measures the hot paths against a raw PostgreSQL baseline taken
//! in the same run on the same server, and records the figures in `BENCHMARKS.md` (SPEC §10).
//!
//! - `append`: throughput and latency of [`eventlog::EventLog::append`] (one realistic event per
//!   append, each appender editing its own stream with an exact expected version), at 1 and 32
//!   concurrent appenders, next to pgbench's TPS for a single-row `INSERT` of the same row into
//!   a copy of the `events` table.
//! - `api`: the real HTTP server: `createItem` throughput and latency at 32 concurrent clients
//!   next to pgbench's raw insert TPS in the same run, and `items` (first 20) query throughput
//!   next to PostGraphile v4 on the same table and data (needs Node.js and npm).
//! - `cache`: `items(first: 20)` answered from the response cache, next to a bare actix-web
//!   endpoint sending the same bytes and to the same query with the cache off.
//! - `export`: a workspace of 100,000 events read whole through `/events.ndjson` and through an
//!   `events` subscription catching up over WebSocket, with the server's memory while it
//!   streams, next to a raw `SELECT` of the same rows in the same run.
//! - `jobs`: event → job started latency and jobs per second through the real dispatcher and
//!   workers, with one and two worker processes.
//! - `search`: 1,000,000 generated items: a typo-tolerant, filtered search (index and GraphQL)
//!   next to `ILIKE` on the same data, index build and projection rebuild rates.
//!
//! Run from the workspace root, in release mode:
//!
//! ```text
//! cargo run --release -p bench -- append --seconds 10
//! cargo run --release -p bench -- api --seconds 10
//! cargo run --release -p bench -- cache --seconds 10
//! cargo run --release -p bench -- export
//! cargo run --release -p bench -- search
//! cargo run --release -p bench -- jobs
//! ```
//!
//! With `DATABASE_URL` set, the benchmark creates (and afterwards drops) a fresh database on that
//! server and runs `pgbench` from `PATH`; otherwise it starts a private throw-away PostgreSQL
//! cluster (see the `pgcluster` crate) and uses that cluster's `pgbench`. Each subcommand
//! replaces only its own section of `BENCHMARKS.md`.

mod append;
mod cache;
mod console;
mod export;
mod generate;
mod http_api;
mod job_export;
mod jobs;
mod latency;
mod machine;
mod pgbench;
mod report;
mod rounds;
mod sample;
mod search;
mod server;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::server::Server;

/// The `chronicle` binary's allocator (see `api/src/main.rs`), since the server runs in this
/// process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "chronicle-bench", about = "Chronicle's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    benchmark: Benchmark,
}

#[derive(Subcommand)]
enum Benchmark {
    /// Event log append throughput vs. raw PostgreSQL single-row inserts (pgbench).
    Append(append::Args),
    /// createItem and items throughput over HTTP vs. raw single-row inserts and PostGraphile.
    Api(http_api::Args),
    /// A cached query vs. a bare actix-web endpoint and vs. the cache turned off.
    Cache(cache::Args),
    /// Reading a workspace's events in bulk (NDJSON, subscription) vs. a raw SELECT.
    Export(export::Args),
    /// Search on 1,000,000 items vs. ILIKE, index build and projection rebuild rates.
    Search(search::Args),
    /// Event → job started latency and jobs/s with one and two worker processes.
    Jobs(jobs::Args),
    /// The export job: 100,000 items as CSV and as PDF, time and the worker's peak memory.
    JobExport(job_export::Args),
    /// The console's pages (timeline, item history, log) on a workspace with 100,000 events.
    Console(console::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Starting a private cluster is synchronous: do it before the runtime exists.
    let server = Server::provision()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        match cli.benchmark {
            Benchmark::Append(args) => append::run(&args, &server).await,
            Benchmark::Api(args) => http_api::run(&args, &server).await,
            Benchmark::Cache(args) => cache::run(&args, &server).await,
            Benchmark::Export(args) => export::run(&args, &server).await,
            Benchmark::Search(args) => search::run(&args, &server).await,
            Benchmark::Jobs(args) => jobs::run(&args, &server).await,
            Benchmark::JobExport(args) => job_export::run(&args, &server).await,
            Benchmark::Console(args) => console::run(&args, &server).await,
        }
    })
}

/// The command line that reproduces this run, as written in `BENCHMARKS.md`.
fn reproduce_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p bench -- {}", args.join(" "))
}
