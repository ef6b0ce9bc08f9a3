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
