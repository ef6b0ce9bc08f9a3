use serde_json::{Value, json};

use crate::{TestApp, error_codes};

const LOG_IN: &str = "mutation($email: String!, $password: String!) {
    logIn(email: $email, password: $password) { accessToken refreshToken user { email } } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test]
async fn a_user_signs_up_logs_in_and_sees_themself() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let me = ana
        .gql(
            &app,
            "{ me { id email displayName referralCode } }",
            Value::Null,
        )
        .await;
    assert_eq!(me["data"]["me"]["email"], "ana@example.com", "{me}");
    assert_eq!(me["data"]["me"]["id"], ana.user_id.as_str());

    let login = app
        .graphql(
            LOG_IN,
            json!({ "email": "ANA@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(
        login["data"]["logIn"]["user"]["email"], "ana@example.com",
        "{login}"
    );
    let wrong = app
        .graphql(
            LOG_IN,
            json!({ "email": "ana@example.com", "password": "wrong password" }),
        )
        .await;
    assert_eq!(error_codes(&wrong), vec!["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn sign_up_rejects_bad_input_and_duplicate_emails() {
    let app = TestApp::spawn().await;
    app.sign_up("ana").await;
    let sign_up = "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }";
    for (input, code) in [
        (
            json!({ "email": "not-an-email", "password": "long enough pw", "displayName": "X" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "email": "x@example.com", "password": "short", "displayName": "X" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "email": "x@example.com", "password": "long enough pw", "displayName": "" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "email": "x@example.com", "password": "long enough pw", "displayName": "X", "referralCode": "NOPE1234" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "email": "Ana@Example.com", "password": "long enough pw", "displayName": "Ana 2" }),
            "CONFLICT",
        ),
    ] {
        let response = app.graphql(sign_up, json!({ "input": input })).await;
        assert_eq!(error_codes(&response), vec![code], "{input}: {response}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(
        (users, events),
        (1, 1),
        "refused sign-ups leave nothing behind"
    );
}

#[tokio::test]
async fn a_referral_code_links_the_new_user_to_the_referrer() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let code =
        ana.gql(&app, "{ me { referralCode } }", Value::Null).await["data"]["me"]["referralCode"]
            .as_str()
            .unwrap()
            .to_string();
    let response = app
        .graphql(
            "mutation($input: SignUpInput!) { signUp(input: $input) { user { id } } }",
            json!({ "input": { "email": "bo@example.com", "password": "long enough pw", "displayName": "Bo", "referralCode": code } }),
        )
        .await;
    assert!(response["data"]["signUp"].is_object(), "{response}");
    // Ana, and no one else, referred Bo: in the read model and in Bo's sign-up event.
    let (referrer, event_referrer): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT r.email, e.payload->>'referred_by'
         FROM users b
         LEFT JOIN users r ON r.id = b.referred_by
         JOIN events e ON e.stream_id = b.id AND e.event_type = 'UserSignedUp'
         WHERE b.email = 'bo@example.com'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(referrer.as_deref(), Some("ana@example.com"));
    let ana_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'ana@example.com'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(event_referrer, Some(ana_id.to_string()));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let first = app
        .graphql(REFRESH, json!({ "t": ana.refresh_token }))
        .await;
    let rotated = first["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .expect("rotated")
        .to_string();
    let new_access = first["data"]["refreshToken"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        app.request(Some(&new_access), "{ me { email } }", Value::Null)
            .await["data"]["me"]
            .is_object()
    );

    // The old token again: reuse. The whole session ends, the newest tokens included.
    let reuse = app
        .graphql(REFRESH, json!({ "t": ana.refresh_token }))
        .await;
    assert_eq!(error_codes(&reuse), vec!["UNAUTHENTICATED"]);
    let after = app.graphql(REFRESH, json!({ "t": rotated })).await;
    assert_eq!(error_codes(&after), vec!["UNAUTHENTICATED"]);
    let me = app
        .request(Some(&new_access), "{ me { email } }", Value::Null)
        .await;
    assert_eq!(error_codes(&me), vec!["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn log_out_makes_the_refresh_token_useless() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let out = app
        .graphql(
            "mutation($t: String!) { logOut(refreshToken: $t) }",
            json!({ "t": ana.refresh_token }),
        )
        .await;
    assert_eq!(out["data"]["logOut"], true, "{out}");
    let refresh = app
        .graphql(REFRESH, json!({ "t": ana.refresh_token }))
        .await;
    assert_eq!(error_codes(&refresh), vec!["UNAUTHENTICATED"]);
    let me = ana.gql(&app, "{ me { email } }", Value::Null).await;
    assert_eq!(error_codes(&me), vec!["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn repeated_failures_delay_further_log_ins_of_that_account_from_that_client() {
    let db = std::sync::Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    // Delays long enough that no attempt outruns one.
    let app = TestApp::spawn_configured(&db, |config| {
        config.auth.backoff_base = chrono::Duration::hours(1);
    })
    .await;
    app.sign_up("ana").await;
    let mut codes = Vec::new();
    for _ in 0..7 {
        let response = app
            .graphql(
                LOG_IN,
                json!({ "email": "ana@example.com", "password": "wrong password" }),
            )
            .await;
        codes.extend(error_codes(&response));
    }
    assert_eq!(
        codes,
        [vec!["UNAUTHENTICATED"; 5], vec!["RATE_LIMITED"; 2]].concat(),
        "five free failures, then a delay"
    );
    // Even the right password waits, and the message says how long.
    let right = app
        .graphql(
            LOG_IN,
            json!({ "email": "ana@example.com", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(error_codes(&right), vec!["RATE_LIMITED"]);
    let message = right["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("try again in"), "{message}");
}

#[tokio::test]
async fn a_token_from_one_node_works_on_another() {
    let node_a = TestApp::spawn().await;
    let ana = node_a.sign_up("ana").await;
    let node_b = crate::TestApp::spawn_on(&node_a.db).await;
    let me = node_b
        .request(Some(&ana.token), "{ me { email } }", Value::Null)
        .await;
    assert_eq!(me["data"]["me"]["email"], "ana@example.com", "{me}");
}
