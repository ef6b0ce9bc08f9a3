//! Relay's object identification over HTTP: `node(id)` and `nodes(ids)` give back every kind of
//! object by its global id, through the same rights as the typed queries, and refuse what the
//! caller may not see exactly as they refuse what does not exist.

use serde_json::{Value, json};

use crate::workspaces::{add_member, create_workspace};
use crate::{TestApp, error_codes};

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } }";
const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";

#[tokio::test]
async fn every_kind_of_object_comes_back_by_its_id_and_only_to_who_may_see_it() {
    let app = TestApp::spawn().await;
    let (ana, bo, eve) = (
        app.sign_up("Ana").await,
        app.sign_up("Bo").await,
        app.sign_up("Eve").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    let item = ana
        .gql(
            &app,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"One\" }) { item { id } } }",
            json!({ "w": ws }),
        )
        .await["data"]["createItem"]["item"]["id"]
        .clone();
    let invite = ana
        .gql(
            &app,
            "mutation($w: ID!) { inviteMember(workspaceId: $w, email: \"x@example.com\", role: MEMBER) { invite { id } } }",
            json!({ "w": ws }),
        )
        .await["data"]["inviteMember"]["invite"]["id"]
        .clone();
    let members = ana
        .gql(
            &app,
            "query($w: ID!) { workspace(id: $w) { members { edges { node { id user { id } } } } } }",
            json!({ "w": ws }),
        )
        .await;
    let bo_member = members["data"]["workspace"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["user"]["id"] == bo.user_id.as_str())
        .map(|e| e["node"]["id"].clone())
        .unwrap();

    let event = ana
        .gql(
            &app,
            "query($w: ID!) { events(filter: { workspaceId: $w }, first: 1) { edges { node { id eventType } } } }",
            json!({ "w": ws }),
        )
        .await["data"]["events"]["edges"][0]["node"]["id"]
        .clone();
    let everything = [
        ("Workspace", json!(ws)),
        ("Item", item.clone()),
        ("Invite", invite.clone()),
        ("Member", bo_member.clone()),
        ("User", json!(bo.user_id)),
        ("Event", event.clone()),
    ];
    // The owner sees every one, through node and through nodes, in order.
    for (typename, id) in &everything {
        let node = ana.gql(&app, NODE, json!({ "id": id })).await;
        assert_eq!(node["data"]["node"]["__typename"], *typename, "{node}");
        assert_eq!(node["data"]["node"]["id"], *id, "{node}");
    }
    let ids: Vec<Value> = everything.iter().map(|(_, id)| id.clone()).collect();
    let nodes = ana.gql(&app, NODES, json!({ "ids": ids })).await;
    let typenames: Vec<&str> = nodes["data"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{nodes}"))
        .iter()
        .map(|n| n["__typename"].as_str().unwrap())
        .collect();
    assert_eq!(
        typenames,
        ["Workspace", "Item", "Invite", "Member", "User", "Event"]
    );

    // A member sees all but the invite and the raw event (owners and admins only).
    let seen_by_bo = bo.gql(&app, NODES, json!({ "ids": ids })).await;
    let seen: Vec<bool> = seen_by_bo["data"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| !n.is_null())
        .collect();
    assert_eq!(seen, [true, true, false, true, true, false]);

    // Another tenant sees nothing, and cannot tell it from a malformed or an unknown id.
    let unknown_item = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("Item:{}", uuid::Uuid::now_v7()))
    };
    let mut refusals = Vec::new();
    for id in ids
        .iter()
        .cloned()
        .chain([json!("garbage"), json!(unknown_item)])
    {
        let refused = eve.gql(&app, NODE, json!({ "id": id })).await;
        assert_eq!(error_codes(&refused), ["NOT_FOUND"], "{id}: {refused}");
        refusals.push(refused["errors"][0]["message"].clone());
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:?}");
    let mut all = ids.clone();
    all.extend([json!("garbage"), json!(unknown_item)]);
    let nodes = eve.gql(&app, NODES, json!({ "ids": all })).await;
    assert!(nodes["errors"].is_null(), "{nodes}");
    assert!(
        nodes["data"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_null),
        "{nodes}"
    );
    // Eve still sees herself.
    let me = eve.gql(&app, NODE, json!({ "id": eve.user_id })).await;
    assert_eq!(me["data"]["node"]["__typename"], "User", "{me}");
}

#[tokio::test]
async fn nodes_is_bounded_and_needs_a_token() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ids: Vec<String> = (0..101).map(|_| ana.user_id.clone()).collect();
    let refused = ana.gql(&app, NODES, json!({ "ids": ids })).await;
    assert_eq!(error_codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let anonymous = app.graphql(NODE, json!({ "id": ana.user_id })).await;
    assert_eq!(error_codes(&anonymous), ["UNAUTHENTICATED"]);
    let hundred: Vec<String> = (0..100).map(|_| ana.user_id.clone()).collect();
    let answer = ana.gql(&app, NODES, json!({ "ids": hundred })).await;
    assert_eq!(answer["data"]["nodes"].as_array().map(Vec::len), Some(100));
}

#[tokio::test]
async fn items_page_both_ways_with_truthful_page_info() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let page = |args: Value| {
        let (app, ana, ws) = (app.clone(), ana.clone(), ws.clone());
        async move {
            let response = ana
                .gql(
                    &app,
                    "query($w: ID!, $first: Int, $after: String, $last: Int, $before: String) {
                        items(workspaceId: $w, orderBy: { field: TITLE, direction: ASC },
                              first: $first, after: $after, last: $last, before: $before) {
                            edges { node { title } }
                            pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } }",
                    {
                        let mut vars = args;
                        vars["w"] = json!(ws);
                        vars
                    },
                )
                .await;
            let items = &response["data"]["items"];
            assert!(items.is_object(), "{response}");
            let titles: Vec<String> = items["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["title"].as_str().unwrap().to_string())
                .collect();
            let info = &items["pageInfo"];
            (
                titles,
                info["hasPreviousPage"].as_bool().unwrap(),
                info["hasNextPage"].as_bool().unwrap(),
                info["startCursor"].clone(),
                info["endCursor"].clone(),
            )
        }
    };
    let titles = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Empty, both ways.
    for args in [json!({ "first": 2 }), json!({ "last": 2 })] {
        let (items, previous, next, _, _) = page(args).await;
        assert_eq!((items.len(), previous, next), (0, false, false));
    }
    for title in ["a", "b", "c", "d"] {
        ana.gql(
            &app,
            "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }",
            json!({ "w": ws, "t": title }),
        )
        .await;
    }
    // Forward, ending exactly at a page boundary.
    let (items, previous, next, _, end) = page(json!({ "first": 2 })).await;
    assert_eq!((items, previous, next), (titles(&["a", "b"]), false, true));
    let (items, previous, next, _, _) = page(json!({ "first": 2, "after": end })).await;
    assert_eq!((items, previous, next), (titles(&["c", "d"]), true, false));
    // Backward from the end, then before the first element of that page.
    let (items, previous, next, start, _) = page(json!({ "last": 2 })).await;
    assert_eq!((items, previous, next), (titles(&["c", "d"]), true, false));
    let (items, previous, next, _, _) = page(json!({ "last": 2, "before": start })).await;
    assert_eq!((items, previous, next), (titles(&["a", "b"]), false, true));
    // One page holding everything.
    let (items, previous, next, _, _) = page(json!({ "last": 10 })).await;
    assert_eq!(
        (items, previous, next),
        (titles(&["a", "b", "c", "d"]), false, false)
    );
    let (items, previous, next, _, _) = page(json!({ "first": 10 })).await;
    assert_eq!(
        (items, previous, next),
        (titles(&["a", "b", "c", "d"]), false, false)
    );

    let mixed = ana
        .gql(
            &app,
            "query($w: ID!) { items(workspaceId: $w, first: 1, last: 1) { edges { cursor } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(error_codes(&mixed), ["BAD_USER_INPUT"], "{mixed}");
}

#[tokio::test]
async fn the_log_and_the_audit_log_page_backward_too() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    for title in ["a", "b", "c"] {
        ana.gql(
            &app,
            "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }",
            json!({ "w": ws, "t": title }),
        )
        .await;
    }
    let events = |args: Value| {
        let (app, ana, ws) = (app.clone(), ana.clone(), ws.clone());
        async move {
            let mut vars = args;
            vars["filter"] = json!({ "workspaceId": ws });
            let response = ana
                .gql(
                    &app,
                    "query($filter: EventsFilter, $first: Int, $last: Int, $before: String) {
                        events(filter: $filter, first: $first, last: $last, before: $before) {
                            edges { node { position } }
                            pageInfo { hasPreviousPage hasNextPage startCursor } } }",
                    vars,
                )
                .await;
            assert!(response["errors"].is_null(), "{response}");
            let events = &response["data"]["events"];
            let positions: Vec<String> = events["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["position"].as_str().unwrap().to_string())
                .collect();
            let info = events["pageInfo"].clone();
            (positions, info)
        }
    };
    let (all, _) = events(json!({ "first": 100 })).await;
    assert_eq!(all.len(), 4, "WorkspaceCreated and three ItemCreated");
    let (tail, info) = events(json!({ "last": 2 })).await;
    assert_eq!(tail, all[2..]);
    assert_eq!(
        (
            info["hasPreviousPage"].as_bool(),
            info["hasNextPage"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let (head, info) = events(json!({ "last": 10, "before": info["startCursor"] })).await;
    assert_eq!(head, all[..2]);
    assert_eq!(
        (
            info["hasPreviousPage"].as_bool(),
            info["hasNextPage"].as_bool()
        ),
        (Some(false), Some(true))
    );

    // The audit log is newest first: its last entry is the oldest, the workspace's creation.
    let oldest = ana
        .gql(
            &app,
            "query($w: ID!) { auditLog(workspaceId: $w, last: 1) { edges { node { summary } } pageInfo { hasPreviousPage } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(
        oldest["data"]["auditLog"]["edges"][0]["node"]["summary"],
        "Ana created workspace 'Acme' in region eu",
        "{oldest}"
    );
    assert_eq!(
        oldest["data"]["auditLog"]["pageInfo"]["hasPreviousPage"],
        true
    );
    let mixed = ana
        .gql(
            &app,
            "query($w: ID!, $p: String) { events(filter: { workspaceId: $w, afterPosition: $p }, last: 1) { edges { cursor } } }",
            json!({ "w": ws, "p": all[0] }),
        )
        .await;
    assert_eq!(error_codes(&mixed), ["BAD_USER_INPUT"], "{mixed}");
}
