use eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamRef};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, error_codes};

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
        let codes = error_codes(&response);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c == "BAD_USER_INPUT"),
            "{query}: {response}"
        );
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
