//! `export`: reading a large workspace's events back in bulk. A workspace is filled with
//! `--events` events (100,000 by default; see [`crate::generate`]), then read whole, in log
//! order, three ways in one run:
//!
//! - raw: `SELECT … FROM events WHERE workspace_id = $1 ORDER BY tx_id, seq` streamed with
//!   sqlx's `fetch`, each row decoded (JSON columns included) and dropped — the baseline;
//! - `GET /events.ndjson?workspace=…` from the real server, the body read chunk by chunk and
//!   its lines counted, never held whole;
//! - an `events` subscription from the beginning over WebSocket (`graphql-transport-ws`),
//!   selecting every field of the event, until every event has arrived (catch-up).
//!
//! The server (`api::startup::Application`) runs in this process, so the memory it takes while
//! streaming is this process's resident set: read from `/proc/self/status` before each path,
//! sampled every [`SAMPLE_EVERY`] during it, and after it. The clients keep nothing but
//! counters and the last line, so a growing RSS would be the server's.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::api::writes::Writes;
use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use uuid::Uuid;

use crate::generate::{self, Generated, Owner};
use crate::report::{self, Context};
use crate::server::{self, Server};

/// Times each path reads the whole workspace; the table shows the median run.
const RUNS: usize = 3;
/// How often the resident set is sampled while a path runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The baseline's query: every column `/events.ndjson` sends, in the log's order.
const RAW_QUERY: &str = "SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version,
                                workspace_id, event_type, schema_version, payload, metadata,
                                recorded_at
                         FROM events WHERE workspace_id = $1 ORDER BY tx_id, seq";

/// The subscription: from the beginning, every field `/events.ndjson` sends.
const SUBSCRIPTION: &str = "subscription($f: EventsFilter) { events(filter: $f) {
    position eventId streamType streamId streamVersion workspaceId eventType schemaVersion
    payload metadata recordedAt } }";

#[derive(clap::Args)]
pub struct Args {
    /// How many events the workspace holds (generated as items; at least this many).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// A way of reading the workspace.
#[derive(Clone, Copy)]
enum Reader {
    Raw,
    Ndjson,
    Subscription,
}

/// What one complete read saw.
struct Read {
    events: usize,
    /// Bytes received (`None`: not comparable, the rows arrive in PostgreSQL's binary format).
    bytes: Option<u64>,
    /// The last event's position.
    last: String,
}

/// The workspace as the database holds it: what every read must return.
struct Expected {
    events: usize,
    last: String,
}

/// The resident set of this process around a path's runs, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    before: u64,
    peak: u64,
    after: u64,
}

/// One measured line of the table.
struct Row {
    reader: Reader,
    /// The median run's time.
    median: Duration,
    bytes: Option<u64>,
    memory: Memory,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let server::Running {
        database,
        context,
        pool,
        address,
        state: _state,
    } = server::run_app(server).await?;
    let owner = Owner::sign_up(address, &database.pool, "exporter").await?;

    let writes = Writes::new(eventlog::EventLog::new(database.pool.clone()));
    let already = expected(&database.pool, owner.workspace_id).await?.events;
    let items = generate::items_for_events(args.events.saturating_sub(already));
    eprintln!("export: generating {items} items");
    let generated = generate::items(&writes, owner.workspace_id, owner.user_id, items).await?;
    let expected = expected(&database.pool, owner.workspace_id).await?;
    server::settle(address).await?;
    // Set hint bits and the visibility map now rather than during the first measured read.
    sqlx::raw_sql("VACUUM (ANALYZE) events")
        .execute(&database.pool)
        .await
        .context("vacuuming the events table")?;
    database.checkpoint().await;

    let (http, db, owner, count) = (
        &reqwest::Client::new(),
        &database.pool,
        &owner,
        expected.events,
    );
    eprintln!("export: warming up");
    raw(db, owner.workspace_id).await?;
    let mut rows = Vec::new();
    for reader in [Reader::Raw, Reader::Ndjson, Reader::Subscription] {
        eprintln!("export: {} × {RUNS}", reader.name());
        let row = measure(reader, &expected, move || async move {
            match reader {
                Reader::Raw => raw(db, owner.workspace_id).await,
                Reader::Ndjson => ndjson(http, address, owner).await,
                Reader::Subscription => subscription(address, owner, count).await,
            }
        })
        .await?;
        eprintln!(
            "export: {}: {:.0} events/s, RSS {} → peak {} → {}",
            reader.name(),
            expected.events as f64 / row.median.as_secs_f64(),
            mib(row.memory.before),
            mib(row.memory.peak),
            mib(row.memory.after),
        );
        rows.push(row);
    }

    // Nothing is in flight any more: close the server's pool so that the database can go.
    pool.close().await;
    server.drop_database(database).await?;

    let section = render(&context, &generated, &expected, &rows);
    println!("{section}");
    report::write_section(&args.out, "export", &section)?;
    eprintln!("wrote the export section of {}", args.out.display());
    Ok(())
}

/// How many events the workspace holds, and the last one's position.
async fn expected(pool: &PgPool, workspace_id: Uuid) -> anyhow::Result<Expected> {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(pool)
        .await
        .context("counting the workspace's events")?;
    let last: Option<(i64, i64)> = sqlx::query_as(
        "SELECT tx_id, seq FROM events WHERE workspace_id = $1
         ORDER BY tx_id DESC, seq DESC LIMIT 1",
    )
    .bind(workspace_id)
    .fetch_optional(pool)
    .await
    .context("reading the workspace's last event")?;
    Ok(Expected {
        events: events as usize,
        last: last.map_or_else(String::new, |(tx_id, seq)| position(tx_id, seq)),
    })
}

/// A position as clients see it (`eventlog::Position`'s text form).
fn position(tx_id: i64, seq: i64) -> String {
    format!("{tx_id:016x}{seq:016x}")
}

/// Runs `read` [`RUNS`] times, checking each run returned the whole workspace, while watching
/// this process's memory.
async fn measure<F, R>(reader: Reader, expected: &Expected, mut read: F) -> anyhow::Result<Row>
where
    F: FnMut() -> R,
    R: Future<Output = anyhow::Result<Read>>,
{
    let sampler = Sampler::start()?;
    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let read = read().await?;
        times.push(started.elapsed());
        ensure!(
            read.events == expected.events && read.last == expected.last,
            "{} returned {} events up to {}, not {} up to {}",
            reader.name(),
            read.events,
            read.last,
            expected.events,
            expected.last
        );
        bytes = read.bytes;
    }
    let memory = sampler.stop().await?;
    times.sort_unstable();
    Ok(Row {
        reader,
        median: times[RUNS / 2],
        bytes,
        memory,
    })
}

/// The baseline: the workspace's rows straight from PostgreSQL, each decoded and dropped.
async fn raw(pool: &PgPool, workspace_id: Uuid) -> anyhow::Result<Read> {
    type EventRow = (
        i64,
        i64,
        Uuid,
        String,
        Uuid,
        i64,
        Option<Uuid>,
        String,
        i32,
        Value,
        Value,
        DateTime<Utc>,
    );
    let mut rows = sqlx::query_as::<_, EventRow>(RAW_QUERY)
        .bind(workspace_id)
        .fetch(pool);
    let mut events = 0;
    let mut last = (0, 0);
    while let Some(row) = rows.try_next().await.context("reading events")? {
        events += 1;
        last = (row.0, row.1);
    }
    Ok(Read {
        events,
        bytes: None,
        last: position(last.0, last.1),
    })
}

/// `GET /events.ndjson` for the workspace, read as a stream: lines are counted, and only the
/// last complete one is kept.
async fn ndjson(
    http: &reqwest::Client,
    address: SocketAddr,
    owner: &Owner,
) -> anyhow::Result<Read> {
    let mut response = http
        .get(format!("http://{address}/events.ndjson"))
        .query(&[("workspace", &owner.workspace)])
        .bearer_auth(&owner.token)
        .send()
        .await
        .context("requesting /events.ndjson")?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "/events.ndjson answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let (mut events, mut bytes) = (0, 0);
    let (mut line, mut last_line) = (Vec::new(), Vec::new());
    while let Some(chunk) = response.chunk().await.context("reading /events.ndjson")? {
        bytes += chunk.len() as u64;
        for piece in chunk.split_inclusive(|&byte| byte == b'\n') {
            line.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                events += 1;
                std::mem::swap(&mut line, &mut last_line);
                line.clear();
            }
        }
    }
    ensure!(
        line.is_empty(),
        "/events.ndjson ended in the middle of a line"
    );
    let last = match events {
        0 => String::new(),
        _ => {
            let event: Value =
                serde_json::from_slice(&last_line).context("the last line is not JSON")?;
            event["position"]
                .as_str()
                .context("the last line has no position")?
                .to_string()
        }
    };
    Ok(Read {
        events,
        bytes: Some(bytes),
        last,
    })
}

/// A `graphql-transport-ws` message from the server, as far as the benchmark looks into it.
#[derive(Deserialize)]
struct ServerMessage<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    payload: Option<NextPayload<'a>>,
}

#[derive(Deserialize)]
struct NextPayload<'a> {
    #[serde(borrow, default)]
    data: Option<NextData<'a>>,
    #[serde(default)]
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct NextData<'a> {
    #[serde(borrow)]
    events: EventHead<'a>,
}

#[derive(Deserialize)]
struct EventHead<'a> {
    position: &'a str,
}

/// An `events` subscription from the beginning, until `count` events have arrived.
async fn subscription(address: SocketAddr, owner: &Owner, count: usize) -> anyhow::Result<Read> {
    let mut request = format!("ws://{address}/graphql").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("opening a WebSocket to /graphql")?;
    let init = json!({ "type": "connection_init",
                       "payload": { "authorization": format!("Bearer {}", owner.token) } });
    socket.send(Message::text(init.to_string())).await?;
    let subscribe = json!({ "id": "1", "type": "subscribe",
                            "payload": { "query": SUBSCRIPTION,
                                         "variables": { "f": { "workspaceId": owner.workspace } } } });
    let (mut events, mut bytes, mut last) = (0, 0, String::new());
    let mut acknowledged = false;
    while events < count {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => bail!("the server closed the socket: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err).context("reading the WebSocket"),
            None => bail!("the WebSocket ended after {events} events"),
        };
        let message: ServerMessage<'_> =
            serde_json::from_str(&text).with_context(|| format!("unexpected message {text}"))?;
        match message.kind {
            "connection_ack" if !acknowledged => {
                acknowledged = true;
                socket.send(Message::text(subscribe.to_string())).await?;
            }
            "next" => {
                let payload = message.payload.context("a next message without payload")?;
                ensure!(payload.errors.is_none(), "the subscription failed: {text}");
                let data = payload.data.context("a next message without data")?;
                bytes += text.len() as u64;
                events += 1;
                if events == count {
                    last = data.events.position.to_string();
                }
            }
            "ping" => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
            _ => bail!("unexpected message {text}"),
        }
    }
    socket
        .send(Message::text(r#"{"id":"1","type":"complete"}"#))
        .await?;
    socket.close(None).await?;
    Ok(Read {
        events,
        bytes: Some(bytes),
        last,
    })
}

/// Watches this process's resident set from [`Sampler::start`] to [`Sampler::stop`].
struct Sampler {
    before: u64,
    /// The kernel's high-water mark was reset at the start (`/proc/self/clear_refs`), so
    /// `VmHWM` is the peak of this period, including between samples.
    hwm_reset: bool,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start() -> anyhow::Result<Sampler> {
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = status_kib("VmRSS")?;
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(before)),
        );
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(SAMPLE_EVERY).await;
                    if let Ok(rss) = status_kib("VmRSS") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(Sampler {
            before,
            hwm_reset,
            stop,
            peak,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<Memory> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.context("the memory sampler panicked")?;
        let after = status_kib("VmRSS")?;
        let mut peak = self.peak.load(Ordering::Relaxed).max(after);
        if self.hwm_reset {
            peak = peak.max(status_kib("VmHWM")?);
        }
        Ok(Memory {
            before: self.before,
            peak,
            after,
        })
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::Raw => "raw SELECT",
            Reader::Ndjson => "/events.ndjson",
            Reader::Subscription => "events subscription",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Reader::Raw => "raw `SELECT … ORDER BY tx_id, seq` (sqlx `fetch`)",
            Reader::Ndjson => "`GET /events.ndjson` (HTTP, streamed)",
            Reader::Subscription => "`events` subscription catch-up (WebSocket)",
        }
    }
}

/// The section of `BENCHMARKS.md`.
fn render(context: &Context, generated: &Generated, expected: &Expected, rows: &[Row]) -> String {
    let mut out = format!(
        "## Bulk export of a workspace's events (`export`)\n\n{}\n\
         One workspace holds {} events: those of its creation through the API, then {} \
         generated items ({} events: `ItemCreated`, and `ItemArchived` for the archived ones) \
         written through the API's write path ({:.0} items/s, {} items per transaction; setup, \
         not measured). The \
         workspace is then read whole, in log order, {RUNS} times by each path; the table gives \
         the median run. The raw baseline streams the same rows and columns with sqlx's \
         `fetch` and decodes them (JSON included) without sending them anywhere. \
         `/events.ndjson` is read as a stream by a client that counts its lines. The \
         subscription asks for every field of the event (as in an NDJSON line) from the \
         beginning and is read until the last event arrives; the client parses each message. \
         The real server (`api::startup::Application`, production mode) runs in the harness's \
         process, after its projections have caught up; **server, clients and PostgreSQL \
         share the machine's cores**.\n\n\
         | path | events | median time | events/s | ÷ raw | received |\n\
         |---|---:|---:|---:|---:|---:|\n",
        context.markdown(),
        expected.events,
        generated.items,
        generated.events,
        generated.items_per_second(),
        generate::ITEMS_PER_TRANSACTION,
    );
    let rate = |row: &Row| expected.events as f64 / row.median.as_secs_f64();
    let raw_rate = rows
        .iter()
        .find(|row| matches!(row.reader, Reader::Raw))
        .map_or(f64::NAN, rate);
    for row in rows {
        let received = row.bytes.map_or_else(
            || "—".to_string(),
            |bytes| {
                format!(
                    "{:.1} MB ({:.0} B/event, {:.0} MB/s)",
                    bytes as f64 / 1e6,
                    bytes as f64 / expected.events as f64,
                    bytes as f64 / 1e6 / row.median.as_secs_f64()
                )
            },
        );
        out.push_str(&format!(
            "| {} | {} | {:.2} s | {:.0} | {:.2} | {received} |\n",
            row.reader.label(),
            expected.events,
            row.median.as_secs_f64(),
            rate(row),
            rate(row) / raw_rate,
        ));
    }
    out.push_str(&format!(
        "\nMemory of the harness's process (server, clients and pools), resident set from \
         `/proc/self/status`: before a path's first run, its peak during the {RUNS} runs \
         (sampled every {} ms, and the kernel's high-water mark `VmHWM`, reset before the \
         runs where `/proc/self/clear_refs` allows it), and after the last run.\n\n\
         | path | RSS before | peak | after | peak − before |\n\
         |---|---:|---:|---:|---:|\n",
        SAMPLE_EVERY.as_millis()
    ));
    for row in rows {
        let Memory {
            before,
            peak,
            after,
        } = row.memory;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.reader.label(),
            mib(before),
            mib(peak),
            mib(after),
            mib(peak.saturating_sub(before)),
        ));
    }
    out.push_str(
        "\nSPEC §10 sets no bar for exports; SPEC §8 asks that `/events.ndjson` stream (memory \
         flat however long the log), which the peak − before column shows.\n",
    );
    out
}
