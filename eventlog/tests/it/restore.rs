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

/// A new era begins under `LOCK TABLE events IN EXCLUSIVE MODE`, as
/// `ensure_positions_increase` takes it: an append held up by the lock takes its statement
/// snapshot after getting its own lock, so its position is in the new era — after every event
/// stored before, never among them.
#[tokio::test]
async fn an_append_held_up_by_a_new_era_takes_its_position_in_the_new_era() {
    use sqlx::Connection;
    let (db, log) = crate::setup().await;
    let stream = item_stream(Uuid::now_v7());
    // The appender's connection has the insert prepared already: the held-up append runs
    // a cached statement, as a busy node's would.
    let mut appender = sqlx::PgConnection::connect_with(db.options())
        .await
        .unwrap();
    for n in 0..3 {
        log.append_in(
            &mut appender,
            &stream,
            ExpectedVersion::Exact(n),
            &[event(n as usize)],
        )
        .await
        .unwrap();
    }
    let before = log.head().await.unwrap();

    let mut era_conn = sqlx::PgConnection::connect_with(db.options())
        .await
        .unwrap();
    let mut era = era_conn.begin().await.unwrap();
    sqlx::raw_sql(
        "LOCK TABLE events IN EXCLUSIVE MODE;
         UPDATE events_era SET tx_offset = tx_offset + 1000000000",
    )
    .execute(&mut *era)
    .await
    .unwrap();
    let held_up = {
        let (log, stream) = (log.clone(), stream.clone());
        tokio::spawn(async move {
            log.append_in(
                &mut appender,
                &stream,
                ExpectedVersion::Exact(3),
                &[event(3)],
            )
            .await
            .unwrap()
        })
    };
    // Wait until the append waits for the lock.
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                             WHERE relation = 'events'::regclass AND NOT granted)",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        if waiting {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    era.commit().await.unwrap();

    let appended = held_up.await.unwrap();
    assert!(
        appended.position().tx_id() >= 1_000_000_000 + before.tx_id(),
        "{:?} is in the new era",
        appended.position()
    );
    let all = log.read_all(Position::START, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].position, appended.position());
}
