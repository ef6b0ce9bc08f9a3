//! The event stream: members read their workspace's log; analysts read any, pseudonymised.

use serde_json::{Value, json};

use crate::workspaces::{add_member, create_workspace};
use crate::{TestApp, error_codes};

const EVENTS: &str = "query($filter: EventsFilter, $first: Int, $after: String) {
    events(filter: $filter, first: $first, after: $after) {
        edges { node { position eventType streamType payload metadata } }
        pageInfo { hasNextPage endCursor } } }";

fn nodes_types(nodes: &[Value]) -> Vec<&str> {
    nodes
        .iter()
        .map(|n| n["eventType"].as_str().unwrap())
        .collect()
}

fn nodes(response: &Value) -> Vec<Value> {
    response["data"]["events"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Waits until the event at `position` is below the log's read horizon, which every log read
/// stays under and which a transaction of the shared test cluster (or the app's own
/// projections) can hold back for a moment. Fails after 30 s.
async fn wait_until_readable(log: &eventlog::EventLog, position: eventlog::Position) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while log.horizon().await.unwrap() <= position {
        assert!(
            std::time::Instant::now() < deadline,
            "the read horizon stayed at or below {position} for 30 s"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn members_read_their_workspace_log_in_order_and_resume_from_a_position() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("Ana").await, app.sign_up("Eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut written = Vec::new();
    for title in ["one", "two", "three"] {
        let created = ana.gql(&app, "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }", json!({ "w": ws, "t": title })).await;
        written.push(created["data"]["createItem"]["position"].clone());
    }
    let last = written.last().and_then(Value::as_str).unwrap();
    wait_until_readable(
        &eventlog::EventLog::new(app.db.pool().clone()),
        last.parse().unwrap(),
    )
    .await;
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
        positions[1..].iter().map(|p| json!(p)).collect::<Vec<_>>(),
        written,
        "each event at the position its mutation returned"
    );
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
    assert_eq!(nodes_types(&rest), ["ItemCreated", "ItemCreated"]);
    assert_eq!(
        rest.iter()
            .map(|n| n["position"].clone())
            .collect::<Vec<_>>(),
        [json!(positions[2]), json!(positions[3])],
        "resumed right after the given position"
    );
    let bounded = nodes(
        &ana.gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "upToPosition": positions[1] } }),
        )
        .await,
    );
    assert_eq!(
        bounded
            .iter()
            .map(|n| n["position"].clone())
            .collect::<Vec<_>>(),
        [json!(positions[0]), json!(positions[1])],
        "up to the given position, inclusive"
    );
    let items = nodes(
        &ana.gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "streamType": "item" } }),
        )
        .await,
    );
    let positions_of =
        |nodes: &[Value]| -> Vec<Value> { nodes.iter().map(|n| n["position"].clone()).collect() };
    assert_eq!(positions_of(&items), written, "the item events, only");
    let paged = ana
        .gql(
            &app,
            EVENTS,
            json!({ "filter": { "workspaceId": ws }, "first": 3 }),
        )
        .await;
    assert_eq!(
        positions_of(&nodes(&paged)),
        [
            json!(positions[0]),
            json!(positions[1]),
            json!(positions[2])
        ]
    );
    assert_eq!(paged["data"]["events"]["pageInfo"]["hasNextPage"], true);
    let next = ana.gql(&app, EVENTS, json!({ "filter": { "workspaceId": ws }, "after": paged["data"]["events"]["pageInfo"]["endCursor"] })).await;
    assert_eq!(
        positions_of(&nodes(&next)),
        [json!(positions[3])],
        "the next page starts right after the cursor"
    );
    assert_eq!(next["data"]["events"]["pageInfo"]["hasNextPage"], false);

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

#[tokio::test]
async fn events_ndjson_streams_the_log_exactly_and_resumes_from_a_position() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("Ana").await, app.sign_up("Eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    let workspace_uuid: uuid::Uuid = sqlx::query_scalar("SELECT id FROM workspaces")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    // 2,500 more events in the workspace, so the stream crosses several batches.
    for _ in 0..100 {
        append_retitles(&app, workspace_uuid, 25).await;
    }
    let expected: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE workspace_id = $1 ORDER BY tx_id, seq",
    )
    .bind(workspace_uuid)
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(expected.len(), 2_501);

    let fetch = |query: Vec<(&'static str, String)>, token: Option<String>| {
        let mut request = app.client.get(app.url("/events.ndjson")).query(&query);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    // Every stream ends with its trailer: complete, resumable after the last event sent.
    let lines = |body: &str| {
        let mut lines: Vec<Value> = body
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .collect();
        let trailer = lines.pop().expect("a trailer");
        let last = lines.last().map(|event| event["position"].clone());
        assert_eq!(trailer["end"]["complete"], true, "{trailer}");
        if let Some(last) = last {
            assert_eq!(trailer["end"]["position"], last, "{trailer}");
        }
        lines
    };

    let (status, body) = fetch(vec![("workspace", ws.clone())], Some(ana.token.clone())).await;
    assert_eq!(status, 200);
    let all = lines(&body);
    let ids: Vec<uuid::Uuid> = all
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, expected, "every event, once, in log order");

    let resume_at = all[999]["position"].as_str().unwrap().to_string();
    let (_, rest) = fetch(
        vec![("workspace", ws.clone()), ("after", resume_at)],
        Some(ana.token.clone()),
    )
    .await;
    let rest: Vec<uuid::Uuid> = lines(&rest)
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rest, expected[1000..]);

    assert_eq!(fetch(vec![("workspace", ws.clone())], None).await.0, 401);
    assert_eq!(
        fetch(vec![("workspace", ws.clone())], Some(eve.token.clone()))
            .await
            .0,
        404
    );
    assert_eq!(
        fetch(
            vec![("workspace", ws.clone()), ("after", "x".into())],
            Some(ana.token.clone())
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn an_events_ndjson_stream_stopped_by_an_error_says_so_in_its_last_line() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let workspace_uuid: uuid::Uuid = sqlx::query_scalar("SELECT id FROM workspaces")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    // 1,200 good events (more than one batch of the stream), then one the server cannot
    // decode (its metadata is not metadata), then more good ones.
    append_retitles(&app, workspace_uuid, 1_200).await;
    sqlx::query(
        "INSERT INTO events (event_id, stream_type, stream_id, stream_version, workspace_id,
                             event_type, schema_version, payload, metadata, recorded_at, hash)
         VALUES ($1, 'item', $2, 1, $3, 'ItemRetitled', 1, '{}', '{\"actor\": 5}', now(), '\\x00')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(uuid::Uuid::now_v7())
    .bind(workspace_uuid)
    .execute(app.db.pool())
    .await
    .unwrap();
    append_retitles(&app, workspace_uuid, 10).await;

    let body = app
        .client
        .get(app.url("/events.ndjson"))
        .query(&[("workspace", ws.as_str())])
        .bearer_auth(&ana.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let trailer = lines.pop().unwrap();
    assert_eq!(trailer["end"]["complete"], false, "{trailer}");
    assert_eq!(trailer["end"]["error"], "internal error", "{trailer}");
    // The first batch (1,000 events) came; the batch holding the bad event failed, and the
    // trailer says to resume after the last event sent.
    assert_eq!(lines.len(), 1_000);
    assert_eq!(
        trailer["end"]["position"],
        lines.last().unwrap()["position"]
    );
    assert!(lines.iter().all(|line| line.get("end").is_none()));
}

/// One upcasting path: an event stored at an old schema version comes out upcast, and as the
/// very same line, from `/events.ndjson` and from `chronicle events export` (which builds its
/// log handle with `EventLog::new`, as the CLI does).
#[tokio::test]
async fn the_cli_export_and_events_ndjson_give_identical_upcast_lines_for_old_schema_versions() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let workspace_uuid: uuid::Uuid = sqlx::query_scalar("SELECT id FROM workspaces")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    // `UserSignedUp` v1 had no `referred_by` (domain/src/upcast.rs).
    let log = eventlog::EventLog::new(app.db.pool().clone());
    let old = eventlog::NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "UserSignedUp".into(),
        schema_version: 1,
        payload: json!({ "user_id": uuid::Uuid::now_v7(), "email": "old@example.com",
                         "display_name": "Old", "referral_code": "OLD123" }),
        metadata: eventlog::Metadata::system("tests"),
    };
    let stream = eventlog::StreamRef {
        stream_type: "user",
        stream_id: uuid::Uuid::now_v7(),
        workspace_id: Some(workspace_uuid),
    };
    let appended = log
        .append(
            &stream,
            eventlog::ExpectedVersion::NoStream,
            std::slice::from_ref(&old),
        )
        .await
        .unwrap();
    wait_until_readable(&log, appended.position()).await;

    let http = app
        .client
        .get(app.url("/events.ndjson"))
        .query(&[("workspace", ws.as_str())])
        .bearer_auth(&ana.token)
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 200);
    let http = http.text().await.unwrap();
    let mut cli = Vec::new();
    api::operator::export_events(
        &log,
        &mut cli,
        api::operator::ExportFormat::Ndjson,
        None,
        Some(workspace_uuid),
        |_, _| {},
    )
    .await
    .unwrap();
    let cli = String::from_utf8(cli).unwrap();

    let line_of = |text: &str| {
        text.lines()
            .find(|line| line.contains(&old.event_id.to_string()))
            .unwrap_or_else(|| panic!("the old event is exported: {text}"))
            .to_string()
    };
    let (http_line, cli_line) = (line_of(&http), line_of(&cli));
    assert_eq!(http_line, cli_line);
    let event: Value = serde_json::from_str(&cli_line).unwrap();
    assert_eq!(event["schemaVersion"], 2, "{event}");
    assert_eq!(event["payload"]["referred_by"], Value::Null, "{event}");
    assert!(
        event["payload"]
            .as_object()
            .unwrap()
            .contains_key("referred_by")
    );
}

/// Appends `n` `ItemRetitled` events to a new item stream of the workspace, in one append.
async fn append_retitles(app: &TestApp, workspace_id: uuid::Uuid, n: usize) {
    let log = eventlog::EventLog::new(app.db.pool().clone());
    let stream = eventlog::StreamRef {
        stream_type: "item",
        stream_id: uuid::Uuid::now_v7(),
        workspace_id: Some(workspace_id),
    };
    let events: Vec<eventlog::NewEvent> = (0..n)
        .map(|i| eventlog::NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "ItemRetitled".into(),
            schema_version: 1,
            payload: json!({ "from": i.to_string(), "to": (i + 1).to_string() }),
            metadata: eventlog::Metadata::system("tests"),
        })
        .collect();
    log.append(&stream, eventlog::ExpectedVersion::NoStream, &events)
        .await
        .unwrap();
}
