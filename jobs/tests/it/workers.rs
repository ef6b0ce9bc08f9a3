//! Two worker runtimes (as two processes would) share one queue: every job runs once, and no
//! job ever runs in both at the same time. A test-only queue whose handler records when each
//! run starts and ends (in the database, by its clock) proves it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jobs::retry::RetryPolicy;
use jobs::worker::{self, Job, Origin, Services, WorkerSettings};
use jobs::{BoxError, DeadJob, Recorder, ReferralClaim, SentInvite, SentSummary, TrialExtension};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::database;

/// Jobs enqueued.
const JOBS: usize = 200;

/// The probe: a job that does nothing but say when it ran, and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    #[serde(flatten)]
    origin: Origin,
    n: i32,
}

struct Prober {
    pool: PgPool,
    /// Which runtime this is.
    name: &'static str,
}

impl Job for Probe {
    const QUEUE: &'static str = "test.probe";
    type Runner = Prober;

    fn origin(&self) -> Origin {
        self.origin
    }

    async fn run(&self, prober: &Prober) -> Result<String, BoxError> {
        let run: i64 = sqlx::query_scalar(
            "INSERT INTO probe_runs (n, worker, started_at) VALUES ($1, $2, clock_timestamp())
             RETURNING id",
        )
        .bind(self.n)
        .bind(prober.name)
        .fetch_one(&prober.pool)
        .await?;
        tokio::time::sleep(Duration::from_millis(3)).await;
        sqlx::query("UPDATE probe_runs SET ended_at = clock_timestamp() WHERE id = $1")
            .bind(run)
            .execute(&prober.pool)
            .await?;
        Ok("probed".into())
    }
}

/// The probe never fails, so nothing is ever recorded.
struct NothingToRecord;

impl Recorder for NothingToRecord {
    fn invite_email_sent<'a>(&'a self, _: &'a SentInvite) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }

    fn job_dead<'a>(&'a self, _: &'a DeadJob) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }

    fn referral_rewarded<'a>(
        &'a self,
        _: &'a ReferralClaim,
    ) -> BoxFuture<'a, Result<domain::referral::Decision, BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }

    fn trial_extended<'a>(
        &'a self,
        _: &'a TrialExtension,
    ) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }

    fn weekly_summary_sent<'a>(
        &'a self,
        _: &'a SentSummary,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }

    fn export_completed<'a>(
        &'a self,
        _: &'a jobs::CompletedExport,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }

    fn export_failed<'a>(
        &'a self,
        _: &'a jobs::FailedExport,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Err("the probe records nothing".into()) })
    }
}

#[tokio::test]
async fn two_workers_on_one_queue_never_run_a_job_twice_or_at_once() {
    let db = database().await;
    sqlx::raw_sql(
        "CREATE TABLE probe_runs (id bigserial PRIMARY KEY, n int NOT NULL, worker text NOT NULL,
                                  started_at timestamptz NOT NULL, ended_at timestamptz)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let retry = RetryPolicy::default();
    for n in 0..JOBS as i32 {
        let probe = Probe {
            origin: Origin {
                event_id: Uuid::now_v7(),
                workspace_id: Uuid::nil(),
                correlation_id: None,
            },
            n,
        };
        sqlx::query(
            "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                      priority, idempotency_key)
             VALUES (apalis.generate_ulid(), $1, $2, 'Pending', 0, $3, now(), 0, $4)",
        )
        .bind(Probe::QUEUE)
        .bind(serde_json::to_vec(&probe).unwrap())
        .bind(retry.max_attempts as i32)
        .bind(probe.origin.event_id.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    }

    // Two runtimes, each with its own connections, as two `chronicle worker` processes.
    let mut runtimes = Vec::new();
    let stop = tokio_util::sync::CancellationToken::new();
    for name in ["one", "two"] {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&db.url())
            .await
            .unwrap();
        let services = Services {
            pool: pool.clone(),
            recorder: Arc::new(NothingToRecord),
        };
        let prober = Arc::new(Prober { pool, name });
        let settings = WorkerSettings {
            name: name.into(),
            retry,
            poll_interval: Duration::from_millis(20),
            ..WorkerSettings::default()
        };
        runtimes.push(tokio::spawn(worker::run::<Probe>(
            prober,
            services,
            settings,
            stop.clone(),
        )));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
        )
        .bind(Probe::QUEUE)
        .fetch_one(db.pool())
        .await
        .unwrap();
        if done == JOBS as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {JOBS} done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    for runtime in runtimes {
        runtime.await.unwrap();
    }

    let runs: Vec<(i32, i64)> =
        sqlx::query_as("SELECT n, count(*) FROM probe_runs GROUP BY n ORDER BY n")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(runs.len(), JOBS, "every job ran");
    assert!(
        runs.iter().all(|(_, count)| *count == 1),
        "each once: {runs:?}"
    );
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM probe_runs a JOIN probe_runs b
           ON a.n = b.n AND a.id < b.id
          AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at)",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(overlapping, 0);
    let workers: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM probe_runs GROUP BY worker ORDER BY worker")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(workers.len(), 2, "both runtimes took jobs: {workers:?}");
}
