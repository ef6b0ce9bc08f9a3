//! Audit history: who did what, when, from where, with before and after values.

use serde_json::{Value, json};

use crate::invites::invite_and_accept;
use crate::workspaces::{add_member, create_workspace};
use crate::{TestApp, error_codes};

const LOG: &str = "query($w: ID!, $filter: AuditFilter, $first: Int, $after: String) {
    auditLog(workspaceId: $w, filter: $filter, first: $first, after: $after) {
        edges { node { action entity summary actor { displayName email role system }
                       changes { field before after } requestId clientIp } }
        pageInfo { hasNextPage endCursor } } }";

fn summaries(response: &Value) -> Vec<String> {
    response["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|e| e["node"]["summary"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_scripted_story_reads_back_as_who_did_what_with_before_and_after() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("Ana").await, app.sign_up("Eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    // Bo joins the way users do: invited by Ana, accepting through the API.
    let bo = invite_and_accept(&app, &ana, &ws, "Bo", "VIEWER").await;
    let created = ana.gql(&app, "mutation($w: ID!) { createItem(input: { workspaceId: $w, title: \"Q3 invoice\", tags: [\"finance\"] }) { item { id } } }", json!({ "w": ws })).await;
    let item = created["data"]["createItem"]["item"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (mutation, variables) in [
        (
            "mutation($id: ID!) { updateItem(input: { id: $id, expectedVersion: 1, title: \"Q3 invoice (final)\" }) { position } }",
            json!({ "id": item }),
        ),
        (
            "mutation($id: ID!) { updateItem(input: { id: $id, expectedVersion: 2, tags: [\"finance\", \"q3\"] }) { position } }",
            json!({ "id": item }),
        ),
        (
            "mutation($id: ID!) { archiveItem(id: $id) { position } }",
            json!({ "id": item }),
        ),
        (
            "mutation($w: ID!, $u: ID!) { changeMemberRole(workspaceId: $w, userId: $u, role: ADMIN) { position } }",
            json!({ "w": ws, "u": bo.user_id }),
        ),
        (
            "mutation($id: ID!) { deleteItem(id: $id) { position } }",
            json!({ "id": item }),
        ),
    ] {
        let response = ana.gql(&app, mutation, variables).await;
        assert!(response["errors"].is_null(), "{response}");
    }

    let all = ana.gql(&app, LOG, json!({ "w": ws })).await;
    assert_eq!(
        summaries(&all),
        [
            "Ana deleted item 'Q3 invoice (final)'",
            "Ana changed Bo's role from VIEWER to ADMIN",
            "Ana archived item 'Q3 invoice (final)'",
            "Ana changed the tags of item 'Q3 invoice (final)' from [finance] to [finance, q3]",
            "Ana renamed item 'Q3 invoice' to 'Q3 invoice (final)'",
            "Ana created item 'Q3 invoice'",
            "Bo joined as VIEWER",
            "Bo accepted an invite",
            "Ana invited Bo@example.com as VIEWER",
            "Ana created workspace 'Acme' in region eu",
        ]
    );
    let retitle = &all["data"]["auditLog"]["edges"][4]["node"];
    assert_eq!(
        retitle["changes"],
        json!([{ "field": "title", "before": "Q3 invoice", "after": "Q3 invoice (final)" }])
    );
    assert_eq!(
        retitle["actor"],
        json!({ "displayName": "Ana", "email": "Ana@example.com", "role": "OWNER", "system": false })
    );
    assert_eq!(retitle["clientIp"], "127.0.0.1");
    assert!(retitle["requestId"].is_string());
    let role_change = &all["data"]["auditLog"]["edges"][1]["node"];
    assert_eq!(
        role_change["changes"],
        json!([{ "field": "role", "before": "VIEWER", "after": "ADMIN" }])
    );

    // Filters return exactly the right entries.
    let members = ana
        .gql(
            &app,
            LOG,
            json!({ "w": ws, "filter": { "entity": "MEMBER" } }),
        )
        .await;
    assert_eq!(
        summaries(&members),
        [
            "Ana changed Bo's role from VIEWER to ADMIN",
            "Bo joined as VIEWER"
        ]
    );
    let retitles = ana
        .gql(
            &app,
            LOG,
            json!({ "w": ws, "filter": { "eventTypes": ["ItemRetitled", "ItemArchived"] } }),
        )
        .await;
    let types_only = ana
        .gql(
            &app,
            "query($w: ID!) { auditLog(workspaceId: $w, filter: { eventTypes: [\"ItemRetitled\", \"ItemArchived\"] }) { edges { node { action } } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(
        types_only["data"]["auditLog"]["edges"],
        json!([
            { "node": { "action": "ItemArchived" } },
            { "node": { "action": "ItemRetitled" } },
        ]),
        "{types_only}"
    );
    assert_eq!(
        summaries(&retitles),
        [
            "Ana archived item 'Q3 invoice (final)'",
            "Ana renamed item 'Q3 invoice' to 'Q3 invoice (final)'",
        ]
    );
    let by_ana = ana.gql(&app, LOG, json!({ "w": ws, "filter": { "actorId": ana.user_id, "entity": "ITEM", "oldestFirst": true } })).await;
    assert_eq!(
        summaries(&by_ana),
        [
            "Ana created item 'Q3 invoice'",
            "Ana renamed item 'Q3 invoice' to 'Q3 invoice (final)'",
            "Ana changed the tags of item 'Q3 invoice (final)' from [finance] to [finance, q3]",
            "Ana archived item 'Q3 invoice (final)'",
            "Ana deleted item 'Q3 invoice (final)'",
        ]
    );
    // Bo's own entries, by actor: what he did, not what was done to him.
    let by_bo = ana
        .gql(
            &app,
            LOG,
            json!({ "w": ws, "filter": { "actorId": bo.user_id } }),
        )
        .await;
    assert_eq!(
        summaries(&by_bo),
        ["Bo joined as VIEWER", "Bo accepted an invite"]
    );
    let future = ana
        .gql(
            &app,
            LOG,
            json!({ "w": ws, "filter": { "from": "2999-01-01T00:00:00Z" } }),
        )
        .await;
    assert!(summaries(&future).is_empty());

    // Paging newest first: no repeats, no gaps.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ana
            .gql(&app, LOG, json!({ "w": ws, "first": 3, "after": after }))
            .await;
        paged.extend(summaries(&page));
        if !page["data"]["auditLog"]["pageInfo"]["hasNextPage"]
            .as_bool()
            .unwrap()
        {
            break;
        }
        after = page["data"]["auditLog"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_string);
    }
    assert_eq!(paged, summaries(&all));

    // The item's own history, oldest first, survives its deletion; outsiders see nothing.
    let history = bo
        .gql(
            &app,
            "query($id: ID!) { itemHistory(id: $id) { edges { node { action } } } }",
            json!({ "id": item }),
        )
        .await;
    let actions: Vec<&str> = history["data"]["itemHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "ItemCreated",
            "ItemRetitled",
            "ItemRetagged",
            "ItemArchived",
            "ItemDeleted"
        ]
    );
    let outsider = eve
        .gql(
            &app,
            "query($id: ID!) { itemHistory(id: $id) { edges { cursor } } }",
            json!({ "id": item }),
        )
        .await;
    assert_eq!(error_codes(&outsider), vec!["NOT_FOUND"]);
    assert_eq!(
        error_codes(&eve.gql(&app, LOG, json!({ "w": ws })).await),
        vec!["NOT_FOUND"]
    );
}

#[tokio::test]
async fn members_below_admin_cannot_read_the_audit_log() {
    let app = TestApp::spawn().await;
    let (ana, bo) = (app.sign_up("Ana").await, app.sign_up("Bo").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    assert_eq!(
        error_codes(&bo.gql(&app, LOG, json!({ "w": ws })).await),
        vec!["FORBIDDEN"]
    );
}

#[tokio::test]
async fn support_staff_read_any_audit_log_only_with_a_reason_which_is_recorded() {
    let app = TestApp::spawn().await;
    let (ana, sue, eve) = (
        app.sign_up("Ana").await,
        app.sign_up("Sue").await,
        app.sign_up("Eve").await,
    );
    let ws = create_workspace(&app, &ana, "Acme").await;
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, "Sue@example.com", domain::StaffRole::Support, true)
        .await
        .unwrap();
    let read = "query($w: ID!, $reason: String) { auditLog(workspaceId: $w, reason: $reason) {
        edges { node { action summary staffReason actor { displayName role } } } } }";

    let without = sue.gql(&app, read, json!({ "w": ws })).await;
    assert_eq!(error_codes(&without), vec!["FORBIDDEN"], "{without}");
    let too_short = sue.gql(&app, read, json!({ "w": ws, "reason": "x" })).await;
    assert_eq!(error_codes(&too_short), vec!["BAD_USER_INPUT"]);
    let outsider = eve
        .gql(&app, read, json!({ "w": ws, "reason": "just looking" }))
        .await;
    assert_eq!(error_codes(&outsider), vec!["NOT_FOUND"]);

    let with = sue
        .gql(
            &app,
            read,
            json!({ "w": ws, "reason": "ticket #42: items vanished" }),
        )
        .await;
    let newest = &with["data"]["auditLog"]["edges"][0]["node"];
    assert_eq!(newest["action"], "StaffAccessedAuditLog", "{with}");
    assert_eq!(newest["staffReason"], "ticket #42: items vanished");
    assert_eq!(
        newest["actor"],
        json!({ "displayName": "Sue", "role": "SUPPORT" })
    );

    // The owner sees the look in their workspace's history.
    let owner_view = ana.gql(&app, read, json!({ "w": ws })).await;
    let summaries: Vec<&str> = owner_view["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries[0],
        "Sue (support staff) read the audit log: ticket #42: items vanished"
    );
    // Refused attempts recorded nothing.
    assert_eq!(
        summaries
            .iter()
            .filter(|s| s.contains("support staff"))
            .count(),
        1
    );
}

const PAGE: &str = "query($w: ID!, $first: Int, $after: String) {
    auditLog(workspaceId: $w, first: $first, after: $after) {
        edges { node { position action } } pageInfo { hasNextPage endCursor } } }";

/// Newest-first pages stay below the read horizon: an append that commits late, below a
/// cursor already handed out, would otherwise never appear on any later page. Paged from the
/// top while an append transaction is held open, the pages hold every event at or below the
/// first one shown, as the log has them once it has committed.
#[tokio::test]
async fn newest_first_audit_pages_never_miss_an_event_that_commits_late() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let workspace_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM workspaces")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let create = "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }";
    for title in ["one", "two"] {
        ana.gql(&app, create, json!({ "w": ws, "t": title })).await;
    }

    // An append that takes its position now and commits late.
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    let item = domain::ItemId::new();
    let late = domain::ItemEvent::ItemCreated {
        item_id: item,
        workspace_id: domain::WorkspaceId::from_uuid(workspace_id),
        title: domain::ItemTitle::parse("late").unwrap(),
        body: domain::ItemBody::parse("").unwrap(),
        tags: domain::Tags::parse(vec![]).unwrap(),
        status: domain::ItemStatus::Draft,
        author: domain::UserId::from_uuid(uuid::Uuid::nil()),
        created_at: chrono::Utc::now(),
    };
    let stream = eventlog::StreamRef {
        stream_type: "item",
        stream_id: item.as_uuid(),
        workspace_id: Some(workspace_id),
    };
    let mut held = app.db.pool().begin().await.unwrap();
    writes
        .append(
            &mut held,
            &stream,
            eventlog::ExpectedVersion::NoStream,
            vec![late],
            &eventlog::Metadata::system("late"),
        )
        .await
        .unwrap();
    // A later append commits at once.
    ana.gql(&app, create, json!({ "w": ws, "t": "three" }))
        .await;

    let page = |after: Option<String>| {
        let (app, ana, ws) = (&app, &ana, &ws);
        async move {
            let response = ana
                .gql(app, PAGE, json!({ "w": ws, "first": 2, "after": after }))
                .await;
            let connection = response["data"]["auditLog"].clone();
            assert!(connection.is_object(), "{response}");
            connection
        }
    };
    let first = page(None).await;
    held.commit().await.unwrap();
    let mut shown: Vec<String> = Vec::new();
    let mut connection = first.clone();
    loop {
        for edge in connection["edges"].as_array().unwrap() {
            shown.push(edge["node"]["position"].as_str().unwrap().to_string());
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        let cursor = connection["pageInfo"]["endCursor"].as_str().unwrap();
        connection = page(Some(cursor.to_string())).await;
    }

    let top = first["edges"][0]["node"]["position"]
        .as_str()
        .unwrap()
        .to_string();
    let everything = ana.gql(&app, PAGE, json!({ "w": ws, "first": 100 })).await;
    let expected: Vec<String> = everything["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["position"].as_str().unwrap().to_string())
        .filter(|position| *position <= top)
        .collect();
    assert_eq!(
        shown, expected,
        "every event at or below the first page's top, each once"
    );
    assert_eq!(
        everything["data"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "the late one is in the log: {everything}"
    );
}

/// Support staff reading under load: every look is recorded (each decided on the fresh
/// version after losing a race), none fails with CONFLICT.
#[tokio::test]
async fn concurrent_staff_reads_all_succeed_and_are_all_recorded() {
    let app = TestApp::spawn().await;
    let (ana, sue) = (app.sign_up("Ana").await, app.sign_up("Sue").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, "Sue@example.com", domain::StaffRole::Support, true)
        .await
        .unwrap();
    let read =
        "query($w: ID!, $reason: String) { auditLog(workspaceId: $w, reason: $reason, first: 1) {
        edges { node { action } } } }";
    let looks = (0..12).map(|n| {
        let (app, sue, ws) = (app.clone(), sue.clone(), ws.clone());
        tokio::spawn(async move {
            sue.gql(
                &app,
                read,
                json!({ "w": ws, "reason": format!("ticket #{n}: checking") }),
            )
            .await
        })
    });
    for look in futures::future::join_all(looks).await {
        let response = look.unwrap();
        assert!(response["errors"].is_null(), "{response}");
    }
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'StaffAccessedAuditLog'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(recorded, 12);
}

#[tokio::test]
async fn a_real_invite_and_its_acceptance_read_back_with_who_did_them_and_from_where() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    invite_and_accept(&app, &ana, &ws, "Vic", "MEMBER").await;

    let log = ana.gql(&app, LOG, json!({ "w": ws })).await;
    let edges = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{log}"));
    let entries: Vec<Value> = edges
        .iter()
        .map(|e| {
            let mut node = e["node"].clone();
            let request_id = node.as_object_mut().unwrap().remove("requestId");
            assert!(request_id.as_ref().is_some_and(Value::is_string), "{node}");
            node
        })
        .collect();
    let actor = |name: &str, role: &str| json!({ "displayName": name, "email": format!("{name}@example.com"), "role": role, "system": false });
    let change = |field: &str, before: Value, after: &str| json!({ "field": field, "before": before, "after": after });
    assert_eq!(
        entries,
        [
            json!({
                "action": "MemberAdded", "entity": "MEMBER", "summary": "Vic joined as MEMBER",
                "actor": actor("Vic", "MEMBER"), "clientIp": "127.0.0.1",
                "changes": [change("role", Value::Null, "MEMBER")],
            }),
            json!({
                "action": "InviteAccepted", "entity": "INVITE", "summary": "Vic accepted an invite",
                "actor": actor("Vic", "MEMBER"), "clientIp": "127.0.0.1",
                "changes": [change("status", json!("PENDING"), "ACCEPTED")],
            }),
            json!({
                "action": "InviteCreated", "entity": "INVITE",
                "summary": "Ana invited Vic@example.com as MEMBER",
                "actor": actor("Ana", "OWNER"), "clientIp": "127.0.0.1",
                "changes": [
                    change("email", Value::Null, "Vic@example.com"),
                    change("role", Value::Null, "MEMBER"),
                ],
            }),
            json!({
                "action": "WorkspaceCreated", "entity": "WORKSPACE",
                "summary": "Ana created workspace 'Acme' in region eu",
                "actor": actor("Ana", "OWNER"), "clientIp": "127.0.0.1",
                "changes": entries[3]["changes"],
            }),
        ],
        "{log}"
    );
}
