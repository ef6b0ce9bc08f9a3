use serde_json::Value;

use crate::TestApp;

#[tokio::test]
async fn healthz_and_readyz_answer_when_all_is_well() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["migrations"], "ok");
}

#[tokio::test]
async fn readyz_is_not_ready_while_a_long_write_transaction_holds_log_readers_back() {
    let app = TestApp::spawn().await;
    let mut tx = app.db.pool().begin().await.unwrap();
    // Backdate the transaction's start as a long-running one would look: take an xid and
    // check the stall is reported; a real 30 s wait would be a timing test.
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *tx)
        .await
        .unwrap();
    let log = eventlog::EventLog::new(app.db.pool().clone());
    let stall = log.reader_stall().await.unwrap();
    assert!(stall.is_some(), "an open write transaction is reported");
    tx.rollback().await.unwrap();
    assert!(log.reader_stall().await.unwrap().is_none());
}

#[tokio::test]
async fn readyz_reports_missing_migrations() {
    let app = TestApp::spawn().await;
    sqlx::raw_sql("DELETE FROM _sqlx_migrations")
        .execute(app.db.pool())
        .await
        .unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("chronicle migrate"),
        "{body}"
    );
}

/// A prepared transaction forgotten in another database of the server holds every log
/// reader back: `/readyz` names it, with its age, once it has done so for longer than
/// allowed, and so does `chronicle projections status`; it is ready again once it is gone.
#[tokio::test]
async fn readyz_names_a_forgotten_prepared_transaction_in_another_database_by_its_age() {
    // A server of its own: the prepared transaction would hold back every other test's readers.
    let cluster = tokio::task::spawn_blocking(|| {
        pgcluster::Cluster::temporary(&[("max_prepared_transactions", "4")])
    })
    .await
    .unwrap()
    .unwrap();
    let db = std::sync::Arc::new(
        pgcluster::TestDatabase::create_in(&cluster, Some(&eventlog::MIGRATOR)).await,
    );
    let app = TestApp::spawn_configured(&db, |config| {
        config.max_reader_stall = std::time::Duration::from_millis(300);
    })
    .await;
    let readyz = async || {
        let response = app.client.get(app.url("/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);

    let other = pgcluster::TestDatabase::create_in(&cluster, None).await;
    sqlx::raw_sql(
        "CREATE TABLE t (n int); BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'forgotten'",
    )
    .execute(other.pool())
    .await
    .unwrap();
    let (status, body) = wait_for_readyz(readyz, 503).await;
    assert_eq!(status, 503);
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("prepared transaction 'forgotten'") && reason.contains(other.name()),
        "{reason}"
    );
    assert!(reason.contains("held back for"), "{reason}");
    let log = eventlog::EventLog::new(db.pool().clone());
    let status = api::operator::projection_status(&log).await.unwrap();
    assert!(
        status.contains("prepared transaction 'forgotten'"),
        "{status}"
    );

    sqlx::query("ROLLBACK PREPARED 'forgotten'")
        .execute(other.pool())
        .await
        .unwrap();
    let (status, body) = wait_for_readyz(readyz, 200).await;
    assert_eq!(status, 200, "{body}");
}

/// Asks `/readyz` until it answers `status` (within 20 s), and returns the last answer.
async fn wait_for_readyz(readyz: impl AsyncFn() -> (u16, Value), status: u16) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = readyz().await;
        if answer.0 == status || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Queue depth and dead jobs are in `/readyz`'s detail and in `chronicle projections status`,
/// and a dead job never makes the node not ready.
#[tokio::test]
async fn readyz_and_projections_status_report_job_queues_and_stay_ready_with_dead_jobs() {
    let app = TestApp::spawn().await;
    jobs::setup(app.db.pool()).await.unwrap();
    let job = serde_json::json!({ "event_id": uuid::Uuid::now_v7(),
                                  "workspace_id": uuid::Uuid::now_v7(), "invite_id": uuid::Uuid::now_v7() });
    for (status, attempts, key) in [("Pending", 0, "a"), ("Pending", 0, "b"), ("Failed", 8, "c")] {
        sqlx::query(
            "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                      priority, idempotency_key, last_result)
             VALUES (apalis.generate_ulid(), $1, $2, $3, $4, 8, now() + interval '1 hour', 0, $5,
                     '{\"Err\": \"mail: connection refused\"}')",
        )
        .bind(jobs::invite_email::QUEUE)
        .bind(serde_json::to_vec(&job).unwrap())
        .bind(status)
        .bind(attempts)
        .bind(key)
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body["checks"]["job_queues"][jobs::invite_email::QUEUE],
        serde_json::json!({ "pending": 2, "running": 0, "retrying": 0, "dead": 1 }),
        "{body}"
    );

    let log = eventlog::EventLog::new(app.db.pool().clone());
    let status = api::operator::projection_status(&log).await.unwrap();
    assert!(status.contains("job queues:"), "{status}");
    let queue_line = status
        .lines()
        .find(|l| l.starts_with(jobs::invite_email::QUEUE))
        .unwrap_or_else(|| panic!("{status}"));
    let counts: Vec<&str> = queue_line.split_whitespace().skip(1).collect();
    assert_eq!(counts, ["2", "0", "0", "1", "0"], "{status}");
    assert!(status.contains("mail: connection refused"), "{status}");
}
