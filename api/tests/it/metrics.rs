//! `/metrics`: Prometheus text whose counters move with the requests made, behind a token or
//! on a port of its own.

use std::collections::HashMap;
use std::sync::Arc;

use pgcluster::TestDatabase;

use prometheus_parse::{LineInfo, Scrape};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::TestApp;

const TOKEN: &str = "metrics-token-for-the-tests";

/// A fresh database with the job queue's tables too (as `chronicle migrate` leaves it), which
/// `/metrics` reads.
async fn database_with_job_queue() -> Arc<TestDatabase> {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    jobs::setup(db.pool()).await.unwrap();
    db
}

/// GETs `url` with `token`: the status and the body.
async fn fetch(app: &TestApp, url: String, token: Option<&str>) -> (u16, String) {
    let mut request = app.client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Every sample of a scrape, as `name{label="value",…}` (labels sorted) → value, after
/// checking that every line is Prometheus text (help, type, sample or empty).
fn samples(text: &str) -> HashMap<String, f64> {
    for line in text.lines() {
        assert_ne!(
            LineInfo::parse(line),
            LineInfo::Ignored,
            "not Prometheus text: {line}"
        );
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let mut samples = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        labels.sort();
        let key = format!("{}{{{}}}", sample.metric, labels.join(","));
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            // A histogram's buckets: its count is its _count sample.
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(key, value);
    }
    samples
}

async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let (status, text) = fetch(app, app.url("/metrics"), None).await;
    assert_eq!(status, 200, "{text}");
    samples(&text)
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_move_with_the_requests_made() {
    let app = TestApp::spawn_on(&database_with_job_queue().await).await;
    let ana = app.sign_up("Ana").await;
    let events = || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        count as f64
    };
    let before = scrape(&app).await;
    let events_before = events().await;

    // Every request goes through here, which counts the response cache's answers by their
    // X-Chronicle-Cache header (hits depend on what the node has read of the log).
    let cache_answers = std::cell::RefCell::new(HashMap::<String, f64>::new());
    let send = |body: Value| {
        let request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&ana.token)
            .json(&body);
        let cache_answers = &cache_answers;
        async move {
            let response = request.send().await.unwrap();
            if let Some(outcome) = response.headers().get("x-chronicle-cache") {
                let outcome = outcome.to_str().unwrap().to_string();
                *cache_answers.borrow_mut().entry(outcome).or_default() += 1.0;
            }
            response.json::<Value>().await.unwrap()
        }
    };
    for _ in 0..3 {
        let response =
            send(json!({ "query": "query Mine { me { id } }", "operationName": "Mine" })).await;
        assert!(response["errors"].is_null(), "{response}");
    }
    send(json!({ "query": "query Broken { me { nope } }", "operationName": "Broken" })).await;
    let created = send(json!({
        "query": crate::workspaces::CREATE_WORKSPACE,
        "variables": { "name": "Acme" },
    }))
    .await;
    assert!(created["errors"].is_null(), "{created}");
    let query = "query Persisted { me { displayName } }";
    let hash = hex::encode(Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    for body in [
        json!({ "extensions": extensions, "operationName": "Persisted" }),
        json!({ "query": query, "extensions": extensions, "operationName": "Persisted" }),
        json!({ "extensions": extensions, "operationName": "Persisted" }),
    ] {
        send(body).await;
    }

    let after = scrape(&app).await;
    let events_after = events().await;
    let delta = |key: &str| value(&after, key) - value(&before, key);
    let requests = "chronicle_graphql_requests_total";
    assert_eq!(
        delta(&format!("{requests}{{operation=\"Mine\",outcome=\"ok\"}}")),
        3.0
    );
    assert_eq!(
        delta(
            "chronicle_graphql_request_duration_seconds_count{operation=\"Mine\",outcome=\"ok\"}"
        ),
        3.0
    );
    // `Broken` (its name takes no label), and the persisted query not found.
    assert_eq!(
        delta(&format!(
            "{requests}{{operation=\"other\",outcome=\"rejected\"}}"
        )),
        2.0,
    );
    assert_eq!(
        delta("chronicle_graphql_errors_total{code=\"BAD_USER_INPUT\"}"),
        1.0
    );
    assert_eq!(
        delta("chronicle_graphql_errors_total{code=\"PERSISTED_QUERY_NOT_FOUND\"}"),
        1.0
    );
    for result in ["miss", "registered", "hit"] {
        assert_eq!(
            delta(&format!(
                "chronicle_apq_requests_total{{result=\"{result}\"}}"
            )),
            1.0,
            "{result}"
        );
    }
    assert_eq!(
        delta(&format!(
            "{requests}{{operation=\"Persisted\",outcome=\"ok\"}}"
        )),
        2.0
    );
    // Creating the workspace appended events: each one is counted.
    assert!(events_after > events_before);
    assert_eq!(
        delta("chronicle_log_appended_events_total{}"),
        events_after - events_before
    );

    assert_eq!(value(&after, "chronicle_database_up{}"), 1.0);
    assert!(value(&after, "chronicle_db_pool_max{}") >= 1.0);
    assert!(after.contains_key("chronicle_db_pool_connections{state=\"idle\"}"));
    assert!(after.contains_key("chronicle_db_pool_connections{state=\"kept\"}"));
    assert!(after.contains_key("chronicle_log_reader_stall_seconds{}"));
    for projection in ["search", "activity"] {
        assert!(
            after
                .keys()
                .any(|k| k.starts_with("chronicle_projection_lag_events{")
                    && k.contains(&format!("projection=\"{projection}\""))),
            "{projection}: {after:?}"
        );
    }
    // The response cache counted each of its answers: hits, and misses (executed, stored or
    // not).
    let cache_answers = cache_answers.into_inner();
    let answered = |outcome: &str| cache_answers.get(outcome).copied().unwrap_or(0.0);
    assert_eq!(
        delta("chronicle_response_cache_lookups_total{result=\"hit\"}"),
        answered("hit")
    );
    assert_eq!(
        delta("chronicle_response_cache_lookups_total{result=\"miss\"}"),
        answered("miss") + answered("bypass")
    );
    assert!(answered("hit") >= 1.0, "{cache_answers:?}");
    // Its size as moka last counted it (moka updates it in its housekeeping).
    assert!(after.contains_key("chronicle_response_cache_bytes{}"));
    assert!(after.contains_key("chronicle_response_cache_entries{}"));
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let db = database_with_job_queue().await;
    let app = TestApp::spawn_configured(&db, |config| {
        config.metrics.token = Some(TOKEN.into());
    })
    .await;
    let url = app.url("/metrics");
    assert_eq!(fetch(&app, url.clone(), None).await.0, 401);
    assert_eq!(
        fetch(&app, url.clone(), Some("metrics-token-for-the-test"))
            .await
            .0,
        401
    );
    assert_eq!(
        fetch(&app, url.clone(), Some(&format!("{TOKEN}x"))).await.0,
        401
    );
    let (status, text) = fetch(&app, url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(samples(&text).contains_key("chronicle_database_up{}"));
}

#[tokio::test]
async fn a_metrics_port_serves_metrics_apart_from_the_api() {
    let db = database_with_job_queue().await;
    let app = TestApp::spawn_configured(&db, |config| {
        config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(fetch(&app, app.url("/metrics"), None).await.0, 404);
    let apart = app.metrics_address.expect("a metrics listener");
    let (status, text) = fetch(&app, format!("http://{apart}/metrics"), None).await;
    assert_eq!(status, 200);
    assert_eq!(value(&samples(&text), "chronicle_database_up{}"), 1.0);
    let (status, _) = fetch(&app, format!("http://{apart}/graphql"), None).await;
    assert_eq!(status, 404, "the metrics port serves nothing else");
}
