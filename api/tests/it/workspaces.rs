use serde_json::{Value, json};

use crate::{Session, TestApp, error_codes};

pub const CREATE_WORKSPACE: &str = "mutation($name: String!) {
    createWorkspace(input: { name: $name, region: EU }) { workspace { id name plan locked viewerRole } position } }";

/// Creates a workspace as `owner` and returns its id.
pub async fn create_workspace(app: &TestApp, owner: &Session, name: &str) -> String {
    let response = owner
        .gql(app, CREATE_WORKSPACE, json!({ "name": name }))
        .await;
    response["data"]["createWorkspace"]["workspace"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .to_string()
}

/// Makes `user` a member of the workspace with `role`, the way the domain allows it today:
/// an invite from the owner, accepted by the user, written through the API's write path.
pub async fn add_member(
    app: &TestApp,
    owner: &Session,
    workspace: &str,
    user: &Session,
    role: domain::Role,
) {
    use domain::{Aggregate, Email, InviteId, UserId, WorkspaceCommand};
    let decode = |id: &str| {
        use base64::Engine;
        let text = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id)
                .unwrap(),
        )
        .unwrap();
        uuid::Uuid::parse_str(text.split_once(':').unwrap().1).unwrap()
    };
    let (workspace_id, owner_id, user_id) = (
        decode(workspace),
        UserId::from_uuid(decode(&owner.user_id)),
        UserId::from_uuid(decode(&user.user_id)),
    );
    let log = eventlog::EventLog::new(app.db.pool().clone());
    let writes = api::writes::Writes::new(log.clone());
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id.as_uuid())
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let email = Email::parse(&email).unwrap();
    let invite_id = InviteId::new();
    let now = chrono::Utc::now();
    let steps = [
        (
            owner_id,
            WorkspaceCommand::InviteMember {
                invite_id,
                email: email.clone(),
                role,
                token_hash: invite_id.to_string(),
            },
        ),
        (
            user_id,
            WorkspaceCommand::AcceptInvite {
                invite_id,
                token_hash: invite_id.to_string(),
                user_id,
                email,
            },
        ),
    ];
    for (actor, command) in steps {
        let loaded = log.load::<domain::Workspace>(workspace_id).await.unwrap();
        let events = loaded
            .state
            .decide(command, &domain::Context::user(now, actor))
            .unwrap();
        let stream = eventlog::StreamRef {
            stream_type: "workspace",
            stream_id: workspace_id,
            workspace_id: Some(workspace_id),
        };
        let mut tx = app.db.pool().begin().await.unwrap();
        writes
            .append(
                &mut tx,
                &stream,
                loaded.expected_version(),
                events,
                &eventlog::Metadata::system("tests"),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn an_owner_creates_renames_and_upgrades_a_workspace() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let created = ana
        .gql(&app, CREATE_WORKSPACE, json!({ "name": "Acme" }))
        .await;
    let workspace = &created["data"]["createWorkspace"];
    assert_eq!(workspace["workspace"]["plan"], "TRIAL", "{created}");
    assert_eq!(
        (
            workspace["workspace"]["locked"].as_bool(),
            workspace["workspace"]["viewerRole"].as_str()
        ),
        (Some(false), Some("OWNER"))
    );
    let id = workspace["workspace"]["id"].as_str().unwrap();
    let position = workspace["position"].as_str().unwrap().to_string();

    let renamed = ana.gql(&app, "mutation($id: ID!) { renameWorkspace(id: $id, name: \"Acme Inc\") { workspace { name version } position } }", json!({ "id": id })).await;
    assert_eq!(
        renamed["data"]["renameWorkspace"]["workspace"]["name"], "Acme Inc",
        "{renamed}"
    );
    assert!(
        renamed["data"]["renameWorkspace"]["position"]
            .as_str()
            .unwrap()
            > position.as_str(),
        "positions grow"
    );

    let upgraded = ana
        .gql(
            &app,
            "mutation($id: ID!) { upgradePlan(id: $id) { workspace { plan } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        upgraded["data"]["upgradePlan"]["workspace"]["plan"], "PRO",
        "{upgraded}"
    );
    let again = ana
        .gql(
            &app,
            "mutation($id: ID!) { upgradePlan(id: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_codes(&again), vec!["CONFLICT"]);

    let list = ana
        .gql(
            &app,
            "{ workspaces(first: 10) { edges { node { name } } pageInfo { hasNextPage } } }",
            Value::Null,
        )
        .await;
    assert_eq!(
        list["data"]["workspaces"]["edges"][0]["node"]["name"], "Acme Inc",
        "{list}"
    );

    // Every change went through the log, with who did it and from where.
    let metadata: Vec<Value> = sqlx::query_scalar(
        "SELECT metadata FROM events WHERE stream_type = 'workspace' ORDER BY stream_version",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(metadata.len(), 3);
    for m in &metadata {
        assert_eq!(m["actor"]["kind"], "user");
        assert_eq!(m["actor"]["role"], "OWNER");
        assert!(
            m["request_id"].is_string()
                && m["client_ip"] == "127.0.0.1"
                && m["operation_name"].is_null(),
            "{m}"
        );
    }
}

#[tokio::test]
async fn roles_decide_who_manages_members_and_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let (ana, bo, cy) = (
        app.sign_up("ana").await,
        app.sign_up("bo").await,
        app.sign_up("cy").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Admin).await;
    add_member(&app, &ana, &ws, &cy, domain::Role::Viewer).await;
    let change = "mutation($w: ID!, $u: ID!, $r: Role!) { changeMemberRole(workspaceId: $w, userId: $u, role: $r) { member { role } } }";
    let remove = "mutation($w: ID!, $u: ID!) { removeMember(workspaceId: $w, userId: $u) { removedUserId removedMemberId } }";

    // A viewer can't manage members; an admin can't make owners; the last owner can't step down.
    let viewer_try = cy
        .gql(
            &app,
            change,
            json!({ "w": ws, "u": bo.user_id, "r": "VIEWER" }),
        )
        .await;
    assert_eq!(error_codes(&viewer_try), vec!["FORBIDDEN"]);
    let admin_try = bo
        .gql(
            &app,
            change,
            json!({ "w": ws, "u": cy.user_id, "r": "OWNER" }),
        )
        .await;
    assert_eq!(error_codes(&admin_try), vec!["FORBIDDEN"]);
    let last_owner = ana
        .gql(
            &app,
            change,
            json!({ "w": ws, "u": ana.user_id, "r": "ADMIN" }),
        )
        .await;
    assert_eq!(error_codes(&last_owner), vec!["CONFLICT"]);
    let leave = ana
        .gql(&app, remove, json!({ "w": ws, "u": ana.user_id }))
        .await;
    assert_eq!(error_codes(&leave), vec!["CONFLICT"]);

    let promoted = bo
        .gql(
            &app,
            change,
            json!({ "w": ws, "u": cy.user_id, "r": "MEMBER" }),
        )
        .await;
    assert_eq!(
        promoted["data"]["changeMemberRole"]["member"]["role"], "MEMBER",
        "{promoted}"
    );
    let members = ana
        .gql(
            &app,
            "query($w: ID!) { workspace(id: $w) { members { edges { node { id user { id } } } } } }",
            json!({ "w": ws }),
        )
        .await;
    let cy_member = members["data"]["workspace"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["user"]["id"] == cy.user_id.as_str())
        .map(|e| e["node"]["id"].clone())
        .expect("Cy is a member");
    let removed = ana
        .gql(&app, remove, json!({ "w": ws, "u": cy.user_id }))
        .await;
    assert!(removed["data"]["removeMember"].is_object(), "{removed}");
    // The payload names the membership that is gone, as a node id a cache can drop.
    let member_id = removed["data"]["removeMember"]["removedMemberId"].clone();
    assert_eq!(member_id, cy_member);
    let node = ana
        .gql(
            &app,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": member_id }),
        )
        .await;
    assert_eq!(error_codes(&node), vec!["NOT_FOUND"], "{node}");
    let gone = cy
        .gql(
            &app,
            "query($w: ID!) { workspace(id: $w) { name } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(error_codes(&gone), vec!["NOT_FOUND"]);

    let members = ana.gql(&app, "query($w: ID!) { workspace(id: $w) { members { edges { node { role user { displayName } } } } } }", json!({ "w": ws })).await;
    let roles: Vec<&str> = members["data"]["workspace"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["OWNER", "ADMIN"], "{members}");
}

#[tokio::test]
async fn another_tenants_workspace_is_not_found_and_anonymous_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("ana").await, app.sign_up("eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    for query in [
        "query($w: ID!) { workspace(id: $w) { name } }",
        "query($w: ID!) { items(workspaceId: $w) { edges { node { id } } } }",
        "mutation($w: ID!) { renameWorkspace(id: $w, name: \"mine\") { position } }",
        "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"x\" }) { position } }",
    ] {
        let response = eve.gql(&app, query, json!({ "w": ws })).await;
        assert_eq!(
            error_codes(&response),
            vec!["NOT_FOUND"],
            "{query}: {response}"
        );
        let anonymous = app.graphql(query, json!({ "w": ws })).await;
        assert_eq!(
            error_codes(&anonymous),
            vec!["UNAUTHENTICATED"],
            "{query}: {anonymous}"
        );
    }
}

#[tokio::test]
async fn owners_and_support_staff_verify_the_audit_trail() {
    let app = TestApp::spawn().await;
    let (ana, bo, sue, eve) = (
        app.sign_up("ana").await,
        app.sign_up("bo").await,
        app.sign_up("sue").await,
        app.sign_up("eve").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Admin).await;
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, "sue@example.com", domain::StaffRole::Support, true)
        .await
        .unwrap();
    let verify = "query($w: ID!) { verifyAuditTrail(workspaceId: $w) { intact eventsChecked firstBroken { position reason } } }";

    let by_owner = ana.gql(&app, verify, json!({ "w": ws })).await;
    assert_eq!(
        by_owner["data"]["verifyAuditTrail"]["intact"], true,
        "{by_owner}"
    );
    assert_eq!(
        by_owner["data"]["verifyAuditTrail"]["eventsChecked"], 4,
        "created, invited, accepted, added"
    );
    let by_support = sue.gql(&app, verify, json!({ "w": ws })).await;
    assert_eq!(
        by_support["data"]["verifyAuditTrail"]["intact"], true,
        "{by_support}"
    );
    assert_eq!(
        error_codes(&bo.gql(&app, verify, json!({ "w": ws })).await),
        vec!["FORBIDDEN"]
    );
    assert_eq!(
        error_codes(&eve.gql(&app, verify, json!({ "w": ws })).await),
        vec!["NOT_FOUND"]
    );

    // A later item, so that the workspace has two streams.
    let created = ana
        .gql(
            &app,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"Q3\" }) { position } }",
            json!({ "w": ws }),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let positions = ana
        .gql(
            &app,
            "query($w: ID!) { events(filter: { workspaceId: $w }) { edges { node { position eventType } } } }",
            json!({ "w": ws }),
        )
        .await;
    let position_of = |event_type: &str| {
        positions["data"]["events"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{positions}"))
            .iter()
            .find(|e| e["node"]["eventType"] == event_type)
            .map(|e| e["node"]["position"].clone())
            .unwrap_or_else(|| panic!("no {event_type}: {positions}"))
    };

    // Three events edited by hand: two of the workspace's stream (the acceptance, then the
    // member it added) and the later item's creation.
    sqlx::raw_sql(
        "ALTER TABLE events DISABLE TRIGGER events_append_only;
         UPDATE events SET payload = jsonb_set(payload, '{role}', '\"OWNER\"') WHERE event_type = 'MemberAdded';
         UPDATE events SET payload = payload || '{\"by\": \"hand\"}' WHERE event_type = 'InviteAccepted';
         UPDATE events SET payload = jsonb_set(payload, '{title}', '\"Q4\"') WHERE event_type = 'ItemCreated';
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .execute(app.db.pool())
    .await
    .unwrap();
    let tampered = ana.gql(&app, verify, json!({ "w": ws })).await;
    assert_eq!(
        tampered["data"]["verifyAuditTrail"]["intact"], false,
        "{tampered}"
    );
    // The first broken link is the earliest edited event in log order, at the position the
    // event stream gives it: the acceptance, not the member added after it nor the item.
    assert_eq!(
        tampered["data"]["verifyAuditTrail"]["firstBroken"],
        json!({
            "position": position_of("InviteAccepted"),
            "reason": "hash does not match the event's content and its predecessor"
        }),
        "{tampered}"
    );
    assert_eq!(tampered["data"]["verifyAuditTrail"]["eventsChecked"], 5);
}
