//! Domain aggregates stored in and loaded from the log.

use chrono::Utc;
use domain::{
    Access, Aggregate, Context, Item, ItemAction, ItemCommand, ItemStatus, ItemTitle, Role, UserId,
    WorkspaceId,
};
use eventlog::aggregates::{AsOf, to_new_events};
use eventlog::{Error, Metadata, StreamRef};

use crate::setup;

fn decide(item: &Item, action: ItemAction, access: &Access) -> Vec<domain::ItemEvent> {
    let ctx = Context::user(Utc::now(), access.user_id);
    item.decide(ItemCommand::new(*access, action), &ctx)
        .unwrap()
}

/// A member's access to a new workspace, a new item's id and its (empty) stream.
fn new_item_stream() -> (Access, domain::ItemId, StreamRef) {
    let access = Access {
        workspace_id: WorkspaceId::new(),
        user_id: UserId::new(),
        role: Role::Member,
    };
    let item_id = domain::ItemId::new();
    let stream = StreamRef {
        stream_type: Item::STREAM_TYPE,
        stream_id: item_id.as_uuid(),
        workspace_id: Some(access.workspace_id.as_uuid()),
    };
    (access, item_id, stream)
}

#[tokio::test]
async fn an_item_is_decided_appended_and_loaded_back_with_time_travel() {
    let (_db, log) = setup().await;
    let (access, item_id, stream) = new_item_stream();
    let metadata = Metadata::system("tests");
    let title = |t: &str| ItemTitle::parse(t).unwrap();

    let loaded = log.load::<Item>(item_id.as_uuid()).await.unwrap();
    assert_eq!(loaded.version, 0);
    let created = decide(
        &loaded.state,
        ItemAction::Create {
            item_id,
            title: title("Q3 invoice"),
            body: domain::ItemBody::empty(),
            tags: domain::Tags::empty(),
            status: ItemStatus::Draft,
        },
        &access,
    );
    let first = log
        .append(
            &stream,
            loaded.expected_version(),
            &to_new_events(&created, &metadata),
        )
        .await
        .unwrap();

    let loaded = log.load::<Item>(item_id.as_uuid()).await.unwrap();
    let retitled = decide(
        &loaded.state,
        ItemAction::Update {
            title: Some(title("Q3 invoice (final)")),
            body: None,
            tags: None,
        },
        &access,
    );
    log.append(
        &stream,
        loaded.expected_version(),
        &to_new_events(&retitled, &metadata),
    )
    .await
    .unwrap();

    let now = log.load::<Item>(item_id.as_uuid()).await.unwrap();
    assert_eq!(
        (now.version, now.state.title().map(|t| t.as_str())),
        (2, Some("Q3 invoice (final)"))
    );
    let at_position = AsOf::Position(first.position());
    let at_time = AsOf::Time(first.recorded_at);
    for as_of in [at_position, at_time] {
        let then = log
            .load_as_of::<Item>(item_id.as_uuid(), as_of)
            .await
            .unwrap();
        assert_eq!(
            (then.version, then.state.title().map(|t| t.as_str())),
            (1, Some("Q3 invoice")),
            "{as_of:?}"
        );
    }
    let before = first.recorded_at - chrono::Duration::microseconds(1);
    let unborn = log
        .load_as_of::<Item>(item_id.as_uuid(), AsOf::Time(before))
        .await
        .unwrap();
    assert!(!unborn.state.exists());

    // A stale version loses: the second of two editors working from version 1.
    let stale = to_new_events(&retitled, &metadata);
    let err = log
        .append(
            &stream,
            loaded.expected_version(),
            &[eventlog::NewEvent {
                event_id: uuid::Uuid::now_v7(),
                ..stale[0].clone()
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));

    // An item id read as another aggregate's stream finds nothing.
    assert_eq!(
        log.load::<domain::Workspace>(item_id.as_uuid())
            .await
            .unwrap()
            .version,
        0
    );
}

#[tokio::test]
async fn a_scanned_event_decodes_like_a_read_one() {
    let (_db, log) = setup().await;
    let (access, item_id, stream) = new_item_stream();
    let created = decide(
        &Item::default(),
        ItemAction::Create {
            item_id,
            title: ItemTitle::parse("\"Q3\" invoice \u{e9}\u{1f9fe} \\ done").unwrap(),
            body: domain::ItemBody::parse("line one\nline two").unwrap(),
            tags: domain::Tags::parse(vec!["finance".into()]).unwrap(),
            status: ItemStatus::Active,
        },
        &access,
    );
    let new_events = to_new_events(&created, &Metadata::system("tests"));
    log.append(&stream, eventlog::ExpectedVersion::NoStream, &new_events)
        .await
        .unwrap();

    let read = log.read_all(eventlog::Position::START, 10).await.unwrap();
    let scanned = log.scan(eventlog::Position::START, 10).await.unwrap();
    assert_eq!(scanned.len(), 1);
    let (read, scanned) = (&read[0], &scanned[0]);
    assert_eq!(
        (
            read.position,
            read.event_id,
            read.stream_id,
            read.recorded_at
        ),
        (
            scanned.position,
            scanned.event_id,
            scanned.stream_id,
            scanned.recorded_at
        )
    );
    let decoded: domain::ItemEvent = scanned.decode().unwrap();
    assert_eq!(decoded, eventlog::aggregates::decode(read).unwrap());
    assert_eq!(decoded, created[0]);

    // A payload that does not fit its type is the log's corruption, named by event.
    let mut broken = scanned.clone();
    broken.payload = r#"{"title": 7}"#.into();
    match broken.decode::<domain::ItemEvent>() {
        Err(Error::Corrupt { event_id, .. }) => assert_eq!(event_id, scanned.event_id),
        other => panic!("expected a corrupt event, got {other:?}"),
    }
}
