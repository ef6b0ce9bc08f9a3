//! Subscriptions over WebSocket (`graphql-transport-ws`): authentication in `connection_init`,
//! the event feed (history then live, exactly once, in log order) and `itemChanged`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp};

pub(crate) const CREATE_ITEM: &str = "mutation($w: ID!, $t: String!) {
    createItem(input: { workspaceId: $w, title: $t }) { item { id } position } }";

/// A `graphql-transport-ws` client.
pub(crate) struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub(crate) struct Closed {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl Client {
    /// Opens a socket to `/graphql` and sends `connection_init` with `payload`.
    pub(crate) async fn open(app: &TestApp, payload: Value) -> Client {
        let mut request = format!("ws://{}/graphql", app.address)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        let mut client = Client { socket };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        client
    }

    /// Opens a connection as `session` and waits for the server's acknowledgement.
    pub(crate) async fn connect(app: &TestApp, session: &Session) -> Client {
        let mut client = Client::open(
            app,
            json!({ "authorization": format!("Bearer {}", session.token) }),
        )
        .await;
        let ack = client.next().await.expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe",
                          "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next protocol message, or how the connection closed.
    pub(crate) async fn next(&mut self) -> Result<Value, Closed> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.socket.next())
                .await
                .expect("the server answers within 20 s");
            match frame {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(
                        Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                        |f| Closed {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        },
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket failed: {err}"),
                None => {
                    return Err(Closed {
                        code: 1006,
                        reason: String::new(),
                    });
                }
            }
        }
    }

    /// The payload of the next `next` message of subscription `id`.
    pub(crate) async fn data(&mut self, id: &str) -> Value {
        let message = self.next().await.expect("open connection");
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["id"], id, "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"].clone()
    }

    /// The error codes subscription `id` ended with (execution errors arrive in a `next`
    /// message, followed by `complete`).
    pub(crate) async fn error_codes(&mut self, id: &str) -> Vec<String> {
        let message = self.next().await.expect("open connection");
        assert_eq!(message["id"], id, "{message}");
        let codes = crate::error_codes(&message["payload"]);
        assert!(!codes.is_empty(), "{message}");
        let complete = self.next().await.expect("open connection");
        assert_eq!(complete["type"], "complete", "{complete}");
        codes
    }
}

pub(crate) const EVENTS: &str = "subscription($filter: EventsFilter, $from: String) {
    events(filter: $filter, fromPosition: $from) { position eventId eventType } }";

#[tokio::test]
async fn a_subscriber_joining_while_five_writers_append_receives_every_event_once_in_order() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    const WRITERS: usize = 5;
    const ITEMS_EACH: usize = 40;

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (app, ana, ws) = (app.clone(), ana.clone(), ws.clone());
            tokio::spawn(async move {
                for n in 0..ITEMS_EACH {
                    let response = ana
                        .gql(
                            &app,
                            CREATE_ITEM,
                            json!({ "w": ws, "t": format!("w{writer} #{n}") }),
                        )
                        .await;
                    assert!(response["data"]["createItem"].is_object(), "{response}");
                }
            })
        })
        .collect();
    // Join mid-way: some events are history, the rest arrive live.
    let count = || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_type = 'item'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        n as usize
    };
    while count().await < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut client = Client::connect(&app, &ana).await;
    client
        .subscribe("feed", EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    let written_when_joined = count().await;

    let expected = 1 + WRITERS * ITEMS_EACH; // WorkspaceCreated and every ItemCreated
    let mut received = Vec::new();
    while received.len() < expected {
        let data = client.data("feed").await;
        received.push(data["events"]["eventId"].as_str().unwrap().to_string());
    }
    assert!(
        written_when_joined < WRITERS * ITEMS_EACH,
        "the writers were still appending when the subscriber joined"
    );
    for writer in writers {
        writer.await.unwrap();
    }

    let log: Vec<String> = sqlx::query_scalar(
        "SELECT event_id::text FROM events WHERE workspace_id = (
             SELECT workspace_id FROM events WHERE event_type = 'WorkspaceCreated')
         ORDER BY tx_id, seq",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(received, log, "every event exactly once, in log order");

    // Nothing more arrives: a write after the comparison is the next message.
    ana.gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "after" }))
        .await;
    let next = client.data("feed").await;
    assert_eq!(next["events"]["eventType"], "ItemCreated");
    assert!(!received.contains(&next["events"]["eventId"].as_str().unwrap().to_string()));
}

#[tokio::test]
async fn the_feed_resumes_after_a_given_position_and_pseudonymises_for_analysts() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let first = ana
        .gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "one" }))
        .await;
    let from = first["data"]["createItem"]["position"]
        .as_str()
        .unwrap()
        .to_string();
    ana.gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "two" }))
        .await;

    let mut client = Client::connect(&app, &ana).await;
    client
        .subscribe(
            "feed",
            "subscription($filter: EventsFilter, $from: String) {
                events(filter: $filter, fromPosition: $from) { position payload } }",
            json!({ "filter": { "workspaceId": ws }, "from": from }),
        )
        .await;
    let data = client.data("feed").await;
    assert_eq!(data["events"]["payload"]["title"], "two");
    assert!(data["events"]["position"].as_str().unwrap() > from.as_str());

    // An analyst follows every workspace, pseudonymised.
    let ivy = app.sign_up("Ivy").await;
    grant_analyst(&app, "ivy@example.com").await;
    let mut analyst = Client::connect(&app, &ivy).await;
    analyst
        .subscribe(
            "all",
            "subscription { events(filter: { eventTypes: [\"UserSignedUp\"] }) { payload } }",
            json!({}),
        )
        .await;
    let data = analyst.data("all").await;
    let email = data["events"]["payload"]["email"].as_str().unwrap();
    assert!(email.starts_with("email-"), "{data}");
    assert!(!email.contains("ana"), "{data}");
}

#[tokio::test]
async fn item_changed_delivers_the_item_after_each_change_and_only_to_members() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("Ana").await, app.sign_up("Eve").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    let other = create_workspace(&app, &eve, "Other").await;
    let mut client = Client::connect(&app, &ana).await;
    let query =
        "subscription($w: ID!, $from: String) { itemChanged(workspaceId: $w, fromPosition: $from) {
        position eventType item { id title status deleted } } }";
    // The changes below come after the log's head now, however long the server takes to
    // start the subscription.
    let head = ana.gql(&app, "{ logPosition }", Value::Null).await["data"]["logPosition"].clone();
    client
        .subscribe("items", query, json!({ "w": ws, "from": head }))
        .await;

    let created = ana
        .gql(&app, CREATE_ITEM, json!({ "w": ws, "t": "Q3 invoice" }))
        .await;
    let id = created["data"]["createItem"]["item"]["id"].clone();
    ana.gql(
        &app,
        "mutation($id: ID!) {
            updateItem(input: { id: $id, expectedVersion: 1, title: \"Q3 invoice (final)\" }) { position } }",
        json!({ "id": id }),
    )
    .await;
    // Another workspace's change is not delivered.
    eve.gql(&app, CREATE_ITEM, json!({ "w": other, "t": "secret" }))
        .await;
    ana.gql(
        &app,
        "mutation($id: ID!) { deleteItem(id: $id) { position } }",
        json!({ "id": id }),
    )
    .await;

    let changes: Vec<Value> = [
        client.data("items").await,
        client.data("items").await,
        client.data("items").await,
    ]
    .into_iter()
    .map(|d| d["itemChanged"].clone())
    .collect();
    let summary: Vec<(&str, &str, bool)> = changes
        .iter()
        .map(|c| {
            (
                c["eventType"].as_str().unwrap(),
                c["item"]["title"].as_str().unwrap(),
                c["item"]["deleted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ItemCreated", "Q3 invoice", false),
            ("ItemRetitled", "Q3 invoice (final)", false),
            ("ItemDeleted", "Q3 invoice (final)", true),
        ]
    );
    assert!(changes.iter().all(|c| c["item"]["id"] == id));

    // A non-member is told the workspace does not exist.
    let mut outsider = Client::connect(&app, &eve).await;
    outsider.subscribe("x", query, json!({ "w": ws })).await;
    assert_eq!(outsider.error_codes("x").await, ["NOT_FOUND"]);

    // A new member resumes from a position and gets the rest.
    let bob = app.sign_up("Bob").await;
    add_member(&app, &ana, &ws, &bob, domain::Role::Viewer).await;
    let mut viewer = Client::connect(&app, &bob).await;
    viewer
        .subscribe(
            "v",
            "subscription($w: ID!, $from: String) { itemChanged(workspaceId: $w, fromPosition: $from) {
                eventType item { title } } }",
            json!({ "w": ws, "from": changes[0]["position"] }),
        )
        .await;
    let resumed = viewer.data("v").await;
    assert_eq!(resumed["itemChanged"]["eventType"], "ItemRetitled");
}

#[tokio::test]
async fn connections_without_a_valid_token_are_refused() {
    let app = TestApp::spawn().await;
    let mut anonymous = Client::open(&app, json!({})).await;
    let closed = anonymous.next().await.unwrap_err();
    assert_eq!(closed.code, 4403, "{closed:?}");
    assert!(closed.reason.contains("access token"), "{closed:?}");

    let mut forged = Client::open(&app, json!({ "authorization": "Bearer not.a.jwt" })).await;
    assert_eq!(forged.next().await.unwrap_err().code, 4403);

    // The HTTP endpoint still serves plain GraphQL next to the WebSocket one.
    let response = app.graphql("{ __typename }", json!({})).await;
    assert_eq!(response["data"]["__typename"], "Query");
}

#[tokio::test]
async fn a_subscription_refuses_bad_input_with_a_typed_error() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut client = Client::connect(&app, &ana).await;
    client
        .subscribe(
            "a",
            EVENTS,
            json!({ "filter": { "workspaceId": ws }, "from": "not-a-position" }),
        )
        .await;
    assert_eq!(client.error_codes("a").await, ["BAD_USER_INPUT"]);
    client
        .subscribe(
            "b",
            EVENTS,
            json!({ "filter": { "workspaceId": ws, "upToPosition": "0" } }),
        )
        .await;
    assert_eq!(client.error_codes("b").await, ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn the_connection_closes_when_the_access_token_expires() {
    // Sign-up (argon2) and set-up happen on a node issuing ordinary tokens; the short-lived
    // token comes from a refresh (no hashing) on a node issuing 4-second ones, right before
    // connecting, so the lifetime only has to cover the connection's first steps.
    let setup = TestApp::spawn().await;
    let ana = setup.sign_up("Ana").await;
    let ws = create_workspace(&setup, &ana, "Acme").await;
    let app = TestApp::spawn_configured(&setup.db, |config| {
        config.auth.access_ttl = chrono::Duration::seconds(4);
    })
    .await;
    let refreshed = app
        .graphql(
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }",
            json!({ "t": ana.refresh_token }),
        )
        .await;
    let ana = Session {
        token: refreshed["data"]["refreshToken"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{refreshed}"))
            .to_string(),
        ..ana
    };
    let mut client = Client::connect(&app, &ana).await;
    client
        .subscribe("feed", EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    assert_eq!(
        client.data("feed").await["events"]["eventType"],
        "WorkspaceCreated"
    );
    let closed = client.next().await.unwrap_err();
    assert_eq!(closed.code, 4403, "{closed:?}");
    assert!(closed.reason.contains("expired"), "{closed:?}");
}

/// Grants ANALYST the way `chronicle staff grant` does.
async fn grant_analyst(app: &TestApp, email: &str) {
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, email, domain::StaffRole::Analyst, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn logging_out_closes_the_sessions_subscriptions() {
    let db = std::sync::Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_configured(&db, |config| {
        config.session_recheck = Duration::from_millis(200);
    })
    .await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut client = Client::connect(&app, &ana).await;
    client
        .subscribe("feed", EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    assert_eq!(
        client.data("feed").await["events"]["eventType"],
        "WorkspaceCreated"
    );
    let response = app
        .graphql(
            "mutation($t: String!) { logOut(refreshToken: $t) }",
            json!({ "t": ana.refresh_token }),
        )
        .await;
    assert_eq!(response["data"]["logOut"], true, "{response}");
    let closed = client.next().await.unwrap_err();
    assert_eq!(closed.code, 4403, "{closed:?}");
    assert!(closed.reason.contains("session"), "{closed:?}");
}

const ITEM_CHANGED: &str = "subscription($w: ID!) { itemChanged(workspaceId: $w) { position } }";

#[tokio::test]
async fn a_socket_runs_at_most_100_operations_and_answers_the_rest_with_an_error() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut client = Client::connect(&app, &ana).await;
    for n in 0..1_000 {
        client
            .subscribe(&format!("s{n}"), ITEM_CHANGED, json!({ "w": ws }))
            .await;
    }
    // The first 100 run (and say nothing until an item changes); the other 900 are refused.
    let mut refused = Vec::new();
    while refused.len() < 900 {
        let message = client.next().await.expect("open connection");
        assert_eq!(message["type"], "error", "{message}");
        assert_eq!(
            crate::error_codes(&json!({ "errors": message["payload"] })),
            ["RATE_LIMITED"]
        );
        refused.push(message["id"].as_str().unwrap().to_string());
    }
    let expected: Vec<String> = (100..1_000).map(|n| format!("s{n}")).collect();
    assert_eq!(refused, expected);

    // Ending one makes room for one more, which runs.
    client.send(json!({ "id": "s0", "type": "complete" })).await;
    let complete = client.next().await.expect("open connection");
    assert_eq!(
        (complete["type"].as_str(), complete["id"].as_str()),
        (Some("complete"), Some("s0"))
    );
    client
        .subscribe("fresh", EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    let first = client.data("fresh").await;
    assert_eq!(first["events"]["eventType"], "WorkspaceCreated");
    client
        .subscribe(
            "one-too-many",
            EVENTS,
            json!({ "filter": { "workspaceId": ws } }),
        )
        .await;
    let message = client.next().await.expect("open connection");
    assert_eq!(
        (message["type"].as_str(), message["id"].as_str()),
        (Some("error"), Some("one-too-many"))
    );
}

#[tokio::test]
async fn a_user_holds_at_most_ten_sockets_on_a_node() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(Client::connect(&app, &ana).await);
    }
    let mut eleventh = Client::open(
        &app,
        json!({ "authorization": format!("Bearer {}", ana.token) }),
    )
    .await;
    let closed = eleventh.next().await.expect_err("refused");
    assert_eq!(closed.code, 4429, "{closed:?}");

    // Another user is not affected, and a closed socket frees its place.
    let bo = app.sign_up("Bo").await;
    Client::connect(&app, &bo).await;
    let mut first = open.remove(0);
    first.socket.close(None).await.unwrap();
    while first.next().await.is_ok() {}
    let mut again = None;
    for _ in 0..100 {
        let mut client = Client::open(
            &app,
            json!({ "authorization": format!("Bearer {}", ana.token) }),
        )
        .await;
        match client.next().await {
            Ok(ack) if ack["type"] == "connection_ack" => {
                again = Some(client);
                break;
            }
            // The server may not have counted the closed socket out yet.
            _ => tokio::task::yield_now().await,
        }
    }
    assert!(
        again.is_some(),
        "a place freed by a closed socket is reused"
    );
}

#[tokio::test]
async fn members_and_viewers_may_not_follow_the_raw_log_but_follow_their_items() {
    let app = TestApp::spawn().await;
    let (ana, vi) = (app.sign_up("Ana").await, app.sign_up("Vi").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    crate::workspaces::add_member(&app, &ana, &ws, &vi, domain::Role::Viewer).await;
    let mut client = Client::connect(&app, &vi).await;
    client
        .subscribe("log", EVENTS, json!({ "filter": { "workspaceId": ws } }))
        .await;
    assert_eq!(client.error_codes("log").await, ["FORBIDDEN"]);
    let head = ana.gql(&app, "{ logPosition }", Value::Null).await["data"]["logPosition"].clone();
    client
        .subscribe(
            "items",
            "subscription($w: ID!, $from: String) { itemChanged(workspaceId: $w, fromPosition: $from) { position } }",
            json!({ "w": ws, "from": head }),
        )
        .await;
    let created = ana
        .gql(
            &app,
            CREATE_ITEM,
            json!({ "w": ws, "t": "seen by a viewer" }),
        )
        .await;
    let position = created["data"]["createItem"]["position"].clone();
    let change = client.data("items").await;
    assert_eq!(change["itemChanged"]["position"], position);
}

#[tokio::test]
async fn each_operation_over_a_socket_gets_its_own_request_id_and_idempotency_key() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut client = Client::connect(&app, &ana).await;
    for (id, key) in [("m1", "key-1"), ("m2", "key-2"), ("m3", "key-1")] {
        client
            .send(json!({ "id": id, "type": "subscribe", "payload": {
                "query": CREATE_ITEM, "variables": { "w": ws, "t": id },
                "extensions": { "idempotencyKey": key } } }))
            .await;
        let answer = client.next().await.expect("open connection");
        assert_eq!(answer["type"], "next", "{answer}");
        let complete = client.next().await.expect("open connection");
        assert_eq!(complete["type"], "complete");
        if id == "m3" {
            // key-1 with other input: refused, as over HTTP.
            assert_eq!(
                crate::error_codes(&answer["payload"]),
                ["BAD_USER_INPUT"],
                "{answer}"
            );
        } else {
            assert!(answer["payload"]["errors"].is_null(), "{answer}");
        }
    }
    let request_ids: Vec<String> = sqlx::query_scalar(
        "SELECT metadata->>'request_id' FROM events WHERE event_type = 'ItemCreated' ORDER BY tx_id, seq",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(request_ids.len(), 2, "{request_ids:?}");
    assert_ne!(
        request_ids[0], request_ids[1],
        "one request id per operation"
    );
}
