//! The `chronicle` binary as a newcomer runs it: no configuration at all.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on (for a server process to bind).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serve_without_database_url_provisions_postgres_migrates_serves_and_stops_cleanly() {
    let data = tempfile::tempdir_in("/tmp").unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_chronicle"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("CHRONICLE_DATA_DIR", data.path())
        .env("CHRONICLE_HOST", "127.0.0.1")
        .env("CHRONICLE_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let started = Instant::now();
    let ready = loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server did not come up"
        );
        assert!(server.try_wait().unwrap().is_none(), "server exited early");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready.status(), 200);
    assert!(
        data.path().join("postgres/PG_VERSION").exists(),
        "the cluster lives in the data dir"
    );

    // SIGTERM: drain and stop, taking the private PostgreSQL down with it.
    let signalled = Instant::now();
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
    eprintln!(
        "SIGTERM to exit 0, with the private PostgreSQL stopped: {:?}",
        signalled.elapsed()
    );
    let postmaster = data.path().join("postgres/postmaster.pid");
    let stopped = Instant::now();
    while postmaster.exists() && stopped.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!postmaster.exists(), "private PostgreSQL stopped");
}

#[test]
fn a_missing_postgresql_installation_gets_a_one_line_error_saying_what_to_install() {
    let output = Command::new(env!("CARGO_BIN_EXE_chronicle"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("CHRONICLE_PG_BIN", "/nonexistent")
        .env("CHRONICLE_DATA_DIR", "/tmp/chronicle-never-created")
        // Only the error: no log lines, no backtrace.
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("Error: PostgreSQL server binaries (initdb, pg_ctl) were not found")
            && stderr.contains("apt-get install postgresql"),
        "{stderr}"
    );
}

pub(crate) fn chronicle(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chronicle"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn operators_grant_and_revoke_staff_roles_and_it_is_recorded() {
    let app = crate::TestApp::spawn().await;
    app.sign_up("ana").await;
    let url = app.db.url();
    let granted = chronicle(&url, &["staff", "grant", "Ana@example.com", "SUPPORT"]);
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    assert!(String::from_utf8_lossy(&granted.stdout).contains("granted"));
    let again = chronicle(&url, &["staff", "grant", "ana@example.com", "support"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));

    let roles: Vec<String> = sqlx::query_scalar("SELECT unnest(staff_roles) FROM users")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert_eq!(roles, vec!["SUPPORT"]);
    let actor: serde_json::Value = sqlx::query_scalar(
        "SELECT metadata->'actor' FROM events WHERE event_type = 'StaffRoleGranted'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(actor["kind"], "system", "{actor}");

    let revoked = chronicle(&url, &["staff", "revoke", "ana@example.com", "SUPPORT"]);
    assert!(revoked.status.success());
    let roles: Vec<String> = sqlx::query_scalar("SELECT unnest(staff_roles) FROM users")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert!(roles.is_empty());

    let unknown = chronicle(&url, &["staff", "grant", "nobody@example.com", "ANALYST"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("Error: user not found"), "{stderr}");
    // A usage error (clap's exit code 2), naming the bad value.
    let bad_role = chronicle(&url, &["staff", "grant", "ana@example.com", "JANITOR"]);
    let stderr = String::from_utf8_lossy(&bad_role.stderr);
    assert_eq!(bad_role.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'JANITOR'"), "{stderr}");
}

#[tokio::test]
async fn audit_verify_reports_the_first_broken_link() {
    let app = crate::TestApp::spawn().await;
    app.sign_up("ana").await;
    app.sign_up("bo").await;
    let url = app.db.url();
    let intact = chronicle(&url, &["audit", "verify"]);
    assert!(intact.status.success());
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact"));

    let position: String = sqlx::query_scalar(
        "SELECT lpad(to_hex(tx_id), 16, '0') || lpad(to_hex(seq), 16, '0') FROM events ORDER BY tx_id, seq OFFSET 1 LIMIT 1",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    sqlx::raw_sql(
        "ALTER TABLE events DISABLE TRIGGER events_append_only;
         UPDATE events SET payload = jsonb_set(payload, '{display_name}', '\"mallory\"')
           WHERE (tx_id, seq) = (SELECT tx_id, seq FROM events ORDER BY tx_id, seq OFFSET 1 LIMIT 1);
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .execute(app.db.pool())
    .await
    .unwrap();
    let broken = chronicle(&url, &["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("BROKEN") && out.contains(&position), "{out}");
}

#[tokio::test]
async fn events_export_writes_the_log_in_order_as_ndjson_or_csv_and_resumes() {
    let app = crate::TestApp::spawn().await;
    for name in ["ana", "bo", "cy", "di"] {
        app.sign_up(name).await;
    }
    let url = app.db.url();
    let expected: Vec<String> =
        sqlx::query_scalar("SELECT event_id::text FROM events ORDER BY tx_id, seq")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let export = chronicle(&url, &["events", "export", "--out", out.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(String::from_utf8_lossy(&export.stderr).contains("exported 4 events"));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected);

    let after = lines[1]["position"].as_str().unwrap();
    let csv = chronicle(
        &url,
        &["events", "export", "--format", "csv", "--after", after],
    );
    assert!(csv.status.success());
    let text = String::from_utf8_lossy(&csv.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("position,event_id"));
    assert_eq!(
        rows.len(),
        3,
        "header and the two events after the second: {text}"
    );
    assert!(rows[1].contains(&expected[2]) && rows[2].contains(&expected[3]));

    let bad = chronicle(&url, &["events", "export", "--after", "garbage"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'garbage' for '--after"),
        "{stderr}"
    );
}

/// `chronicle projections status` counts a stalled projection's lag in events, and a rebuild
/// replaces what a running node serves with what the log says: the live copies are made to
/// differ from the log first (a drifted activity row; an item's stored title changed under
/// the index), so only a switch to the rebuilt ones shows the log's values.
#[tokio::test]
async fn projections_status_shows_lag_and_rebuilds_switch_under_a_running_node() {
    let db = std::sync::Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    // A leader of `activity` that stalled at the start of the log: its lock held, its
    // checkpoint at 0.
    let leadership = crate::health::hold_leadership(&db, projections::activity::NAME).await;
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1)")
        .bind(projections::activity::NAME)
        .execute(db.pool())
        .await
        .unwrap();
    let app = crate::TestApp::spawn_on(&db).await;
    let ana = app.sign_up("ana").await;
    let ws = crate::workspaces::create_workspace(&app, &ana, "Acme").await;
    let create = "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }";
    let created = ana
        .gql(&app, create, serde_json::json!({ "w": ws, "t": "invoice" }))
        .await;
    let position = created["data"]["createItem"]["position"].clone();
    let search = "query($w: ID!, $q: String!, $min: String) { search(workspaceId: $w, query: $q, minPosition: $min) { totalCount } }";
    let found = async |q: &str, min: &serde_json::Value| {
        let answer = ana
            .gql(
                &app,
                search,
                serde_json::json!({ "w": ws, "q": q, "min": min }),
            )
            .await;
        answer["data"]["search"]["totalCount"]
            .as_u64()
            .unwrap_or_else(|| panic!("{answer}"))
    };
    assert_eq!(found("invoice", &position).await, 1);

    let url = app.db.url();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let lag = |projection: &str| {
        let status = chronicle(&url, &["projections", "status"]);
        assert_eq!(status.status.code(), Some(0));
        let table = String::from_utf8_lossy(&status.stdout).into_owned();
        let line = table
            .lines()
            .find(|l| l.starts_with(projection))
            .unwrap_or_else(|| panic!("no {projection} line: {table}"));
        // PROJECTION NODE POSITION LAG UPDATED
        let lag: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        (lag, table)
    };
    let (activity_lag, table) = lag("activity");
    assert_eq!(
        activity_lag, events as u64,
        "every event is behind: {table}"
    );
    let (search_lag, table) = lag("search");
    assert_eq!(search_lag, 0, "the node's index has the whole log: {table}");

    // The leadership freed, the node leads and catches up: no lag.
    leadership.release().await;
    let head = eventlog::EventLog::new(db.pool().clone())
        .head()
        .await
        .unwrap();
    let caught_up = std::time::Instant::now();
    while projections::runner::SharedCheckpoint::new(projections::activity::NAME)
        .load(db.pool())
        .await
        .unwrap()
        < head
    {
        assert!(
            caught_up.elapsed() < Duration::from_secs(20),
            "activity never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lag("activity").0, 0);

    // The live copies drift from the log: an activity row miscounted, and the item's
    // `ItemCreated` now says "receipt" where the live index (built from it) says "invoice".
    sqlx::raw_sql(
        "UPDATE workspace_activity SET items_created = 99;
         ALTER TABLE events DISABLE TRIGGER events_append_only;
         UPDATE events SET payload = jsonb_set(payload, '{title}', '\"receipt\"')
           WHERE event_type = 'ItemCreated';
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let items_created = async || {
        let answer = ana
            .gql(
                &app,
                "query($w: ID!) { workspace(id: $w) { activity { itemsCreated } } }",
                serde_json::json!({ "w": ws }),
            )
            .await;
        answer["data"]["workspace"]["activity"]["itemsCreated"].clone()
    };
    assert_eq!(items_created().await, 99);
    assert_eq!(found("receipt", &position).await, 0);

    // The running node's index directory: the CLI builds a new generation beside it.
    let search_dir = app.data_dir.path().join("search");
    for name in ["activity", "search"] {
        let rebuild = Command::new(env!("CARGO_BIN_EXE_chronicle"))
            .args(["projections", "rebuild", name])
            .env("DATABASE_URL", &url)
            .env("CHRONICLE_SEARCH_DIR", &search_dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&rebuild.stderr);
        assert_eq!(rebuild.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains(&format!("rebuilt {name}")), "{stderr}");
    }
    // The activity table is swapped at once; the node switches to the rebuilt index at its
    // next batch, and then serves what the log says.
    assert_eq!(items_created().await, 1);
    let again = ana
        .gql(
            &app,
            create,
            serde_json::json!({ "w": ws, "t": "invoice two" }),
        )
        .await;
    let position = again["data"]["createItem"]["position"].clone();
    assert_eq!(found("receipt", &position).await, 1);
    assert_eq!(found("invoice", &position).await, 1, "only \"invoice two\"");
}
