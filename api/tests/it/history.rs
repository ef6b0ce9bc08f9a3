//! Time travel: an item or workspace read as of a position or a time, folded from its events,
//! equals what the read model showed at that moment.

use serde_json::{Value, json};

use crate::workspaces::create_workspace;
use crate::{TestApp, error_codes};

const FIELDS: &str = "title body tags status version updatedAt deleted";

#[tokio::test]
async fn an_item_read_as_of_any_past_position_or_time_equals_the_read_model_then() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("ana").await, app.sign_up("eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    let created = ana
        .gql(&app, &format!("mutation($w: ID!) {{ createItem(input: {{ workspaceId: $w, title: \"v1\", tags: [\"a\"] }}) {{ item {{ id {FIELDS} }} position }} }}"), json!({ "w": ws }))
        .await;
    let id = created["data"]["createItem"]["item"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut moments: Vec<(String, Value)> = vec![(
        created["data"]["createItem"]["position"]
            .as_str()
            .unwrap()
            .to_string(),
        created["data"]["createItem"]["item"].clone(),
    )];
    let steps = [
        "updateItem(input: { id: $id, expectedVersion: 1, title: \"v2\", body: \"some text\" })",
        "updateItem(input: { id: $id, expectedVersion: 3, tags: [\"a\", \"b\"] })",
        "archiveItem(id: $id)",
        "restoreItem(id: $id)",
    ];
    for step in steps {
        let response = ana
            .gql(
                &app,
                &format!("mutation($id: ID!) {{ r: {step} {{ position }} }}"),
                json!({ "id": id }),
            )
            .await;
        let position = response["data"]["r"]["position"]
            .as_str()
            .unwrap_or_else(|| panic!("{step}: {response}"))
            .to_string();
        let now = ana
            .gql(
                &app,
                &format!("query($id: ID!) {{ item(id: $id) {{ id {FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await;
        moments.push((position, now["data"]["item"].clone()));
    }
    let deleted = ana
        .gql(
            &app,
            "mutation($id: ID!) { deleteItem(id: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    let deleted_at = deleted["data"]["deleteItem"]["position"]
        .as_str()
        .unwrap()
        .to_string();

    let as_of = format!(
        "query($id: ID!, $at: AsOfInput!) {{ item(id: $id, asOf: $at) {{ id {FIELDS} }} }}"
    );
    // Each moment's snapshot is a real item (a missing one would compare equal to a missing
    // time-travel read), and they all differ.
    for (position, then) in &moments {
        assert_eq!(then["id"], id.as_str(), "at {position}: {then}");
    }
    let distinct: std::collections::HashSet<String> =
        moments.iter().map(|(_, then)| then.to_string()).collect();
    assert_eq!(distinct.len(), moments.len(), "{moments:?}");
    for (position, then) in &moments {
        let by_position = ana
            .gql(
                &app,
                &as_of,
                json!({ "id": id, "at": { "position": position } }),
            )
            .await;
        assert_eq!(&by_position["data"]["item"], then, "at {position}");
        let by_time = ana
            .gql(
                &app,
                &as_of,
                json!({ "id": id, "at": { "time": then["updatedAt"] } }),
            )
            .await;
        assert_eq!(&by_time["data"]["item"], then, "at {}", then["updatedAt"]);
    }
    let after_delete = ana
        .gql(
            &app,
            &as_of,
            json!({ "id": id, "at": { "position": deleted_at } }),
        )
        .await;
    assert_eq!(
        after_delete["data"]["item"]["deleted"], true,
        "{after_delete}"
    );
    assert_eq!(after_delete["data"]["item"]["title"], "v2");

    let before = ana
        .gql(
            &app,
            &as_of,
            json!({ "id": id, "at": { "position": "0".repeat(32) } }),
        )
        .await;
    assert_eq!(error_codes(&before), vec!["NOT_FOUND"]);
    let outsider = eve
        .gql(
            &app,
            &as_of,
            json!({ "id": id, "at": { "position": moments[0].0 } }),
        )
        .await;
    assert_eq!(error_codes(&outsider), vec!["NOT_FOUND"]);
    let garbage = ana
        .gql(
            &app,
            &as_of,
            json!({ "id": id, "at": { "position": "yesterday" } }),
        )
        .await;
    assert_eq!(error_codes(&garbage), vec!["BAD_USER_INPUT"]);
    let both = ana
        .gql(
            &app,
            &as_of,
            json!({ "id": id, "at": { "position": moments[0].0, "time": "2026-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(error_codes(&both), vec!["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn a_workspace_read_as_of_a_position_shows_its_old_name_and_plan() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let renamed = ana
        .gql(
            &app,
            "mutation($w: ID!) { renameWorkspace(id: $w, name: \"Acme Inc\") { position } }",
            json!({ "w": ws }),
        )
        .await;
    let at_rename = renamed["data"]["renameWorkspace"]["position"]
        .as_str()
        .unwrap()
        .to_string();
    ana.gql(
        &app,
        "mutation($w: ID!) { upgradePlan(id: $w) { position } }",
        json!({ "w": ws }),
    )
    .await;

    let query =
        "query($w: ID!, $at: AsOfInput) { workspace(id: $w, asOf: $at) { name plan version } }";
    let then = ana
        .gql(
            &app,
            query,
            json!({ "w": ws, "at": { "position": at_rename } }),
        )
        .await;
    assert_eq!(
        then["data"]["workspace"],
        json!({ "name": "Acme Inc", "plan": "TRIAL", "version": 2 }),
        "{then}"
    );
    let now = ana.gql(&app, query, json!({ "w": ws })).await;
    assert_eq!(
        now["data"]["workspace"],
        json!({ "name": "Acme Inc", "plan": "PRO", "version": 3 }),
        "{now}"
    );
    // Before the rename: the old name.
    let created_at = ana
        .gql(
            &app,
            "query($w: ID!) { events(filter: { workspaceId: $w }, first: 1) { edges { node { position eventType } } } }",
            json!({ "w": ws }),
        )
        .await["data"]["events"]["edges"][0]["node"]
        .clone();
    assert_eq!(created_at["eventType"], "WorkspaceCreated");
    let before = ana
        .gql(
            &app,
            query,
            json!({ "w": ws, "at": { "position": created_at["position"] } }),
        )
        .await;
    assert_eq!(
        before["data"]["workspace"],
        json!({ "name": "Acme", "plan": "TRIAL", "version": 1 }),
        "{before}"
    );
}
