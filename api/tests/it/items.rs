use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp, error_codes};

const CREATE: &str = "mutation($input: CreateItemInput!) {
    createItem(input: $input) { item { id title body tags status version author { displayName } } position } }";
const UPDATE: &str = "mutation($input: UpdateItemInput!) {
    updateItem(input: $input) { item { title tags version } position } }";
const LIST: &str =
    "query($w: ID!, $filter: ItemFilter, $order: ItemOrderBy, $first: Int, $after: String) {
    items(workspaceId: $w, filter: $filter, orderBy: $order, first: $first, after: $after) {
        edges { cursor node { title status tags } } pageInfo { hasNextPage endCursor } } }";

async fn create_item(app: &TestApp, who: &Session, ws: &str, title: &str, tags: &[&str]) -> Value {
    let response = who
        .gql(
            app,
            CREATE,
            json!({ "input": { "workspaceId": ws, "title": title, "tags": tags } }),
        )
        .await;
    assert!(response["data"]["createItem"].is_object(), "{response}");
    response["data"]["createItem"]["item"].clone()
}

fn titles(response: &Value) -> Vec<String> {
    response["data"]["items"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_item_lives_its_whole_life_through_the_api() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let item = create_item(&app, &ana, &ws, "Q3 invoice", &["finance"]).await;
    assert_eq!(
        (item["status"].as_str(), item["version"].as_i64()),
        (Some("DRAFT"), Some(1))
    );
    assert_eq!(item["author"]["displayName"], "ana");
    let id = item["id"].as_str().unwrap();

    let updated = ana.gql(&app, UPDATE, json!({ "input": { "id": id, "expectedVersion": 1, "title": "Q3 invoice (final)", "tags": ["finance", "q3"] } })).await;
    assert_eq!(
        updated["data"]["updateItem"]["item"]["version"], 3,
        "two fields changed: two events: {updated}"
    );

    let archive = ana
        .gql(
            &app,
            "mutation($id: ID!) { archiveItem(id: $id) { item { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        archive["data"]["archiveItem"]["item"]["status"], "ARCHIVED",
        "{archive}"
    );
    let twice = ana
        .gql(
            &app,
            "mutation($id: ID!) { archiveItem(id: $id) { item { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_codes(&twice), vec!["CONFLICT"]);
    let restore = ana
        .gql(
            &app,
            "mutation($id: ID!) { restoreItem(id: $id) { item { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        restore["data"]["restoreItem"]["item"]["status"], "DRAFT",
        "{restore}"
    );

    let deleted = ana
        .gql(
            &app,
            "mutation($id: ID!) { deleteItem(id: $id) { deletedItemId position } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        deleted["data"]["deleteItem"]["deletedItemId"], id,
        "{deleted}"
    );
    let gone = ana
        .gql(
            &app,
            "query($id: ID!) { item(id: $id) { title } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_codes(&gone), vec!["NOT_FOUND"]);
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE stream_type = 'item' ORDER BY stream_version",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            "ItemCreated",
            "ItemRetitled",
            "ItemRetagged",
            "ItemArchived",
            "ItemRestored",
            "ItemDeleted"
        ]
    );
}

/// A mutation's payload is built from the state it decided, not read back: it must be what
/// the read model holds, field for field, after every kind of change.
#[tokio::test]
async fn a_mutation_payload_is_what_the_read_model_holds() {
    const FIELDS: &str =
        "id workspaceId title body tags status version createdAt updatedAt author { id }";
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let read = |id: String| {
        let (app, ana) = (&app, &ana);
        async move {
            let query = format!("query($id: ID!) {{ item(id: $id) {{ {FIELDS} }} }}");
            let response = ana.gql(app, &query, json!({ "id": id })).await;
            response["data"]["item"].clone()
        }
    };
    let created = ana
        .gql(
            &app,
            &format!("mutation($input: CreateItemInput!) {{ createItem(input: $input) {{ item {{ {FIELDS} }} }} }}"),
            json!({ "input": { "workspaceId": ws, "title": "Q3", "body": "ünïcode ✓", "tags": ["b", "a"], "status": "ACTIVE" } }),
        )
        .await;
    let item = created["data"]["createItem"]["item"].clone();
    let id = item["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    assert_eq!(item, read(id.clone()).await);

    let updated = ana
        .gql(
            &app,
            &format!("mutation($input: UpdateItemInput!) {{ updateItem(input: $input) {{ item {{ {FIELDS} }} }} }}"),
            json!({ "input": { "id": id, "expectedVersion": 1, "title": "Q3 final", "body": "", "tags": [] } }),
        )
        .await;
    let item = updated["data"]["updateItem"]["item"].clone();
    assert_eq!(item["version"], 4, "{updated}");
    assert_ne!(item["updatedAt"], item["createdAt"]);
    assert_eq!(item, read(id.clone()).await);

    for change in ["archiveItem", "restoreItem"] {
        let changed = ana
            .gql(
                &app,
                &format!("mutation($id: ID!) {{ {change}(id: $id) {{ item {{ {FIELDS} }} }} }}"),
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            changed["data"][change]["item"],
            read(id.clone()).await,
            "{changed}"
        );
    }
    // A change to what is already there writes nothing and answers from the read model.
    let same = ana
        .gql(
            &app,
            &format!("mutation($input: UpdateItemInput!) {{ updateItem(input: $input) {{ item {{ {FIELDS} }} position }} }}"),
            json!({ "input": { "id": id, "expectedVersion": 6, "title": "Q3 final" } }),
        )
        .await;
    assert_eq!(
        same["data"]["updateItem"]["position"],
        Value::Null,
        "{same}"
    );
    assert_eq!(same["data"]["updateItem"]["item"], read(id).await);
}

#[tokio::test]
async fn items_paginate_filter_and_sort() {
    let app = TestApp::spawn().await;
    let (ana, bo) = (app.sign_up("ana").await, app.sign_up("bo").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    for (n, who) in [&ana, &bo, &ana, &bo, &ana].into_iter().enumerate() {
        let tags: &[&str] = if n % 2 == 0 { &["even"] } else { &["odd"] };
        create_item(&app, who, &ws, &format!("item {n}"), tags).await;
    }

    // Newest first by default, two by two, without repeats or gaps.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ana
            .gql(&app, LIST, json!({ "w": ws, "first": 2, "after": after }))
            .await;
        seen.extend(titles(&page));
        let info = &page["data"]["items"]["pageInfo"];
        if !info["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["item 4", "item 3", "item 2", "item 1", "item 0"]);

    let by_title = ana
        .gql(
            &app,
            LIST,
            json!({ "w": ws, "order": { "field": "TITLE", "direction": "ASC" } }),
        )
        .await;
    assert_eq!(
        titles(&by_title),
        ["item 0", "item 1", "item 2", "item 3", "item 4"]
    );
    let odd = ana
        .gql(
            &app,
            LIST,
            json!({ "w": ws, "filter": { "tags": ["odd"] } }),
        )
        .await;
    assert_eq!(titles(&odd), ["item 3", "item 1"]);
    let by_bo = ana
        .gql(
            &app,
            LIST,
            json!({ "w": ws, "filter": { "authorId": bo.user_id } }),
        )
        .await;
    assert_eq!(titles(&by_bo), ["item 3", "item 1"]);
    let active = ana
        .gql(
            &app,
            LIST,
            json!({ "w": ws, "filter": { "status": "ACTIVE" } }),
        )
        .await;
    assert_eq!(titles(&active), Vec::<String>::new());

    for (variables, what) in [
        (json!({ "w": ws, "first": 0 }), "first 0"),
        (json!({ "w": ws, "first": 1000 }), "first 1000"),
        (json!({ "w": ws, "after": "garbage" }), "bad cursor"),
        (json!({ "w": "garbage" }), "bad id"),
    ] {
        let response = ana.gql(&app, LIST, variables).await;
        assert_eq!(
            error_codes(&response),
            vec!["BAD_USER_INPUT"],
            "{what}: {response}"
        );
    }
}

#[tokio::test]
async fn members_edit_their_own_items_and_viewers_only_read() {
    let app = TestApp::spawn().await;
    let (ana, bo, cy) = (
        app.sign_up("ana").await,
        app.sign_up("bo").await,
        app.sign_up("cy").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    add_member(&app, &ana, &ws, &cy, domain::Role::Viewer).await;
    let anas = create_item(&app, &ana, &ws, "owner's", &[]).await;
    let bos = create_item(&app, &bo, &ws, "bo's", &[]).await;

    let bo_edits_own = bo
        .gql(
            &app,
            UPDATE,
            json!({ "input": { "id": bos["id"], "expectedVersion": 1, "title": "bo's v2" } }),
        )
        .await;
    assert!(
        bo_edits_own["data"]["updateItem"].is_object(),
        "{bo_edits_own}"
    );
    let bo_edits_anas = bo
        .gql(
            &app,
            UPDATE,
            json!({ "input": { "id": anas["id"], "expectedVersion": 1, "title": "mine now" } }),
        )
        .await;
    assert_eq!(error_codes(&bo_edits_anas), vec!["FORBIDDEN"]);

    let cy_reads = cy.gql(&app, LIST, json!({ "w": ws })).await;
    assert_eq!(titles(&cy_reads).len(), 2);
    let cy_creates = cy
        .gql(
            &app,
            CREATE,
            json!({ "input": { "workspaceId": ws, "title": "viewer's" } }),
        )
        .await;
    assert_eq!(error_codes(&cy_creates), vec!["FORBIDDEN"]);
    let cy_deletes = cy
        .gql(
            &app,
            "mutation($id: ID!) { deleteItem(id: $id) { position } }",
            json!({ "id": bos["id"] }),
        )
        .await;
    assert_eq!(error_codes(&cy_deletes), vec!["FORBIDDEN"]);

    // An admin-level owner may edit anyone's item.
    let ana_edits_bos = ana
        .gql(
            &app,
            UPDATE,
            json!({ "input": { "id": bos["id"], "expectedVersion": 2, "tags": ["reviewed"] } }),
        )
        .await;
    assert!(
        ana_edits_bos["data"]["updateItem"].is_object(),
        "{ana_edits_bos}"
    );
}

#[tokio::test]
async fn invalid_item_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let long_tags: Vec<String> = (0..21).map(|n| format!("t{n}")).collect();
    for input in [
        json!({ "workspaceId": ws, "title": "" }),
        json!({ "workspaceId": ws, "title": "x".repeat(201) }),
        json!({ "workspaceId": ws, "title": "ok", "body": "x".repeat(20_001) }),
        json!({ "workspaceId": ws, "title": "ok", "tags": long_tags }),
        json!({ "workspaceId": ws, "title": "ok", "tags": ["x".repeat(41)] }),
        json!({ "workspaceId": ws, "title": "nul \u{0} byte" }),
        json!({ "workspaceId": ws, "title": "ok", "status": "ARCHIVED" }),
    ] {
        let response = ana.gql(&app, CREATE, json!({ "input": input })).await;
        assert_eq!(error_codes(&response), vec!["BAD_USER_INPUT"], "{response}");
    }
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(items, 0);
}

#[tokio::test]
async fn twenty_concurrent_updates_of_one_version_one_wins() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let item = create_item(&app, &ana, &ws, "contested", &[]).await;
    let updates = (0..20).map(|n| {
        let (app, ana, id) = (&app, &ana, item["id"].clone());
        async move { ana.gql(app, UPDATE, json!({ "input": { "id": id, "expectedVersion": 1, "title": format!("edit {n}") } })).await }
    });
    let responses = join_all(updates).await;
    let won = responses
        .iter()
        .filter(|r| r["data"]["updateItem"].is_object())
        .count();
    let conflicts = responses
        .iter()
        .filter(|r| error_codes(r) == vec!["CONFLICT"])
        .count();
    assert_eq!((won, conflicts), (1, 19), "{responses:?}");
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_type = 'item'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(history, 2, "created + exactly one retitle");
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_first_result_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let send = |key: &'static str, title: &'static str| {
        let (app, ana, ws) = (&app, &ana, ws.clone());
        async move {
            app.client
                .post(app.url("/graphql"))
                .bearer_auth(&ana.token)
                .header("Idempotency-Key", key)
                .json(&json!({ "query": CREATE, "variables": { "input": { "workspaceId": ws, "title": title } } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let item_events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE stream_type = 'item'")
            .fetch_one(app.db.pool())
            .await
            .unwrap()
    };

    // Sequential retry.
    let first = send("key-1", "once").await;
    let again = send("key-1", "once").await;
    assert_eq!(
        first["data"]["createItem"]["item"]["id"], again["data"]["createItem"]["item"]["id"],
        "{first} {again}"
    );
    assert_eq!(
        first["data"]["createItem"]["position"],
        again["data"]["createItem"]["position"]
    );
    assert_eq!(item_events().await, 1);
    // Same key, other input.
    let other = send("key-1", "different").await;
    assert_eq!(error_codes(&other), vec!["BAD_USER_INPUT"]);

    // Concurrent retries.
    let responses = join_all((0..10).map(|_| send("key-2", "raced"))).await;
    let ids: HashSet<String> = responses
        .iter()
        .map(|r| {
            r["data"]["createItem"]["item"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry got the one item");
    assert_eq!(item_events().await, 2);
}

/// `minPosition` makes a read wait for the read model it reads, on any node: the inline models
/// (written with the append) and the asynchronous `activity` counts, here held behind the log
/// (the test holds the projection's leadership) so that only the wait makes them fresh.
#[tokio::test]
async fn min_position_reads_your_write_on_any_node_and_refuses_positions_never_written() {
    let db = Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    let leadership = crate::health::hold_leadership(&db, projections::activity::NAME).await;
    let node_a = TestApp::spawn_configured(&db, |config| {
        config.limits.consistency_wait = Duration::from_millis(300);
    })
    .await;
    // Long enough to cover another node taking the leadership (`LEADER_RETRY`) and applying.
    let node_b = TestApp::spawn_configured(&db, |config| {
        config.limits.consistency_wait = Duration::from_secs(15);
    })
    .await;
    let ana = node_a.sign_up("ana").await;
    let ws = create_workspace(&node_a, &ana, "Acme").await;
    let created = ana
        .gql(
            &node_a,
            CREATE,
            json!({ "input": { "workspaceId": ws, "title": "fresh" } }),
        )
        .await;
    let position = created["data"]["createItem"]["position"]
        .as_str()
        .unwrap()
        .to_string();
    let id = created["data"]["createItem"]["item"]["id"].clone();

    let read = "query($id: ID!, $p: String) { item(id: $id, minPosition: $p) { title } }";
    let on_b = ana
        .gql(&node_b, read, json!({ "id": id, "p": position }))
        .await;
    assert_eq!(on_b["data"]["item"]["title"], "fresh", "{on_b}");

    // The activity counts lag: without a position they do not have the item yet ...
    let activity = "query($w: ID!, $p: String) { workspace(id: $w) { activity(minPosition: $p) { itemsCreated } } }";
    let items_created =
        |answer: &Value| answer["data"]["workspace"]["activity"]["itemsCreated"].clone();
    let stale = ana.gql(&node_b, activity, json!({ "w": ws })).await;
    assert_eq!(items_created(&stale), 0, "{stale}");
    // ... and with it a node does not answer from them before they reach it.
    let too_soon = ana
        .gql(&node_a, activity, json!({ "w": ws, "p": position }))
        .await;
    assert_eq!(
        error_codes(&too_soon),
        vec!["NOT_YET_CONSISTENT"],
        "{too_soon}"
    );
    // Once a node may lead the projection again, the read waits for it and has the item.
    leadership.release().await;
    let fresh = ana
        .gql(&node_b, activity, json!({ "w": ws, "p": position }))
        .await;
    assert_eq!(items_created(&fresh), 1, "{fresh}");

    // Far beyond the log's head: no write returned it, so it is refused at once.
    let beyond_head = format!("{:x}{}", 0x7fff_u32, "0".repeat(28));
    let refused = ana
        .gql(&node_b, read, json!({ "id": id, "p": beyond_head }))
        .await;
    assert_eq!(error_codes(&refused), vec!["BAD_USER_INPUT"], "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("beyond the log's head"),
        "{refused}"
    );
    // Of a transaction that may exist but never shows: waited for, then NOT_YET_CONSISTENT.
    let never_visible = format!("{}{:016x}", &position[..16], i64::MAX);
    let waited = ana
        .gql(&node_a, read, json!({ "id": id, "p": never_visible }))
        .await;
    assert_eq!(error_codes(&waited), vec!["NOT_YET_CONSISTENT"], "{waited}");
    let garbage = ana
        .gql(&node_b, read, json!({ "id": id, "p": "not a position" }))
        .await;
    assert_eq!(error_codes(&garbage), vec!["BAD_USER_INPUT"]);
}
