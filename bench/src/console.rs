//! `console`: how long the console's pages take on a workspace with 100,000 events (issue 14's
//! bar: under 100 ms). A workspace gets items through the API's write path until its log holds
//! `--events` events, its owner signs in to the console through the sign-in form, and the
//! harness then asks for each page `--requests` times, one request at a time, over loopback
//! HTTP: the latency it sees is the server's time plus a loopback round trip. Pages: the audit
//! timeline (first page, newest first), the history of the item with the most events (with
//! "as it was" at its first entry), and the log view (its newest events).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ::api::writes::Writes;
use anyhow::{Context as _, ensure};
use base64::Engine;
use reqwest::header;
use uuid::Uuid;

use crate::generate::{self, Owner};
use crate::latency::{Latencies, millis};
use crate::report::{self, Context};
use crate::server::{self, Server};

/// The bar for every page's server time.
const TARGET: Duration = Duration::from_millis(100);
/// Requests made before measuring (caches, connections, plans).
const WARM_UP: usize = 5;

#[derive(clap::Args)]
pub struct Args {
    /// Events in the workspace's log.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Requests measured per page.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// The report to write this benchmark's section into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// One measured page.
struct Row {
    page: &'static str,
    latencies: Latencies,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<()> {
    let server::Running {
        database,
        context,
        pool,
        address,
        state: _state,
    } = server::run_app(server).await?;
    let owner = Owner::sign_up(address, &database.pool, "reader").await?;
    let writes = Writes::new(eventlog::EventLog::new(database.pool.clone()));
    let items = generate::items_for_events(args.events);
    eprintln!(
        "console: generating {items} items (at least {} events)",
        args.events
    );
    generate::items(&writes, owner.workspace_id, owner.user_id, items).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1")
        .bind(owner.workspace_id)
        .fetch_one(&database.pool)
        .await?;
    let (item, first_position): (Uuid, String) = sqlx::query_as(
        "SELECT stream_id, min(lpad(to_hex(tx_id), 16, '0') || lpad(to_hex(seq), 16, '0'))
           FROM events WHERE workspace_id = $1 AND stream_type = 'item'
          GROUP BY stream_id ORDER BY count(*) DESC, stream_id LIMIT 1",
    )
    .bind(owner.workspace_id)
    .fetch_one(&database.pool)
    .await
    .context("finding the item with the longest history")?;
    database.checkpoint().await;

    let cookie = sign_in(address, "reader@example.com").await?;
    let item = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Item:{item}"));
    let ws = &owner.workspace;
    let pages = [
        ("audit timeline", format!("/console/workspaces/{ws}/audit")),
        (
            "item history (as it was at its first entry)",
            format!("/console/workspaces/{ws}/items/{item}?at={first_position}"),
        ),
        ("log view", format!("/console/log?workspace={ws}")),
    ];
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut rows = Vec::new();
    for (page, path) in pages {
        eprintln!("console: {} × {page}", args.requests);
        let url = format!("http://{address}{path}");
        let mut samples = Vec::with_capacity(args.requests);
        for n in 0..WARM_UP + args.requests {
            let started = Instant::now();
            let response = http
                .get(&url)
                .header(header::COOKIE, &cookie)
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            let took = started.elapsed();
            ensure!(status.is_success(), "{page}: {status}: {body}");
            if n >= WARM_UP {
                samples.push(took);
            }
        }
        rows.push(Row {
            page,
            latencies: Latencies::new(samples),
        });
    }
    let section = render(&context, args, events, &rows);
    println!("{section}");
    report::write_section(&args.out, "console", &section)?;
    eprintln!("wrote the console section of {}", args.out.display());
    pool.close().await;
    server.drop_database(database).await?;
    Ok(())
}

/// Signs `email` in through the console's form; returns the `Cookie` header to send.
async fn sign_in(address: SocketAddr, email: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect()
    };
    let form = http
        .get(format!("http://{address}/console/sign-in"))
        .send()
        .await?;
    let form_cookie = cookies(&form).join("; ");
    let page = form.text().await?;
    let marker = "name=\"form_token\" value=\"";
    let start = page.find(marker).context("no form token")? + marker.len();
    let token = &page[start..start + page[start..].find('"').context("no form token")?];
    let body = serde_urlencoded::to_string([
        ("email", email),
        ("password", "correct horse battery staple"),
        ("form_token", token),
    ])?;
    let signed_in = http
        .post(format!("http://{address}/console/sign-in"))
        .header(header::COOKIE, form_cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    ensure!(
        signed_in.status() == reqwest::StatusCode::SEE_OTHER,
        "console sign-in failed: {}",
        signed_in.status()
    );
    let cookie = cookies(&signed_in)
        .into_iter()
        .find(|c| c.starts_with("chronicle_console="))
        .context("no sign-in cookie")?;
    Ok(cookie)
}

/// The section of `BENCHMARKS.md`.
fn render(context: &Context, args: &Args, events: i64, rows: &[Row]) -> String {
    let mut out = format!(
        "## The console's pages on a large workspace (`console`)\n\n{}\n\
         One workspace with {events} events (items written through the API's write path); its \
         owner signed in to `/console` through the sign-in form. Each page asked {} times, one \
         request at a time, after {WARM_UP} unmeasured ones, over loopback HTTP (the console's \
         documents never go through the response cache: each page runs them). The latency is \
         the server's time plus a loopback round trip.\n\n\
         | page | p50 | p99 |\n\
         |---|---:|---:|\n",
        context.markdown(),
        args.requests,
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            row.page,
            millis(row.latencies.percentile(0.50)),
            millis(row.latencies.percentile(0.99)),
        ));
    }
    let worst = rows
        .iter()
        .map(|r| r.latencies.percentile(0.99))
        .max()
        .unwrap_or_default();
    let verdict = if worst <= TARGET { "met" } else { "not met" };
    out.push_str(&format!(
        "\nTarget (issue 14): every page under {} — **{verdict}** (worst p99 {}).\n",
        millis(TARGET),
        millis(worst),
    ));
    out
}
