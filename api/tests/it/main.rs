//! API tests through the real HTTP endpoint, each on its own fresh database.

mod accounts;
mod audit;
mod auth;
mod binary;
mod browser;
mod cache;
mod cluster;
mod connections;
mod console;
mod events;
mod exports;
mod graphql;
mod health;
mod history;
mod invites;
mod items;
mod jobs;
mod lane;
mod limits;
mod metrics;
mod ndjson_bulk;
mod nodes;
mod persisted;
mod pool;
mod proxy;
mod read_models;
mod referrals;
mod restore;
mod rights;
mod schema;
mod search;
mod subscriptions;
mod weekly_summaries;
mod workspaces;

use std::net::SocketAddr;
use std::sync::Arc;

use api::config::Config;
use api::startup::Application;
use pgcluster::TestDatabase;
use serde_json::{Value, json};

/// A running server on a random port, on its own migrated database.
#[derive(Clone)]
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub db: Arc<TestDatabase>,
    /// This node's local state (its search index).
    pub data_dir: Arc<tempfile::TempDir>,
    /// The separate `/metrics` listener, when the test configured one.
    pub metrics_address: Option<SocketAddr>,
    /// The clock this node decides time-bound rules by: tests move it on.
    pub clock: api::writes::Clock,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
        Self::spawn_on(&db).await
    }

    /// Another node (server process state) on the same database.
    pub async fn spawn_on(db: &Arc<TestDatabase>) -> TestApp {
        Self::spawn_in_future(db, chrono::Duration::zero()).await
    }

    /// Another node on the same database whose clock runs `ahead` of the real one.
    pub async fn spawn_in_future(db: &Arc<TestDatabase>, ahead: chrono::Duration) -> TestApp {
        Self::spawn_configured(db, |config| config.clock_offset = ahead).await
    }

    /// A node on `db` with the default test configuration changed by `configure`.
    pub async fn spawn_configured(
        db: &Arc<TestDatabase>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = Config::from_lookup(|name| match name {
            "CHRONICLE_HOST" => Some("127.0.0.1".into()),
            "CHRONICLE_PORT" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        let data_dir = Arc::new(tempfile::tempdir().unwrap());
        config.search_dir = data_dir.path().join("search");
        // Background jobs only where a test asks for them (see `jobs`).
        config.workers = false;
        configure(&mut config);
        let app = Application::build(&config, db.pool().clone())
            .await
            .unwrap();
        let address = app.address();
        let metrics_address = app.metrics_address();
        let clock = app.clock().clone();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: client(),
            db: db.clone(),
            data_dir,
            metrics_address,
            clock,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs a GraphQL request and returns the JSON response.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.request(None, query, variables).await
    }

    /// POSTs a GraphQL request as the holder of `token` (if any).
    pub async fn request(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Signs up a user and returns them, signed in.
    pub async fn sign_up(&self, name: &str) -> Session {
        self.sign_up_referred(name, None).await
    }

    /// Signs up a user with another user's referral code (if any) and returns them, signed in.
    pub async fn sign_up_referred(&self, name: &str, referral_code: Option<&str>) -> Session {
        let response = self
            .graphql(
                "mutation($input: SignUpInput!) { signUp(input: $input) {
                    accessToken refreshToken user { id email displayName } } }",
                json!({ "input": { "email": format!("{name}@example.com"), "password": "correct horse battery",
                                   "displayName": name, "referralCode": referral_code } }),
            )
            .await;
        let payload = &response["data"]["signUp"];
        assert!(payload.is_object(), "sign-up failed: {response}");
        Session {
            token: payload["accessToken"].as_str().unwrap().to_string(),
            refresh_token: payload["refreshToken"].as_str().unwrap().to_string(),
            user_id: payload["user"]["id"].as_str().unwrap().to_string(),
        }
    }
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub refresh_token: String,
    /// Global id.
    pub user_id: String,
}

impl Session {
    /// Runs a GraphQL request as this user.
    pub async fn gql(&self, app: &TestApp, query: &str, variables: Value) -> Value {
        app.request(Some(&self.token), query, variables).await
    }
}

/// The `extensions.code` of each error in a GraphQL response.
pub fn error_codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The tests' HTTP client. It lets an idle keep-alive connection go after 2 s, before the
/// server closes it (actix-web's keep-alive is 5 s): a request sent on a connection the server
/// is closing fails with `IncompleteMessage` (a test that waited for an export through SQL
/// between two requests did, once, in CI).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap()
}
