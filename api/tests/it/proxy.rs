//! Behind a load balancer: the client's address (trusted proxies only), the request's id, and
//! what of both reaches event metadata and the throttles.

use std::sync::Arc;

use pgcluster::TestDatabase;
use serde_json::{Value, json};

use crate::{TestApp, error_codes};

const SIGN_UP: &str = "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }";

/// A node that believes the forwarding headers of 127.0.0.1, where the tests connect from: each
/// test client plays a load balancer forwarding for the address it names.
async fn behind_proxy() -> TestApp {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    TestApp::spawn_configured(&db, |config| {
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await
}

/// POSTs a GraphQL request with extra headers; the response's headers and body.
async fn post(
    app: &TestApp,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let headers = response.headers().clone();
    (headers, response.json().await.unwrap())
}

fn sign_up_input(name: &str) -> Value {
    json!({ "input": { "email": format!("{name}@example.com"),
                       "password": "correct horse battery", "displayName": name } })
}

/// The metadata of the (only) event of `name`'s sign-up.
async fn sign_up_metadata(app: &TestApp, name: &str) -> Value {
    sqlx::query_scalar(
        "SELECT metadata FROM events
          WHERE event_type = 'UserSignedUp' AND payload->>'email' = $1",
    )
    .bind(format!("{name}@example.com"))
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
    let app = behind_proxy().await;
    let (_, response) = post(
        &app,
        &[("x-forwarded-for", "203.0.113.9, 198.51.100.7")],
        SIGN_UP,
        sign_up_input("ana"),
    )
    .await;
    assert!(response["data"]["signUp"].is_object(), "{response}");
    // The proxy (127.0.0.1) appended 198.51.100.7, the address it saw; what the client wrote
    // before that is not believed.
    assert_eq!(
        sign_up_metadata(&app, "ana").await["client_ip"],
        "198.51.100.7"
    );

    // RFC 7239 `Forwarded`, when the proxy writes that instead.
    let (_, response) = post(
        &app,
        &[("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#)],
        SIGN_UP,
        sign_up_input("bo"),
    )
    .await;
    assert!(response["data"]["signUp"].is_object(), "{response}");
    assert_eq!(
        sign_up_metadata(&app, "bo").await["client_ip"],
        "2001:db8::7"
    );
}

#[tokio::test]
async fn from_an_untrusted_peer_forwarding_headers_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, response) = post(
        &app,
        &[
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.8"),
        ],
        SIGN_UP,
        sign_up_input("ana"),
    )
    .await;
    assert!(response["data"]["signUp"].is_object(), "{response}");
    assert_eq!(
        sign_up_metadata(&app, "ana").await["client_ip"],
        "127.0.0.1"
    );
}

#[tokio::test]
async fn the_server_names_the_request_and_keeps_the_clients_id_beside_its_own() {
    let app = TestApp::spawn().await;
    let (headers, response) = post(
        &app,
        &[("x-request-id", "client-chosen-42")],
        SIGN_UP,
        sign_up_input("ana"),
    )
    .await;
    assert!(response["data"]["signUp"].is_object(), "{response}");
    let ours = headers["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(ours, "client-chosen-42");
    uuid::Uuid::parse_str(&ours).expect("a server-made UUID");
    assert_eq!(headers["x-client-request-id"], "client-chosen-42");
    let metadata = sign_up_metadata(&app, "ana").await;
    assert_eq!(metadata["request_id"], ours.as_str(), "{metadata}");
    assert_eq!(
        metadata["client_request_id"], "client-chosen-42",
        "{metadata}"
    );

    // An id too long (or with spaces, or control characters) is not kept at all.
    let too_long = "x".repeat(101);
    for bad in [too_long.as_str(), "two words"] {
        let name = format!("bo{}", bad.len());
        let (headers, response) = post(
            &app,
            &[("x-request-id", bad)],
            SIGN_UP,
            sign_up_input(&name),
        )
        .await;
        assert!(response["data"]["signUp"].is_object(), "{response}");
        assert!(headers.get("x-client-request-id").is_none());
        assert_ne!(headers["x-request-id"], bad);
        let metadata = sign_up_metadata(&app, &name).await;
        assert!(metadata.get("client_request_id").is_none(), "{metadata}");
    }
}

const LOG_IN: &str = "mutation($email: String!, $password: String!) {
    logIn(email: $email, password: $password) { accessToken } }";

/// Logs in as `email` from the client a trusted proxy says is `client`; the error codes.
async fn log_in_from(app: &TestApp, client: &str, email: &str, password: &str) -> Vec<String> {
    let (_, response) = post(
        app,
        &[("x-forwarded-for", client)],
        LOG_IN,
        json!({ "email": email, "password": password }),
    )
    .await;
    error_codes(&response)
}

#[tokio::test]
async fn through_a_trusted_proxy_an_attackers_failures_do_not_lock_the_owner_out() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_configured(&db, |config| {
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
        // Delays long enough that the attacker cannot outrun one.
        config.auth.backoff_base = chrono::Duration::hours(1);
    })
    .await;
    let (_, response) = post(
        &app,
        &[("x-forwarded-for", "198.51.100.20")],
        SIGN_UP,
        sign_up_input("ana"),
    )
    .await;
    assert!(response["data"]["signUp"].is_object(), "{response}");

    let mut codes = Vec::new();
    for _ in 0..51 {
        codes.extend(log_in_from(&app, "203.0.113.66", "ana@example.com", "guess").await);
    }
    assert_eq!(codes.len(), 51);
    assert!(
        codes[..5].iter().all(|c| c == "UNAUTHENTICATED"),
        "{codes:?}"
    );
    assert!(codes[5..].iter().all(|c| c == "RATE_LIMITED"), "{codes:?}");
    // The attacker is held back even with the right password…
    assert_eq!(
        log_in_from(
            &app,
            "203.0.113.66",
            "ana@example.com",
            "correct horse battery"
        )
        .await,
        ["RATE_LIMITED"]
    );
    // …but the owner, from their own address, logs in, and so does anyone else with it.
    for client in ["198.51.100.20", "192.0.2.44"] {
        let codes = log_in_from(&app, client, "ana@example.com", "correct horse battery").await;
        assert!(codes.is_empty(), "{client}: {codes:?}");
    }
}

#[tokio::test]
async fn from_an_untrusted_peer_a_forged_address_does_not_escape_the_throttle() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_configured(&db, |config| {
        config.auth.logins_per_address = 3;
    })
    .await;
    app.sign_up("ana").await;
    let mut codes = Vec::new();
    for n in 1..=4 {
        // Each attempt claims to come from somewhere else.
        let forged = format!("198.51.100.{n}");
        codes.extend(log_in_from(&app, &forged, "ana@example.com", "correct horse battery").await);
    }
    // The sign-up logged in once; two more log-ins, then 127.0.0.1 has had its three.
    assert_eq!(codes, ["RATE_LIMITED", "RATE_LIMITED"]);
    let counted: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, subject FROM login_throttle ORDER BY kind")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    assert_eq!(
        counted,
        [
            ("ip".to_string(), "127.0.0.1".to_string()),
            ("signup".to_string(), "127.0.0.1".to_string())
        ],
        "only the peer is counted"
    );
}

#[tokio::test]
async fn a_sign_up_flood_is_refused_per_address() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_configured(&db, |config| {
        config.trusted_proxies = "127.0.0.1".parse().unwrap();
        config.auth.signups_per_address = 3;
    })
    .await;
    let sign_up_from = async |client: &str, name: &str| {
        let (_, response) = post(
            &app,
            &[("x-forwarded-for", client)],
            SIGN_UP,
            sign_up_input(name),
        )
        .await;
        response
    };
    for n in 0..3 {
        let response = sign_up_from("203.0.113.66", &format!("bot{n}")).await;
        assert!(response["data"]["signUp"].is_object(), "{response}");
    }
    // The fourth from there is refused before any work (even malformed input counts).
    let refused = sign_up_from("203.0.113.66", "bot3").await;
    assert_eq!(error_codes(&refused), ["RATE_LIMITED"], "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("try again in"), "{message}");
    // Someone else signs up.
    let response = sign_up_from("198.51.100.20", "ana").await;
    assert!(response["data"]["signUp"].is_object(), "{response}");
}

#[tokio::test]
async fn over_a_websocket_the_forwarded_client_is_recorded_too() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = behind_proxy().await;
    let ana = app.sign_up("ana").await;
    let mut request = format!("ws://{}/graphql", app.address)
        .into_client_request()
        .unwrap();
    for (name, value) in [
        ("sec-websocket-protocol", "graphql-transport-ws"),
        ("x-forwarded-for", "203.0.113.5, 198.51.100.9"),
        ("x-request-id", "from-the-socket"),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut send = async |message: Value| {
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    };
    send(json!({ "type": "connection_init",
                 "payload": { "authorization": format!("Bearer {}", ana.token) } }))
    .await;
    send(json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "mutation { createWorkspace(input: {name: \"Over the socket\", region: EU}) { workspace { id } } }"
    } }))
    .await;
    // Read until the mutation's answer.
    loop {
        let message = socket.next().await.expect("the socket stays open").unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "next" {
            assert!(error_codes(&message["payload"]).is_empty(), "{message}");
            break;
        }
    }
    let metadata: Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE event_type = 'WorkspaceCreated'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(metadata["client_ip"], "198.51.100.9", "{metadata}");
    assert_eq!(
        metadata["client_request_id"], "from-the-socket",
        "{metadata}"
    );
    assert_ne!(metadata["request_id"], "from-the-socket", "{metadata}");
}
