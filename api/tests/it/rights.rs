//! Rights decided in one place (`api::authz`): the raw log follows the audit log's rule on
//! every path, personal fields stay with their owner, actors are recorded with their real role,
//! and a role change cannot race a write.

use serde_json::{Value, json};

use crate::invites::invite_and_accept;
use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp, error_codes};

const EVENTS: &str = "query($filter: EventsFilter) {
    events(filter: $filter, first: 100) { edges { node { eventType payload metadata } } } }";
const AUDIT: &str = "query($w: ID!) { auditLog(workspaceId: $w) { edges { node { summary } } } }";
const CREATE_ITEM: &str = "mutation($w: ID!, $t: String!) {
    createItem(input: { workspaceId: $w, title: $t }) { item { id } position } }";

fn nodes(response: &Value) -> Vec<Value> {
    response["data"]["events"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {response}"))
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

async fn ndjson_status(app: &TestApp, who: &Session, ws: &str) -> u16 {
    app.client
        .get(app.url("/events.ndjson"))
        .query(&[("workspace", ws)])
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn grant(app: &TestApp, email: &str, role: domain::StaffRole) {
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, email, role, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_raw_log_is_read_by_exactly_those_who_read_the_audit_log_in_clear() {
    let app = TestApp::spawn().await;
    let [owner, admin, member, viewer, stranger, analyst] =
        ["Ana", "Ad", "Me", "Vi", "Eve", "Al"].map(|name| app.sign_up(name));
    let (owner, admin, member, viewer, stranger, analyst) = (
        owner.await,
        admin.await,
        member.await,
        viewer.await,
        stranger.await,
        analyst.await,
    );
    let ws = create_workspace(&app, &owner, "Acme").await;
    add_member(&app, &owner, &ws, &admin, domain::Role::Admin).await;
    add_member(&app, &owner, &ws, &member, domain::Role::Member).await;
    add_member(&app, &owner, &ws, &viewer, domain::Role::Viewer).await;
    grant(&app, "Al@example.com", domain::StaffRole::Analyst).await;
    owner
        .gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "one" }))
        .await;

    let filter = json!({ "filter": { "workspaceId": ws } });
    for (who, name) in [(&owner, "owner"), (&admin, "admin")] {
        let events = who.gql(&app, EVENTS, filter.clone()).await;
        let created = nodes(&events)
            .into_iter()
            .find(|n| n["eventType"] == "ItemCreated")
            .unwrap();
        assert_eq!(created["metadata"]["client_ip"], "127.0.0.1", "{name}");
        assert_eq!(ndjson_status(&app, who, &ws).await, 200, "{name}");
        assert!(error_codes(&who.gql(&app, AUDIT, json!({ "w": ws })).await).is_empty());
    }
    for (who, name) in [(&member, "member"), (&viewer, "viewer")] {
        let events = who.gql(&app, EVENTS, filter.clone()).await;
        assert_eq!(error_codes(&events), ["FORBIDDEN"], "{name}: {events}");
        assert!(events["data"].is_null(), "{name} sees nothing: {events}");
        assert_eq!(ndjson_status(&app, who, &ws).await, 403, "{name}");
        let audit = who.gql(&app, AUDIT, json!({ "w": ws })).await;
        assert_eq!(error_codes(&audit), ["FORBIDDEN"], "{name}");
    }
    let refused = stranger.gql(&app, EVENTS, filter.clone()).await;
    assert_eq!(error_codes(&refused), ["NOT_FOUND"]);
    assert_eq!(ndjson_status(&app, &stranger, &ws).await, 404);

    let pseudonymised = analyst.gql(&app, EVENTS, filter).await;
    assert!(error_codes(&pseudonymised).is_empty(), "{pseudonymised}");
    assert!(!pseudonymised.to_string().contains("127.0.0.1"));
    assert_eq!(ndjson_status(&app, &analyst, &ws).await, 200);
}

#[tokio::test]
async fn analysts_see_in_clear_only_fields_known_to_hold_no_personal_data() {
    let app = TestApp::spawn().await;
    let (ana, al, sue) = (
        app.sign_up("Ana").await,
        app.sign_up("Al").await,
        app.sign_up("Sue").await,
    );
    grant(&app, "Al@example.com", domain::StaffRole::Analyst).await;
    grant(&app, "Sue@example.com", domain::StaffRole::Support).await;
    let ws = create_workspace(&app, &ana, "Ana's Secret Bakery").await;
    let item = ana
        .gql(
            &app,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"Sourdough plan\",
                body: \"Starter at 6am\", tags: [\"family-recipe\"] }) { item { id } } }",
            json!({ "w": ws }),
        )
        .await;
    assert!(item["errors"].is_null(), "{item}");
    let look = sue
        .gql(
            &app,
            "query($w: ID!) { auditLog(workspaceId: $w, reason: \"ticket 4711 from Ana\") { edges { cursor } } }",
            json!({ "w": ws }),
        )
        .await;
    assert!(look["errors"].is_null(), "{look}");
    let referral_code: String =
        sqlx::query_scalar("SELECT referral_code FROM users WHERE email = 'Ana@example.com'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();

    let everything = al.gql(&app, EVENTS, json!({})).await;
    let text = everything.to_string();
    for secret in [
        "Secret Bakery",
        "Sourdough",
        "Starter at 6am",
        "family-recipe",
        "ticket 4711",
        referral_code.as_str(),
        "@example.com",
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked to an analyst: {text}"
        );
    }
    // What carries no personal data passes in clear: ids, roles, plans, regions, actors.
    let all = nodes(&everything);
    let created = all
        .iter()
        .find(|n| n["eventType"] == "WorkspaceCreated")
        .unwrap();
    assert_eq!(created["payload"]["plan"], "TRIAL");
    assert_eq!(created["payload"]["region"], "eu");
    assert_eq!(created["metadata"]["actor"]["role"], "OWNER");
    let workspace_uuid: uuid::Uuid = sqlx::query_scalar("SELECT id FROM workspaces")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(
        created["payload"]["workspace_id"],
        workspace_uuid.to_string()
    );
    let item_created = all
        .iter()
        .find(|n| n["eventType"] == "ItemCreated")
        .unwrap();
    let tags = item_created["payload"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 1, "each tag is pseudonymised on its own");
    assert!(tags[0].as_str().unwrap().starts_with("anon-"));
}

#[tokio::test]
async fn a_members_referral_code_is_shown_to_them_alone() {
    let app = TestApp::spawn().await;
    let (ana, bo) = (app.sign_up("Ana").await, app.sign_up("Bo").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    let members = bo
        .gql(
            &app,
            "query($w: ID!) { workspace(id: $w) { members { edges { node { user { displayName referralCode } } } } } }",
            json!({ "w": ws }),
        )
        .await;
    let codes: Vec<(String, Value)> = members["data"]["workspace"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let user = &e["node"]["user"];
            (
                user["displayName"].as_str().unwrap().to_string(),
                user["referralCode"].clone(),
            )
        })
        .collect();
    assert_eq!(codes.len(), 2, "{members}");
    for (name, code) in codes {
        match name.as_str() {
            "Bo" => assert!(code.is_string(), "Bo sees his own code"),
            _ => assert!(code.is_null(), "Bo must not see {name}'s code: {code}"),
        }
    }
    let me = ana.gql(&app, "{ me { referralCode } }", Value::Null).await;
    assert!(me["data"]["me"]["referralCode"].is_string(), "{me}");
}

#[tokio::test]
async fn the_log_position_and_the_server_version_need_a_token() {
    let app = TestApp::spawn().await;
    for query in ["{ logPosition }", "{ serverVersion }"] {
        let anonymous = app.graphql(query, Value::Null).await;
        assert_eq!(error_codes(&anonymous), ["UNAUTHENTICATED"], "{query}");
    }
    let ana = app.sign_up("Ana").await;
    let answer = ana
        .gql(&app, "{ logPosition serverVersion }", Value::Null)
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
}

#[tokio::test]
async fn an_invitee_is_recorded_with_the_role_they_join_with_not_as_owner() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    invite_and_accept(&app, &ana, &ws, "Vic", "VIEWER").await;
    let events = nodes(
        &ana.gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws } }))
            .await,
    );
    let role_of = |n: &Value| n["metadata"]["actor"]["role"].clone();
    assert_eq!(events[0]["eventType"], "WorkspaceCreated");
    assert_eq!(
        role_of(&events[0]),
        "OWNER",
        "a creator acts as the owner they become"
    );
    let accepted_at = events
        .iter()
        .position(|n| n["eventType"] == "InviteAccepted")
        .expect("InviteAccepted");
    assert!(
        accepted_at + 1 < events.len(),
        "the acceptance adds a member too"
    );
    for event in &events[accepted_at..] {
        assert_eq!(role_of(event), "VIEWER", "{event}");
    }
}

/// A write that creates an item locks the caller's membership first: a demotion in flight
/// makes it wait, and it is then decided with the new role (a viewer may not create).
#[tokio::test]
async fn a_role_change_committing_during_an_item_creation_decides_it() {
    let (app, bo, ws) = with_member_bo().await;
    let written = while_bo_is_demoted(&app, {
        let (app, bo, ws) = (app.clone(), bo.clone(), ws.clone());
        async move {
            bo.gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "late" }))
                .await
        }
    })
    .await;
    assert_eq!(error_codes(&written), ["FORBIDDEN"], "{written}");
    assert_eq!(
        item_rows(&app).await,
        (0, 0),
        "the old role wrote once more"
    );
}

/// A write that extends an item's stream reads the role, appends, then locks the membership
/// and checks the role still holds: a demotion committed meanwhile is seen (`CONFLICT`), and
/// nothing of the write stays.
#[tokio::test]
async fn a_role_change_committing_during_an_item_update_is_seen_by_that_write() {
    let (app, bo, ws) = with_member_bo().await;
    let created = bo
        .gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "early" }))
        .await;
    let id = created["data"]["createItem"]["item"]["id"].clone();
    let written = while_bo_is_demoted(&app, {
        let (app, bo) = (app.clone(), bo.clone());
        async move {
            bo.gql(
                &app,
                "mutation($id: ID!) { updateItem(input: { id: $id, expectedVersion: 1, title: \"late\" }) { position } }",
                json!({ "id": id }),
            )
            .await
        }
    })
    .await;
    assert_eq!(error_codes(&written), ["CONFLICT"], "{written}");
    assert_eq!(
        item_rows(&app).await,
        (1, 1),
        "the old role wrote once more"
    );
    // Tried again, the write is decided with the new role.
    let retried = bo
        .gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "late" }))
        .await;
    assert_eq!(error_codes(&retried), ["FORBIDDEN"], "{retried}");
}

/// An app where Ana owns a workspace and Bo is a member of it.
async fn with_member_bo() -> (TestApp, Session, String) {
    let app = TestApp::spawn().await;
    let (ana, bo) = (app.sign_up("Ana").await, app.sign_up("Bo").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    (app, bo, ws)
}

/// Runs `write` while a demotion of Bo to viewer is in flight — its transaction has changed
/// Bo's membership row and not committed (as the role change's own transaction does between
/// its append and its commit) — and commits the demotion once the write waits for it.
async fn while_bo_is_demoted(
    app: &TestApp,
    write: impl Future<Output = Value> + Send + 'static,
) -> Value {
    let mut demotion = app.db.pool().begin().await.unwrap();
    sqlx::query("UPDATE members SET role = 'VIEWER' WHERE user_id = (SELECT id FROM users WHERE email = 'Bo@example.com')")
        .execute(&mut *demotion)
        .await
        .unwrap();
    let write = tokio::spawn(write);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !write.is_finished(),
            "the write did not wait for the role change"
        );
        tokio::task::yield_now().await;
    }
    demotion.commit().await.unwrap();
    write.await.unwrap()
}

/// Rows of the items read model, and item events in the log.
async fn item_rows(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM events WHERE stream_type = 'item')",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn production_gives_no_field_suggestions() {
    let db = std::sync::Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_configured(&db, |config| {
        config.environment = api::config::Environment::Production;
        config.auth.jwt_secret = Some("a production secret of at least thirty-two bytes".into());
    })
    .await;
    let ana = app.sign_up("Ana").await;
    let answer = ana.gql(&app, "{ me { emai } }", Value::Null).await;
    assert_eq!(error_codes(&answer), ["BAD_USER_INPUT"], "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");

    let development = TestApp::spawn().await;
    let ana = development.sign_up("Ana").await;
    let answer = ana.gql(&development, "{ me { emai } }", Value::Null).await;
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Did you mean"), "the control: {message}");
}
