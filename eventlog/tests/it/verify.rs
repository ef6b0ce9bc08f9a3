use eventlog::ExpectedVersion;
use uuid::Uuid;

use crate::{event, item_stream, setup};

#[tokio::test]
async fn an_intact_log_verifies() {
    let (_db, log) = setup().await;
    for _ in 0..3 {
        let stream = item_stream(Uuid::now_v7());
        log.append(&stream, ExpectedVersion::NoStream, &[event(1), event(2)])
            .await
            .unwrap();
        log.append(&stream, ExpectedVersion::Exact(2), &[event(3)])
            .await
            .unwrap();
    }
    let report = log.verify(None).await.unwrap();
    assert_eq!((report.events_checked, report.streams_checked), (9, 3));
    assert_eq!(report.first_broken, None);
}

#[tokio::test]
async fn a_payload_edited_by_hand_is_reported_at_its_position() {
    let (db, log) = setup().await;
    let (good, bad) = (item_stream(Uuid::now_v7()), item_stream(Uuid::now_v7()));
    log.append(&good, ExpectedVersion::NoStream, &[event(1), event(2)])
        .await
        .unwrap();
    let appended = log
        .append(
            &bad,
            ExpectedVersion::NoStream,
            &[event(1), event(2), event(3)],
        )
        .await
        .unwrap();

    // What an intruder with superuser access would do.
    sqlx::raw_sql(
        "ALTER TABLE events DISABLE TRIGGER events_append_only;
         UPDATE events SET payload = jsonb_set(payload, '{to}', '\"tampered\"')
           WHERE event_id = (SELECT event_id FROM events ORDER BY tx_id, seq OFFSET 3 LIMIT 1);
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .execute(db.pool())
    .await
    .unwrap();

    let report = log.verify(None).await.unwrap();
    let broken = report.first_broken.expect("tampering detected");
    assert_eq!(broken.position, appended.positions[1]);
    assert_eq!(
        (broken.stream_id, broken.stream_version),
        (bad.stream_id, 2)
    );

    // Scoped to another workspace, nothing is broken.
    let elsewhere = log.verify(Some(Uuid::now_v7())).await.unwrap();
    assert_eq!(
        (elsewhere.events_checked, elsewhere.first_broken),
        (0, None)
    );
}

#[tokio::test]
async fn a_deleted_event_breaks_the_chain_at_its_successor() {
    let (db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    let appended = log
        .append(
            &stream,
            ExpectedVersion::NoStream,
            &[event(1), event(2), event(3)],
        )
        .await
        .unwrap();
    sqlx::raw_sql(
        "ALTER TABLE events DISABLE TRIGGER events_append_only;
         DELETE FROM events WHERE stream_version = 2;
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let broken = log
        .verify(None)
        .await
        .unwrap()
        .first_broken
        .expect("gap detected");
    assert_eq!(broken.position, appended.positions[2]);
}
