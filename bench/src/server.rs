//! The PostgreSQL server the benchmarks run against, the fresh database each run gets, and the
//! Chronicle server started on it in the harness's process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use pgcluster::{Cluster, Lifetime};
// Database names are generated here, never taken from input.
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use uuid::Uuid;

/// Connections in a benchmark database's pool: 32 appenders plus the log's listener and
/// notifier and a little slack. Otherwise it hands out connections as the server's does.
const POOL_SIZE: u32 = 40;

/// A PostgreSQL server: `DATABASE_URL`'s, or a private cluster that lives as long as this value.
pub struct Server {
    /// A URL of any database on the server, to create and drop databases from.
    admin_url: String,
    /// The `pgbench` matching the server.
    pgbench: PathBuf,
    /// Where the server runs, for the report (never the URL: it may hold a password).
    description: &'static str,
    /// Dropping the cluster stops it and removes its files.
    _cluster: Option<Cluster>,
}

impl Server {
    /// Uses `DATABASE_URL` when set, else starts a throw-away cluster from the local binaries.
    pub fn provision() -> anyhow::Result<Server> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(Server {
                admin_url: url,
                pgbench: PathBuf::from("pgbench"),
                description: "the server at DATABASE_URL",
                _cluster: None,
            }),
            _ => {
                let dir = tempfile::Builder::new()
                    .prefix("chronicle-bench-")
                    .tempdir_in("/tmp")
                    .context("creating a directory for the benchmark cluster")?
                    // The cluster's watchdog removes it when this process exits.
                    .keep();
                let cluster = Cluster::start_sized_to_machine(&dir, Lifetime::Temporary)
                    .context("starting a private PostgreSQL cluster")?;
                Ok(Server {
                    admin_url: cluster.url("postgres"),
                    pgbench: cluster.bin_dir().join("pgbench"),
                    description: "a private cluster started by the harness on this machine",
                    _cluster: Some(cluster),
                })
            }
        }
    }

    pub fn pgbench(&self) -> &PathBuf {
        &self.pgbench
    }

    pub fn description(&self) -> &'static str {
        self.description
    }

    /// Creates a database of its own for this run, with Chronicle's schema applied.
    pub async fn create_database(&self) -> anyhow::Result<Database> {
        let name = format!("chronicle_bench_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .context("creating the benchmark database")?;
        let url = with_database(&self.admin_url, &name)?;
        let pool = api::database::pool_options()
            .max_connections(POOL_SIZE)
            .connect(&url)
            .await
            .context("connecting to the benchmark database")?;
        eventlog::MIGRATOR
            .run(&pool)
            .await
            .context("applying Chronicle's migrations")?;
        Ok(Database { name, url, pool })
    }

    /// Drops a database made by [`Server::create_database`].
    pub async fn drop_database(&self, database: Database) -> anyhow::Result<()> {
        database.pool.close().await;
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            r#"DROP DATABASE "{}" WITH (FORCE)"#,
            database.name
        )))
        .execute(&mut admin)
        .await
        .context("dropping the benchmark database")?;
        Ok(())
    }
}

/// A fresh, migrated database.
pub struct Database {
    name: String,
    /// A libpq-compatible URL of it (sqlx and pgbench both accept it).
    pub url: String,
    pub pool: PgPool,
}

impl Database {
    /// A server setting, as `SHOW` reports it.
    pub async fn setting(&self, name: &'static str) -> anyhow::Result<String> {
        // `name` is a constant of this program, never input.
        let value: String = sqlx::query_scalar(AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&self.pool)
            .await
            .with_context(|| format!("reading the setting {name}"))?;
        Ok(value)
    }

    /// Flushes dirty pages, so that a checkpoint does not land in the middle of a measurement.
    /// Needs superuser rights; without them the measurement just goes ahead.
    pub async fn checkpoint(&self) {
        if let Err(err) = sqlx::query("CHECKPOINT").execute(&self.pool).await {
            eprintln!("note: CHECKPOINT failed ({err}); measuring without it");
        }
    }
}

/// `url` with its database (the path) replaced by `database`, keeping everything else.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let authority_start = url
        .find("://")
        .map(|i| i + 3)
        .context("DATABASE_URL is not a postgres:// URL")?;
    let rest = &url[authority_start..];
    let authority_end = authority_start + rest.find(['/', '?']).unwrap_or(rest.len());
    let query_start = url[authority_end..]
        .find('?')
        .map_or(url.len(), |i| authority_end + i);
    Ok(format!(
        "{}/{database}{}",
        &url[..authority_end],
        &url[query_start..]
    ))
}

/// How long [`settle`] waits for the server's projections to catch up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Connections in the pool of the server the benchmarks start, like `chronicle`'s.
pub const APP_POOL_SIZE: u32 = api::database::POOL_SIZE;

/// The pool `chronicle` serves with ([`api::database::pool_options`]).
pub async fn app_pool(database: &Database) -> anyhow::Result<PgPool> {
    api::database::pool_options()
        .connect(&database.url)
        .await
        .context("connecting the server's pool")
}

/// The real server started for one benchmark, on a database of its own.
pub struct Running {
    pub database: Database,
    /// The run's description (machine, server), gathered before any load.
    pub context: crate::report::Context,
    /// The server's own pool (as `chronicle` sizes it).
    pub pool: PgPool,
    pub address: SocketAddr,
    /// The server's files (its search index), removed when dropped.
    pub state: tempfile::TempDir,
}

/// Creates a database, describes the run, and starts the real server on it ([`start_app`]).
pub async fn run_app(server: &Server) -> anyhow::Result<Running> {
    let database = server.create_database().await?;
    let context = crate::report::Context::gather(server, &database).await?;
    let state = tempfile::Builder::new()
        .prefix("chronicle-bench-state-")
        .tempdir()
        .context("creating the server's data directory")?;
    let pool = app_pool(&database).await?;
    let address = start_app(pool.clone(), state.path()).await?;
    Ok(Running {
        database,
        context,
        pool,
        address,
        state,
    })
}

/// Starts the real server on a free local port (on `pool`, already migrated), keeping its
/// files (the search index) in `state`; returns its address. `/readyz` is only ready once every
/// projection has caught up with the log, which [`settle`] waits for.
pub async fn start_app(pool: PgPool, state: &Path) -> anyhow::Result<SocketAddr> {
    Ok(start_app_with(pool, state, &[]).await?.0)
}

/// [`start_app`] with some settings changed (`overrides`: variable and value); also returns
/// the server's response cache, unless the settings turn it off.
pub async fn start_app_with(
    pool: PgPool,
    state: &Path,
    overrides: &[(&str, &str)],
) -> anyhow::Result<(SocketAddr, Option<::api::cache::ResponseCache>)> {
    let state = state.to_string_lossy().into_owned();
    let config = ::api::config::Config::from_lookup(|name| {
        if let Some((_, value)) = overrides.iter().find(|(n, _)| *n == name) {
            return Some((*value).to_string());
        }
        match name {
            "CHRONICLE_HOST" => Some("127.0.0.1".into()),
            "CHRONICLE_PORT" => Some("0".into()),
            "CHRONICLE_ENV" => Some("production".into()),
            // Production mode requires a configured signing key.
            "CHRONICLE_JWT_SECRET" => Some("the benchmark's own signing key, not a secret".into()),
            // Every benchmark client signs up from 127.0.0.1.
            "CHRONICLE_SIGNUPS_PER_ADDRESS" | "CHRONICLE_LOGINS_PER_ADDRESS" => {
                Some("100000".into())
            }
            "CHRONICLE_DATA_DIR" => Some(state.clone()),
            // The benchmarks measure the API; production runs no job workers without SMTP.
            "CHRONICLE_WORKERS" => Some("0".into()),
            "CHRONICLE_MAX_PROJECTION_LAG" => Some("0".into()),
            // The response cache would answer every repeated query: the `cache` benchmark
            // turns it on; the others measure every request running.
            "CHRONICLE_CACHE_MB" => Some("0".into()),
            _ => None,
        }
    })?;
    let app = ::api::startup::Application::build(&config, pool).await?;
    let address = app.address();
    let cache = app.response_cache().cloned();
    // The server stops when the process exits.
    tokio::spawn(app.run_until_stopped());
    Ok((address, cache))
}

/// Waits until the server's projections have caught up with the log (`/readyz` answers 200),
/// so that none of them competes with the measurements.
pub async fn settle(address: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{address}/readyz");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        let response = http.get(&url).send().await.context("asking /readyz")?;
        if response.status().is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        ensure!(
            started.elapsed() < SETTLE_TIMEOUT,
            "the server was not ready after {} s: {body}",
            SETTLE_TIMEOUT.as_secs()
        );
        if reported.elapsed() >= Duration::from_secs(5) {
            reported = Instant::now();
            eprintln!("waiting for the server's projections: {body}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_only_the_database() {
        let cases = [
            (
                "postgres://u:p@h:5432/app?sslmode=require",
                "postgres://u:p@h:5432/b?sslmode=require",
            ),
            ("postgres://u@h/app", "postgres://u@h/b"),
            ("postgresql://h", "postgresql://h/b"),
            ("postgres://h?host=/tmp/x", "postgres://h/b?host=/tmp/x"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "b").unwrap(), expected);
        }
    }
}
