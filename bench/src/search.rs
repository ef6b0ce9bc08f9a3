//! `search`: the search index on 1,000,000 items (SPEC §10), in one run:
//! - search latency (p50/p99) of a typo-tolerant query with a status filter, on the index
//!   directly and through the real GraphQL endpoint;
//! - the same question answered by `ILIKE '%term%'` on the `items` table (the words spelled
//!   right: `ILIKE` cannot find a typo at all), whose ratio to the index is the SPEC's bar;
//! - index build rate (documents/s, from documents in memory), and full rebuild rates
//!   (events/s) of the `search` and `activity` projections from the log.
//!
//! The items are generated through the write path into one workspace (see
//! [`crate::generate`]), so the search runs over all of them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::generate::{self, Owner};
use crate::latency::{Latencies, millis};
use crate::report::{self, Context};
use crate::server::{self, Server};

/// SPEC §10: p99 of a filtered typo-tolerant search.
const TARGET_P99: Duration = Duration::from_millis(30);
/// SPEC §10: the index must beat `ILIKE` by this factor.
const TARGET_SPEEDUP: f64 = 100.0;
/// SPEC §10: projection rebuild rate.
const TARGET_REBUILD_RATE: f64 = 50_000.0;
/// Queries with a typo in one word, and the word spelled right for `ILIKE`.
const QUERIES: &[(&str, &str)] = &[
    ("invioce", "invoice"),
    ("reprot", "report"),
    ("meetign", "meeting"),
    ("budegt", "budget"),
    ("custmer", "customer"),
    ("quartely", "quarterly"),
    ("contarct", "contract"),
    ("paymnet", "payment"),
];
/// Documents per commit while building the index from memory.
const BUILD_CHUNK: usize = 100_000;

#[derive(clap::Args)]
pub struct Args {
    /// How many items to generate.
    #[arg(long, default_value_t = 1_000_000)]
    items: usize,
    /// Searches measured on the index (and as many through HTTP).
    #[arg(long, default_value_t = 400)]
    queries: usize,
    /// `ILIKE` queries measured (each scans the table).
    #[arg(long, default_value_t = 24)]
    ilike_queries: usize,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

struct Figures {
    items: usize,
    events: u64,
    index: Latencies,
    http: Latencies,
    ilike: Latencies,
    total_hits: u64,
    build_docs_per_second: f64,
    search_rebuild_per_second: f64,
    activity_rebuild_per_second: f64,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let database = server.create_database().await?;
    let context = Context::gather(server, &database).await?;
    let pool = server::app_pool(&database).await?;
    let state = tempfile::tempdir().context("creating the server's state directory")?;
    let address = server::start_app(pool.clone(), state.path()).await?;
    let mut owner = Owner::sign_up(address, &pool, "searcher").await?;
    let writes = ::api::writes::Writes::new(eventlog::EventLog::new(pool.clone()));
    generate::items(&writes, owner.workspace_id, owner.user_id, args.items).await?;
    server::settle(address).await?;
    let log = writes.log().clone();
    let events = log.count_after(None, None).await?;

    let scratch = tempfile::tempdir().context("creating a directory for the indexes")?;
    eprintln!("search: building an index from {} documents", args.items);
    let (index, build_docs_per_second) =
        build_index(&pool, owner.workspace_id, &scratch.path().join("built")).await?;
    eprintln!("search: rebuilding the search projection from the log");
    let started = Instant::now();
    let replayed =
        projections::search_index::rebuild(&log, &scratch.path().join("rebuilt"), |_| {}).await?;
    let search_rebuild_per_second = replayed as f64 / started.elapsed().as_secs_f64();
    eprintln!("search: rebuilding the activity projection from the log");
    let started = Instant::now();
    let replayed = projections::activity::rebuild(&log, |_| {}).await?;
    let activity_rebuild_per_second = replayed as f64 / started.elapsed().as_secs_f64();

    eprintln!("search: {} searches on the index", args.queries);
    let (index_latencies, total_hits) =
        search_index(&index, owner.workspace_id, args.queries).await?;
    eprintln!("search: {} searches over HTTP", args.queries);
    // Generating and rebuilding can outlast the token signed up with.
    owner.log_in(address).await?;
    let http = search_http(address, &owner, args.queries).await?;
    eprintln!("search: {} ILIKE queries", args.ilike_queries);
    let ilike = search_ilike(&pool, owner.workspace_id, args.ilike_queries).await?;

    let figures = Figures {
        items: args.items,
        events,
        index: index_latencies,
        http,
        ilike,
        total_hits,
        build_docs_per_second,
        search_rebuild_per_second,
        activity_rebuild_per_second,
    };
    drop(index);
    pool.close().await;
    server.drop_database(database).await?;
    let section = render(&context, &figures);
    println!("{section}");
    report::write_section(&args.out, "search", &section)?;
    eprintln!("wrote the search section of {}", args.out.display());
    Ok(())
}

/// Builds an index in `dir` from the workspace's items, read from the read model; returns it
/// and the documents indexed per second (reading the rows not counted).
async fn build_index(
    pool: &PgPool,
    workspace_id: Uuid,
    dir: &std::path::Path,
) -> anyhow::Result<(search::SearchIndex, f64)> {
    let (index, _) = search::SearchIndex::open(dir)?;
    let mut docs = Vec::new();
    let mut rows = sqlx::query(
        "SELECT id, workspace_id, title, body, tags, status, author_id, created_at, updated_at
         FROM items WHERE workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        docs.push(search::ItemDoc {
            id: row.get("id"),
            workspace_id: row.get("workspace_id"),
            title: row.get("title"),
            body: row.get("body"),
            tags: row.get("tags"),
            status: row.get("status"),
            author_id: row.get("author_id"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        });
    }
    drop(rows);
    let count = docs.len();
    let index = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut chunks = docs.into_iter().peekable();
        let mut done = 0;
        while chunks.peek().is_some() {
            let chunk: Vec<search::Change> = chunks
                .by_ref()
                .take(BUILD_CHUNK)
                .map(search::Change::Upsert)
                .collect();
            done += chunk.len();
            index.apply(chunk, &done.to_string())?;
            eprintln!("search: indexed {done}/{count} documents");
        }
        anyhow::Ok((index, count as f64 / started.elapsed().as_secs_f64()))
    })
    .await??;
    Ok(index)
}

/// A typo-tolerant search for ACTIVE items, cycling through [`QUERIES`].
fn query(workspace_id: Uuid, n: usize) -> search::SearchQuery {
    search::SearchQuery {
        workspace_id,
        text: QUERIES[n % QUERIES.len()].0.to_string(),
        filter: search::SearchFilter {
            statuses: Some(vec!["ACTIVE".into()]),
            ..Default::default()
        },
        order: search::Order::Relevance,
        first: 20,
        after: None,
        backward: false,
        facets: true,
    }
}

/// Latencies of `count` searches on `index` (after a warm-up), and the hits of the first.
async fn search_index(
    index: &search::SearchIndex,
    workspace_id: Uuid,
    count: usize,
) -> anyhow::Result<(Latencies, u64)> {
    let first = index.search(&query(workspace_id, 0))?.total;
    anyhow::ensure!(first > 0, "the typo query found nothing");
    for n in 0..QUERIES.len() * 2 {
        index.search(&query(workspace_id, n))?;
    }
    let mut samples = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        index.search(&query(workspace_id, n))?;
        samples.push(started.elapsed());
    }
    Ok((Latencies::new(samples), first))
}

/// Latencies of `count` searches through GraphQL over HTTP, one at a time.
async fn search_http(
    address: std::net::SocketAddr,
    owner: &Owner,
    count: usize,
) -> anyhow::Result<Latencies> {
    let http = reqwest::Client::new();
    let url = format!("http://{address}/graphql");
    let request = |n: usize| {
        let body = json!({
            "query": "query($w: ID!, $q: String!) { search(workspaceId: $w, query: $q,
                        filter: { statuses: [ACTIVE] }, first: 20) {
                        totalCount edges { title body node { id title } } } }",
            "variables": { "w": owner.workspace, "q": QUERIES[n % QUERIES.len()].0 },
        });
        http.post(&url).bearer_auth(&owner.token).json(&body).send()
    };
    for n in 0..QUERIES.len() * 2 {
        request(n).await?;
    }
    let mut samples = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        let response: Value = request(n).await?.json().await?;
        samples.push(started.elapsed());
        anyhow::ensure!(
            response["errors"].is_null(),
            "search over HTTP failed: {response}"
        );
    }
    Ok(Latencies::new(samples))
}

/// Latencies of `count` `ILIKE` queries answering the same question: ACTIVE items of the
/// workspace with the (correctly spelled) word in the title or body, best 20 and the count.
async fn search_ilike(
    pool: &PgPool,
    workspace_id: Uuid,
    count: usize,
) -> anyhow::Result<Latencies> {
    let run = async |n: usize| {
        let pattern = format!("%{}%", QUERIES[n % QUERIES.len()].1);
        sqlx::query(
            "SELECT id, count(*) OVER () AS total FROM items
             WHERE workspace_id = $1 AND status = 'ACTIVE'
               AND (title ILIKE $2 OR body ILIKE $2 OR array_to_string(tags, ' ') ILIKE $2)
             ORDER BY updated_at DESC LIMIT 20",
        )
        .bind(workspace_id)
        .bind(pattern)
        .fetch_all(pool)
        .await
    };
    run(0).await?;
    let mut samples = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        run(n).await?;
        samples.push(started.elapsed());
    }
    Ok(Latencies::new(samples))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn render(context: &Context, f: &Figures) -> String {
    let speedup = f.ilike.percentile(0.5).as_secs_f64() / f.index.percentile(0.5).as_secs_f64();
    let p99 = f.index.percentile(0.99);
    let slowest_rebuild = f
        .search_rebuild_per_second
        .min(f.activity_rebuild_per_second);
    format!(
        "## Search ({items} items)\n\n\
         {context}\
         - Data: {items} items in one workspace ({events} events in the log), generated through \
           the write path; queries are one misspelt word (`invioce`, `reprot`, …) with a status \
           filter (`ACTIVE`), 20 hits with highlights and the total, with the facet counts in \
           process (the HTTP query does not select them). The first query matched {hits} \
           items.\n\n\
         | measurement | p50 | p99 | queries |\n\
         |---|---:|---:|---:|\n\
         | search index, in process | {ip50} | {ip99} | {icount} |\n\
         | `search` query over HTTP (GraphQL, one client) | {hp50} | {hp99} | {hcount} |\n\
         | `ILIKE '%word%'` on `items` (same filter, word spelt right) | {lp50} | {lp99} | {lcount} |\n\n\
         | rate | figure |\n\
         |---|---:|\n\
         | index build, documents from memory | {build:.0} docs/s |\n\
         | `search` projection full rebuild from the log | {search_rebuild:.0} events/s |\n\
         | `activity` projection full rebuild from the log | {activity_rebuild:.0} events/s |\n\n\
         SPEC §10: p99 ≤ {target_ms} ms: {p99_verdict} ({p99ms}); ≥ {target_speedup:.0}× faster \
         than `ILIKE` (p50 ratio): {speedup_verdict} ({speedup:.0}×); rebuild ≥ \
         {target_rate:.0} events/s: {rate_verdict} (slowest {slowest_rebuild:.0} events/s).\n",
        items = f.items,
        context = context.markdown(),
        events = f.events,
        hits = f.total_hits,
        ip50 = millis(f.index.percentile(0.5)),
        ip99 = millis(p99),
        icount = f.index.count(),
        hp50 = millis(f.http.percentile(0.5)),
        hp99 = millis(f.http.percentile(0.99)),
        hcount = f.http.count(),
        lp50 = millis(f.ilike.percentile(0.5)),
        lp99 = millis(f.ilike.percentile(0.99)),
        lcount = f.ilike.count(),
        build = f.build_docs_per_second,
        search_rebuild = f.search_rebuild_per_second,
        activity_rebuild = f.activity_rebuild_per_second,
        target_ms = TARGET_P99.as_millis(),
        p99_verdict = verdict(p99 <= TARGET_P99),
        p99ms = millis(p99),
        target_speedup = TARGET_SPEEDUP,
        speedup_verdict = verdict(speedup >= TARGET_SPEEDUP),
        target_rate = TARGET_REBUILD_RATE,
        rate_verdict = verdict(slowest_rebuild >= TARGET_REBUILD_RATE),
    )
}
