//! The event stream: members read their workspace's log; analysts read any, pseudonymised.

use serde_json::{Value, json};

use crate::workspaces::{add_member, create_workspace};
use crate::{TestApp, error_codes};

const EVENTS: &str = "query($filter: EventsFilter, $first: Int, $after: String) {
    events(filter: $filter, first: $first, after: $after) {
        edges { node { position eventType streamType payload metadata } }
        pageInfo { hasNextPage endCursor } } }";

fn nodes(response: &Value) -> Vec<Value> {
    response["data"]["events"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn members_read_their_workspace_log_in_order_and_resume_from_a_position() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("Ana").await, app.sign_up("Eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    for title in ["one", "two", "three"] {
        ana.gql(&app, "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }", json!({ "w": ws, "t": title })).await;
    }
    let all = nodes(
        &ana.gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws } }))
            .await,
    );
    let types: Vec<&str> = all
        .iter()
        .map(|n| n["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "WorkspaceCreated",
            "ItemCreated",
            "ItemCreated",
            "ItemCreated"
        ]
    );
    let positions: Vec<&str> = all
        .iter()
        .map(|n| n["position"].as_str().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "position order");
    assert_eq!(
        all[1]["metadata"]["client_ip"], "127.0.0.1",
        "members see real data"
    );

    let rest = nodes(
        &ana.gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "afterPosition": positions[1] } }),
        )
        .await,
    );
    assert_eq!(rest.len(), 2);
    let bounded = nodes(
        &ana.gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "upToPosition": positions[1] } }),
        )
        .await,
    );
    assert_eq!(bounded.len(), 2);
    let items = nodes(
        &ana.gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "streamType": "item" } }),
        )
        .await,
    );
    assert_eq!(items.len(), 3);
    let paged = ana
        .gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws }, "first": 3 }),
        )
        .await;
    let next = nodes(&ana.gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws }, "after": paged["data"]["events"]["pageInfo"]["endCursor"] })).await);
    assert_eq!(next.len(), 1);

    assert_eq!(
        error_codes(
            &eve.gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws } }))
                .await
        ),
        vec!["NOT_FOUND"]
    );
    assert_eq!(
        error_codes(&ana.gql(&app, EVENTS, Value::Null).await),
        vec!["BAD_USER_INPUT"]
    );
    let bad = ana
        .gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "afterPosition": "nope" } }),
        )
        .await;
    assert_eq!(error_codes(&bad), vec!["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn analysts_read_any_workspace_with_stable_pseudonyms_instead_of_personal_data() {
    let app = TestApp::spawn().await;
    let (ana, bo, al) = (
        app.sign_up("Ana").await,
        app.sign_up("Bo").await,
        app.sign_up("Al").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, "Al@example.com", domain::StaffRole::Analyst, true)
        .await
        .unwrap();

    let first = al
        .gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    let text = first.to_string();
    assert!(
        !text.contains("@example.com") && !text.contains("127.0.0.1"),
        "personal data leaked: {text}"
    );
    let invite = nodes(&first)
        .into_iter()
        .find(|n| n["eventType"] == "InviteCreated")
        .expect("invite event");
    let pseudonym = invite["payload"]["email"].as_str().unwrap().to_string();
    assert!(pseudonym.starts_with("email-"), "{pseudonym}");
    let again = al
        .gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    assert_eq!(first, again, "pseudonyms are stable across queries");

    // Across all workspaces, user events too: the same email gets the same pseudonym.
    let everything = nodes(
        &al.gql(&app, EVENTS, json!({ "filter": { "streamType": "user" } }))
            .await,
    );
    let bo_signup = everything
        .iter()
        .find(|n| n["eventType"] == "UserSignedUp" && n["payload"]["email"] == pseudonym.as_str());
    assert!(
        bo_signup.is_some(),
        "Bo's sign-up carries the invite's pseudonym"
    );
    assert!(!serde_json::to_string(&everything).unwrap().contains("Ana"));
}
