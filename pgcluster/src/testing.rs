//! Fresh, migrated databases for tests.
//!
//! With `DATABASE_URL` set, test databases are created on that server; otherwise one private
//! cluster is started per test process (and removed when the process exits). Each test gets its
//! own database cloned from a migrated template, and drops it when done.

use std::sync::OnceLock;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
// Database names below are generated here, never taken from input.
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

use crate::{Cluster, Lifetime};

/// Where test databases are created: a server URL (any database on it).
fn server_url() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            static CLUSTER: OnceLock<Cluster> = OnceLock::new();
            let cluster = CLUSTER.get_or_init(|| {
                Cluster::start(&temporary_dir(), Lifetime::Temporary)
                    .unwrap_or_else(|err| panic!("cannot provision PostgreSQL for tests: {err}"))
            });
            cluster.url("postgres")
        }
    })
}

impl Cluster {
    /// A throw-away cluster of its own with server `settings`, for a test that needs a server
    /// to itself (a restore into a fresh cluster, a standby, a prepared transaction that would
    /// hold back every other test's readers). Stopped and removed when dropped.
    pub fn temporary(settings: &[(&str, &str)]) -> Result<Cluster, crate::Error> {
        Cluster::start_with(&temporary_dir(), Lifetime::Temporary, settings)
    }

    /// A hot standby of this cluster, stopped and removed when dropped.
    pub fn temporary_standby(&self) -> Result<Cluster, crate::Error> {
        self.start_standby(&temporary_dir(), Lifetime::Temporary)
    }
}

fn temporary_dir() -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix("chronicle-test-")
        .tempdir_in("/tmp")
        .expect("create a temporary directory for a test cluster")
        .keep()
}

/// A database that exists for one test.
pub struct TestDatabase {
    name: String,
    options: PgConnectOptions,
    pool: PgPool,
}

impl TestDatabase {
    /// Creates a fresh database with `migrator` applied.
    pub async fn create(migrator: &'static Migrator) -> TestDatabase {
        let server: PgConnectOptions = server_url().parse().expect("a valid DATABASE_URL");
        let template = template(&server, migrator).await;
        let name = format!("chronicle_test_{}", uuid_like());
        let mut admin = server
            .clone()
            .database("postgres")
            .connect()
            .await
            .expect("connect to the test server");
        // Concurrent CREATE DATABASE from one template can collide briefly; retry.
        let mut attempts = 0;
        loop {
            let created = sqlx::raw_sql(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#
            )))
            .execute(&mut admin)
            .await;
            match created {
                Ok(_) => break,
                Err(err) if attempts < 20 => {
                    attempts += 1;
                    tracing::debug!(%err, "retrying CREATE DATABASE");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempts)).await;
                }
                Err(err) => panic!("cannot create test database: {err}"),
            }
        }
        let options = server.database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(60)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        TestDatabase {
            name,
            options,
            pool,
        }
    }

    /// Creates a database on `cluster` (not the process's shared test server) with `migrator`
    /// applied; with `migrator` `None`, an empty database (to restore a dump into).
    pub async fn create_in(cluster: &Cluster, migrator: Option<&'static Migrator>) -> TestDatabase {
        let server: PgConnectOptions = cluster.url("postgres").parse().expect("a valid URL");
        let name = format!("chronicle_test_{}", uuid_like());
        let mut admin = server
            .clone()
            .connect()
            .await
            .expect("connect to the cluster");
        sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let options = server.database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(60)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        if let Some(migrator) = migrator {
            migrator
                .run(&pool)
                .await
                .expect("migrate the test database");
        }
        TestDatabase {
            name,
            options,
            pool,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A copy of this database (which lives on `source`) made as an operator moving to new
    /// hardware would: `pg_dump`, then `psql` into a new database on `target`. The copy's
    /// transaction-id counter is `target`'s, whatever the stored data says.
    pub async fn dump_and_restore(&self, source: &Cluster, target: &Cluster) -> TestDatabase {
        let dir = tempfile::tempdir().expect("a directory for the dump");
        let file = dir.path().join("dump.sql");
        let file = file.to_str().expect("a UTF-8 temporary path");
        source
            .client("pg_dump", &self.name, &["--no-sync", "-f", file])
            .expect("pg_dump");
        let copy = TestDatabase::create_in(target, None).await;
        target
            .client(
                "psql",
                &copy.name,
                &["-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", file],
            )
            .expect("psql restores the dump");
        copy
    }

    /// A pool connected to this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connection options for this database (to open more pools or single connections).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// The connection URL of this database.
    pub fn url(&self) -> String {
        self.options.to_url_lossy().to_string()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = self.options.clone().database("postgres");
        // Dropping runs on a plain thread: we may be inside (or after) the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// The name of a migrated template database, created once per process (and per set of
/// migrations when sharing a server).
async fn template(server: &PgConnectOptions, migrator: &'static Migrator) -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = format!(
                "chronicle_template_{:016x}_{}",
                migrations_digest(migrator),
                migrator.iter().count()
            );
            let mut admin = server
                .clone()
                .database("postgres")
                .connect()
                .await
                .expect("connect to the test server");
            // Several test processes may share one server: serialise template creation.
            sqlx::raw_sql("SELECT pg_advisory_lock(727274)")
                .execute(&mut admin)
                .await
                .expect("lock template creation");
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_optional(&mut admin)
                    .await
                    .expect("look up the template database");
            if exists.is_none() {
                sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                    .execute(&mut admin)
                    .await
                    .expect("create the template database");
                let mut conn = server
                    .clone()
                    .database(&name)
                    .connect()
                    .await
                    .expect("connect to the template database");
                migrator
                    .run(&mut conn)
                    .await
                    .expect("migrate the template database");
                conn.close().await.expect("close the template connection");
            }
            sqlx::raw_sql("SELECT pg_advisory_unlock(727274)")
                .execute(&mut admin)
                .await
                .expect("unlock template creation");
            name
        })
        .await
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}_{nanos:x}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A digest of every migration's version, name and checksum (a hash of its SQL), with each
/// name's length so that no two lists run together the same way (64-bit FNV-1a): a shared
/// test server never reuses a template made from other migrations, whichever one changed.
fn migrations_digest(migrator: &Migrator) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    migrator
        .iter()
        .flat_map(|m| {
            m.version
                .to_le_bytes()
                .into_iter()
                .chain((m.description.len() as u64).to_le_bytes())
                .chain(m.description.bytes())
                .chain(m.checksum.iter().copied())
        })
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};

    use super::migrations_digest;

    fn migrator(sql: &[&'static str]) -> Migrator {
        named(&vec!["m"; sql.len()], sql)
    }

    fn named(names: &[&'static str], sql: &[&'static str]) -> Migrator {
        let migrations: Vec<Migration> = sql
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, (sql, name))| {
                Migration::new(
                    i as i64 + 1,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        }
    }

    #[test]
    fn the_template_name_changes_with_any_migration_even_the_last_of_many() {
        let many: Vec<&'static str> = vec!["SELECT 1"; 12];
        let mut edited = many.clone();
        edited[11] = "SELECT 2";
        assert_ne!(
            migrations_digest(&migrator(&many)),
            migrations_digest(&migrator(&edited))
        );
        assert_eq!(
            migrations_digest(&migrator(&many)),
            migrations_digest(&migrator(&many.clone()))
        );
    }

    #[test]
    fn the_template_name_changes_when_a_migration_is_renamed_or_added() {
        let sql = ["SELECT 1", "SELECT 1", "SELECT 1"];
        let names = ["create_users", "create_items", "add_tags"];
        let base = migrations_digest(&named(&names, &sql));
        let renamed = migrations_digest(&named(&["create_users", "create_items", "add_tag"], &sql));
        assert_ne!(base, renamed, "a renamed migration");
        // The name's length is in the digest: moving bytes between names changes it too.
        let shifted =
            migrations_digest(&named(&["create_users", "create_item", "sadd_tags"], &sql));
        assert_ne!(base, shifted, "bytes moved from one name to the next");
        let added = migrations_digest(&named(
            &["create_users", "create_items", "add_tags", "add_index"],
            &["SELECT 1", "SELECT 1", "SELECT 1", "SELECT 1"],
        ));
        assert_ne!(base, added, "one more migration");
        assert_eq!(base, migrations_digest(&named(&names, &sql)));
    }
}
