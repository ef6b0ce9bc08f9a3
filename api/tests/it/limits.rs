//! Hostile and malformed requests get a clear 4xx or a coded GraphQL error, quickly, and the
//! server keeps serving.

use serde_json::{Value, json};

use crate::{TestApp, error_codes};

async fn post_raw(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    content_type: &str,
) -> (u16, String) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn still_healthy(app: &TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn malformed_bodies_are_client_errors() {
    let app = TestApp::spawn().await;
    for body in ["{not json", "[]", "42", r#"{"query": 5}"#] {
        let (status, text) = post_raw(&app, body, "application/json").await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("BAD_USER_INPUT"), "{text}");
    }
    let (status, _) = post_raw(&app, "{ logPosition }", "text/plain").await;
    assert_eq!(status, 400);
    still_healthy(&app).await;
}

#[tokio::test]
async fn wrong_variable_types_and_unknown_fields_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    for (query, variables) in [
        (
            "query($id: ID!) { item(id: $id) { title } }",
            json!({ "id": 42.5 }),
        ),
        (
            "query($n: Int) { workspaces(first: $n) { edges { cursor } } }",
            json!({ "n": "ten" }),
        ),
        ("{ me { password } }", Value::Null),
    ] {
        let response = ana.gql(&app, query, variables).await;
        let codes = error_codes(&response);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c == "BAD_USER_INPUT"),
            "{query}: {response}"
        );
    }
}

#[tokio::test]
async fn deep_wide_batched_and_huge_requests_are_refused() {
    let app = TestApp::spawn().await;
    let nested = format!(
        "query {{ {} id {} }}",
        "workspaces { edges { node { members { edges { node { user { ".repeat(20),
        "} } } } } } }".repeat(20)
    );
    let response = app.graphql(&nested, Value::Null).await;
    assert_eq!(
        error_codes(&response),
        vec!["BAD_USER_INPUT"],
        "200-deep: {response}"
    );

    let aliases: String = (0..1000).map(|n| format!("a{n}: serverVersion ")).collect();
    let response = app.graphql(&format!("{{ {aliases} }}"), Value::Null).await;
    assert_eq!(
        error_codes(&response),
        vec!["BAD_USER_INPUT"],
        "1,000 aliases"
    );

    let batch: Vec<Value> = (0..1000)
        .map(|_| json!({ "query": "{ serverVersion }" }))
        .collect();
    let (status, text) = post_raw(
        &app,
        serde_json::to_vec(&batch).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400, "{text}");

    let huge = json!({ "query": format!("{{ serverVersion }} # {}", "x".repeat(5 * 1024 * 1024)) });
    let (status, _) = post_raw(&app, serde_json::to_vec(&huge).unwrap(), "application/json").await;
    assert_eq!(status, 413);
    still_healthy(&app).await;
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let claims: Value = {
        let payload = ana.token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let header = ana.token.split('.').next().unwrap();
    let mut expired = claims.clone();
    expired["exp"] = json!(1_000_000_000);
    let tampered = format!(
        "{header}.{}.{}",
        b64(&expired),
        ana.token.split('.').nth(2).unwrap()
    );
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims)
    );
    for token in [tampered.as_str(), alg_none.as_str(), "garbage", "a.b.c"] {
        let response = app
            .request(Some(token), "{ me { email } }", Value::Null)
            .await;
        assert_eq!(
            error_codes(&response),
            vec!["UNAUTHENTICATED"],
            "{token}: {response}"
        );
    }
    still_healthy(&app).await;
}

#[tokio::test]
async fn mutations_over_get_are_refused_and_queries_served() {
    let app = TestApp::spawn().await;
    let get = |query: &str| {
        app.client
            .get(app.url("/graphql"))
            .query(&[("query", query)])
            .send()
    };
    let mutation = get("mutation { logOut(refreshToken: \"x\") }")
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    let query = get("{ serverVersion }").await.unwrap();
    assert_eq!(query.status(), 200);
    let typed = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ serverVersion }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        typed.headers()["content-type"],
        "application/graphql-response+json"
    );
}

#[tokio::test]
async fn a_tag_flood_is_refused_by_its_length_before_anything_looks_inside_it() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = crate::workspaces::create_workspace(&app, &ana, "Acme").await;
    // 80,000 distinct tags, the first invalid: the list's length is what is refused, so no
    // tag was parsed (once, a quadratic de-duplication of such a list held a worker for
    // seconds before the count was checked). No token is needed to be refused.
    let mut tags = vec![String::new()];
    tags.extend((0..80_000).map(|n| format!("tag-{n}")));
    let query = "mutation($input: CreateItemInput!) { createItem(input: $input) { position } }";
    let variables = json!({ "input": { "workspaceId": ws, "title": "flood", "tags": tags } });
    for token in [None, Some(ana.token.as_str())] {
        let response = app.request(token, query, variables.clone()).await;
        assert_eq!(error_codes(&response), ["BAD_USER_INPUT"], "{response}");
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("length is 80001"),
            "refused by its length, not by its first tag: {message}"
        );
    }
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(items, 0);
    still_healthy(&app).await;
}

#[tokio::test]
async fn list_complexity_is_weighted_by_page_size_and_authors_load_in_batches() {
    let app = TestApp::spawn().await;
    let (ana, bo) = (app.sign_up("ana").await, app.sign_up("bo").await);
    let ws = crate::workspaces::create_workspace(&app, &ana, "Acme").await;
    crate::workspaces::add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    let create = "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { position } }";
    for (who, title) in [(&ana, "a1"), (&bo, "b1"), (&ana, "a2")] {
        who.gql(&app, create, json!({ "w": ws, "t": title })).await;
    }

    // 30 aliases of a 100-item page that resolves every author: refused before it runs.
    let one = "items(workspaceId: $w, first: 100) { edges { node { author { email } } } }";
    let aliased: String = (0..30).map(|n| format!("a{n}: {one} ")).collect();
    let query = format!("query($w: ID!) {{ {aliased} }}");
    let response = ana.gql(&app, &query, json!({ "w": ws })).await;
    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"], "{response}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{response}"
    );
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({ "query": query, "variables": { "w": ws } }))
        .collect();
    let answers: Vec<Value> = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&ana.token)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answers.len(), 10);
    for answer in &answers {
        assert_eq!(error_codes(answer), ["BAD_USER_INPUT"], "{answer}");
    }

    // One such page is fine, and every item gets its own author through the batch loader.
    let page = ana
        .gql(
            &app,
            "query($w: ID!) { items(workspaceId: $w, first: 100, orderBy: { field: TITLE, direction: ASC }) {
                edges { node { title author { displayName } } } } }",
            json!({ "w": ws }),
        )
        .await;
    let authors: Vec<(&str, &str)> = page["data"]["items"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|e| {
            (
                e["node"]["title"].as_str().unwrap(),
                e["node"]["author"]["displayName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(authors, [("a1", "ana"), ("a2", "ana"), ("b1", "bo")]);
}

#[tokio::test]
async fn an_overlong_operation_name_is_refused() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let named = |name: String| {
        let (app, token) = (app.clone(), ana.token.clone());
        async move {
            let query = format!("query {name} {{ me {{ email }} }}");
            app.client
                .post(app.url("/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": query, "operationName": name }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let response = named("N".repeat(101)).await;
    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"], "{response}");
    let response = named("N".repeat(100)).await;
    assert!(response["errors"].is_null(), "{response}");
}

#[tokio::test]
async fn an_execution_past_the_request_timeout_is_cut_short_over_http_and_over_a_socket() {
    let db = std::sync::Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_configured(&db, |config| {
        config.limits.request_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let ana = app.sign_up("Ana").await;
    let ws = crate::workspaces::create_workspace(&app, &ana, "Acme").await;
    let page = "query($w: ID!) { items(workspaceId: $w, first: 5) { edges { node { id } } } }";
    let variables = json!({ "w": ws });

    // A transaction holding the items table: the page's read waits behind it.
    let mut lock = db.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&ana.token)
        .json(&json!({ "query": page, "variables": variables }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(error_codes(&body), ["INTERNAL"], "{body}");

    // Over a WebSocket a query's one answer is cut short the same way.
    let mut socket = crate::subscriptions::Client::connect(&app, &ana).await;
    socket.subscribe("page", page, variables.clone()).await;
    assert_eq!(socket.error_codes("page").await, ["INTERNAL"]);

    // Once the table is free, the same page is served.
    lock.rollback().await.unwrap();
    let served = ana.gql(&app, page, variables).await;
    assert!(served["errors"].is_null(), "{served}");
    assert!(served["data"]["items"]["edges"].is_array(), "{served}");
}
