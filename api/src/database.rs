//! Getting a migrated database: the configured one, or a private cluster run from the
//! machine's PostgreSQL binaries.

use std::time::Duration;

use pgcluster::{Cluster, Lifetime};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::Config;

/// The log's lane, which the GraphQL resolvers' reads go through too.
pub use eventlog::Lane;

/// The database this process uses, and the private cluster serving it (if any). Dropping it
/// stops the private cluster.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<Cluster>,
}

/// Connections in the server's pool.
pub const POOL_SIZE: u32 = 64;

/// How long a connection may have sat idle in the pool before it is checked again on its way
/// out (see [`pool_options`]).
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The server's pool: [`POOL_SIZE`] connections, 10 s to get one.
///
/// sqlx checks a connection when it comes back to the pool (a round trip that also flushes what
/// an abandoned query left behind) and, by default, again when it is handed out: two round
/// trips around each statement's one. Here a connection that was checked on its way back less
/// than [`RECHECK_IDLE_AFTER`] ago is handed out as it is. The cost: a connection that the
/// database dropped within that second (a restart, a terminated backend) fails the one request
/// it is given with an error instead of being replaced first, and is then closed; the next
/// request gets a new one.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= RECHECK_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The database name used inside a private cluster.
const PRIVATE_DATABASE: &str = "chronicle";

impl Database {
    /// Connects to `DATABASE_URL`, or starts the private cluster in the data directory and
    /// creates its database. Does not migrate (see [`Database::migrate`]).
    #[tracing::instrument(skip_all)]
    pub async fn open(config: &Config) -> anyhow::Result<Database> {
        let (url, cluster) = match &config.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let data = config.data_dir.join("postgres");
                tracing::info!(dir = %data.display(), "no DATABASE_URL: running a private PostgreSQL");
                let cluster = tokio::task::spawn_blocking(move || {
                    Cluster::start_sized_to_machine(&data, Lifetime::Persistent)
                })
                .await??;
                create_database_if_missing(&cluster).await?;
                (cluster.url(PRIVATE_DATABASE), Some(cluster))
            }
        };
        let options: PgConnectOptions = url.parse()?;
        let pool = pool_options()
            .connect_with(options)
            .await
            .map_err(|err| anyhow::anyhow!("cannot connect to the database: {err}"))?;
        Ok(Database { pool, cluster })
    }

    /// Applies pending migrations, then makes sure new log positions sort after the stored
    /// ones (a new era after a restore into another cluster).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        eventlog::MIGRATOR.run(&self.pool).await?;
        eventlog::ensure_positions_increase(&self.pool).await?;
        // The job queue's tables (schema `apalis`, with their own migration history).
        jobs::setup(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool's connections, then stops the private cluster, if any, with a fast
    /// shutdown (a clean checkpoint; the next start needs no recovery).
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(mut cluster) = self.cluster {
            let stopped = tokio::task::spawn_blocking(move || {
                let stopped = cluster.stop();
                drop(cluster);
                stopped
            })
            .await;
            match stopped {
                Ok(Ok(())) => tracing::info!("private PostgreSQL stopped"),
                Ok(Err(err)) => tracing::warn!(error = %err, "stopping the private PostgreSQL"),
                Err(err) => tracing::warn!(error = %err, "stopping the private PostgreSQL"),
            }
        }
    }

    /// Whether this database is a private cluster run by this process.
    pub fn is_private(&self) -> bool {
        self.cluster.is_some()
    }
}

async fn create_database_if_missing(cluster: &Cluster) -> anyhow::Result<()> {
    let options: PgConnectOptions = cluster.url("postgres").parse()?;
    let mut conn = options.connect().await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(PRIVATE_DATABASE)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        sqlx::raw_sql(r#"CREATE DATABASE "chronicle""#)
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(())
}
