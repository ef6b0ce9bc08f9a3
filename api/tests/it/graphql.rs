use eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamRef};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Session, TestApp, error_codes};

#[tokio::test]
async fn log_position_follows_appends() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let before = ana
        .gql(&app, "{ logPosition serverVersion }", Value::Null)
        .await;
    let signed_up: String = sqlx::query_scalar(
        "SELECT lpad(to_hex(tx_id), 16, '0') || lpad(to_hex(seq), 16, '0') FROM events",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(before["data"]["logPosition"], signed_up, "{before}");

    let log = EventLog::new(app.db.pool().clone());
    let stream = StreamRef {
        stream_type: "user",
        stream_id: Uuid::now_v7(),
        workspace_id: None,
    };
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "UserRenamed".into(),
        schema_version: 1,
        payload: json!({ "from": "Ana", "to": "Ana B." }),
        metadata: Metadata::system("tests"),
    };
    let appended = log
        .append(&stream, ExpectedVersion::NoStream, &[event])
        .await
        .unwrap();

    let after = ana.gql(&app, "{ logPosition }", Value::Null).await;
    assert_eq!(
        after["data"]["logPosition"],
        appended.position().to_string()
    );
}

#[tokio::test]
async fn client_mistakes_are_bad_user_input() {
    let app = TestApp::spawn().await;
    for query in ["{ logPosition", "{ noSuchField }", "mutation { x }"] {
        let response = app.graphql(query, Value::Null).await;
        assert!(only_bad_user_input(&response), "{query}: {response}");
    }
}

#[tokio::test]
async fn internal_failures_are_internal_and_leak_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    // Break the database under the resolver.
    sqlx::raw_sql("ALTER TABLE events RENAME TO events_gone")
        .execute(app.db.pool())
        .await
        .unwrap();
    let response = ana.gql(&app, "{ logPosition }", Value::Null).await;
    assert_eq!(error_codes(&response), vec!["INTERNAL"], "{response}");
    let text = response.to_string();
    assert!(
        !text.contains("events") && !text.contains("relation"),
        "{text}"
    );
    assert_eq!(response["errors"][0]["message"], "internal error");
}

/// The server keeps parsed documents by their text (`graphql::documents`): a document sent
/// again is still checked, and run with its own variables, every time.
#[tokio::test]
async fn a_document_sent_again_runs_with_its_own_variables_and_checks() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let skipping = "query($skip: Boolean!) { logPosition @skip(if: $skip) serverVersion }";
    for skip in [true, false, true, false] {
        let response = ana.gql(&app, skipping, json!({ "skip": skip })).await;
        let data = response["data"].as_object().expect("data");
        assert_eq!(data.contains_key("logPosition"), !skip, "{response}");
        assert!(data.contains_key("serverVersion"), "{response}");
    }
    // The required variable is asked for each time, not only when the document was parsed.
    for _ in 0..2 {
        let response = ana.gql(&app, skipping, json!({})).await;
        assert!(only_bad_user_input(&response), "{response}");
    }
    // A document that does not validate is refused each time.
    for _ in 0..2 {
        let response = ana.gql(&app, "{ me { noSuchField } }", Value::Null).await;
        assert!(only_bad_user_input(&response), "{response}");
    }
}

/// POSTs `body` as `ana` accepting `accept`: the status, the content type and the body.
async fn post_accepting(
    app: &TestApp,
    token: &str,
    accept: &str,
    body: Value,
) -> (u16, String, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("accept", accept)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.json().await.unwrap())
}

/// Whether the response has errors, all of them the client's.
fn only_bad_user_input(response: &Value) -> bool {
    let codes = error_codes(response);
    !codes.is_empty() && codes.iter().all(|c| c == "BAD_USER_INPUT")
}

/// Requests that fail before execution: a document that does not parse, one that does not
/// validate, variables that do not coerce, an operation that cannot be chosen.
fn request_errors() -> Vec<Value> {
    vec![
        json!({ "query": "{ me { displayName }" }),
        json!({ "query": "{ me { noSuchField } }" }),
        json!({
            "query": "query($n: Int) { workspaces(first: $n) { edges { cursor } } }",
            "variables": { "n": "ten" }
        }),
        json!({ "query": "query($id: ID!) { item(id: $id) { title } }" }),
        json!({ "query": "query A { me { id } } query B { me { id } }" }),
        json!({ "query": "query A { me { id } }", "operationName": "C" }),
    ]
}

/// Sends every request of [`request_errors`] accepting `accept`: each is answered with
/// `status` and `content_type`, client errors only, and no `data`.
async fn assert_request_errors_answered(
    app: &TestApp,
    user: &Session,
    accept: &str,
    status: u16,
    content_type: &str,
) {
    for body in request_errors() {
        let (got_status, got_type, response) =
            post_accepting(app, &user.token, accept, body.clone()).await;
        assert_eq!(got_status, status, "{accept} {body}: {response}");
        assert_eq!(got_type, content_type, "{accept} {body}");
        assert!(response.get("data").is_none(), "{body}: {response}");
        assert!(only_bad_user_input(&response), "{body}: {response}");
    }
}

#[tokio::test]
async fn request_errors_are_400_without_data_for_graphql_response_json() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let accept = "application/graphql-response+json, application/json;q=0.9";
    let typed = "application/graphql-response+json";
    assert_request_errors_answered(&app, &ana, accept, 400, typed).await;
    // Executed, even with an error in a field: 200, with data.
    let (status, _, response) = post_accepting(
        &app,
        &ana.token,
        accept,
        json!({ "query": "{ me { displayName } item(id: \"nope\") { title } }" }),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["data"]["me"]["displayName"], "Ana", "{response}");
    assert!(!error_codes(&response).is_empty(), "{response}");
    // A mutation that fails in its resolver executed too: 200, with `data` (null).
    let (status, _, response) = post_accepting(
        &app,
        &ana.token,
        accept,
        json!({ "query": "mutation { upgradePlan(id: \"nope\") { workspace { id } } }" }),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(response.get("data").is_some(), "{response}");
    assert!(!error_codes(&response).is_empty(), "{response}");
    // Nothing to resolve but the type's name, or nothing at all: no errors, 200, with data
    // (async-graphql answers an empty selection with `null`).
    for query in ["{ __typename }", "{ me @skip(if: true) { displayName } }"] {
        let (status, _, response) =
            post_accepting(&app, &ana.token, accept, json!({ "query": query })).await;
        assert_eq!(status, 200, "{query}: {response}");
        assert!(response.get("data").is_some(), "{query}: {response}");
        assert!(response.get("errors").is_none(), "{query}: {response}");
    }
}

#[tokio::test]
async fn request_errors_are_200_without_data_for_application_json() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    for accept in [
        "application/json",
        "*/*",
        "application/json, application/graphql-response+json;q=0.5",
    ] {
        assert_request_errors_answered(&app, &ana, accept, 200, "application/json").await;
    }
}

#[tokio::test]
async fn a_request_without_a_query_is_400_whatever_is_accepted() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    for accept in ["application/json", "application/graphql-response+json"] {
        for body in [
            json!({}),
            json!({ "variables": { "n": 1 } }),
            json!({ "query": "" }),
        ] {
            let (status, _, response) =
                post_accepting(&app, &ana.token, accept, body.clone()).await;
            assert_eq!(status, 400, "{accept} {body}: {response}");
            assert_eq!(error_codes(&response), ["BAD_USER_INPUT"]);
        }
    }
    let get = app
        .client
        .get(app.url("/graphql"))
        .bearer_auth(&ana.token)
        .query(&[("variables", "{}")])
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 400);
}

#[tokio::test]
async fn get_reads_the_operation_name_and_variables() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let response: Value = app
        .client
        .get(app.url("/graphql"))
        .bearer_auth(&ana.token)
        .query(&[
            ("query", "query A { me { email } } query B($n: Int) { workspaces(first: $n) { edges { cursor } } }"),
            ("operationName", "B"),
            ("variables", r#"{"n": 1}"#),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(response["errors"].is_null(), "{response}");
    assert!(
        response["data"]["workspaces"]["edges"].is_array(),
        "{response}"
    );
}
