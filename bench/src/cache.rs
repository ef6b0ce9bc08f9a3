//! `cache`: the response cache (SPEC §6, §10). In one run, 32 clients send `items(first: 20)`
//! to: a bare actix-web endpoint answering the same bytes (the ceiling: HTTP and nothing else),
//! the real server with its cache (every answer after the warm-up a hit), and the real server
//! with the cache off. Also the hit ratio the clients saw and what 10,000 entries cost.
//!
//! Then the same cached query through Debian's nginx (`deploy/nginx.conf`) in front of one node
//! and in front of three.
//!
//! Everything but nginx runs in the harness's process, like the `api` benchmark: the servers,
//! nginx, the clients and PostgreSQL share the machine's cores.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;

pub use crate::http_api::Args;
use crate::http_api::client::{Client, PAGE, Tenant};
use crate::http_api::per_tenant;
use crate::latency::{Latencies, millis};
use crate::report::{self, Context};
use crate::server::{self, Server};

/// Concurrent clients in every measurement.
const CLIENTS: usize = 32;
/// Unmeasured requests before each measurement (fills the cache, opens connections).
const WARM_UP: Duration = Duration::from_secs(2);
/// SPEC §10: cached query throughput ≥ this × a bare actix-web JSON endpoint's.
const TARGET_RATIO: f64 = 0.7;
/// Distinct cached answers whose memory is measured.
const ENTRIES: usize = 10_000;

/// One measured line of the table.
struct Row {
    what: &'static str,
    per_second: f64,
    latencies: Latencies,
    /// Of the measured answers, how many the server said were cache hits.
    hits: Option<f64>,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds.max(1));
    let database = server.create_database().await?;
    let context = Context::gather(server, &database).await?;
    let pool = server::app_pool(&database).await?;
    let cached_state = tempfile::tempdir().context("creating the server's state directory")?;
    let uncached_state = tempfile::tempdir().context("creating the server's state directory")?;
    // The harness runs servers with the cache off unless told otherwise.
    let cache_on = [("CHRONICLE_CACHE_MB", "64")];
    let (cached_address, cache) =
        server::start_app_with(pool.clone(), cached_state.path(), &cache_on).await?;
    let cache = cache.context("the cache is on")?;
    let (uncached_address, _) =
        server::start_app_with(pool.clone(), uncached_state.path(), &[]).await?;
    let cached = Client::new(cached_address)?;
    let uncached = Client::new(uncached_address)?;

    eprintln!("cache: signing up {CLIENTS} users, each with a workspace of {PAGE} items");
    let tenants = crate::http_api::tenants(&uncached, CLIENTS).await?;
    for tenant in &tenants {
        for n in 0..PAGE {
            uncached.create_item(tenant, n as u64).await?;
        }
    }
    server::settle(cached_address).await?;
    let body = uncached.items_body(&tenants[0]).await?;
    let bare = Client::new(start_bare(body.clone())?)?;

    let mut rows = Vec::new();
    for (what, client) in [
        ("bare actix-web endpoint, same answer bytes", &bare),
        ("`items(first: 20)`, cached", &cached),
        ("`items(first: 20)`, cache off", &uncached),
    ] {
        database.checkpoint().await;
        rows.push(measure(what, client, &tenants, duration).await?);
    }

    let more_state = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut nodes = vec![cached_address];
    for state in &more_state {
        nodes.push(
            server::start_app_with(pool.clone(), state.path(), &cache_on)
                .await?
                .0,
        );
    }
    for (what, behind) in [
        (
            "`items(first: 20)`, cached, one node behind nginx",
            &nodes[..1],
        ),
        (
            "`items(first: 20)`, cached, three nodes behind nginx",
            &nodes[..],
        ),
    ] {
        let nginx = Nginx::start(behind)?;
        let client = Client::new(nginx.address)?;
        database.checkpoint().await;
        rows.push(measure(what, &client, &tenants, duration).await?);
    }

    eprintln!("cache: filling {ENTRIES} distinct entries");
    let (bytes_before, entries_before) = cache.size();
    let rss_before = resident_bytes();
    fill(&cached, &tenants, ENTRIES).await?;
    cache.run_pending_tasks().await;
    let (bytes_after, entries_after) = cache.size();
    let rss_after = resident_bytes();

    pool.close().await;
    server.drop_database(database).await?;

    let memory = Memory {
        entries: entries_after.saturating_sub(entries_before),
        weighed: bytes_after.saturating_sub(bytes_before),
        resident: rss_after.zip(rss_before).map(|(a, b)| a.saturating_sub(b)),
        answer_bytes: body.len(),
    };
    let section = render(&context, &rows, &memory, duration);
    println!("{section}");
    report::write_section(&args.out, "cache", &section)?;
    eprintln!("wrote the cache section of {}", args.out.display());
    Ok(())
}

/// Starts a bare actix-web server answering every POST to `/graphql` with `body`, with as many
/// workers as the real server (actix-web's default).
fn start_bare(body: web::Bytes) -> anyhow::Result<SocketAddr> {
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/graphql",
            web::post().to(move |_request: web::Bytes| {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .bind(("127.0.0.1", 0))
    .context("binding the bare endpoint")?;
    let address = server.addrs()[0];
    tokio::spawn(server.run());
    Ok(address)
}

/// One client per tenant asks for its first page for a warm-up, then for `duration`.
async fn measure(
    what: &'static str,
    client: &Client,
    tenants: &[Tenant],
    duration: Duration,
) -> anyhow::Result<Row> {
    eprintln!("cache: {what}, {CLIENTS} clients, {}s", duration.as_secs());
    send_for(client, tenants, WARM_UP).await?;
    let started = Instant::now();
    let answers = send_for(client, tenants, duration).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let hits = answers.iter().filter(|(_, hit)| *hit).count();
    let counted = answers.iter().any(|(_, hit)| *hit);
    let latencies = Latencies::new(answers.into_iter().map(|(latency, _)| latency).collect());
    Ok(Row {
        what,
        per_second: latencies.count() as f64 / elapsed,
        hits: counted.then(|| hits as f64 / latencies.count().max(1) as f64),
        latencies,
    })
}

/// Runs one client per tenant until `duration` has passed; returns every answer's latency and
/// whether it was a cache hit.
async fn send_for(
    client: &Client,
    tenants: &[Tenant],
    duration: Duration,
) -> anyhow::Result<Vec<(Duration, bool)>> {
    let answers = per_tenant(client, tenants, duration, |client, tenant, _| async move {
        let started = Instant::now();
        let hit = client.list_items(&tenant).await?;
        Ok((started.elapsed(), hit))
    })
    .await?;
    Ok(answers.into_iter().flatten().collect())
}

/// Asks `count` distinct queries (each tenant's first page, told apart by a comment), so that
/// the cache holds `count` more entries of a real answer's size.
async fn fill(client: &Client, tenants: &[Tenant], count: usize) -> anyhow::Result<()> {
    let per_tenant = count.div_ceil(tenants.len());
    let tasks: Vec<_> = tenants
        .iter()
        .enumerate()
        .map(|(t, tenant)| {
            let (client, tenant) = (client.clone(), tenant.clone());
            let range = (t * per_tenant)..((t + 1) * per_tenant).min(count);
            tokio::spawn(async move {
                for n in range {
                    client.list_items_tagged(&tenant, n).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a client panicked")??;
    }
    Ok(())
}

/// Debian's nginx in front of some nodes, with the deployment's configuration
/// (`deploy/nginx.conf`); stopped when dropped.
struct Nginx {
    address: SocketAddr,
    process: std::process::Child,
    _run: tempfile::TempDir,
}

impl Nginx {
    fn start(nodes: &[SocketAddr]) -> anyhow::Result<Nginx> {
        const NGINX: &str = "/usr/sbin/nginx";
        anyhow::ensure!(
            std::path::Path::new(NGINX).exists(),
            "nginx is missing ({NGINX}): apt-get install nginx-light"
        );
        let run = tempfile::tempdir()?;
        // nginx's workers run as `nobody` when started as root.
        std::fs::set_permissions(
            run.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let servers: String = nodes
            .iter()
            .map(|node| format!("server {node} max_fails=1 fail_timeout=10s; "))
            .collect();
        let config = std::fs::read_to_string("deploy/nginx.conf")
            .context("reading deploy/nginx.conf (run from the workspace root)")?
            .replace("@RUN_DIR@", &run.path().to_string_lossy())
            .replace("@LISTEN@", &address.to_string())
            .replace("@NODES@", &servers);
        let file = run.path().join("nginx.conf");
        std::fs::write(&file, config)?;
        let process = std::process::Command::new(NGINX)
            .arg("-c")
            .arg(&file)
            .arg("-e")
            .arg(run.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .spawn()
            .context("starting nginx")?;
        let nginx = Nginx {
            address,
            process,
            _run: run,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(address).is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// This process's resident memory, in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the filled entries cost.
struct Memory {
    entries: u64,
    /// As the cache weighs them for its bound.
    weighed: u64,
    /// The process's resident memory growth while filling (allocator and client included).
    resident: Option<u64>,
    answer_bytes: usize,
}

/// The section of `BENCHMARKS.md`.
fn render(context: &Context, rows: &[Row], memory: &Memory, duration: Duration) -> String {
    let mut out = format!(
        "## Response cache vs. a bare endpoint (`cache`)\n\n{}\n\
         Three servers in the harness's process on one database: a bare actix-web endpoint \
         (default workers, like the real server's) that answers every POST with the bytes of a \
         real `items(first: {PAGE})` answer ({} bytes), the real server (production mode) with \
         its response cache, and the real server with `CHRONICLE_CACHE_MB=0`; then Debian's \
         nginx (`deploy/nginx.conf`, 2 worker processes) in front of that cached node alone and \
         in front of it and two more like it (three nodes in one process, on one machine: \
         this shows what the proxy hop and the spread cost, not what more machines gain). {CLIENTS} \
         clients, each a user with a workspace of {PAGE} items, ask for their first page over \
         keep-alive HTTP/1.1, each waiting for its answer (and parsing it) before sending the \
         next. **The servers, the load generator and PostgreSQL share the machine's cores.** \
         Each measurement runs {}s after a {}s warm-up and a `CHECKPOINT`.\n\n\
         | server | req/s | p50 | p99 | cache hits | ÷ bare |\n\
         |---|---:|---:|---:|---:|---:|\n",
        context.markdown(),
        memory.answer_bytes,
        duration.as_secs(),
        WARM_UP.as_secs(),
    );
    let bare = rows.first().map_or(1.0, |row| row.per_second);
    for row in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {:.2} |\n",
            row.what,
            row.per_second,
            millis(row.latencies.percentile(0.50)),
            millis(row.latencies.percentile(0.99)),
            row.hits
                .map_or("—".to_string(), |hits| format!("{:.1} %", hits * 100.0)),
            row.per_second / bare,
        ));
    }
    if let Some(cached) = rows.get(1) {
        let ratio = cached.per_second / bare;
        let verdict = if ratio >= TARGET_RATIO {
            "met"
        } else {
            "not met"
        };
        out.push_str(&format!(
            "\nTarget (SPEC §10): cached query throughput ≥ {TARGET_RATIO} × a bare actix-web \
             JSON endpoint's — **{verdict}** ({ratio:.2}).\n"
        ));
    }
    let per = |bytes: u64| bytes as f64 * 10_000.0 / memory.entries.max(1) as f64 / 1_048_576.0;
    out.push_str(&format!(
        "\nMemory: {} entries of that answer added {:.1} MiB to the cache's own weighing and {} \
         to the process's resident memory: **{:.1} MiB per 10,000 entries** as weighed{}.\n",
        memory.entries,
        memory.weighed as f64 / 1_048_576.0,
        memory
            .resident
            .map_or("an unknown amount".to_string(), |bytes| format!(
                "{:.1} MiB",
                bytes as f64 / 1_048_576.0
            )),
        per(memory.weighed),
        memory.resident.map_or(String::new(), |bytes| format!(
            ", {:.1} MiB resident",
            per(bytes)
        )),
    ));
    out
}
