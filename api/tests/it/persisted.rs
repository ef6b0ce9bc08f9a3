//! Automatic persisted queries (Apollo's protocol) over POST and GET.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{TestApp, error_codes};

const QUERY: &str = "query Me { me { displayName } }";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// An answer's status, `Cache-Control` and body.
struct Answer {
    status: u16,
    cache_control: Option<String>,
    body: Value,
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let cache_control = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap();
    Answer {
        status,
        cache_control,
        body,
    }
}

/// POSTs `body` with `token`.
async fn post(app: &TestApp, token: &str, body: Value) -> Answer {
    answer(
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

/// GETs the persisted query `hash` (no document in the URL) with `token`.
async fn get(app: &TestApp, token: &str, hash: &str) -> Answer {
    answer(
        app.client
            .get(app.url("/graphql"))
            .bearer_auth(token)
            .query(&[("extensions", persisted(hash).to_string())]),
    )
    .await
}

fn assert_not_found(answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["errors"][0]["message"],
        "PersistedQueryNotFound"
    );
    assert_eq!(error_codes(&answer.body), ["PERSISTED_QUERY_NOT_FOUND"]);
    assert!(answer.body.get("data").is_none(), "{}", answer.body);
    assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
}

#[tokio::test]
async fn a_hash_is_unknown_until_registered_then_serves_over_post_and_get() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let hash = sha256(QUERY);

    assert_not_found(&post(&app, &ana.token, json!({ "extensions": persisted(&hash) })).await);
    assert_not_found(&get(&app, &ana.token, &hash).await);
    // A client that prefers graphql-response+json gets an answer without data as a 4xx.
    let typed = answer(
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&ana.token)
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "extensions": persisted(&hash) })),
    )
    .await;
    assert_eq!(typed.status, 404, "{}", typed.body);
    assert_eq!(error_codes(&typed.body), ["PERSISTED_QUERY_NOT_FOUND"]);

    let registered = post(
        &app,
        &ana.token,
        json!({ "query": QUERY, "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(registered.body["data"]["me"]["displayName"], "Ana");

    let by_post = post(&app, &ana.token, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(by_post.status, 200);
    assert_eq!(
        by_post.body["data"]["me"]["displayName"], "Ana",
        "{}",
        by_post.body
    );
    assert_eq!(
        by_post.cache_control, None,
        "POST answers say nothing to caches"
    );

    let by_get = get(&app, &ana.token, &hash).await;
    assert_eq!(by_get.status, 200);
    assert_eq!(
        by_get.body["data"]["me"]["displayName"], "Ana",
        "{}",
        by_get.body
    );
    // The answer is someone's own: private, and checked again before any reuse.
    assert_eq!(by_get.cache_control.as_deref(), Some("private, no-cache"));

    // The hash is the document's, whoever asks: Bo reads his own name through it.
    let bo = app.sign_up("Bo").await;
    let for_bo = get(&app, &bo.token, &hash).await;
    assert_eq!(
        for_bo.body["data"]["me"]["displayName"], "Bo",
        "{}",
        for_bo.body
    );
}

#[tokio::test]
async fn a_persisted_mutation_is_refused_over_get() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let mutation = "mutation Out { logOut(refreshToken: \"x\") }";
    let hash = sha256(mutation);
    // Registration over POST runs it (harmlessly: an unknown refresh token).
    post(
        &app,
        &ana.token,
        json!({ "query": mutation, "extensions": persisted(&hash) }),
    )
    .await;
    let over_get = get(&app, &ana.token, &hash).await;
    assert_eq!(over_get.status, 405, "{}", over_get.body);
}

#[tokio::test]
async fn a_query_that_does_not_have_the_hash_is_refused_and_not_stored() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let other = sha256("{ me { email } }");
    let refused = post(
        &app,
        &ana.token,
        json!({ "query": QUERY, "extensions": persisted(&other) }),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(error_codes(&refused.body), ["BAD_USER_INPUT"]);
    assert!(refused.body.get("data").is_none());
    assert_not_found(&post(&app, &ana.token, json!({ "extensions": persisted(&other) })).await);
}

#[tokio::test]
async fn malformed_persisted_query_extensions_are_refused() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let hash = sha256(QUERY);
    let oversized = "a".repeat(100_000);
    for extension in [
        persisted(&hash[..63]),
        persisted(&format!("{hash}0")),
        persisted(&"z".repeat(64)),
        persisted(&oversized),
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } }),
        json!({ "persistedQuery": { "sha256Hash": hash } }),
        json!({ "persistedQuery": { "version": 1, "sha256Hash": 7 } }),
        json!({ "persistedQuery": "yes" }),
    ] {
        let refused = post(
            &app,
            &ana.token,
            json!({ "query": QUERY, "extensions": extension }),
        )
        .await;
        assert_eq!(refused.status, 400, "{extension}: {}", refused.body);
        assert_eq!(
            error_codes(&refused.body),
            ["BAD_USER_INPUT"],
            "{extension}"
        );
    }
    // Over GET, an `extensions` parameter that is not JSON is refused the same way.
    let not_json = answer(
        app.client
            .get(app.url("/graphql"))
            .bearer_auth(&ana.token)
            .query(&[("extensions", "{persistedQuery")]),
    )
    .await;
    assert_eq!(not_json.status, 400, "{}", not_json.body);
    assert_eq!(error_codes(&not_json.body), ["BAD_USER_INPUT"]);
}
