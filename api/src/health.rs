//! `/healthz` (the process answers) and `/readyz` (it can do its job: database reachable,
//! migrations applied, log readers not stalled).

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use eventlog::EventLog;
use serde_json::json;

/// A write transaction open longer than this holds every log reader back: not ready.
const MAX_READER_STALL: Duration = Duration::from_secs(30);

/// Liveness: answers as long as the process serves HTTP.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness, with the result of each check.
#[get("/readyz")]
pub async fn readyz(log: web::Data<EventLog>) -> HttpResponse {
    let checks = tokio::time::timeout(Duration::from_secs(3), check(&log))
        .await
        .unwrap_or_else(|_| Err("database did not answer within 3 s".into()));
    match checks {
        Ok(details) => HttpResponse::Ok().json(json!({ "status": "ready", "checks": details })),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not ready", "reason": reason })),
    }
}

async fn check(log: &EventLog) -> Result<serde_json::Value, String> {
    // The migrations table is sqlx's own, so it is read with an unchecked query.
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(log.pool())
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "readiness: database check failed");
                "database unreachable or not migrated".to_string()
            })?;
    let applied: BTreeSet<i64> = applied.into_iter().collect();
    let missing = eventlog::MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    if missing > 0 {
        return Err(format!(
            "{missing} migration(s) not applied: run `chronicle migrate`"
        ));
    }
    let stall = log.reader_stall().await.map_err(|err| {
        tracing::warn!(error = %err, "readiness: stall check failed");
        "database unreachable".to_string()
    })?;
    let stall_secs = stall.map_or(0.0, |d| d.as_secs_f64());
    if stall.is_some_and(|d| d > MAX_READER_STALL) {
        return Err(format!(
            "a write transaction has been open for {stall_secs:.0} s and holds log readers back"
        ));
    }
    Ok(json!({ "database": "ok", "migrations": "ok", "oldest_write_transaction_secs": stall_secs }))
}
