//! The log's order survives operations (SPEC §4): a dump restored into a fresh cluster, whose
//! transaction-id counter restarts below the stored positions, and a hot standby.

use eventlog::{EventFilter, EventLog, ExpectedVersion, Position, RecordedEvent};
use pgcluster::{Cluster, TestDatabase};
use uuid::Uuid;

use crate::{event, item_stream};

/// Uses up `n` transaction ids, so this cluster's counter runs well ahead of a fresh one's.
pub async fn burn_xids(db: &TestDatabase, n: u32) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN FOR i IN 1..{n} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$"
    )))
    .execute(db.pool())
    .await
    .unwrap();
}

fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

async fn cluster() -> Cluster {
    tokio::task::spawn_blocking(|| Cluster::temporary(&[]))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn after_a_restore_into_a_fresh_cluster_readers_see_the_history_then_new_events() {
    let (old_cluster, new_cluster) = (cluster().await, cluster().await);
    let old = TestDatabase::create_in(&old_cluster, Some(&eventlog::MIGRATOR)).await;
    burn_xids(&old, 3_000).await;
    let log = EventLog::new(old.pool().clone());
    let streams: Vec<_> = (0..4).map(|_| item_stream(Uuid::now_v7())).collect();
    for (n, stream) in streams.iter().enumerate() {
        log.append(
            stream,
            ExpectedVersion::NoStream,
            &[event(n), event(n + 10)],
        )
        .await
        .unwrap();
    }
    let history = log.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(history.len(), 8);
    // Where a reader (a subscription, an analyst's export) stopped before the move.
    let resume_at = history.last().unwrap().position;

    let new = old.dump_and_restore(&old_cluster, &new_cluster).await;
    let raised = eventlog::ensure_positions_increase(new.pool())
        .await
        .unwrap()
        .expect("the restored log's counter is behind its positions: a new era");
    assert!(raised.new_offset > raised.old_offset);
    assert_eq!(
        eventlog::ensure_positions_increase(new.pool())
            .await
            .unwrap(),
        None,
        "once is enough"
    );

    let log = EventLog::new(new.pool().clone());
    let mut tail = log.tail(resume_at);
    let mut added = Vec::new();
    for stream in &streams {
        let e = event(99);
        log.append(stream, ExpectedVersion::Exact(2), std::slice::from_ref(&e))
            .await
            .unwrap();
        added.push(e.event_id);
    }
    let everything: Vec<Uuid> = ids(&history).into_iter().chain(added.clone()).collect();

    let all = log.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(
        ids(&all),
        everything,
        "the whole history, then the new events"
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(ids(&log.read_all(resume_at, 1000).await.unwrap()), added);

    let workspace = EventFilter {
        workspace_id: streams[0].workspace_id,
        ..Default::default()
    };
    let oldest_first = log
        .read_filtered(&workspace, None, false, 1000)
        .await
        .unwrap();
    assert_eq!(ids(&oldest_first), everything);
    let mut newest_first = ids(&log
        .read_filtered(&workspace, None, true, 1000)
        .await
        .unwrap());
    newest_first.reverse();
    assert_eq!(newest_first, everything);

    // A tail that resumes where it stopped before the move gets the new events...
    for id in &added {
        assert_eq!(tail.next().await.unwrap().event_id, *id);
    }
    // ...and one from the start gets everything, in order.
    let mut tail = log.tail(Position::START);
    for id in &everything {
        assert_eq!(tail.next().await.unwrap().event_id, *id);
    }
    assert_eq!(log.head().await.unwrap(), all.last().unwrap().position);
}

#[tokio::test]
async fn a_hot_standby_refuses_log_reads_rather_than_compute_a_wrong_horizon() {
    let primary = cluster().await;
    let db = TestDatabase::create_in(&primary, Some(&eventlog::MIGRATOR)).await;
    let log = EventLog::new(db.pool().clone());
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        &[event(1)],
    )
    .await
    .unwrap();
    let standby = tokio::task::spawn_blocking(move || {
        let standby = primary.temporary_standby();
        (primary, standby)
    })
    .await
    .unwrap();
    let (_primary, standby) = (standby.0, standby.1.unwrap());
    let pool = sqlx::PgPool::connect(&standby.url(db.name()))
        .await
        .unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(in_recovery);

    let replica = EventLog::new(pool);
    let filter = EventFilter::default();
    let refused = [
        replica.read_all(Position::START, 10).await.err(),
        replica.read_filtered(&filter, None, false, 10).await.err(),
        replica.read_filtered(&filter, None, true, 10).await.err(),
        replica.head().await.err(),
        replica.horizon().await.err(),
        replica.tail(Position::START).next().await.err(),
    ];
    for err in refused {
        assert!(matches!(err, Some(eventlog::Error::HotStandby)), "{err:?}");
    }
    let message = eventlog::Error::HotStandby.to_string();
    assert!(message.contains("primary"), "{message}");
}
