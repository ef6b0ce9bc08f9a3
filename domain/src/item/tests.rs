use chrono::Duration;

use super::*;
use crate::fixtures::*;
use crate::testing::{Given, given};
use crate::values::Tag;

const AUTHOR: u128 = 3;

fn items(events: impl IntoIterator<Item = ItemEvent>) -> Given<Item> {
    given::<Item>(events)
}

fn access(n: u128, role: Role) -> Access {
    Access {
        workspace_id: workspace_id(),
        user_id: user(n),
        role,
    }
}

fn cmd(n: u128, role: Role, action: ItemAction) -> ItemCommand {
    ItemCommand::new(access(n, role), action)
}

fn create_action(status: ItemStatus) -> ItemAction {
    ItemAction::Create {
        item_id: item_id(),
        title: title("Invoice"),
        body: body("Pay by Friday"),
        tags: tags(&["billing"]),
        status,
    }
}

fn created(status: ItemStatus) -> ItemEvent {
    ItemEvent::ItemCreated {
        item_id: item_id(),
        workspace_id: workspace_id(),
        title: title("Invoice"),
        body: body("Pay by Friday"),
        tags: tags(&["billing"]),
        status,
        author: user(AUTHOR),
        created_at: t0(),
    }
}

fn draft() -> Vec<ItemEvent> {
    vec![created(ItemStatus::Draft)]
}

fn active() -> Vec<ItemEvent> {
    vec![created(ItemStatus::Active)]
}

fn archived_from(status: ItemStatus) -> Vec<ItemEvent> {
    vec![
        created(status),
        ItemEvent::ItemArchived {
            from: status,
            at: t0(),
        },
    ]
}

fn deleted() -> Vec<ItemEvent> {
    vec![
        created(ItemStatus::Active),
        ItemEvent::ItemDeleted {
            title: title("Invoice"),
            at: t0(),
        },
    ]
}

fn update(title_: Option<&str>, body_: Option<&str>, tags_: Option<&[&str]>) -> ItemAction {
    ItemAction::Update {
        title: title_.map(title),
        body: body_.map(body),
        tags: tags_.map(tags),
    }
}

fn is_forbidden(e: &DomainError) -> bool {
    matches!(e, DomainError::Forbidden { .. })
}

const NOT_FOUND: DomainError = DomainError::NotFound { entity: "item" };

fn later() -> chrono::DateTime<Utc> {
    t0() + Duration::minutes(5)
}

// --- Create ----------------------------------------------------------------------------------

#[test]
fn members_admins_and_owners_create_items() {
    for role in [Role::Owner, Role::Admin, Role::Member] {
        let state = items([])
            .when(
                cmd(AUTHOR, role, create_action(ItemStatus::Draft)),
                &as_user(AUTHOR),
            )
            .then([created(ItemStatus::Draft)]);
        assert!(state.exists());
        assert_eq!(state.author(), Some(user(AUTHOR)));
        assert_eq!(state.workspace_id(), Some(workspace_id()));
        assert_eq!(state.status(), Some(ItemStatus::Draft));
        assert_eq!(state.created_at(), Some(t0()));
        assert_eq!(state.updated_at(), Some(t0()));
        assert_eq!(state.version(), 1);
    }
    items([])
        .when(
            cmd(AUTHOR, Role::Member, create_action(ItemStatus::Active)),
            &as_user(AUTHOR),
        )
        .then([created(ItemStatus::Active)]);
}

#[test]
fn viewers_cannot_create_items() {
    items([])
        .when(
            cmd(AUTHOR, Role::Viewer, create_action(ItemStatus::Draft)),
            &as_user(AUTHOR),
        )
        .then_err_matching(is_forbidden);
}

#[test]
fn an_item_cannot_be_created_archived() {
    items([])
        .when(
            cmd(AUTHOR, Role::Owner, create_action(ItemStatus::Archived)),
            &as_user(AUTHOR),
        )
        .then_err_matching(|e| matches!(e, DomainError::Validation(v) if v.field == "status"));
}

#[test]
fn creating_an_existing_or_deleted_item_conflicts() {
    for events in [draft(), deleted()] {
        items(events)
            .when(
                cmd(AUTHOR, Role::Owner, create_action(ItemStatus::Draft)),
                &as_user(AUTHOR),
            )
            .then_err_matching(|e| matches!(e, DomainError::Conflict { .. }));
    }
}

#[test]
fn the_access_must_belong_to_the_actor() {
    items([])
        .when(
            cmd(AUTHOR, Role::Owner, create_action(ItemStatus::Draft)),
            &as_user(1),
        )
        .then_err_matching(is_forbidden);
    items(draft())
        .when(cmd(AUTHOR, Role::Owner, ItemAction::Publish), &as_system())
        .then_err_matching(is_forbidden);
}

#[test]
fn an_access_to_another_workspace_finds_nothing() {
    let foreign = Access {
        workspace_id: other_workspace_id(),
        user_id: user(AUTHOR),
        role: Role::Owner,
    };
    items(draft())
        .when(
            ItemCommand::new(foreign, ItemAction::Publish),
            &as_user(AUTHOR),
        )
        .then_err(NOT_FOUND);
}

// --- Update ----------------------------------------------------------------------------------

#[test]
fn update_emits_one_event_per_changed_field() {
    let state = items(draft())
        .when(
            cmd(
                AUTHOR,
                Role::Member,
                update(
                    Some("Invoice 42"),
                    Some("Pay by Monday"),
                    Some(&["billing", "urgent"]),
                ),
            ),
            &as_user_at(AUTHOR, later()),
        )
        .then([
            ItemEvent::ItemRetitled {
                from: title("Invoice"),
                to: title("Invoice 42"),
                at: later(),
            },
            ItemEvent::ItemBodyEdited {
                from: body("Pay by Friday"),
                to: body("Pay by Monday"),
                at: later(),
            },
            ItemEvent::ItemRetagged {
                from: tags(&["billing"]),
                to: tags(&["billing", "urgent"]),
                at: later(),
            },
        ]);
    assert_eq!(state.title(), Some(&title("Invoice 42")));
    assert_eq!(state.body(), Some(&body("Pay by Monday")));
    assert_eq!(state.tags(), Some(&tags(&["billing", "urgent"])));
    assert_eq!(state.updated_at(), Some(later()));
    assert_eq!(state.created_at(), Some(t0()));
    assert_eq!(state.version(), 4);
}

#[test]
fn update_skips_absent_and_unchanged_fields() {
    items(draft())
        .when(
            cmd(
                AUTHOR,
                Role::Member,
                update(Some("Invoice"), None, Some(&["urgent"])),
            ),
            &as_user(AUTHOR),
        )
        .then([ItemEvent::ItemRetagged {
            from: tags(&["billing"]),
            to: tags(&["urgent"]),
            at: t0(),
        }]);
    items(draft())
        .when(
            cmd(
                AUTHOR,
                Role::Member,
                update(Some(" Invoice "), Some("Pay by Friday"), Some(&["billing"])),
            ),
            &as_user(AUTHOR),
        )
        .then_nothing();
    items(draft())
        .when(
            cmd(AUTHOR, Role::Member, update(None, None, None)),
            &as_user(AUTHOR),
        )
        .then_nothing();
}

#[test]
fn update_at_the_value_limits() {
    let long_title = "t".repeat(200);
    let long_body = "b".repeat(20_000);
    let many_tags: Vec<String> = (0..20)
        .map(|i| format!("{}{i:02}", "g".repeat(38)))
        .collect();
    let many_tags = Tags::parse(many_tags).expect("20 tags of 40 chars");
    items(draft())
        .when(
            cmd(
                AUTHOR,
                Role::Member,
                ItemAction::Update {
                    title: Some(title(&long_title)),
                    body: Some(body(&long_body)),
                    tags: Some(many_tags.clone()),
                },
            ),
            &as_user(AUTHOR),
        )
        .then([
            ItemEvent::ItemRetitled {
                from: title("Invoice"),
                to: title(&long_title),
                at: t0(),
            },
            ItemEvent::ItemBodyEdited {
                from: body("Pay by Friday"),
                to: body(&long_body),
                at: t0(),
            },
            ItemEvent::ItemRetagged {
                from: tags(&["billing"]),
                to: many_tags,
                at: t0(),
            },
        ]);
    // One past each limit cannot even be expressed as a command.
    assert_eq!(
        refused(ItemTitle::parse(&"t".repeat(201))),
        because("title", "must be at most 200 characters")
    );
    assert_eq!(
        refused(ItemBody::parse(&"b".repeat(20_001))),
        because("body", "must be at most 20000 characters")
    );
    assert_eq!(
        refused(Tag::parse(&"g".repeat(41))),
        because("tag", "must be at most 40 characters")
    );
    assert_eq!(
        refused(Tags::parse((0..21).map(|i| i.to_string()).collect())),
        because("tags", "at most 20 tags are allowed, not 21")
    );
}

#[test]
fn owners_and_admins_edit_any_item() {
    for role in [Role::Owner, Role::Admin] {
        items(draft())
            .when(
                cmd(1, role, update(Some("Theirs"), None, None)),
                &as_user(1),
            )
            .then([ItemEvent::ItemRetitled {
                from: title("Invoice"),
                to: title("Theirs"),
                at: t0(),
            }]);
    }
}

#[test]
fn members_edit_only_their_own_items_and_viewers_none() {
    items(draft())
        .when(
            cmd(6, Role::Member, update(Some("Mine now"), None, None)),
            &as_user(6),
        )
        .then_err_matching(is_forbidden);
    for n in [AUTHOR, 6] {
        items(draft())
            .when(
                cmd(n, Role::Viewer, update(Some("Nope"), None, None)),
                &as_user(n),
            )
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn archived_items_cannot_be_edited() {
    items(archived_from(ItemStatus::Active))
        .when(
            cmd(AUTHOR, Role::Owner, update(Some("New"), None, None)),
            &as_user(AUTHOR),
        )
        .then_err(DomainError::InvalidTransition {
            from: ItemStatus::Archived,
            action: "edit",
        });
}

// --- Status transitions --------------------------------------------------------------------

#[test]
fn a_draft_is_published() {
    let state = items(draft())
        .when(
            cmd(AUTHOR, Role::Member, ItemAction::Publish),
            &as_user_at(AUTHOR, later()),
        )
        .then([ItemEvent::ItemPublished { at: later() }]);
    assert_eq!(state.status(), Some(ItemStatus::Active));
    assert_eq!(state.updated_at(), Some(later()));
}

#[test]
fn only_drafts_are_published() {
    for (events, from) in [
        (active(), ItemStatus::Active),
        (archived_from(ItemStatus::Draft), ItemStatus::Archived),
    ] {
        items(events)
            .when(
                cmd(AUTHOR, Role::Owner, ItemAction::Publish),
                &as_user(AUTHOR),
            )
            .then_err(DomainError::InvalidTransition {
                from,
                action: "publish",
            });
    }
}

#[test]
fn drafts_and_active_items_are_archived_and_restored_to_their_status() {
    for status in [ItemStatus::Draft, ItemStatus::Active] {
        let state = items([created(status)])
            .when(
                cmd(AUTHOR, Role::Member, ItemAction::Archive),
                &as_user(AUTHOR),
            )
            .then([ItemEvent::ItemArchived {
                from: status,
                at: t0(),
            }]);
        assert_eq!(state.status(), Some(ItemStatus::Archived));
        assert_eq!(state.status_before_archive(), Some(status));

        let state = items(archived_from(status))
            .when(
                cmd(AUTHOR, Role::Member, ItemAction::Restore),
                &as_user(AUTHOR),
            )
            .then([ItemEvent::ItemRestored {
                to: status,
                at: t0(),
            }]);
        assert_eq!(state.status(), Some(status));
        assert_eq!(state.status_before_archive(), None);
    }
}

#[test]
fn archived_items_cannot_be_archived_again() {
    items(archived_from(ItemStatus::Active))
        .when(
            cmd(AUTHOR, Role::Owner, ItemAction::Archive),
            &as_user(AUTHOR),
        )
        .then_err(DomainError::InvalidTransition {
            from: ItemStatus::Archived,
            action: "archive",
        });
}

#[test]
fn only_archived_items_are_restored() {
    for (events, from) in [(draft(), ItemStatus::Draft), (active(), ItemStatus::Active)] {
        items(events)
            .when(
                cmd(AUTHOR, Role::Owner, ItemAction::Restore),
                &as_user(AUTHOR),
            )
            .then_err(DomainError::InvalidTransition {
                from,
                action: "restore",
            });
    }
}

#[test]
fn items_are_deleted_from_any_status() {
    for events in [draft(), active(), archived_from(ItemStatus::Active)] {
        let state = items(events)
            .when(
                cmd(AUTHOR, Role::Member, ItemAction::Delete),
                &as_user(AUTHOR),
            )
            .then([ItemEvent::ItemDeleted {
                title: title("Invoice"),
                at: t0(),
            }]);
        assert!(state.is_deleted());
        assert!(!state.exists());
        assert_eq!(
            state.title(),
            Some(&title("Invoice")),
            "kept for time travel"
        );
    }
}

#[test]
fn lifecycle_actions_follow_the_edit_permission() {
    for action in [ItemAction::Publish, ItemAction::Archive, ItemAction::Delete] {
        items(draft())
            .when(cmd(6, Role::Member, action.clone()), &as_user(6))
            .then_err_matching(is_forbidden);
        items(draft())
            .when(cmd(AUTHOR, Role::Viewer, action.clone()), &as_user(AUTHOR))
            .then_err_matching(is_forbidden);
        items(draft())
            .when(cmd(6, Role::Admin, action), &as_user(6))
            .result()
            .expect("an admin may act on any item");
    }
    items(archived_from(ItemStatus::Draft))
        .when(cmd(6, Role::Member, ItemAction::Restore), &as_user(6))
        .then_err_matching(is_forbidden);
}

#[test]
fn every_command_on_a_deleted_or_missing_item_is_not_found() {
    let actions = || {
        vec![
            update(Some("X"), None, None),
            ItemAction::Publish,
            ItemAction::Archive,
            ItemAction::Restore,
            ItemAction::Delete,
        ]
    };
    for action in actions() {
        items(deleted())
            .when(cmd(AUTHOR, Role::Owner, action), &as_user(AUTHOR))
            .then_err(NOT_FOUND);
    }
    for action in actions() {
        items([])
            .when(cmd(AUTHOR, Role::Owner, action), &as_user(AUTHOR))
            .then_err(NOT_FOUND);
    }
}

// --- Events ----------------------------------------------------------------------------------

#[test]
fn every_item_event_round_trips_through_parts() {
    let events = vec![
        created(ItemStatus::Draft),
        ItemEvent::ItemRetitled {
            from: title("A"),
            to: title("B"),
            at: t0(),
        },
        ItemEvent::ItemBodyEdited {
            from: body(""),
            to: body("text"),
            at: t0(),
        },
        ItemEvent::ItemRetagged {
            from: Tags::empty(),
            to: tags(&["a", "b"]),
            at: t0(),
        },
        ItemEvent::ItemPublished { at: t0() },
        ItemEvent::ItemArchived {
            from: ItemStatus::Active,
            at: t0(),
        },
        ItemEvent::ItemRestored {
            to: ItemStatus::Active,
            at: t0(),
        },
        ItemEvent::ItemDeleted {
            title: title("B"),
            at: t0(),
        },
    ];
    assert_one_of_each_type(&events);
    for event in events {
        let (event_type, payload) = event.to_parts();
        assert!(payload.is_object(), "{event_type}");
        assert_eq!(
            ItemEvent::from_parts(event_type, payload).expect("round trip"),
            event
        );
    }
    let (_, payload) = ItemEvent::ItemRetitled {
        from: title("A"),
        to: title("B"),
        at: t0(),
    }
    .to_parts();
    assert_eq!(payload["from"], "A");
    assert_eq!(payload["to"], "B");
    let invalid = ItemEvent::from_parts(
        "ItemRetitled",
        serde_json::json!({"from": "", "to": "B", "at": t0()}),
    )
    .expect_err("a blank title is no title");
    assert_eq!(invalid.to_string(), "title: must not be blank");
}
