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
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
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
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
    let bad_role = chronicle(&url, &["staff", "grant", "ana@example.com", "JANITOR"]);
    assert!(!bad_role.status.success());
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
    assert!(!bad.status.success());
}

#[tokio::test]
async fn projections_status_shows_lag_and_rebuilds_switch_under_a_running_node() {
    let app = crate::TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = crate::workspaces::create_workspace(&app, &ana, "Acme").await;
    let created = ana
        .gql(
            &app,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"invoice\" }) { position } }",
            serde_json::json!({ "w": ws }),
        )
        .await;
    let position = created["data"]["createItem"]["position"]
        .as_str()
        .unwrap()
        .to_string();
    let search = "query($w: ID!, $min: String) { search(workspaceId: $w, query: \"invoice\", minPosition: $min) { totalCount } }";
    let found = ana
        .gql(
            &app,
            search,
            serde_json::json!({ "w": ws, "min": position }),
        )
        .await;
    assert_eq!(found["data"]["search"]["totalCount"], 1, "{found}");

    let url = app.db.url();
    let status = chronicle(&url, &["projections", "status"]);
    assert!(status.status.success());
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("search") && table.contains("activity"),
        "{table}"
    );

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
        assert!(rebuild.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("rebuilt {name}")), "{stderr}");
    }
    // The node switches to the rebuilt index at its next batch and answers as before.
    let again = ana
        .gql(
            &app,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"invoice two\" }) { position } }",
            serde_json::json!({ "w": ws }),
        )
        .await;
    let position = again["data"]["createItem"]["position"].clone();
    let found = ana
        .gql(
            &app,
            search,
            serde_json::json!({ "w": ws, "min": position }),
        )
        .await;
    assert_eq!(found["data"]["search"]["totalCount"], 2, "{found}");
}
