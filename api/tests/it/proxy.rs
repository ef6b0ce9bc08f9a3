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

#[tokio::test]
async fn a_long_operation_name_is_recorded_truncated() {
    let app = TestApp::spawn().await;
    let name = format!("SignUp{}", "A".repeat(5_000));
    let query = format!(
        "mutation {name}($input: SignUpInput!) {{ signUp(input: $input) {{ accessToken }} }}"
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "operationName": name, "variables": sign_up_input("ana") }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(response["data"]["signUp"].is_object(), "{response}");
    let metadata = sign_up_metadata(&app, "ana").await;
    assert_eq!(
        metadata["operation_name"].as_str(),
        Some(&name[..100]),
        "{metadata}"
    );
    assert!(error_codes(&response).is_empty());
}
