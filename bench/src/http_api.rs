//! `api`: the real HTTP server under load. `createItem` throughput and latency at 32 concurrent
//! clients next to pgbench's raw single-row insert TPS in the same run, and `items` (first 20)
//! query throughput next to PostGraphile v4 reading the same `items` table in the same run.
//!
//! The server is `api::startup::Application`, started in this process on a port of its own with
//! a connection pool like the `chronicle` binary's; the clients are tasks of this process sending
//! GraphQL over keep-alive HTTP/1.1 connections, each waiting for its answer before sending the
//! next request. PostGraphile runs as a child process ([`postgraphile`]) and gets the same
//! clients.

pub(crate) mod client;
mod postgraphile;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use self::client::{Client, PAGE, Tenant};
use self::postgraphile::{Installation, Setup};
use crate::latency::{Latencies, millis};
use crate::pgbench::Baseline;
use crate::report::{self, Context};
use crate::rounds::{self, ROUNDS};
use crate::server::{self, APP_POOL_SIZE, Server};

/// Concurrent clients in every measurement.
const CLIENTS: usize = 32;
/// Unmeasured work before each measurement, on both sides (fills caches, opens connections).
const WARM_UP: Duration = Duration::from_secs(2);
/// SPEC §10: `createItem` throughput at 32 clients ≥ this × raw insert TPS, one workspace per
/// client.
const TARGET_RATIO: f64 = 0.5;
/// Issue 12: the same with all clients on one shared workspace.
const SHARED_TARGET_RATIO: f64 = 0.3;
/// Issue 12: uncached `items` throughput at 32 clients ≥ this × PostGraphile v4's.
const POSTGRAPHILE_TARGET_RATIO: f64 = 2.0;
/// Items every workspace holds before `items` is measured.
const MIN_ITEMS: usize = 200;
/// Sign-ups run a few at a time: each hashes a password with argon2id.
const SETUP_CONCURRENCY: usize = 4;

/// How long each measurement runs, and where the section goes (shared with `cache`).
#[derive(clap::Args)]
pub struct Args {
    /// How long each measurement runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

/// What the clients send.
#[derive(Clone, Copy)]
enum Request {
    CreateItem,
    Items,
    /// The same page as `Items`, asked of PostGraphile.
    PostGraphileItems,
}

/// One measured line of the table.
struct Row {
    request: Request,
    /// Which workspaces the clients use, as the table says it.
    workspaces: String,
    per_second: f64,
    latencies: Latencies,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds.max(1));
    // First, so that a missing Node.js fails the run before anything is set up.
    let postgraphile = Installation::prepare()?;
    let database = server.create_database().await?;
    let baseline = Baseline::prepare(server, &database).await?;
    let context = Context::gather(server, &database).await?;
    let pool = server::app_pool(&database).await?;
    let state = tempfile::tempdir().context("creating the server's state directory")?;
    let client = Client::new(server::start_app(pool.clone(), state.path()).await?)?;
    // Started before the measurements, so that it fails the run (if at all) early.
    let postgraphile = postgraphile
        .start(&database, chronicle_http_workers())
        .await?;
    let reference = Client::new(postgraphile.address)?;

    eprintln!("api: signing up {CLIENTS} users, each with a workspace");
    let own = tenants(&client, CLIENTS).await?;
    let shared = vec![own[0].clone(); CLIENTS];
    let mut created = vec![0; CLIENTS];

    // `createItem` on own workspaces and on the shared one, then pgbench, in alternating
    // rounds.
    let (writes, raw) = rounds::alternate(
        async || {
            database.checkpoint().await;
            let (own_row, counts) = measure(&client, &own, Request::CreateItem, duration).await?;
            add(&mut created, &counts);
            database.checkpoint().await;
            let (shared_row, counts) =
                measure(&client, &shared, Request::CreateItem, duration).await?;
            created[0] += counts.iter().sum::<usize>();
            anyhow::Ok([own_row, shared_row])
        },
        async || {
            database.checkpoint().await;
            eprintln!("pgbench: {CLIENTS} clients, {}s", duration.as_secs());
            baseline.tps(CLIENTS, WARM_UP, duration).await
        },
    )
    .await?;
    let writes = Writes::new(writes, raw);

    top_up(&client, &own, &mut created).await?;
    same_pages(&client, &reference, &own).await?;
    let fewest = created.iter().min().copied().unwrap_or_default();
    let variants = [
        (
            &own,
            format!("{CLIENTS}, one per client (≥ {fewest} items each)"),
        ),
        (&shared, format!("1, shared ({} items)", created[0])),
    ];
    let mut comparisons = Vec::with_capacity(variants.len());
    let sides = (&client, &reference);
    for (tenants, workspaces) in variants {
        comparisons.push(compare(&database, sides, tenants, &workspaces, duration).await?);
    }

    // Nothing is in flight any more: stop PostGraphile and close the server's pool so that
    // the database can go.
    let setup = postgraphile.setup.clone();
    drop(postgraphile);
    pool.close().await;
    server.drop_database(database).await?;

    let section = render(&context, &writes, &comparisons, &setup, duration);
    println!("{section}");
    report::write_section(&args.out, "api", &section)?;
    eprintln!("wrote the api section of {}", args.out.display());
    Ok(())
}

/// Signs up `count` users, each with a workspace of their own.
pub(crate) async fn tenants(client: &Client, count: usize) -> anyhow::Result<Vec<Tenant>> {
    let mut tenants = Vec::with_capacity(count);
    for first in (0..count).step_by(SETUP_CONCURRENCY) {
        let tasks: Vec<_> = (first..(first + SETUP_CONCURRENCY).min(count))
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move { client.tenant(n).await })
            })
            .collect();
        for task in tasks {
            tenants.push(task.await.context("a sign-up panicked")??);
        }
    }
    Ok(tenants)
}

/// Creates items until every tenant's workspace holds [`MIN_ITEMS`].
async fn top_up(client: &Client, tenants: &[Tenant], created: &mut [usize]) -> anyhow::Result<()> {
    for (tenant, count) in tenants.iter().zip(created.iter_mut()) {
        while *count < MIN_ITEMS {
            client.create_item(tenant, *count as u64).await?;
            *count += 1;
        }
    }
    Ok(())
}

/// Checks that PostGraphile answers every tenant's first page with the same items, in the same
/// order, as Chronicle: the two measurements read the same rows.
async fn same_pages(
    chronicle: &Client,
    postgraphile: &Client,
    tenants: &[Tenant],
) -> anyhow::Result<()> {
    for tenant in tenants {
        let ours = chronicle.first_page(tenant).await?;
        let theirs = postgraphile.first_page_postgraphile(tenant).await?;
        anyhow::ensure!(
            ours == theirs,
            "PostGraphile's first page of workspace {} differs from Chronicle's:\n\
             Chronicle:    {ours:?}\nPostGraphile: {theirs:?}",
            tenant.workspace_uuid
        );
    }
    Ok(())
}

/// Chronicle's HTTP workers: its server keeps actix-web's default, one per available core.
fn chronicle_http_workers() -> usize {
    std::thread::available_parallelism().map_or(2, NonZeroUsize::get)
}

/// `createItem` on own workspaces and on one shared workspace next to pgbench's raw inserts,
/// measured in alternating rounds (see [`rounds`]).
struct Writes {
    /// Own workspaces, then the shared one: each variant's rounds taken as one.
    rows: [Row; 2],
    /// pgbench's rate, the mean of its rounds.
    raw_tps: f64,
    /// Each variant's ratios, its rate ÷ pgbench's in the same round, in the order measured.
    ratios: [Vec<f64>; 2],
}

impl Writes {
    fn new(rounds: Vec<[Row; 2]>, raw: Vec<f64>) -> Writes {
        let ratios = [0, 1].map(|variant| {
            rounds
                .iter()
                .zip(&raw)
                .map(|(round, raw_tps)| round[variant].per_second / raw_tps)
                .collect()
        });
        let (own, shared): (Vec<Row>, Vec<Row>) = rounds
            .into_iter()
            .map(|[own, shared]| (own, shared))
            .unzip();
        Writes {
            rows: [
                Row::pooled(own, &format!("{CLIENTS}, one per client (own user)")),
                Row::pooled(shared, "1, shared (same user)"),
            ],
            raw_tps: raw.iter().sum::<f64>() / raw.len().max(1) as f64,
            ratios,
        }
    }
}

/// Chronicle's `items` next to PostGraphile's `allItems` on the same workspaces, in alternating
/// rounds (see [`rounds`]).
struct Comparison {
    /// Chronicle's rounds taken as one: the mean rate, percentiles over every request.
    chronicle: Row,
    /// PostGraphile's, likewise.
    postgraphile: Row,
    /// Each round's ratio, Chronicle's rate ÷ PostGraphile's, in the order measured.
    ratios: Vec<f64>,
}

impl Comparison {
    /// The ratio the verdict is on: the median of the rounds'.
    fn ratio(&self) -> f64 {
        rounds::median(&self.ratios)
    }
}

/// Measures both servers of `sides` (Chronicle's, PostGraphile's) in alternating rounds on
/// `tenants`' workspaces.
async fn compare(
    database: &server::Database,
    (chronicle_client, postgraphile_client): (&Client, &Client),
    tenants: &[Tenant],
    workspaces: &str,
    duration: Duration,
) -> anyhow::Result<Comparison> {
    let side = async |client, request| {
        database.checkpoint().await;
        let (row, _) = measure(client, tenants, request, duration).await?;
        anyhow::Ok(row)
    };
    let (chronicle, postgraphile) = rounds::alternate(
        async || side(chronicle_client, Request::Items).await,
        async || side(postgraphile_client, Request::PostGraphileItems).await,
    )
    .await?;
    let ratios = chronicle
        .iter()
        .zip(&postgraphile)
        .map(|(ours, theirs)| ours.per_second / theirs.per_second)
        .collect();
    Ok(Comparison {
        chronicle: Row::pooled(chronicle, workspaces),
        postgraphile: Row::pooled(postgraphile, workspaces),
        ratios,
    })
}

impl Row {
    /// Rounds of the same request taken as one row (they ran for equal durations).
    fn pooled(rounds: Vec<Row>, workspaces: &str) -> Row {
        let request = rounds.first().map_or(Request::Items, |row| row.request);
        let per_second =
            rounds.iter().map(|row| row.per_second).sum::<f64>() / rounds.len().max(1) as f64;
        Row {
            request,
            workspaces: workspaces.to_owned(),
            per_second,
            latencies: Latencies::pooled(rounds.into_iter().map(|row| row.latencies)),
        }
    }
}

fn add(totals: &mut [usize], counts: &[usize]) {
    for (total, count) in totals.iter_mut().zip(counts) {
        *total += count;
    }
}

/// One client per tenant sends `request` for a warm-up and then for `duration`; returns the
/// measured row and the number of requests each client completed in both runs.
async fn measure(
    client: &Client,
    tenants: &[Tenant],
    request: Request,
    duration: Duration,
) -> anyhow::Result<(Row, Vec<usize>)> {
    eprintln!(
        "api: {} with {} clients, {}s",
        request.name(),
        tenants.len(),
        duration.as_secs()
    );
    let warm_up = send_for(client, tenants, request, WARM_UP).await?;
    let started = Instant::now();
    let measured = send_for(client, tenants, request, duration).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let counts = warm_up
        .iter()
        .zip(&measured)
        .map(|(a, b)| a.len() + b.len())
        .collect();
    let latencies = Latencies::new(measured.into_iter().flatten().collect());
    let row = Row {
        request,
        workspaces: String::new(),
        per_second: latencies.count() as f64 / elapsed,
        latencies,
    };
    Ok((row, counts))
}

/// Runs one client per tenant until `duration` has passed; returns each client's latencies.
async fn send_for(
    client: &Client,
    tenants: &[Tenant],
    request: Request,
    duration: Duration,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    per_tenant(
        client,
        tenants,
        duration,
        move |client, tenant, n| async move {
            let started = Instant::now();
            match request {
                Request::CreateItem => client.create_item(&tenant, n as u64).await?,
                Request::Items => {
                    client.list_items(&tenant).await?;
                }
                Request::PostGraphileItems => client.list_items_postgraphile(&tenant).await?,
            }
            Ok(started.elapsed())
        },
    )
    .await
}

/// Runs one task per tenant that does `step` (its `n`th time: `n`) again and again until
/// `duration` has passed; returns what each task's steps returned, in order.
pub(crate) async fn per_tenant<T, F, Fut>(
    client: &Client,
    tenants: &[Tenant],
    duration: Duration,
    step: F,
) -> anyhow::Result<Vec<Vec<T>>>
where
    T: Send + 'static,
    F: Fn(Client, Tenant, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = tenants
        .iter()
        .map(|tenant| {
            let (client, tenant, step) = (client.clone(), tenant.clone(), step.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while Instant::now() < deadline {
                    outcomes.push(step(client.clone(), tenant.clone(), outcomes.len()).await?);
                }
                anyhow::Ok(outcomes)
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.context("a client panicked")??);
    }
    Ok(outcomes)
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::CreateItem => "createItem",
            Request::Items => "items",
            Request::PostGraphileItems => "allItems",
        }
    }
}

/// The section of `BENCHMARKS.md`.
fn render(
    context: &Context,
    writes: &Writes,
    comparisons: &[Comparison],
    postgraphile: &Setup,
    duration: Duration,
) -> String {
    let raw_tps = writes.raw_tps;
    let Setup {
        version,
        node,
        workers,
        pool_per_worker,
    } = postgraphile;
    let mut out = format!(
        "## GraphQL API over HTTP vs. raw insert and PostGraphile (`api`)\n\n{}\n\
         The real server (`api::startup::Application`, production mode, its default {} HTTP \
         workers (one per core), a {APP_POOL_SIZE}-connection pool like the `chronicle` \
         binary's, the response cache off: see the `cache` section for it) is started in the \
         harness's process; {CLIENTS} clients in the same process send GraphQL over keep-alive \
         HTTP/1.1 connections, each waiting for its answer before sending the next request. \
         **The servers (Chronicle, and PostGraphile below), the load generator and PostgreSQL share the machine's cores.** Each \
         `createItem` creates an item with a title, a {}-character body and 2 tags and asks for \
         `item {{ id version }} position`; `items` asks for the first {PAGE} items \
         (`id title tags status version`) of a workspace, newest first. With one workspace per \
         client, each client is a user of its own (multi-tenant load); in the shared variant \
         all clients use one user's token and workspace. The raw baseline is pgbench \
         (`-M prepared`, {CLIENTS} clients, 2 threads) inserting an event row, one per \
         transaction, into `raw_events`, a copy of `events` (as in the `append` section). Each \
         measurement runs {}s after a {}s warm-up and a `CHECKPOINT`; latencies are measured \
         by the client, from sending the request to having parsed the answer. `createItem` \
         (own workspaces, then the shared one) and pgbench are measured in {ROUNDS} rounds, \
         `createItem` first in the first round and pgbench first in the next, alternately; \
         the rows take the rounds as one (the mean rate, percentiles over every request; the \
         last column divides by pgbench's mean rate), and the verdicts are on the median of \
         the rounds' ratios.\n\n\
         PostGraphile {version} (Node.js {node}, installed by the harness from \
         `bench/postgraphile/package-lock.json`) runs beside it as a child process on the same \
         database, with as many worker processes as Chronicle has HTTP workers and a pool of \
         the same total size: `postgraphile --cluster-workers {workers} --max-pool-size \
         {pool_per_worker} --disable-graphiql --disable-query-log` (no watch, no explain, \
         `NODE_ENV=production`). Its rows ask for the same page of the same `items` rows: \
         `allItems(first: {PAGE}, orderBy: [CREATED_AT_DESC, ID_DESC], condition: \
         {{workspaceId: …}}) {{ nodes {{ id title tags status version }} }}`; before measuring, \
         the harness checks that both servers answer the same {PAGE} items in the same order \
         for every workspace. The two are measured in {ROUNDS} rounds, by the same {CLIENTS} \
         clients with the same HTTP client, warm-up and duration, Chronicle first in the first \
         round and PostGraphile first in the next, alternately; each of their rows takes the \
         rounds as one (the mean rate, percentiles over every request), and the verdict is on \
         the median of the rounds' ratios. PostGraphile \
         is sent no token and checks no rights (it connects as the database owner), whereas \
         Chronicle verifies the caller's token and membership on every request.\n\n\
         | request | clients | workspaces | req/s | p50 | p99 | ÷ raw insert TPS |\n\
         |---|---:|---|---:|---:|---:|---:|\n",
        context.markdown(),
        chronicle_http_workers(),
        client::body_chars(),
        duration.as_secs(),
        WARM_UP.as_secs(),
    );
    out.push_str(&format!(
        "| raw single-row insert (pgbench) | {CLIENTS} | — | {raw_tps:.0} | — | — | 1.00 |\n"
    ));
    let pairs = comparisons
        .iter()
        .flat_map(|comparison| [&comparison.chronicle, &comparison.postgraphile]);
    for row in writes.rows.iter().chain(pairs) {
        let request = match row.request {
            Request::PostGraphileItems => format!("PostGraphile `{}`", row.request.name()),
            _ => format!("`{}`", row.request.name()),
        };
        out.push_str(&format!(
            "| {request} | {CLIENTS} | {} | {:.0} | {} | {} | {:.2} |\n",
            row.workspaces,
            row.per_second,
            millis(row.latencies.percentile(0.50)),
            millis(row.latencies.percentile(0.99)),
            row.per_second / raw_tps,
        ));
    }
    let [own, shared] = [0, 1].map(|variant| {
        let ratio = rounds::median(&writes.ratios[variant]);
        (ratio, rounds::listed(&writes.ratios[variant]))
    });
    out.push_str(&format!(
        "\nTargets: `createItem` throughput at {CLIENTS} clients ≥ {TARGET_RATIO} × raw insert \
         TPS with one workspace per client (SPEC §10) — **{}** (median {:.2} ×; rounds {}); \
         ≥ {SHARED_TARGET_RATIO} × with all clients on one shared workspace (issue 12) — \
         **{}** (median {:.2} ×; rounds {}).\n",
        verdict(own.0 >= TARGET_RATIO),
        own.0,
        own.1,
        verdict(shared.0 >= SHARED_TARGET_RATIO),
        shared.0,
        shared.1,
    ));
    let versus: Vec<String> = comparisons
        .iter()
        .map(|comparison| {
            let ratio = comparison.ratio();
            format!(
                "{}: **{}** (median {ratio:.2} ×; rounds {})",
                comparison.chronicle.workspaces,
                verdict(ratio >= POSTGRAPHILE_TARGET_RATIO),
                rounds::listed(&comparison.ratios)
            )
        })
        .collect();
    if !versus.is_empty() {
        out.push_str(&format!(
            "\nTarget (issue 12): uncached `items` throughput at {CLIENTS} clients ≥ \
             {POSTGRAPHILE_TARGET_RATIO} × PostGraphile v4's on the same table and data — {}. \
             The `items` ratios to raw insert TPS are given for scale only.\n",
            versus.join("; ")
        ));
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}
