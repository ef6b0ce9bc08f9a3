//! Exports end to end: `requestExport` through GraphQL, the job writing the file, `exports`
//! showing it, `GET /exports/{id}` streaming it to members only; the CSV read back by a CSV
//! parser, the PDF by a text extractor (`pdftotext`, Debian's poppler-utils); the trial lock,
//! expiry, and a worker killed in the middle of an export.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgcluster::TestDatabase;
use serde_json::{Value, json};

use crate::invites::invite_and_accept;
use crate::workspaces::create_workspace;
use crate::{Session, TestApp, error_codes};

const CREATE_ITEM: &str =
    "mutation($input: CreateItemInput!) { createItem(input: $input) { item { id } } }";
const REQUEST: &str = "mutation($w: ID!, $format: ExportFormat!, $filter: ItemFilter) {
    requestExport(workspaceId: $w, format: $format, filter: $filter) {
        export { id state format requestedBy { displayName } } position } }";
const EXPORTS: &str = "query($w: ID!) { exports(workspaceId: $w) { edges { node {
    id state format sizeBytes rowCount error createdAt completedAt expiresAt downloadUrl
    requestedBy { displayName } } } } }";
/// How long a condition may take to come true before the test fails.
const PATIENCE: Duration = Duration::from_secs(120);

/// Titles that test quoting, formula neutralisation and non-Latin text.
const TITLES: [&str; 6] = [
    "Commas, everywhere, here",
    "She said \"hi\" twice",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "Grüße aus Köln",
    "Привет мир",
    "Καλημέρα κόσμε",
];

/// A node running the job workers (emails are only logged: no SMTP server needed).
async fn node_with_workers(db: &Arc<TestDatabase>) -> TestApp {
    jobs::setup(db.pool()).await.unwrap();
    TestApp::spawn_configured(db, |config| {
        config.workers = true;
        config.job_poll_interval = Duration::from_millis(50);
    })
    .await
}

async fn create_item(
    app: &TestApp,
    user: &Session,
    ws: &str,
    title: &str,
    body: &str,
    tags: &[&str],
) {
    let response = user
        .gql(
            app,
            CREATE_ITEM,
            json!({ "input": { "workspaceId": ws, "title": title, "body": body, "tags": tags } }),
        )
        .await;
    assert!(response["data"]["createItem"].is_object(), "{response}");
}

async fn request_export(
    app: &TestApp,
    user: &Session,
    ws: &str,
    format: &str,
    filter: Value,
) -> Value {
    user.gql(
        app,
        REQUEST,
        json!({ "w": ws, "format": format, "filter": filter }),
    )
    .await
}

/// The export `id` as `exports` lists it.
async fn listed(app: &TestApp, user: &Session, ws: &str, id: &str) -> Value {
    let response = user.gql(app, EXPORTS, json!({ "w": ws })).await;
    let edges = response["data"]["exports"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"));
    edges
        .iter()
        .map(|e| e["node"].clone())
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("export {id} not listed: {response}"))
}

/// Polls `exports` until export `id` is no longer pending; returns it.
async fn finished(app: &TestApp, user: &Session, ws: &str, id: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let export = listed(app, user, ws, id).await;
        if export["state"] != "PENDING" {
            return export;
        }
        assert!(Instant::now() < deadline, "export never finished: {export}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /exports/{id}` with `token`.
async fn download(app: &TestApp, token: Option<&str>, id: &str) -> reqwest::Response {
    let mut request = app.client.get(app.url(&format!("/exports/{id}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn completed_events(app: &TestApp, export_global_id: &str) -> i64 {
    let export_id = decode(export_global_id);
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM events WHERE event_type = 'ExportCompleted'
           AND payload->>'export_id' = $1",
    )
    .bind(export_id.to_string())
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

fn encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode(global_id: &str) -> uuid::Uuid {
    use base64::Engine;
    let text = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(global_id)
            .unwrap(),
    )
    .unwrap();
    uuid::Uuid::parse_str(text.split_once(':').unwrap().1).unwrap()
}

/// What poppler-utils' `tool` (Debian's package) prints for `pdf`, given `args` before the file
/// and `after` it. Poppler reports on standard error what it had to repair: there must be
/// nothing.
fn poppler(tool: &str, args: &[&str], pdf: &[u8], after: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = std::process::Command::new(tool)
        .args(args)
        .arg(&path)
        .args(after)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian's poppler-utils) runs: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "{tool}: {stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The text `pdftotext` extracts from `pdf`.
fn pdf_text(pdf: &[u8]) -> String {
    poppler("pdftotext", &["-enc", "UTF-8"], pdf, &["-"])
}

/// Inserts `count` items titled `Item N{suffix}` straight into the `items` read model (the one
/// table the export job reads), oldest first: the write path would take minutes for thousands.
async fn insert_items(app: &TestApp, ws: &str, author: &Session, count: i64, suffix: &str) {
    sqlx::query(
        "INSERT INTO items (id, workspace_id, title, body, tags, status, author_id, created_at,
                            updated_at, version)
         SELECT gen_random_uuid(), $1, 'Item ' || n || $4, repeat('body text, ', 150),
                ARRAY['bulk'], 'ACTIVE', $2, now() - (n || ' seconds')::interval, now(), 1
         FROM generate_series(1, $3) AS n",
    )
    .bind(decode(ws))
    .bind(decode(&author.user_id))
    .bind(count)
    .bind(suffix)
    .execute(app.db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn csv_and_pdf_exports_hold_the_items_and_download_to_members_only() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node_with_workers(&db).await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme & Co \"Ltd\"").await;
    for title in TITLES {
        create_item(
            &app,
            &ana,
            &ws,
            title,
            "line one\nline two, \"quoted\"",
            &["q3", "x,y"],
        )
        .await;
    }
    create_item(&app, &ana, &ws, "Untagged", "", &[]).await;

    // CSV of the items tagged q3.
    let requested = request_export(&app, &ana, &ws, "CSV", json!({ "tags": ["q3"] })).await;
    let export = &requested["data"]["requestExport"]["export"];
    assert_eq!(export["state"], "PENDING", "{requested}");
    assert_eq!(export["format"], "CSV");
    assert_eq!(export["requestedBy"]["displayName"], "ana");
    let id = export["id"].as_str().unwrap().to_string();
    let done = finished(&app, &ana, &ws, &id).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["rowCount"], TITLES.len());
    assert!(done["error"].is_null());
    assert_eq!(done["downloadUrl"], format!("/exports/{id}"));

    let response = download(&app, Some(&ana.token), &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/csv; charset=utf-8");
    let date = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(
        header(&response, "content-disposition"),
        format!("attachment; filename=\"Acme-Co-Ltd-export-{date}.csv\"")
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(Some(bytes.len() as u64), done["sizeBytes"].as_u64());
    let mut reader = csv::Reader::from_reader(&bytes[..]);
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "id", "title", "status", "tags", "author", "created", "updated", "body"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let titles: Vec<&str> = records.iter().map(|r| &r[1]).collect();
    let expected: Vec<String> = TITLES
        .iter()
        .map(|t| match t.starts_with('=') {
            // Neutralised against formula injection.
            true => format!("'{t}"),
            false => t.to_string(),
        })
        .collect();
    assert_eq!(titles, expected);
    for record in &records {
        assert_eq!(&record[2], "DRAFT");
        assert_eq!(&record[3], "q3; x,y");
        assert_eq!(&record[4], "ana");
        assert_eq!(&record[7], "line one\nline two, \"quoted\"");
    }

    // PDF of everything.
    let requested = request_export(&app, &ana, &ws, "PDF", Value::Null).await;
    let pdf_id = requested["data"]["requestExport"]["export"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{requested}"))
        .to_string();
    let done = finished(&app, &ana, &ws, &pdf_id).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["rowCount"], TITLES.len() + 1);
    let response = download(&app, Some(&ana.token), &pdf_id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/pdf");
    assert!(header(&response, "content-disposition").ends_with(".pdf\""));
    let text = pdf_text(&response.bytes().await.unwrap());
    for title in TITLES.iter().chain(&["Untagged"]) {
        assert!(
            text.contains(title),
            "{title} missing from the PDF's text:\n{text}"
        );
    }
    for heading in [
        "Title",
        "Status",
        "Tags",
        "Author",
        "Created",
        "Updated",
        "Page 1 of 1",
    ] {
        assert!(text.contains(heading), "{heading} missing:\n{text}");
    }

    // Each completed once.
    assert_eq!(completed_events(&app, &id).await, 1);
    assert_eq!(completed_events(&app, &pdf_id).await, 1);

    // Not signed in: 401. Not a member: 404, as for an export that does not exist.
    assert_eq!(download(&app, None, &id).await.status(), 401);
    let bo = app.sign_up("bo").await;
    let refused = download(&app, Some(&bo.token), &id).await;
    assert_eq!(refused.status(), 404);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_codes(&body), vec!["NOT_FOUND"]);
    let unknown = encode(&format!("Export:{}", uuid::Uuid::new_v4()));
    assert_eq!(
        download(&app, Some(&ana.token), &unknown).await.status(),
        404
    );
    assert_eq!(
        download(&app, Some(&ana.token), "garbage").await.status(),
        404
    );
    let listing = bo.gql(&app, EXPORTS, json!({ "w": ws })).await;
    assert_eq!(error_codes(&listing), vec!["NOT_FOUND"]);
    let node = bo
        .gql(
            &app,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(node["data"]["node"].is_null(), "{node}");
    let node = ana
        .gql(
            &app,
            "query($id: ID!) { node(id: $id) { ... on Export { state rowCount } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(node["data"]["node"]["state"], "COMPLETED", "{node}");

    // Viewers read and download exports but may not ask for one.
    let vi = invite_and_accept(&app, &ana, &ws, "vi", "VIEWER").await;
    let refused = request_export(&app, &vi, &ws, "CSV", Value::Null).await;
    assert_eq!(error_codes(&refused), vec!["FORBIDDEN"]);
    assert_eq!(download(&app, Some(&vi.token), &id).await.status(), 200);
    // An invalid tag in the filter is the client's error.
    let bad = request_export(&app, &ana, &ws, "CSV", json!({ "tags": [""] })).await;
    assert_eq!(error_codes(&bad), vec!["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn downloads_end_24_hours_after_completion_and_wait_for_pending_exports() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node_with_workers(&db).await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    create_item(&app, &ana, &ws, "Only item", "", &[]).await;
    let requested = request_export(&app, &ana, &ws, "CSV", Value::Null).await;
    let id = requested["data"]["requestExport"]["export"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    finished(&app, &ana, &ws, &id).await;
    assert_eq!(download(&app, Some(&ana.token), &id).await.status(), 200);

    // The same database, seen by a node 25 hours later.
    let later = TestApp::spawn_in_future(&db, chrono::Duration::hours(25)).await;
    let gone = download(&later, Some(&ana.token), &id).await;
    assert_eq!(gone.status(), 410);
    let export = listed(&later, &ana, &ws, &id).await;
    assert_eq!(export["state"], "EXPIRED", "{export}");
    assert!(export["downloadUrl"].is_null());
    // 23 hours later it was still there.
    let sooner = TestApp::spawn_in_future(&db, chrono::Duration::hours(23)).await;
    assert_eq!(download(&sooner, Some(&ana.token), &id).await.status(), 200);
}

#[tokio::test]
async fn a_pending_export_is_a_conflict_to_download() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let requested = request_export(&app, &ana, &ws, "CSV", Value::Null).await;
    let id = requested["data"]["requestExport"]["export"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{requested}"))
        .to_string();
    let response = download(&app, Some(&ana.token), &id).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), vec!["CONFLICT"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not ready")
    );
}

/// A PDF of many pages, made by the job and downloaded: poppler reads it without complaint,
/// every page carries the title, the header row and "Page N of M" with the true M (drawn by
/// an object written after the last page), and every item is in it.
#[tokio::test]
async fn a_pdf_of_many_pages_is_numbered_page_n_of_m_and_holds_every_item() {
    const ITEMS: i64 = 1_000;
    const SUFFIX: &str = " — Καλημέρα, Привет, 中文";
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node_with_workers(&db).await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    insert_items(&app, &ws, &ana, ITEMS, SUFFIX).await;
    let requested = request_export(&app, &ana, &ws, "PDF", Value::Null).await;
    let id = requested["data"]["requestExport"]["export"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{requested}"))
        .to_string();
    let done = finished(&app, &ana, &ws, &id).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["rowCount"], ITEMS);
    let response = download(&app, Some(&ana.token), &id).await;
    assert_eq!(response.status(), 200);
    let pdf = response.bytes().await.unwrap();
    assert_eq!(Some(pdf.len() as u64), done["sizeBytes"].as_u64());

    let info = poppler("pdfinfo", &[], &pdf, &[]);
    let count: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count: {info}"));
    let text = pdf_text(&pdf);
    // pdftotext ends every page with a form feed.
    let pages: Vec<&str> = text.split_terminator('\u{c}').collect();
    assert_eq!(pages.len(), count);
    assert!(count > 10, "{count} pages");
    for (n, page) in pages.iter().enumerate() {
        let footer = format!("Page {} of {count}", n + 1);
        assert!(page.contains(&footer), "{footer} missing:\n{page}");
        assert!(page.contains("Acme: items, exported"), "{page}");
        assert_eq!(page.matches("Updated").count(), 1, "{page}");
    }
    for n in 1..=ITEMS {
        let title = format!("Item {n}{SUFFIX}");
        assert!(text.contains(&title), "{title} missing");
    }
}

#[tokio::test]
async fn after_the_trial_exports_are_feature_locked_until_upgrade() {
    let today = TestApp::spawn().await;
    let ana = today.sign_up("ana").await;
    let ws = create_workspace(&today, &ana, "Acme").await;
    let requested = request_export(&today, &ana, &ws, "CSV", Value::Null).await;
    let id = requested["data"]["requestExport"]["export"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let later = TestApp::spawn_in_future(&today.db, chrono::Duration::days(15)).await;
    let locked = request_export(&later, &ana, &ws, "CSV", Value::Null).await;
    assert_eq!(error_codes(&locked), vec!["FEATURE_LOCKED"]);
    // What is there stays readable.
    assert_eq!(listed(&later, &ana, &ws, &id).await["state"], "PENDING");
    let upgraded = ana
        .gql(
            &later,
            "mutation($w: ID!) { upgradePlan(id: $w) { workspace { locked } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(
        upgraded["data"]["upgradePlan"]["workspace"]["locked"], false,
        "{upgraded}"
    );
    let requested = request_export(&later, &ana, &ws, "PDF", Value::Null).await;
    assert_eq!(
        requested["data"]["requestExport"]["export"]["state"], "PENDING",
        "{requested}"
    );
}

/// `kill -9` of a `chronicle worker` process in the middle of an export: a second worker
/// completes it, exactly once (one file, one `ExportCompleted`).
///
/// The 20,000 items are inserted straight into the `items` read model (the one table the
/// export job reads), not through the write path, which would take minutes here; the export
/// itself is requested through the API and run by the real binary.
///
/// The test prints how long recovery took. The killed worker's job goes back to the queue once
/// the worker has missed 3 heartbeats (apalis-postgres re-enqueues jobs of workers not seen
/// for `heartbeat × missed`, when a live worker of the queue registers or beats): here the
/// heartbeat is 1 s, and the job ran again 2.9 s after the kill. With the default 10 s it was
/// 30.2 s (the 20,000-item export then completed 34.8 s after the kill; dev build, 2026-11-30).
#[tokio::test]
async fn a_worker_killed_during_an_export_is_replaced_and_the_export_completes_once() {
    const ITEMS: i64 = 20_000;
    let app = TestApp::spawn().await;
    jobs::setup(app.db.pool()).await.unwrap();
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    insert_items(&app, &ws, &ana, ITEMS, "").await;
    let requested = request_export(&app, &ana, &ws, "CSV", Value::Null).await;
    let id = requested["data"]["requestExport"]["export"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{requested}"))
        .to_string();
    let export_id = decode(&id);
    let pool = app.db.pool().clone();
    let runs = || async {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "SELECT DISTINCT run_id FROM export_chunks WHERE export_id = $1",
        )
        .bind(export_id)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM exports WHERE id = $1")
            .bind(export_id)
            .fetch_one(&pool)
            .await
            .unwrap()
    };

    let data = tempfile::tempdir().unwrap();
    let worker = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chronicle"))
            .arg("worker")
            .env("DATABASE_URL", app.db.url())
            .env("CHRONICLE_DATA_DIR", data.path())
            .env("CHRONICLE_JOB_HEARTBEAT_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = worker();
    // Killed once it has written part of the file.
    let deadline = Instant::now() + PATIENCE;
    let killed_run = loop {
        if let Some(run) = runs().await.first() {
            break *run;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker never started writing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let killed_at = Instant::now();
    assert_eq!(
        status().await,
        "PENDING",
        "the export finished before the kill: make it bigger"
    );

    let mut second = worker();
    let deadline = Instant::now() + PATIENCE;
    let mut restarted = None;
    while status().await != "COMPLETED" {
        if restarted.is_none() && runs().await.iter().any(|r| *r != killed_run) {
            restarted = Some(killed_at.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "the export never completed after the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let completed = killed_at.elapsed();
    let file_id: uuid::Uuid = sqlx::query_scalar("SELECT file_id FROM exports WHERE id = $1")
        .bind(export_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(file_id, killed_run);
    // The completing run deletes the other runs' chunks just after its completing transaction
    // commits (which is when the status above turned): wait for it before stopping that
    // worker (killed in between, it would leave them to the pruning).
    let deadline = Instant::now() + PATIENCE;
    while runs().await != vec![file_id] {
        assert!(
            Instant::now() < deadline,
            "one file: the killed run's chunks are gone, not {:?}",
            runs().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    println!(
        "export recovery after kill -9: job running again after {:?}, export completed after {completed:?}",
        restarted.unwrap_or(completed)
    );

    assert_eq!(completed_events(&app, &id).await, 1);
    let response = download(&app, Some(&ana.token), &id).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let rows = csv::Reader::from_reader(&bytes[..]).records().count();
    assert_eq!(rows as i64, ITEMS);
}
