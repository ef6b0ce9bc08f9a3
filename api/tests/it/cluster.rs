//! Several real processes on loopback: `deploy/local-cluster` starts three `chronicle serve`
//! nodes on the test's database behind nginx, and the tests kill one (`kill -9`) or stop one
//! (SIGTERM) under traffic. They need nginx (`apt-get install nginx-light`; `.ci/run` installs
//! it) and fail, never skip, without it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgcluster::TestDatabase;
use serde_json::{Value, json};

use crate::binary::free_port;
use crate::subscriptions::{CREATE_ITEM, Client, EVENTS};
use crate::workspaces::create_workspace;
use crate::{Session, TestApp};

const NGINX: &str = "/usr/sbin/nginx";

/// `deploy/local-cluster` running three nodes on a test database; stopped when dropped.
struct LocalCluster {
    script: Child,
    dir: tempfile::TempDir,
    port: u16,
    node_ports: Vec<u16>,
    db: Arc<TestDatabase>,
}

impl LocalCluster {
    /// Starts the script with `env` passed on to the nodes, and waits until it says it is ready.
    async fn start(env: &[(&str, &str)]) -> LocalCluster {
        assert!(
            Path::new(NGINX).is_file(),
            "the cluster tests need nginx at {NGINX}: apt-get install nginx-light (or nginx); \
             .ci/run installs it"
        );
        let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
        let dir = tempfile::Builder::new()
            .prefix("chronicle-cluster-")
            .tempdir_in("/tmp")
            .unwrap();
        let port = free_port();
        let node_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let ports: Vec<String> = node_ports.iter().map(u16::to_string).collect();
        let output = std::fs::File::create(dir.path().join("local-cluster.out")).unwrap();
        let script = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/local-cluster"
        ))
        .env("LOCAL_CLUSTER_DIR", dir.path())
        .env("LOCAL_CLUSTER_PORT", port.to_string())
        .env("LOCAL_CLUSTER_NODE_PORTS", ports.join(" "))
        .env("CHRONICLE_BIN", env!("CARGO_BIN_EXE_chronicle"))
        .env("NGINX", NGINX)
        .env("DATABASE_URL", db.url())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(output)
        .spawn()
        .unwrap();
        let mut cluster = LocalCluster {
            script,
            dir,
            port,
            node_ports,
            db,
        };
        let started = Instant::now();
        while !cluster.output().contains("local-cluster: ready") {
            if let Some(status) = cluster.script.try_wait().unwrap() {
                panic!(
                    "deploy/local-cluster ended ({status}):\n{}",
                    cluster.output()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "the cluster did not come up:\n{}",
                cluster.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    /// What the script said (its standard error).
    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("local-cluster.out")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// nginx, as a test client sees the application.
    fn app(&self) -> TestApp {
        self.app_at(SocketAddr::from(([127, 0, 0, 1], self.port)))
    }

    /// Node `n` (1-based), reached directly.
    fn node(&self, n: usize) -> TestApp {
        self.app_at(self.node_address(n))
    }

    fn node_address(&self, n: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node_ports[n - 1]))
    }

    fn app_at(&self, address: SocketAddr) -> TestApp {
        TestApp {
            address,
            client: crate::client(),
            db: self.db.clone(),
            data_dir: Arc::new(tempfile::tempdir().unwrap()),
            metrics_address: None,
            // The nodes' own clocks are the system's; this one is not theirs to move.
            clock: api::writes::Clock::default(),
        }
    }

    fn signal(&self, n: usize, signal: i32) {
        let pid: i32 = std::fs::read_to_string(self.path(&format!("run/node{n}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill with a pid the script started and a valid signal.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "node{n} runs");
    }

    /// The exit status of node `n`, as the script reports it, once it has exited.
    async fn exit_status(&self, n: usize) -> i32 {
        let prefix = format!("local-cluster: node{n} (pid ");
        let started = Instant::now();
        loop {
            let output = self.output();
            if let Some(line) = output.lines().find(|line| line.starts_with(&prefix)) {
                return line
                    .rsplit(' ')
                    .next()
                    .and_then(|status| status.parse().ok())
                    .unwrap_or_else(|| panic!("an exit status: {line}"));
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node{n} did not exit:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// nginx's access log: one line per request, naming the node(s) it went to.
    fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("run/access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // SAFETY: kill with the script's pid and a valid signal.
        unsafe { libc::kill(self.script.id() as i32, libc::SIGTERM) };
        let _ = self.script.wait();
    }
}

/// The nodes an access-log line says nginx tried, in order (more than one: it retried).
fn upstreams(line: &str) -> Vec<String> {
    let list = line
        .split(" upstream=")
        .nth(1)
        .and_then(|rest| rest.split(" upstream_status=").next())
        .unwrap_or_default();
    list.split(", ").map(str::to_string).collect()
}

/// Creates an item with an idempotency key through `app`: its id once acknowledged, else why
/// not.
async fn create_item(
    app: &TestApp,
    session: &Session,
    workspace: &str,
    key: &str,
    title: &str,
) -> Result<String, String> {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&session.token)
        .header("Idempotency-Key", key)
        .json(&json!({ "query": CREATE_ITEM, "variables": { "w": workspace, "t": title } }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|err| format!("{key}: {err}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|err| format!("{key}: {status}: {err}"))?;
    body["data"]["createItem"]["item"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{key}: {status}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_behind_nginx_loses_no_acknowledged_write_and_duplicates_none() {
    let cluster = LocalCluster::start(&[]).await;
    let app = cluster.app();
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;

    const CLIENTS: usize = 4;
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (app, ana, ws) = (app.clone(), ana.clone(), ws.clone());
            let (acknowledged, failures, stop) =
                (acknowledged.clone(), failures.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (key, title) = (format!("c{client}-{n}"), format!("item c{client} #{n}"));
                    // Until acknowledged: a retry carries the same key.
                    for attempt in 1.. {
                        match create_item(&app, &ana, &ws, &key, &title).await {
                            Ok(id) => {
                                acknowledged.lock().unwrap().push((title, id));
                                break;
                            }
                            Err(why) => {
                                failures.lock().unwrap().push(why);
                                assert!(attempt < 20, "{key} never acknowledged");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let acknowledged_count = || acknowledged.lock().unwrap().len();
    let wait_for = async |count: usize| {
        let started = Instant::now();
        while acknowledged_count() < count {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "writes stalled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    wait_for(40).await;
    cluster.signal(2, libc::SIGKILL);
    let at_kill = acknowledged_count();
    wait_for(at_kill + 150).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(cluster.exit_status(2).await, 128 + libc::SIGKILL);

    let acknowledged = acknowledged.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    let retried = cluster
        .access_log()
        .iter()
        .filter(|line| upstreams(line).len() > 1)
        .count();
    eprintln!(
        "kill -9 under {CLIENTS} writers: {} items acknowledged ({} after the kill), \
         {} requests failed at the client, {retried} retried by nginx on another node",
        acknowledged.len(),
        acknowledged.len() - at_kill,
        failures.len()
    );
    // nginx passed what the dead node did not answer to the others (a POST with an
    // Idempotency-Key may be retried): no client saw a failure.
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        retried >= 1,
        "nginx retried on another node: {:#?}",
        cluster.access_log()
    );

    // Every acknowledged item exists exactly once, in the log and in the read model.
    let pool = cluster.db.pool();
    let titles: Vec<String> = acknowledged.iter().map(|(t, _)| t.clone()).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT i.title, (SELECT count(*) FROM events e
                           WHERE e.stream_id = i.id AND e.event_type = 'ItemCreated')
           FROM items i WHERE i.title = ANY($1)",
    )
    .bind(&titles)
    .fetch_all(pool)
    .await
    .unwrap();
    let found: HashSet<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(rows.len(), titles.len(), "one read-model row per item");
    assert_eq!(found.len(), titles.len(), "no title twice");
    assert!(rows.iter().all(|(_, events)| *events == 1), "{rows:?}");
    let (items, created): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM items),
                (SELECT count(*) FROM events WHERE event_type = 'ItemCreated')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (items, created),
        (titles.len() as i64, titles.len() as i64),
        "nothing written that was not acknowledged, nothing twice"
    );
    let ids: HashSet<&str> = acknowledged.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "a retry got the first answer"
    );
}

const SEARCH: &str = "query($w: ID!, $min: String) {
    search(workspaceId: $w, query: \"needle\", minPosition: $min) { totalCount } }";

/// A slow request in flight on `node`: a transaction holds the log's read horizon back, so an
/// item created after it is committed but not yet readable, and a search through `node` that
/// asks for that item's position waits (up to `CHRONICLE_CONSISTENCY_WAIT_MS`) for the search
/// index, which cannot pass the horizon. Returns the transaction (end it to let the search
/// finish) and the search's answer to come.
async fn slow_search(
    cluster: &LocalCluster,
    node: &TestApp,
    session: &Session,
    workspace: &str,
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    tokio::task::JoinHandle<Result<Value, String>>,
) {
    let mut holder = cluster.db.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .unwrap();
    let created = session
        .gql(
            &cluster.app(),
            CREATE_ITEM,
            json!({ "w": workspace, "t": "the needle" }),
        )
        .await;
    let position = created["data"]["createItem"]["position"].clone();
    assert!(position.is_string(), "{created}");
    let request = node
        .client
        .post(node.url("/graphql"))
        .bearer_auth(&session.token)
        .json(&json!({ "query": SEARCH, "variables": { "w": workspace, "min": position } }));
    let slow = tokio::spawn(async move {
        let response = request.send().await.map_err(|err| err.to_string())?;
        response.json().await.map_err(|err| err.to_string())
    });
    // Whether the request reaches the node before or just after a signal, the grace admits it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!slow.is_finished(), "the search waits for the index");
    (holder, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_with_sigterm_finishes_its_slow_request_sends_subscribers_away_and_exits_0()
{
    let grace = Duration::from_millis(1000);
    let cluster = LocalCluster::start(&[
        ("CHRONICLE_SHUTDOWN_GRACE_MS", "1000"),
        ("CHRONICLE_SHUTDOWN_TIMEOUT_MS", "30000"),
        // The slow request: a search that waits for the index to reach a position, for as long
        // as the test takes to get there (on a loaded machine, more than the default 15 s
        // request timeout).
        ("CHRONICLE_CONSISTENCY_WAIT_MS", "60000"),
        ("CHRONICLE_REQUEST_TIMEOUT_MS", "60000"),
    ])
    .await;
    let app = cluster.app();
    let node1 = cluster.node(1);
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    for n in 0..3 {
        create_item(
            &app,
            &ana,
            &ws,
            &format!("before-{n}"),
            &format!("before {n}"),
        )
        .await
        .unwrap();
    }

    // Two subscribers on node 1, following the workspace's events from the start.
    let workspace_events = async || -> Vec<String> {
        sqlx::query_scalar(
            "SELECT event_id::text FROM events WHERE workspace_id IS NOT NULL ORDER BY tx_id, seq",
        )
        .fetch_all(cluster.db.pool())
        .await
        .unwrap()
    };
    let so_far = workspace_events().await.len();
    let mut subscribers = Vec::new();
    let mut received: Vec<Vec<Value>> = Vec::new();
    for _ in 0..2 {
        let mut client = Client::connect(&node1, &ana).await;
        client
            .subscribe("feed", EVENTS, json!({ "filter": { "workspaceId": ws } }))
            .await;
        let mut events = Vec::new();
        while events.len() < so_far {
            events.push(client.data("feed").await["events"].clone());
        }
        subscribers.push(client);
        received.push(events);
    }

    let (holder, slow) = slow_search(&cluster, &node1, &ana, &ws).await;

    let signalled = Instant::now();
    cluster.signal(1, libc::SIGTERM);

    // Subscribers are told at once to reconnect: 1012, service restart.
    let mut last_positions = Vec::new();
    for (client, events) in subscribers.iter_mut().zip(&mut received) {
        let closed = loop {
            match client.next().await {
                Ok(message) => events.push(message["payload"]["data"]["events"].clone()),
                Err(closed) => break closed,
            }
        };
        assert_eq!(closed.code, 1012, "{}", closed.reason);
        assert!(closed.reason.contains("reconnect"), "{}", closed.reason);
        last_positions.push(events.last().unwrap()["position"].clone());
    }
    let told_after = signalled.elapsed();

    // Not ready at once, saying why.
    let ready = node1.client.get(node1.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["reason"].as_str().unwrap().contains("shutting down"),
        "{ready}"
    );

    // After the grace node 1 refuses connections, while the slow request is still running.
    while tokio::net::TcpStream::connect(cluster.node_address(1))
        .await
        .is_ok()
    {
        assert!(signalled.elapsed() < grace + Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_after = signalled.elapsed();
    assert!(refused_after >= grace, "{refused_after:?}");
    assert!(!slow.is_finished(), "the slow request still runs");

    // Requests that arrive now are all answered, by the other nodes: queries without a key
    // too (a refused connection is retried even for a POST: nothing was sent).
    let log_mark = cluster.access_log().len();
    for n in 0..6 {
        let me = ana.gql(&app, "{ me { id } }", json!({})).await;
        assert_eq!(me["data"]["me"]["id"], ana.user_id.as_str(), "{me}");
        create_item(
            &app,
            &ana,
            &ws,
            &format!("after-{n}"),
            &format!("after {n}"),
        )
        .await
        .unwrap();
    }
    let node1_address = cluster.node_address(1).to_string();
    // nginx writes a request's line once it has answered it: maybe just after the client read
    // it, and on a loaded machine (a cold CI build) once saw none of the twelve within 5 s.
    let logged = Instant::now();
    while cluster.access_log().len() < log_mark + 12 && logged.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = cluster.access_log();
    let after: Vec<String> = log[log_mark..].to_vec();
    assert_eq!(after.len(), 12, "after line {log_mark} of {log:#?}");
    for line in &after {
        assert!(line.contains("\" 200 "), "{line}");
        assert_ne!(
            upstreams(line).last().unwrap(),
            &node1_address,
            "answered by another node: {line}"
        );
    }

    // The subscribers reconnect through nginx and resume from the last position received.
    let mut resumed = Vec::new();
    for from in &last_positions {
        let mut client = Client::connect(&app, &ana).await;
        client
            .subscribe(
                "feed",
                EVENTS,
                json!({ "filter": { "workspaceId": ws }, "from": from }),
            )
            .await;
        resumed.push(client);
    }

    // The hold ends: the index reaches the position and the slow request completes.
    holder.commit().await.unwrap();
    let answer = slow.await.unwrap().unwrap();
    assert_eq!(answer["data"]["search"]["totalCount"], 1, "{answer}");
    let status = cluster.exit_status(1).await;
    let exited_after = signalled.elapsed();
    assert_eq!(status, 0, "node 1 exits 0:\n{}", cluster.output());

    // Across the reconnect, every event of the workspace arrived once, in order.
    let expected = workspace_events().await;
    assert_eq!(
        expected.len(),
        so_far + 1 + 6,
        "the needle and the six items after"
    );
    for (client, events) in resumed.iter_mut().zip(&mut received) {
        while events.len() < expected.len() {
            events.push(client.data("feed").await["events"].clone());
        }
        let ids: Vec<&str> = events
            .iter()
            .map(|e| e["eventId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected);
    }

    // An idle node stops within its grace and a moment.
    let idle = Instant::now();
    cluster.signal(2, libc::SIGTERM);
    assert_eq!(cluster.exit_status(2).await, 0);
    eprintln!(
        "SIGTERM: subscribers told to reconnect after {told_after:?}, connections refused after \
         {refused_after:?} (grace {grace:?}), exit 0 after {exited_after:?} (the slow request \
         held it); an idle node exits 0 {:?} after SIGTERM",
        idle.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_slower_than_the_shutdown_timeout_is_cut_short_and_the_node_still_exits_0() {
    let timeout = Duration::from_millis(500);
    let cluster = LocalCluster::start(&[
        ("CHRONICLE_SHUTDOWN_GRACE_MS", "0"),
        ("CHRONICLE_SHUTDOWN_TIMEOUT_MS", "500"),
        ("CHRONICLE_CONSISTENCY_WAIT_MS", "60000"),
    ])
    .await;
    let app = cluster.app();
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let (holder, slow) = slow_search(&cluster, &cluster.node(1), &ana, &ws).await;

    let signalled = Instant::now();
    cluster.signal(1, libc::SIGTERM);
    assert_eq!(cluster.exit_status(1).await, 0, "{}", cluster.output());
    let exited_after = signalled.elapsed();
    assert!(exited_after >= timeout, "{exited_after:?}");
    // The request was cut short: no answer with data (the connection closed, or the node, its
    // projections stopped, said NOT_YET_CONSISTENT: retry shortly).
    let cut = slow.await.unwrap();
    assert!(
        cut.as_ref().map_or(true, |answer| answer["data"].is_null()),
        "{cut:?}"
    );
    holder.rollback().await.unwrap();
    eprintln!(
        "a request outliving the 500 ms shutdown timeout: {cut:?}; exit 0 after {exited_after:?}"
    );
}
