//! PostGraphile v4 (Node.js), the reference the `items` measurement is held against (issue 12:
//! Chronicle's `items(first: 20)` ≥ 2 × PostGraphile on the same table and data, same run).
//!
//! The npm project in `bench/postgraphile/` pins the version; it is installed there with
//! `npm ci` when missing or stale. PostGraphile runs as a child process on the benchmark's own
//! database (it introspects Chronicle's tables and serves `allItems` over the `items` table),
//! with as many cluster workers as Chronicle's server has HTTP workers and a pool of the same
//! total size. It is stopped when [`PostGraphile`] is dropped, on error paths too; should the
//! harness die without dropping it (`kill -9`), a watchdog shell notices its stdin closing and
//! stops it, like the private PostgreSQL cluster's watchdog.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use super::client::Client;
use crate::server::{APP_POOL_SIZE, Database};

/// How long PostGraphile may take to listen and then to answer its first query (it introspects
/// the database first).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop may take before the rest of its process group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The lines of its log quoted when it fails.
const LOG_TAIL_LINES: usize = 20;

/// The watchdog: starts the command given as arguments in the background, stops it when its
/// own stdin closes (the harness dropped it or died), and exits when the command does. (A
/// background job's stdin is `/dev/null`, hence the pipe handed over on descriptor 3.)
const WATCHDOG: &str = r#"exec 3<&0
"$@" 3<&- </dev/null &
server=$!
(cat <&3 >/dev/null; kill "$server" 2>/dev/null) &
exec 3<&-
wait "$server""#;

/// How PostGraphile runs, for the report.
#[derive(Clone)]
pub struct Setup {
    /// PostGraphile's version, as its installed package says it.
    pub version: String,
    /// `node --version`.
    pub node: String,
    /// Cluster workers (as many as Chronicle's HTTP workers).
    pub workers: usize,
    /// Connections in each worker's pool.
    pub pool_per_worker: u32,
}

/// A running PostGraphile server.
pub struct PostGraphile {
    /// The watchdog shell, leader of a process group holding node's processes.
    shell: Child,
    /// Closing it makes the watchdog stop PostGraphile.
    stdin: Option<ChildStdin>,
    pub address: SocketAddr,
    pub setup: Setup,
    /// Where its output goes (kept for error messages).
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// PostGraphile installed and ready to start.
pub struct Installation {
    project: PathBuf,
    version: String,
    node: String,
}

impl Installation {
    /// Checks that Node.js is there and installs the pinned PostGraphile if needed.
    pub fn prepare() -> anyhow::Result<Installation> {
        let project = project_dir();
        let node = require("node", "runs PostGraphile")?;
        let version = install(&project)?;
        Ok(Installation {
            project,
            version,
            node,
        })
    }

    /// Starts PostGraphile on `database` with `workers` cluster workers; returns once it
    /// answers GraphQL.
    pub async fn start(&self, database: &Database, workers: usize) -> anyhow::Result<PostGraphile> {
        let project = &self.project;
        let workers = workers.max(1);
        let pool_per_worker = APP_POOL_SIZE.div_ceil(workers as u32);
        let log_dir = tempfile::Builder::new()
            .prefix("chronicle-bench-postgraphile-")
            .tempdir()
            .context("creating PostGraphile's log directory")?;
        let log = log_dir.path().join("postgraphile.log");
        let output = File::create(&log).context("creating PostGraphile's log")?;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg("node")
            .arg(project.join("node_modules/postgraphile/cli.js"))
            .args(["--schema", "public", "--host", "127.0.0.1", "--port", "0"])
            .args(["--max-pool-size", &pool_per_worker.to_string()])
            .args(["--disable-graphiql", "--disable-query-log"]);
        // Below 2, PostGraphile runs one process and no cluster.
        if workers >= 2 {
            command.args(["--cluster-workers", &workers.to_string()]);
        }
        // The URL in the environment rather than on the command line: it may hold a password.
        command
            .env("DATABASE_URL", &database.url)
            .env("NODE_ENV", "production")
            .env("FORCE_COLOR", "0")
            .current_dir(project)
            .stdin(Stdio::piped())
            .stdout(output.try_clone().context("sharing PostGraphile's log")?)
            .stderr(output)
            // Its own process group, so that stopping it reaches every worker and nothing else.
            .process_group(0);
        let mut shell = command.spawn().context("starting PostGraphile")?;
        let stdin = shell.stdin.take();
        let mut server = PostGraphile {
            shell,
            stdin,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            setup: Setup {
                version: self.version.clone(),
                node: self.node.clone(),
                workers,
                pool_per_worker,
            },
            log,
            _log_dir: log_dir,
        };
        server.address = server.wait_for_port().await?;
        server.wait_until_answering().await?;
        Ok(server)
    }
}

impl PostGraphile {
    /// Waits until a worker says which port it listens on (all workers share it).
    async fn wait_for_port(&mut self) -> anyhow::Result<SocketAddr> {
        let started = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(port) = listening_port(&text) {
                return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
            }
            self.ensure_running()?;
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "PostGraphile did not listen within {} s; its log ends:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until it answers a query: it has introspected the database and built its schema.
    async fn wait_until_answering(&mut self) -> anyhow::Result<()> {
        let client = Client::new(self.address)?;
        let started = Instant::now();
        loop {
            let outcome = client.typename().await;
            if outcome.is_ok() {
                return Ok(());
            }
            self.ensure_running()?;
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "PostGraphile did not answer within {} s ({:#}); its log ends:\n{}",
                    START_TIMEOUT.as_secs(),
                    outcome.unwrap_err(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An error with its log if PostGraphile has exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.shell.try_wait().context("watching PostGraphile")? {
            bail!(
                "PostGraphile exited ({status}); its log ends:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for PostGraphile {
    fn drop(&mut self) {
        // The watchdog stops PostGraphile (SIGTERM to its master, whose workers follow) and
        // exits when it has.
        drop(self.stdin.take());
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            match self.shell.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        // Whatever is left of the group (a worker slow to follow its master, or everything if
        // the stop timed out) is killed. The group is ours: its leader was started above.
        let group = self.shell.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.shell.wait();
    }
}

/// `bench/postgraphile`, the pinned npm project.
fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("postgraphile")
}

/// Makes sure the pinned PostGraphile is installed in `project` (`npm ci` when it is missing
/// or another version); returns its version.
fn install(project: &Path) -> anyhow::Result<String> {
    let pinned = package_version(&project.join("package.json"), "dependencies")?;
    let installed = project.join("node_modules/postgraphile/package.json");
    if package_version(&installed, "").ok().as_deref() == Some(pinned.as_str()) {
        return Ok(pinned);
    }
    require("npm", "installs PostGraphile")?;
    eprintln!(
        "api: installing PostGraphile {pinned} (npm ci in {})",
        project.display()
    );
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(project)
        .stdin(Stdio::null())
        .output()
        .context("running npm ci")?;
    if !output.status.success() {
        bail!(
            "npm ci in {} failed ({}):\n{}",
            project.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let version = package_version(&installed, "")?;
    ensure!(
        version == pinned,
        "npm ci installed PostGraphile {version}, but package.json pins {pinned}"
    );
    Ok(version)
}

/// `program --version`, or a clear message when `program` is not installed.
fn require(program: &str, role: &str) -> anyhow::Result<String> {
    match Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        }
        Ok(output) => bail!("`{program} --version` failed ({})", output.status),
        Err(err) if err.kind() == ErrorKind::NotFound => bail!(
            "the api benchmark measures PostGraphile beside Chronicle, and `{program}` (which \
             {role}) is not on PATH: install Node.js and npm (Debian: apt-get install nodejs npm)"
        ),
        Err(err) => Err(err).with_context(|| format!("running {program}")),
    }
}

/// PostGraphile's version in a `package.json`: under `section` (the pin in the project's own
/// file), or the package's own `version` when `section` is empty.
fn package_version(path: &Path, section: &str) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let package: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let version = if section.is_empty() {
        &package["version"]
    } else {
        &package[section]["postgraphile"]
    };
    version
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no PostGraphile version in {}", path.display()))
}

/// The port in PostGraphile's "… listening on port N 🚀" line, once it is there.
fn listening_port(log: &str) -> Option<u16> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once("listening on port ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok().filter(|&port| port != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_api::client::PAGE;
    use crate::http_api::same_pages;
    use crate::server::{self, Server};

    /// Processes of `group` that have not ended (zombies waiting for their parent excluded).
    fn living(group: libc::pid_t) -> Vec<String> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| fs::read_to_string(entry.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // pid (comm) state ppid pgrp ...: comm may hold spaces, so read after its ')'.
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
                fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
            })
            .collect()
    }

    /// Started as the benchmark starts it, PostGraphile answers a workspace's first page with
    /// the items Chronicle answers, in the same order; dropping it ends all its processes.
    #[test]
    fn answers_chronicles_page_and_stops_whole() {
        let server = Server::provision().expect("a PostgreSQL server");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let installation = Installation::prepare().expect("Node.js and PostGraphile");
            let database = server.create_database().await.unwrap();
            let pool = server::app_pool(&database).await.unwrap();
            let state = tempfile::tempdir().unwrap();
            let address = server::start_app(pool.clone(), state.path()).await.unwrap();
            let chronicle = Client::new(address).unwrap();
            let tenant = chronicle.tenant(0).await.unwrap();
            // More than a page, so that the order decides which items are on it.
            for n in 0..PAGE + 5 {
                chronicle.create_item(&tenant, n as u64).await.unwrap();
            }

            let postgraphile = installation.start(&database, 2).await.unwrap();
            let group = postgraphile.shell.id() as libc::pid_t;
            // The watchdog shell, its reader, PostGraphile's master and two workers.
            assert!(living(group).len() >= 4, "{:?}", living(group));
            let reference = Client::new(postgraphile.address).unwrap();
            same_pages(&chronicle, &reference, std::slice::from_ref(&tenant))
                .await
                .unwrap();

            drop(postgraphile);
            let stopped = Instant::now();
            while !living(group).is_empty() {
                assert!(
                    stopped.elapsed() < STOP_TIMEOUT,
                    "still running after the stop: {:?}",
                    living(group)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pool.close().await;
            server.drop_database(database).await.unwrap();
        });
    }

    #[test]
    fn reads_the_port_a_worker_listens_on() {
        let log = "  [cluster] started worker 1 (pid=5844)\n\n\
                   PostGraphile v4.14.1 worker 1 (pid=5844) listening on port 35613 🚀\n";
        assert_eq!(listening_port(log), Some(35613));
        assert_eq!(
            listening_port("  [cluster] started worker 1 (pid=5844)\n"),
            None
        );
        assert_eq!(
            listening_port("PostGraphile v4 server listening on port 0 🚀"),
            None
        );
    }

    #[test]
    fn the_pinned_version_is_an_exact_4_x() {
        let pinned = package_version(&project_dir().join("package.json"), "dependencies")
            .expect("bench/postgraphile/package.json pins PostGraphile");
        let parts: Vec<&str> = pinned.split('.').collect();
        assert_eq!(parts.len(), 3, "an exact version, not a range: {pinned}");
        assert_eq!(parts[0], "4", "PostGraphile v4: {pinned}");
        assert!(
            parts.iter().all(|part| part.parse::<u32>().is_ok()),
            "{pinned}"
        );
    }

    #[test]
    fn the_lock_file_matches_the_pin() {
        let project = project_dir();
        let pinned = package_version(&project.join("package.json"), "dependencies").unwrap();
        let lock = project.join("package-lock.json");
        let text = fs::read_to_string(&lock).expect("bench/postgraphile/package-lock.json");
        let lock: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            lock["packages"]["node_modules/postgraphile"]["version"], pinned,
            "package-lock.json is out of date: run npm install in bench/postgraphile"
        );
    }
}
