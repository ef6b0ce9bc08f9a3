//! API tests through the real HTTP endpoint, each on its own fresh database.

mod binary;
mod graphql;
mod health;
mod schema;

use std::net::SocketAddr;

use api::config::Config;
use api::startup::Application;
use pgcluster::TestDatabase;
use serde_json::{Value, json};

/// A running server on a random port, on its own migrated database.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let db = TestDatabase::create(&eventlog::MIGRATOR).await;
        let config = Config::from_lookup(|name| match name {
            "CHRONICLE_HOST" => Some("127.0.0.1".into()),
            "CHRONICLE_PORT" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        let app = Application::build(&config, db.pool().clone()).unwrap();
        let address = app.address();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs a GraphQL request and returns the JSON response.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
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
