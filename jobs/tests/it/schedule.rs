//! The weekly-summary schedule: each week is enqueued once per workspace however many nodes
//! look, weeks missed while every node was down are caught up, and nothing is due twice.

use chrono::{DateTime, Duration, Utc};
use domain::weekly::IsoWeek;
use domain::{Plan, Region, UserId, WorkspaceEvent, WorkspaceId, WorkspaceName};
use eventlog::aggregates::to_new_events;
use eventlog::{EventLog, ExpectedVersion, Metadata, StreamRef};
use jobs::retry::RetryPolicy;
use jobs::weekly_summary::{self, WeeklySummaryJob};
use projections::inline::{self, AnyEvent, Envelope};
use sqlx::PgPool;
use uuid::Uuid;

use crate::database;

/// A workspace created at `at` (its event and its read-model row).
async fn workspace_created_at(log: &EventLog, at: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    let event = WorkspaceEvent::WorkspaceCreated {
        workspace_id: WorkspaceId::from_uuid(id),
        name: WorkspaceName::parse("Acme").unwrap(),
        region: Region::Eu,
        plan: Plan::Trial,
        trial_ends_at: at + Duration::days(14),
        owner: UserId::from_uuid(Uuid::now_v7()),
        created_at: at,
    };
    let stream = StreamRef {
        stream_type: "workspace",
        stream_id: id,
        workspace_id: Some(id),
    };
    let appended = log
        .append(
            &stream,
            ExpectedVersion::NoStream,
            &to_new_events(std::slice::from_ref(&event), &Metadata::system("test")),
        )
        .await
        .unwrap();
    let mut conn = log.pool().acquire().await.unwrap();
    inline::apply(
        &mut conn,
        Envelope {
            stream_id: id,
            stream_version: 1,
            recorded_at: appended.recorded_at,
            event: &AnyEvent::Workspace(event),
        },
    )
    .await
    .unwrap();
    id
}

/// The summary jobs enqueued, as (workspace, week).
async fn enqueued(pool: &PgPool) -> Vec<(Uuid, String)> {
    let mut jobs: Vec<(Uuid, String)> =
        sqlx::query_scalar::<_, Vec<u8>>("SELECT job FROM apalis.jobs WHERE job_type = $1")
            .bind(weekly_summary::QUEUE)
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|job| {
                let job: WeeklySummaryJob = serde_json::from_slice(&job).unwrap();
                (job.origin.workspace_id, job.week.to_string())
            })
            .collect();
    jobs.sort();
    jobs
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[tokio::test]
async fn each_week_is_scheduled_once_and_missed_weeks_are_caught_up() {
    let db = database().await;
    let log = EventLog::new(db.pool().clone());
    let retry = RetryPolicy::default();
    let old = workspace_created_at(&log, at("2026-11-20T10:00:00Z")).await; // 2026-W47
    let new = workspace_created_at(&log, at("2026-12-02T10:00:00Z")).await; // 2026-W49

    // Two nodes look at once on Monday of W49: W48 is scheduled once, for the workspace that
    // existed then.
    let monday = at("2026-11-30T00:00:05Z");
    let (a, b) = tokio::join!(
        weekly_summary::schedule(db.pool(), monday, retry),
        weekly_summary::schedule(db.pool(), monday, retry)
    );
    let mut scheduled: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    scheduled.sort();
    assert_eq!(scheduled, [(IsoWeek::parse("2026-W48").unwrap(), 1)]);
    assert_eq!(enqueued(db.pool()).await, [(old, "2026-W48".to_string())]);
    let job: WeeklySummaryJob = serde_json::from_slice(
        &sqlx::query_scalar::<_, Vec<u8>>("SELECT job FROM apalis.jobs WHERE job_type = $1")
            .bind(weekly_summary::QUEUE)
            .fetch_one(db.pool())
            .await
            .unwrap(),
    )
    .unwrap();
    let created: Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE stream_id = $1 AND stream_version = 1",
    )
    .bind(old)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        job.origin.event_id, created,
        "caused by the workspace's creation"
    );

    // Later the same week: nothing is due.
    let later = at("2026-12-04T18:00:00Z");
    assert!(
        weekly_summary::schedule(db.pool(), later, retry)
            .await
            .unwrap()
            .is_empty()
    );

    // Every node was down from W49 to W52: on restart W49, W50 and W51 are caught up.
    let restart = at("2026-12-23T09:00:00Z");
    let caught_up = weekly_summary::schedule(db.pool(), restart, retry)
        .await
        .unwrap();
    let weeks: Vec<String> = caught_up.iter().map(|(w, _)| w.to_string()).collect();
    assert_eq!(weeks, ["2026-W49", "2026-W50", "2026-W51"]);
    assert!(caught_up.iter().all(|(_, jobs)| *jobs == 2));
    let jobs = enqueued(db.pool()).await;
    assert_eq!(jobs.len(), 1 + 3 * 2, "{jobs:?}");
    assert!(jobs.contains(&(new, "2026-W49".to_string())));
    assert!(!jobs.contains(&(new, "2026-W48".to_string())));

    // A node looking again changes nothing.
    assert!(
        weekly_summary::schedule(db.pool(), restart, retry)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(enqueued(db.pool()).await, jobs);
}
