//! The raw PostgreSQL baseline: pgbench inserting one event row per transaction into
//! `raw_events`, a copy of the `events` table with the same columns, keys and indexes but without
//! the log's code around it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::NamedTempFile;
use uuid::Uuid;

use crate::sample;
use crate::server::{Database, Server};

/// `LIKE … INCLUDING ALL` copies defaults (the `tx_id` default), the identity (`seq`, with a
/// sequence of its own), checks, the primary key, unique constraints and indexes. Triggers are
/// not copied (the `events` ones fire only on update, delete and truncate anyway).
const CREATE_TABLE: &str = "CREATE TABLE raw_events (LIKE events INCLUDING ALL)";

/// One event per transaction, like an append: each client writes its own stream (named by the
/// run and the client id) at increasing versions. The JSON is sent as parameters, as the event
/// log sends it; ids, time and the 32-byte hash are computed by the server.
const SCRIPT: &str = r"\set version :version + 1
INSERT INTO raw_events (event_id, stream_type, stream_id, stream_version, workspace_id,
                        event_type, schema_version, payload, metadata, recorded_at, hash)
VALUES (gen_random_uuid(), 'item', md5(:run::text || '/' || :client_id::text)::uuid, :version,
        :workspace::uuid, 'ItemEdited', 1, :payload::jsonb, :metadata::jsonb, now(),
        sha256(gen_random_uuid()::text::bytea));
";

/// A pgbench set up to run the insert script against a benchmark database.
pub struct Baseline {
    program: PathBuf,
    url: String,
    script: NamedTempFile,
    payload: String,
    metadata: String,
}

impl Baseline {
    /// Creates `raw_events` in `database` and writes the pgbench script.
    pub async fn prepare(server: &Server, database: &Database) -> anyhow::Result<Baseline> {
        sqlx::query(CREATE_TABLE)
            .execute(&database.pool)
            .await
            .context("creating raw_events")?;
        let mut script = NamedTempFile::new().context("creating the pgbench script")?;
        script
            .write_all(SCRIPT.as_bytes())
            .context("writing the pgbench script")?;
        Ok(Baseline {
            program: server.pgbench().clone(),
            url: database.url.clone(),
            script,
            payload: sample::payload(Uuid::now_v7(), 2).to_string(),
            metadata: serde_json::to_string(&sample::metadata(Uuid::now_v7()))?,
        })
    }

    /// Insert transactions per second with `clients` connections over `duration`, after an
    /// unmeasured run of `warm_up`.
    pub async fn tps(
        &self,
        clients: usize,
        warm_up: Duration,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        self.run(clients, warm_up).await?;
        self.run(clients, duration).await
    }

    async fn run(&self, clients: usize, duration: Duration) -> anyhow::Result<f64> {
        let variables = [
            // A fresh run id: every run writes new streams from version 1.
            ("run", Uuid::new_v4().to_string()),
            ("version", "0".to_string()),
            ("workspace", sample::WORKSPACE.to_string()),
            ("payload", self.payload.clone()),
            ("metadata", self.metadata.clone()),
        ];
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(["-n", "-M", "prepared", "-f"])
            .arg(self.script.path())
            .arg("-T")
            .arg(duration.as_secs().max(1).to_string())
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.min(2).to_string());
        for (name, value) in variables {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        command.arg(&self.url);
        let output = command
            .output()
            .await
            .with_context(|| format!("running {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed ({}):\n{}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse_tps(&stdout).with_context(|| format!("no TPS in pgbench's output:\n{stdout}"))
    }
}

/// The figure of pgbench's `tps = 1234.5 (without initial connection time)` line.
fn parse_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        let rest = line.strip_prefix("tps = ")?;
        let (number, note) = rest.split_once(' ')?;
        note.contains("without initial connection time")
            .then(|| number.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::parse_tps;

    #[test]
    fn reads_the_tps_without_connection_time() {
        let output = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 1.020 ms\n\
                      initial connection time = 3.110 ms\n\
                      tps = 980.412345 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(980.412345));
        assert_eq!(
            parse_tps("tps = 5 (including connections establishing)"),
            None
        );
    }
}
