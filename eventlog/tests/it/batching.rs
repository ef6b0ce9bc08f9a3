//! How a tail tells a batch gatherer to stop: at the end of a read that reached the end of the
//! readable log, not whenever another read happens to find a newer event.

use eventlog::{ExpectedVersion, Position};
use uuid::Uuid;

use crate::{event, item_stream, setup};

/// The tail's page size (`eventlog::tail::BATCH`).
const PAGE: usize = 512;

#[tokio::test]
async fn a_short_read_ends_the_batch_even_when_newer_events_arrive() {
    let (_db, log) = setup().await;
    let stream = item_stream(Uuid::now_v7());
    let first: Vec<_> = (0..3).map(event).collect();
    log.append(&stream, ExpectedVersion::NoStream, &first)
        .await
        .unwrap();

    let mut tail = log.tail(Position::START);
    assert_eq!(tail.next().await.unwrap().event_id, first[0].event_id);
    assert!(
        !tail.at_end_of_read(),
        "two events of the read are still buffered"
    );
    for expected in &first[1..] {
        assert_eq!(
            tail.try_next().await.unwrap().unwrap().event_id,
            expected.event_id
        );
    }
    assert!(tail.at_end_of_read());

    // An event arriving now is not part of this batch: the gatherer has stopped, and the next
    // batch starts with it.
    let later = event(3);
    log.append(
        &stream,
        ExpectedVersion::Exact(3),
        std::slice::from_ref(&later),
    )
    .await
    .unwrap();
    assert!(tail.at_end_of_read());
    assert_eq!(tail.next().await.unwrap().event_id, later.event_id);
    assert!(tail.at_end_of_read());
}

#[tokio::test]
async fn a_full_page_lets_the_batch_read_on() {
    let (_db, log) = setup().await;
    let events: Vec<_> = (0..PAGE + 10).map(event).collect();
    log.append(
        &item_stream(Uuid::now_v7()),
        ExpectedVersion::NoStream,
        &events,
    )
    .await
    .unwrap();

    let mut tail = log.tail(Position::START);
    tail.next().await.unwrap();
    let mut gathered = 1;
    while !tail.at_end_of_read() {
        tail.try_next().await.unwrap().expect("more to read");
        gathered += 1;
    }
    assert_eq!(
        gathered,
        events.len(),
        "one batch holds the full page and the rest"
    );
}
