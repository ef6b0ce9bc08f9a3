use std::sync::Arc;

use serde_json::Value;
use sqlx::Connection;

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

/// A write transaction left open holds every log reader back: `/readyz` answers 503 naming
/// it (its session and database) once it has done so for longer than allowed, and is ready
/// again when it ends.
#[tokio::test]
async fn readyz_is_not_ready_while_a_long_write_transaction_holds_log_readers_back() {
    // A server of its own: the open transaction would hold back every other test's readers.
    let (_cluster, db) = own_server().await;
    let app = TestApp::spawn_configured(&db, |config| {
        config.max_reader_stall = std::time::Duration::from_millis(300);
    })
    .await;
    assert_eq!(readyz(&app).await.0, 200);

    let mut tx = db.pool().begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    // Taking a transaction id makes it a write transaction: the read horizon stops at it.
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *tx)
        .await
        .unwrap();
    let (status, body) = wait_for_readyz(&app, |status, _| status == 503).await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("log readers have been held back for")
            && reason.contains(&format!("of session {pid} (database {}", db.name())),
        "{reason}"
    );

    tx.rollback().await.unwrap();
    let (status, body) = wait_for_readyz(&app, |status, _| status == 200).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["reader_stall"], Value::Null, "{body}");
}

/// A projection more events behind the log than allowed makes the node not ready, naming it;
/// once it catches up the node is ready again. The test holds the activity projection's
/// leadership (its advisory lock), as a node that leads it but stalls would, so the node
/// cannot apply it while the log grows.
#[tokio::test]
async fn readyz_is_not_ready_while_a_projection_lags_further_than_allowed() {
    let db = Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    let leadership = hold_leadership(&db, projections::activity::NAME).await;
    let app = TestApp::spawn_configured(&db, |config| config.max_projection_lag = 3).await;
    let ana = app.sign_up("ana").await;
    let ws = crate::workspaces::create_workspace(&app, &ana, "Acme").await;
    for title in ["one", "two", "three"] {
        let created = ana
            .gql(
                &app,
                "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }",
                serde_json::json!({ "w": ws, "t": title }),
            )
            .await;
        assert!(created["errors"].is_null(), "{created}");
    }
    // The search index follows on this node and catches up; activity cannot.
    let (status, body) = wait_for_readyz(&app, |_, body| {
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("activity"))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["reason"], "projection activity is more than 3 events behind the log (4+)",
        "{body}"
    );

    // The leadership freed, this node takes it, applies the log and is ready again.
    leadership.release().await;
    let (status, body) = wait_for_readyz(&app, |status, _| status == 200).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"]["projection_lag_events"]["activity"], 0,
        "{body}"
    );
}

/// A PostgreSQL server of its own (for a test that holds every log reader of the server
/// back) and a migrated database on it.
pub(crate) async fn own_server() -> (pgcluster::Cluster, Arc<pgcluster::TestDatabase>) {
    let cluster = tokio::task::spawn_blocking(|| pgcluster::Cluster::temporary(&[]))
        .await
        .unwrap()
        .unwrap();
    let db =
        Arc::new(pgcluster::TestDatabase::create_in(&cluster, Some(&eventlog::MIGRATOR)).await);
    (cluster, db)
}

/// Takes the leadership of the shared projection `name` on `db` (the advisory lock its leader
/// holds) on a connection of its own, so no node applies it until it is released.
pub(crate) async fn hold_leadership(db: &pgcluster::TestDatabase, name: &str) -> Leadership {
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('chronicle.projection.' || $1, 0))")
        .bind(name)
        .execute(&mut conn)
        .await
        .unwrap();
    Leadership(conn)
}

/// A projection's leadership held by a test (see [`hold_leadership`]).
pub(crate) struct Leadership(sqlx::PgConnection);

impl Leadership {
    /// Ends the connection, and with it the lock: a node may lead the projection.
    pub(crate) async fn release(self) {
        self.0.close().await.unwrap();
    }
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
    assert_eq!(readyz(&app).await.0, 200);

    let other = pgcluster::TestDatabase::create_in(&cluster, None).await;
    sqlx::raw_sql(
        "CREATE TABLE t (n int); BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'forgotten'",
    )
    .execute(other.pool())
    .await
    .unwrap();
    let (status, body) = wait_for_readyz(&app, |status, _| status == 503).await;
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
    let (status, body) = wait_for_readyz(&app, |status, _| status == 200).await;
    assert_eq!(status, 200, "{body}");
}

/// `/readyz`'s status and body.
async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap())
}

/// Asks `/readyz` until its answer satisfies `wanted` (within 20 s), and returns the last
/// answer.
async fn wait_for_readyz(app: &TestApp, wanted: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = readyz(app).await;
        if wanted(answer.0, &answer.1) || tokio::time::Instant::now() > deadline {
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
