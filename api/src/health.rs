//! `/healthz` (the process answers) and `/readyz` (it can do its job: not shutting down,
//! database reachable and not a hot standby, migrations applied, log readers not held back for
//! long by a transaction anywhere on the server, projections not far behind the log). The
//! detail also reports each job queue's depth and dead jobs, which never make a node not ready.

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use eventlog::EventLog;
use serde_json::json;

use crate::read_side::ReadSide;
use crate::shutdown::Draining;

/// Liveness: answers as long as the process serves HTTP.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// What `/readyz` checks besides the database.
pub struct Readiness {
    /// Once the node is shutting down it is not ready, whatever else holds.
    pub draining: Draining,
    pub read_side: ReadSide,
    /// A projection further behind the log than this many events: not ready.
    pub max_projection_lag: u64,
    /// A transaction holding log readers back for longer than this: not ready.
    pub max_reader_stall: Duration,
}

/// Readiness, with the result of each check.
#[get("/readyz")]
pub async fn readyz(log: web::Data<EventLog>, readiness: web::Data<Readiness>) -> HttpResponse {
    if readiness.draining.is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready",
            "reason": "shutting down: finishing in-flight requests",
        }));
    }
    let checks = tokio::time::timeout(Duration::from_secs(3), check(&log, &readiness))
        .await
        .unwrap_or_else(|_| Err("database did not answer within 3 s".into()));
    match checks {
        Ok(details) => HttpResponse::Ok().json(json!({ "status": "ready", "checks": details })),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not ready", "reason": reason })),
    }
}

async fn check(log: &EventLog, readiness: &Readiness) -> Result<serde_json::Value, String> {
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
    let log_error = |err: eventlog::Error| match err {
        eventlog::Error::HotStandby => {
            "the database is a hot standby (in recovery): the log is read on the primary only"
                .to_string()
        }
        err => {
            tracing::warn!(error = %err, "readiness: log check failed");
            "database unreachable".to_string()
        }
    };
    log.horizon().await.map_err(log_error)?;
    let stall = log.reader_stall().await.map_err(log_error)?;
    if let Some(stall) = stall
        .as_ref()
        .filter(|s| s.age > readiness.max_reader_stall)
    {
        return Err(format!(
            "log readers have been held back for {:.0} s by {stall}",
            stall.age.as_secs_f64()
        ));
    }
    let stall_details = stall.as_ref().map(|stall| {
        json!({
            "age_secs": stall.age.as_secs_f64(),
            "kind": match stall.cause {
                eventlog::StallCause::Prepared { .. } => "prepared transaction",
                eventlog::StallCause::Session { .. } => "transaction",
                eventlog::StallCause::Unknown => "hidden transaction",
            },
            "xid": stall.xid,
            "description": stall.to_string(),
        })
    });
    let max_lag = readiness.max_projection_lag;
    let lags = readiness
        .read_side
        .lags(max_lag.saturating_add(1))
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "readiness: projection lag check failed");
            "database unreachable".to_string()
        })?;
    if let Some((name, lag)) = lags.iter().find(|(_, lag)| *lag > max_lag) {
        return Err(format!(
            "projection {name} is more than {max_lag} events behind the log ({lag}+)"
        ));
    }
    let lags: serde_json::Map<String, serde_json::Value> = lags
        .into_iter()
        .map(|(name, lag)| (name.to_string(), lag.into()))
        .collect();
    Ok(json!({
        "database": "ok",
        "migrations": "ok",
        "oldest_write_transaction_secs": stall.as_ref().map_or(0.0, |s| s.age.as_secs_f64()),
        "reader_stall": stall_details,
        "projection_lag_events": lags,
        "job_queues": job_queues(log.pool()).await,
    }))
}

/// Each job queue's depth and dead jobs: reported, never a reason to be not ready (a dead job
/// waits for a person, and the node serves as well with it).
async fn job_queues(pool: &sqlx::PgPool) -> serde_json::Value {
    match jobs::failed::backlog(pool).await {
        Ok(queues) => queues
            .into_iter()
            .map(|q| {
                let counts = json!({
                    "pending": q.pending,
                    "running": q.running,
                    "retrying": q.retrying,
                    "dead": q.dead,
                });
                (q.queue, counts)
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: job queue counts failed");
            json!("unavailable")
        }
    }
}
