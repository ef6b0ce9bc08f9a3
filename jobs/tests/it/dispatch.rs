//! The dispatcher enqueues one job per (handler, event), however often the log is replayed.

use std::time::Duration;

use domain::{Email, InviteId, Role, WorkspaceEvent};
use eventlog::aggregates::to_new_events;
use eventlog::{EventLog, ExpectedVersion, Metadata, StreamRef};
use jobs::dispatch::{self, Dispatch};
use jobs::invite_email::{self, InviteEmail};
use jobs::retry::RetryPolicy;
use projections::runner::{self, Projection};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::database;

fn invited(n: u128) -> WorkspaceEvent {
    WorkspaceEvent::InviteCreated {
        invite_id: InviteId::from_uuid(Uuid::from_u128(n)),
        email: Email::parse(&format!("guest{n}@example.com")).unwrap(),
        role: Role::Member,
        token_hash: format!("hash-{n}"),
        expires_at: chrono::Utc::now() + chrono::Duration::days(7),
    }
}

/// Appends `events` to a new workspace stream; returns the workspace id.
async fn append(log: &EventLog, events: &[WorkspaceEvent]) -> Uuid {
    let workspace = Uuid::now_v7();
    let stream = StreamRef {
        stream_type: "workspace",
        stream_id: workspace,
        workspace_id: Some(workspace),
    };
    log.append(
        &stream,
        ExpectedVersion::NoStream,
        &to_new_events(events, &Metadata::system("test")),
    )
    .await
    .unwrap();
    workspace
}

/// The invite-email jobs stored: (idempotency key, arguments).
async fn invite_jobs(pool: &PgPool) -> Vec<(String, InviteEmail)> {
    sqlx::query_as::<_, (String, Vec<u8>)>(
        "SELECT idempotency_key, job FROM apalis.jobs WHERE job_type = $1 ORDER BY idempotency_key",
    )
    .bind(invite_email::QUEUE)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(key, job)| (key, serde_json::from_slice(&job).unwrap()))
    .collect()
}

#[tokio::test]
async fn a_replay_from_position_zero_enqueues_nothing_new() {
    let db = database().await;
    let log = EventLog::new(db.pool().clone());
    let workspace = append(&log, &[invited(1), invited(2)]).await;
    let dispatch = Dispatch::new(log.clone(), RetryPolicy::default());

    // The live dispatcher follows the log up to its end.
    let (progress, mut reached) = watch::channel(eventlog::Position::START);
    let end = log
        .read_all(eventlog::Position::START, 100)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position;
    let live = tokio::spawn(runner::run(
        log.clone(),
        Dispatch::new(log.clone(), RetryPolicy::default()),
        progress,
    ));
    tokio::time::timeout(Duration::from_secs(30), reached.wait_for(|p| *p >= end))
        .await
        .expect("the dispatcher reaches the end of the log")
        .unwrap();
    let jobs = invite_jobs(db.pool()).await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let events = log.read_all(eventlog::Position::START, 100).await.unwrap();
    for (key, job) in &jobs {
        let event = events
            .iter()
            .find(|e| e.event_id.to_string() == *key)
            .unwrap();
        assert_eq!(event.event_type, "InviteCreated");
        assert_eq!(
            (job.origin.event_id, job.origin.workspace_id),
            (event.event_id, workspace)
        );
    }

    // A replay of the whole log (a rebuild, a reset checkpoint) finds every job enqueued.
    assert_eq!(dispatch.replay().await.unwrap(), 0);
    assert_eq!(invite_jobs(db.pool()).await, jobs);
    assert_eq!(dispatch.checkpoint().await.unwrap(), end);

    // New events after the replay still get their jobs, once.
    append(&log, &[invited(3)]).await;
    let end = log
        .read_all(end, 100)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position;
    tokio::time::timeout(Duration::from_secs(30), reached.wait_for(|p| *p >= end))
        .await
        .expect("the dispatcher follows the log after the replay")
        .unwrap();
    assert_eq!(invite_jobs(db.pool()).await.len(), 3);
    assert_eq!(dispatch.replay().await.unwrap(), 0);
    live.abort();
}

#[tokio::test]
async fn only_invites_become_invite_emails() {
    let db = database().await;
    let log = EventLog::new(db.pool().clone());
    append(
        &log,
        &[
            invited(1),
            WorkspaceEvent::InviteRevoked {
                invite_id: InviteId::from_uuid(Uuid::from_u128(1)),
            },
        ],
    )
    .await;
    let events = log.read_all(eventlog::Position::START, 100).await.unwrap();
    let jobs: Vec<_> = events
        .iter()
        .map(|e| dispatch::jobs_for(e).unwrap().len())
        .collect();
    assert_eq!(jobs, [1, 0]);
}
