use serde_json::json;

use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp, error_codes};

const INVITE: &str = "mutation($w: ID!, $email: String!, $role: Role!) {
    inviteMember(workspaceId: $w, email: $email, role: $role) { invite { id email role status } token position } }";
const ACCEPT: &str =
    "mutation($t: String!) { acceptInvite(token: $t) { workspace { name viewerRole } position } }";
const LIST: &str =
    "query($w: ID!) { invites(workspaceId: $w) { edges { node { email status } } } }";

#[tokio::test]
async fn an_invitee_accepts_once_and_becomes_a_member() {
    let app = TestApp::spawn().await;
    let (ana, bo, eve) = (
        app.sign_up("ana").await,
        app.sign_up("bo").await,
        app.sign_up("eve").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;

    let invited = ana
        .gql(
            &app,
            INVITE,
            json!({ "w": ws, "email": "BO@example.com", "role": "MEMBER" }),
        )
        .await;
    let token = invited["data"]["inviteMember"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{invited}"))
        .to_string();
    assert_eq!(
        invited["data"]["inviteMember"]["invite"]["status"],
        "PENDING"
    );

    let wrong_person = eve.gql(&app, ACCEPT, json!({ "t": token })).await;
    assert_eq!(error_codes(&wrong_person), vec!["FORBIDDEN"]);
    let unknown = bo.gql(&app, ACCEPT, json!({ "t": "not-a-token" })).await;
    assert_eq!(error_codes(&unknown), vec!["NOT_FOUND"]);

    let accepted = bo.gql(&app, ACCEPT, json!({ "t": token })).await;
    assert_eq!(
        accepted["data"]["acceptInvite"]["workspace"]["viewerRole"], "MEMBER",
        "{accepted}"
    );
    let again = bo.gql(&app, ACCEPT, json!({ "t": token })).await;
    assert_eq!(error_codes(&again), vec!["CONFLICT"]);

    let list = ana.gql(&app, LIST, json!({ "w": ws })).await;
    assert_eq!(
        list["data"]["invites"]["edges"][0]["node"]["status"], "ACCEPTED",
        "{list}"
    );
    // Members don't see invites; outsiders don't see the workspace.
    assert_eq!(
        error_codes(&bo.gql(&app, LIST, json!({ "w": ws })).await),
        vec!["FORBIDDEN"]
    );
    assert_eq!(
        error_codes(&eve.gql(&app, LIST, json!({ "w": ws })).await),
        vec!["NOT_FOUND"]
    );
}

#[tokio::test]
async fn only_owners_and_admins_invite_and_revoked_invites_are_dead() {
    let app = TestApp::spawn().await;
    let (ana, bo, cy) = (
        app.sign_up("ana").await,
        app.sign_up("bo").await,
        app.sign_up("cy").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;

    let by_member = bo
        .gql(
            &app,
            INVITE,
            json!({ "w": ws, "email": "cy@example.com", "role": "VIEWER" }),
        )
        .await;
    assert_eq!(error_codes(&by_member), vec!["FORBIDDEN"]);
    let bad_email = ana
        .gql(
            &app,
            INVITE,
            json!({ "w": ws, "email": "nope", "role": "VIEWER" }),
        )
        .await;
    assert_eq!(error_codes(&bad_email), vec!["BAD_USER_INPUT"]);

    let invited = ana
        .gql(
            &app,
            INVITE,
            json!({ "w": ws, "email": "cy@example.com", "role": "VIEWER" }),
        )
        .await;
    let invite = &invited["data"]["inviteMember"];
    let revoked = ana
        .gql(&app, "mutation($w: ID!, $i: ID!) { revokeInvite(workspaceId: $w, inviteId: $i) { invite { status } } }", json!({ "w": ws, "i": invite["invite"]["id"] }))
        .await;
    assert_eq!(
        revoked["data"]["revokeInvite"]["invite"]["status"], "REVOKED",
        "{revoked}"
    );
    let accept = cy.gql(&app, ACCEPT, json!({ "t": invite["token"] })).await;
    assert_eq!(error_codes(&accept), vec!["CONFLICT"]);
    let gone = cy
        .gql(
            &app,
            "query($w: ID!) { workspace(id: $w) { name } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(error_codes(&gone), vec!["NOT_FOUND"]);
}

#[tokio::test]
async fn after_the_trial_invites_are_feature_locked_until_upgrade() {
    let today = TestApp::spawn().await;
    let ana = today.sign_up("ana").await;
    let ws = create_workspace(&today, &ana, "Acme").await;
    let created = ana
        .gql(
            &today,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"During the trial\" }) { item { id } } }",
            json!({ "w": ws }),
        )
        .await;
    let item = created["data"]["createItem"]["item"]["id"].clone();
    assert!(item.is_string(), "{created}");
    // The same cluster, fifteen days later.
    let later = TestApp::spawn_in_future(&today.db, chrono::Duration::days(15)).await;

    let locked = ana
        .gql(
            &later,
            "query($w: ID!) { workspace(id: $w) { locked } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(locked["data"]["workspace"]["locked"], true, "{locked}");
    let invite = ana
        .gql(
            &later,
            INVITE,
            json!({ "w": ws, "email": "bo@example.com", "role": "MEMBER" }),
        )
        .await;
    assert_eq!(error_codes(&invite), vec!["FEATURE_LOCKED"]);
    // Everything already there stays readable and writable: the item is read, edited, and a
    // new one is added beside it.
    let items = "query($w: ID!) { items(workspaceId: $w, orderBy: { field: CREATED_AT, direction: ASC }) { edges { node { title } } } }";
    assert_eq!(
        ana.gql(&later, items, json!({ "w": ws })).await["data"]["items"]["edges"],
        json!([{ "node": { "title": "During the trial" } }])
    );
    let edited = ana
        .gql(
            &later,
            "mutation($id: ID!) { updateItem(input: { id: $id, expectedVersion: 1, title: \"After the trial\" }) { item { title version } } }",
            json!({ "id": item }),
        )
        .await;
    assert_eq!(
        edited["data"]["updateItem"]["item"],
        json!({ "title": "After the trial", "version": 2 }),
        "{edited}"
    );
    let added = ana
        .gql(
            &later,
            "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"Added later\" }) { item { title } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(
        added["data"]["createItem"]["item"]["title"], "Added later",
        "{added}"
    );
    assert_eq!(
        ana.gql(&later, items, json!({ "w": ws })).await["data"]["items"]["edges"],
        json!([
            { "node": { "title": "After the trial" } },
            { "node": { "title": "Added later" } },
        ])
    );

    let upgraded = ana
        .gql(
            &later,
            "mutation($w: ID!) { upgradePlan(id: $w) { workspace { locked } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(
        upgraded["data"]["upgradePlan"]["workspace"]["locked"], false,
        "{upgraded}"
    );
    let invite = ana
        .gql(
            &later,
            INVITE,
            json!({ "w": ws, "email": "bo@example.com", "role": "MEMBER" }),
        )
        .await;
    assert!(
        invite["data"]["inviteMember"]["token"].is_string(),
        "{invite}"
    );
}

/// `owner` invites `name@example.com` to `workspace` with `role` (`MEMBER`, `VIEWER`…) through
/// the API; `name` signs up and accepts with the token the invite returned. Returns them.
pub async fn invite_and_accept(
    app: &TestApp,
    owner: &Session,
    workspace: &str,
    name: &str,
    role: &str,
) -> Session {
    let invited = owner
        .gql(
            app,
            INVITE,
            json!({ "w": workspace, "email": format!("{name}@example.com"), "role": role }),
        )
        .await;
    let token = invited["data"]["inviteMember"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{invited}"))
        .to_string();
    let invitee = app.sign_up(name).await;
    let accepted = invitee.gql(app, ACCEPT, json!({ "t": token })).await;
    assert!(accepted["errors"].is_null(), "{accepted}");
    invitee
}
