use std::collections::HashSet;

use eventlog::{Error, EventLog, ExpectedVersion};
use futures::future::join_all;
use uuid::Uuid;

use crate::{event, item_stream, setup};

#[tokio::test]
async fn appends_and_reads_a_stream_with_full_metadata() {
    let (_db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    let batch = vec![event(1), event(2), event(3)];
    let appended = log
        .append(&stream, ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();
    assert_eq!(appended.stream_version, 3);
    assert!(!appended.already_stored);
    assert!(appended.positions.windows(2).all(|p| p[0] < p[1]));

    let read = log.read_stream(stream.stream_id).await.unwrap();
    assert_eq!(read.len(), 3);
    for (i, (stored, sent)) in read.iter().zip(&batch).enumerate() {
        assert_eq!(stored.stream_version, i as u64 + 1);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.payload, sent.payload);
        assert_eq!(stored.metadata, sent.metadata);
        assert_eq!(stored.workspace_id, stream.workspace_id);
        assert_eq!(stored.position, appended.positions[i]);
    }

    let next = log
        .append(&stream, ExpectedVersion::Exact(3), &[event(4)])
        .await
        .unwrap();
    assert_eq!(next.stream_version, 4);
    assert!(next.position() > appended.position());
}

#[tokio::test]
async fn wrong_expected_version_is_a_conflict_and_writes_nothing() {
    let (_db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    log.append(&stream, ExpectedVersion::NoStream, &[event(1)])
        .await
        .unwrap();
    for expected in [ExpectedVersion::Exact(0), ExpectedVersion::Exact(2)] {
        let err = log
            .append(&stream, expected, &[event(2)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    actual: Some(1),
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // A new stream is not read first: the unique key catches it (the version is then unknown).
    let err = log
        .append(&stream, ExpectedVersion::NoStream, &[event(2)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let err = log
        .append(
            &item_stream(Uuid::now_v7()),
            ExpectedVersion::Exact(1),
            &[event(1)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                actual: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(log.read_stream(stream.stream_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stream_id_keeps_its_type_and_empty_appends_are_refused() {
    let (_db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    log.append(&stream, ExpectedVersion::NoStream, &[event(1)])
        .await
        .unwrap();
    let as_user = eventlog::StreamRef {
        stream_type: "user",
        workspace_id: None,
        ..stream.clone()
    };
    let err = log
        .append(&as_user, ExpectedVersion::Any, &[event(2)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StreamTypeMismatch { .. }), "{err:?}");
    let err = log
        .append(&stream, ExpectedVersion::Any, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyAppend), "{err:?}");
}

#[tokio::test]
async fn fifty_concurrent_appends_with_one_expected_version_one_wins() {
    let (_db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    log.append(&stream, ExpectedVersion::NoStream, &[event(0)])
        .await
        .unwrap();

    let attempts = (0..50).map(|n| {
        let (log, stream) = (log.clone(), stream.clone());
        tokio::spawn(async move {
            log.append(&stream, ExpectedVersion::Exact(1), &[event(n)])
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Conflict { .. })))
        .count();
    assert_eq!((won, conflicts), (1, 49), "{results:?}");

    let versions: Vec<u64> = log
        .read_stream(stream.stream_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2]);
}

/// Many `ExpectedVersion::Any` appenders race to start one stream. An uncommitted first
/// event holds them all at the insert of version 1 (each read an empty stream) until every one
/// of them waits on it; rolling it back lets them race for version 1 at once. Each loser
/// retries on the new head: all land, one version each, in one intact hash chain.
#[tokio::test]
async fn any_version_appenders_racing_to_start_a_stream_all_land_contiguously() {
    // An `Any` append retries up to 16 times, and each loss is to another appender: with 16
    // appenders even the last one lands.
    const APPENDERS: usize = 16;
    let (db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    let mut first = db.pool().begin().await.unwrap();
    log.append_in(&mut first, &stream, ExpectedVersion::NoStream, &[event(0)])
        .await
        .unwrap();

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(APPENDERS));
    let batches: Vec<_> = (0..APPENDERS).map(|n| vec![event(n + 1)]).collect();
    let attempts = batches.iter().map(|batch| {
        let (log, stream, batch, start) =
            (log.clone(), stream.clone(), batch.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            log.append(&stream, ExpectedVersion::Any, &batch).await
        })
    });
    let attempts: Vec<_> = attempts.collect();
    // Every appender read an empty stream and now waits on the uncommitted version 1.
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        if waiting == APPENDERS as i64 {
            break;
        }
        assert!(
            attempts.iter().all(|a| !a.is_finished()),
            "an appender got past an uncommitted version 1"
        );
        tokio::task::yield_now().await;
    }
    first.rollback().await.unwrap();

    let appended: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every racing append lands"))
        .collect();
    let stored = log.read_stream(stream.stream_id).await.unwrap();
    let versions: Vec<u64> = stored.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=APPENDERS as u64).collect::<Vec<_>>());
    // Nothing lost, nothing extra: each appender's event is stored once, where it was told.
    for (batch, appended) in batches.iter().zip(&appended) {
        let mine: Vec<_> = stored
            .iter()
            .filter(|e| e.event_id == batch[0].event_id)
            .collect();
        assert_eq!(mine.len(), 1, "{:?}", batch[0].event_id);
        assert_eq!(mine[0].stream_version, appended.stream_version);
        assert_eq!(mine[0].position, appended.position());
        assert!(!appended.already_stored);
    }
    let report = log.verify(stream.workspace_id).await.unwrap();
    assert_eq!(
        (report.events_checked, report.first_broken),
        (APPENDERS as u64, None),
        "each retry chains to the head it lost to"
    );
}

#[tokio::test]
async fn the_same_event_appended_twice_in_sequence_is_stored_once() {
    let (db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    let batch = vec![event(1), event(2)];
    let first = log
        .append(&stream, ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();
    // The retry even carries a now-stale expected version: it is still the same append.
    let again = log
        .append(&stream, ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();
    assert!(again.already_stored);
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.stream_version, 2);
    assert_eq!(count_events(&db).await, 2);

    // Mixing a stored event with a new one is not a retry.
    let err = log
        .append(
            &stream,
            ExpectedVersion::Exact(2),
            &[batch[0].clone(), event(3)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PartialDuplicate), "{err:?}");
    assert_eq!(count_events(&db).await, 2);
}

#[tokio::test]
async fn the_same_event_appended_concurrently_is_stored_once() {
    let (db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    log.append(&stream, ExpectedVersion::NoStream, &[event(0)])
        .await
        .unwrap();
    let same = event(1);
    for expected in [ExpectedVersion::Exact(1), ExpectedVersion::Any] {
        let attempts = (0..20).map(|_| {
            let (log, stream, same) = (log.clone(), stream.clone(), same.clone());
            tokio::spawn(async move { log.append(&stream, expected, &[same]).await })
        });
        let results: Vec<_> = join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let positions: HashSet<_> = results.iter().map(|a| a.position()).collect();
        assert_eq!(
            positions.len(),
            1,
            "every caller gets the one stored position"
        );
    }
    assert_eq!(count_events(&db).await, 2);
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_events() {
    let (db, log) = setup().await;
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        &[event(1)],
    )
    .await
    .unwrap();
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::raw_sql(statement)
            .execute(db.pool())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    assert_eq!(count_events(&db).await, 1);
}

pub async fn count_events(db: &pgcluster::TestDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Per-stream versions follow the log's order only if an append that extends a stream is what
/// gives its transaction its id: such an append after another write of its transaction is
/// refused, whoever the caller. Starting a stream after another write is fine (the unique key
/// orders it before any later version), and so are writes after the append (read models).
#[tokio::test]
async fn extending_a_stream_after_another_write_is_refused() {
    let (db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    let write_first = |name: &'static str| {
        sqlx::query("INSERT INTO projection_checkpoints (name, node) VALUES ($1, '')").bind(name)
    };

    let mut tx = db.pool().begin().await.unwrap();
    write_first("before a new stream")
        .execute(&mut *tx)
        .await
        .unwrap();
    log.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &[event(1)])
        .await
        .unwrap();
    write_first("after").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    // One event and a batch go by different statements: both refuse.
    for events in [vec![event(2)], vec![event(2), event(3)]] {
        for expected in [ExpectedVersion::Exact(1), ExpectedVersion::Any] {
            let mut tx = db.pool().begin().await.unwrap();
            write_first("before an append to an existing stream")
                .execute(&mut *tx)
                .await
                .unwrap();
            let refused = log.append_in(&mut tx, &stream, expected, &events).await;
            assert!(matches!(refused, Err(Error::NotFirstWrite)), "{refused:?}");
            tx.rollback().await.unwrap();
        }
    }

    let mut tx = db.pool().begin().await.unwrap();
    log.append_in(&mut tx, &stream, ExpectedVersion::Exact(1), &[event(2)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(log.read_stream(stream.stream_id).await.unwrap().len(), 2);
}

/// A node appending to a stream whose head it wrote chains to the remembered head without
/// reading it; another node extending the stream meanwhile makes that append a conflict (the
/// remembered head is then behind), never a fork of the chain; a head written by a transaction
/// that rolled back is never remembered.
#[tokio::test]
async fn remembered_heads_never_fork_the_chain() {
    let (db, node_a) = setup().await;
    let node_b = EventLog::new(db.pool().clone());
    let stream = item_stream(Uuid::now_v7());
    node_a
        .append(&stream, ExpectedVersion::NoStream, &[event(1), event(2)])
        .await
        .unwrap();
    // Node A remembers version 2; node B does not, and extends the stream.
    node_b
        .append(&stream, ExpectedVersion::Exact(2), &[event(3)])
        .await
        .unwrap();
    let behind = node_a
        .append(&stream, ExpectedVersion::Exact(2), &[event(4)])
        .await
        .unwrap_err();
    assert!(matches!(behind, Error::Conflict { .. }), "{behind:?}");
    node_a
        .append(&stream, ExpectedVersion::Exact(3), &[event(4)])
        .await
        .unwrap();
    // Remembered at 4 now: appended from memory.
    node_a
        .append(&stream, ExpectedVersion::Exact(4), &[event(5)])
        .await
        .unwrap();

    // Version 6 written and rolled back: the stream stays at 5, and so does what A remembers.
    let mut tx = db.pool().begin().await.unwrap();
    let rolled_back = node_a
        .append_in(&mut tx, &stream, ExpectedVersion::Exact(5), &[event(6)])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let refused = node_a
        .append(&stream, ExpectedVersion::Exact(6), &[event(7)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Conflict {
                actual: Some(5),
                ..
            }
        ),
        "{refused:?}"
    );
    // Told about it anyway (a caller's bug), the unique key still holds the chain together.
    node_a.committed([&rolled_back]);
    let forked = node_a
        .append(&stream, ExpectedVersion::Exact(6), &[event(7)])
        .await;
    assert!(forked.is_err(), "{forked:?}");
    node_a
        .append(&stream, ExpectedVersion::Exact(5), &[event(6)])
        .await
        .unwrap();

    let versions: Vec<u64> = node_a
        .read_stream(stream.stream_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let report = node_a.verify(None).await.unwrap();
    assert_eq!(report.first_broken, None, "{report:?}");
    assert_eq!(report.events_checked, 6);
}

/// PostgreSQL plans a prepared statement anew on each call until a generic plan costs no more
/// than the custom ones; the append statements (one event, a batch) must get there (planning
/// one cost as much as running it), whatever the statistics of a fresh database say.
#[tokio::test]
async fn the_append_statements_settle_on_a_generic_plan() {
    let (db, log) = setup().await;
    let mut conn = db.pool().acquire().await.unwrap();
    for batch in [1, 2] {
        for _ in 0..4 {
            let stream = item_stream(Uuid::now_v7());
            let mut version = 0;
            for _ in 0..3 {
                let events: Vec<_> = (1..=batch).map(|n| event(version as usize + n)).collect();
                let appended = log
                    .append_in(&mut conn, &stream, ExpectedVersion::Exact(version), &events)
                    .await
                    .unwrap();
                version = appended.stream_version;
            }
        }
    }

    let plans: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%INSERT INTO events%' AND name <> ''
           AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(plans.len(), 2, "{plans:?}");
    for (generic, custom) in plans {
        assert!(generic >= 6, "{generic} generic and {custom} custom plans");
    }
}
