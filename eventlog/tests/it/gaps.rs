//! The log's read order never skips an event whose transaction commits late (SPEC §4).

use std::collections::HashSet;
use std::time::Duration;

use eventlog::{EventLog, ExpectedVersion, Position};
use rand::Rng;
use uuid::Uuid;

use crate::{event, item_stream, setup};

/// Takes the transaction's id before it appends, to stage the trap of SPEC §4. (The log
/// allows that only for an append that starts a stream: see
/// `append::extending_a_stream_after_another_write_is_refused`.)
async fn take_xid(tx: &mut sqlx::PgConnection) {
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(tx)
        .await
        .unwrap();
}

/// The events a reader after `after` gets: the same whether it reads them whole or lean.
async fn ids_after(log: &EventLog, after: Position) -> Vec<Uuid> {
    let read: Vec<Uuid> = log
        .read_all(after, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    let scanned: Vec<Uuid> = log
        .scan(after, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(
        read, scanned,
        "read_all and scan must hold back the same events"
    );
    read
}

#[tokio::test]
async fn a_reader_waits_for_an_open_transaction_then_sees_both_in_order() {
    let (db, log) = setup().await;
    let (a, b) = (event(1), event(2));

    let mut tx_a = db.pool().begin().await.unwrap();
    log.append_in(
        &mut tx_a,
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&a),
    )
    .await
    .unwrap();
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&b),
    )
    .await
    .unwrap();

    assert_eq!(
        ids_after(&log, Position::START).await,
        Vec::<Uuid>::new(),
        "B must wait behind open A"
    );
    assert!(log.has_held_back_events(Position::START).await.unwrap());

    tx_a.commit().await.unwrap();
    assert_eq!(
        ids_after(&log, Position::START).await,
        vec![a.event_id, b.event_id]
    );
}

#[tokio::test]
async fn a_reader_moves_on_when_the_open_transaction_rolls_back() {
    let (db, log) = setup().await;
    let (a, b) = (event(1), event(2));

    let mut tx_a = db.pool().begin().await.unwrap();
    log.append_in(
        &mut tx_a,
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        &[a],
    )
    .await
    .unwrap();
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&b),
    )
    .await
    .unwrap();
    assert!(ids_after(&log, Position::START).await.is_empty());

    tx_a.rollback().await.unwrap();
    assert_eq!(ids_after(&log, Position::START).await, vec![b.event_id]);
    assert!(
        !log.has_held_back_events(log.head().await.unwrap())
            .await
            .unwrap()
    );
}

/// The trap from SPEC §4: A takes its transaction id first, B takes the next one, inserts and
/// stays open, A inserts and commits. A reader must still get B after A.
#[tokio::test]
async fn an_event_committed_late_with_a_lower_sequence_number_is_not_skipped() {
    let (db, log) = setup().await;
    let (a, b) = (event(1), event(2));

    let mut tx_a = db.pool().begin().await.unwrap();
    take_xid(&mut tx_a).await;
    let mut tx_b = db.pool().begin().await.unwrap();
    take_xid(&mut tx_b).await;
    let at_b = log
        .append_in(
            &mut tx_b,
            &item_stream(Uuid::now_v7()),
            ExpectedVersion::NoStream,
            std::slice::from_ref(&b),
        )
        .await
        .unwrap();
    let at_a = log
        .append_in(
            &mut tx_a,
            &item_stream(Uuid::now_v7()),
            ExpectedVersion::NoStream,
            std::slice::from_ref(&a),
        )
        .await
        .unwrap();
    tx_a.commit().await.unwrap();

    // A is delivered while B is open...
    let first = log.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![a.event_id]
    );
    let resume_at = first[0].position;

    // ...and B, committed later, still sorts after the point the reader resumes from.
    tx_b.commit().await.unwrap();
    assert_eq!(ids_after(&log, resume_at).await, vec![b.event_id]);
    assert!(
        at_b.position() > at_a.position(),
        "read order follows transaction order"
    );
}

/// 16 writers append 2,000 events with random pauses between taking their transaction id,
/// inserting and committing; a tail running all along sees each event exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_sees_every_event_of_concurrent_writers_exactly_once_in_order() {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 125;
    let (db, log) = setup().await;

    let reader = {
        let mut tail = log.tail(Position::START);
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(WRITERS * PER_WRITER);
            while seen.len() < WRITERS * PER_WRITER {
                seen.push(tail.next().await.unwrap());
            }
            seen
        })
    };

    let writers = (0..WRITERS).map(|w| {
        let (log, pool) = (log.clone(), db.pool().clone());
        tokio::spawn(async move {
            let mut written = Vec::with_capacity(PER_WRITER);
            for n in 0..PER_WRITER {
                let (before_insert, before_commit) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..3000u64), rng.random_range(0..3000u64))
                };
                let mut tx = pool.begin().await.unwrap();
                take_xid(&mut tx).await;
                tokio::time::sleep(Duration::from_micros(before_insert)).await;
                let e = event(w * PER_WRITER + n);
                // A new stream each time: only an append that starts a stream may follow
                // another write of its transaction.
                log.append_in(
                    &mut tx,
                    &item_stream(Uuid::now_v7()),
                    ExpectedVersion::NoStream,
                    std::slice::from_ref(&e),
                )
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_micros(before_commit)).await;
                tx.commit().await.unwrap();
                log.announce_append();
                written.push(e.event_id);
            }
            written
        })
    });
    let mut written = HashSet::new();
    for writer in futures::future::join_all(writers).await {
        written.extend(writer.unwrap());
    }

    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("tail finished")
        .unwrap();
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids.len(), seen.len(), "no event delivered twice");
    assert_eq!(seen_ids, written, "every written event delivered");
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "delivered in position order"
    );
    // The log agrees with what the tail delivered.
    let all = log.read_all(Position::START, 10_000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        seen.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
}

/// Newest-first pages (histories) stay below the read horizon too: an event of a later
/// transaction is not shown above an open one's, which could otherwise commit below a cursor
/// already handed out and never appear on a later page.
#[tokio::test]
async fn newest_first_reads_stay_below_an_open_transaction() {
    let (db, log) = setup().await;
    let filter = eventlog::EventFilter {
        workspace_id: Some(Uuid::nil()),
        ..Default::default()
    };
    let newest_first = async || -> Vec<Uuid> {
        log.read_filtered(&filter, None, true, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect()
    };
    let (c, a, b) = (event(1), event(2), event(3));
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&c),
    )
    .await
    .unwrap();
    let mut tx_a = db.pool().begin().await.unwrap();
    log.append_in(
        &mut tx_a,
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&a),
    )
    .await
    .unwrap();
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&b),
    )
    .await
    .unwrap();
    assert_eq!(
        newest_first().await,
        vec![c.event_id],
        "B waits behind open A"
    );

    tx_a.commit().await.unwrap();
    assert_eq!(
        newest_first().await,
        vec![b.event_id, a.event_id, c.event_id]
    );
}
