//! The `chronicle` binary as a newcomer runs it: no configuration at all.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
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
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
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
