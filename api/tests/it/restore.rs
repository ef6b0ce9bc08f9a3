//! A move of the database (SPEC §4), through the real HTTP endpoint: a dump restored into a
//! freshly created cluster restarts the transaction-id counter far below the stored positions.
//! A node started on the copy must show every reader the whole history, then the new events.

use std::sync::Arc;

use pgcluster::{Cluster, TestDatabase};
use serde_json::{Value, json};

use crate::TestApp;
use crate::workspaces::create_workspace;

async fn cluster() -> Cluster {
    tokio::task::spawn_blocking(|| Cluster::temporary(&[]))
        .await
        .unwrap()
        .unwrap()
}

const CREATE: &str = "mutation($w: ID!, $t: String!) {
    createItem(input: { workspaceId: $w, title: $t, tags: [\"moved\"] }) { position } }";

#[tokio::test]
async fn after_a_restore_into_a_fresh_cluster_every_reader_sees_the_history_then_new_events() {
    let (old_cluster, new_cluster) = (cluster().await, cluster().await);
    let old_db = Arc::new(TestDatabase::create_in(&old_cluster, Some(&eventlog::MIGRATOR)).await);
    // The old cluster has lived longer than the fresh one.
    sqlx::raw_sql(
        "DO $$ BEGIN FOR i IN 1..3000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$",
    )
    .execute(old_db.pool())
    .await
    .unwrap();
    let old_node = TestApp::spawn_on(&old_db).await;
    let ana = old_node.sign_up("ana").await;
    let ws = create_workspace(&old_node, &ana, "Acme").await;
    let mut titles = Vec::new();
    for n in 0..4 {
        let title = format!("invoice before {n}");
        let response = ana
            .gql(&old_node, CREATE, json!({ "w": ws, "t": title }))
            .await;
        assert!(response["errors"].is_null(), "{response}");
        titles.push(title);
    }

    // The move: pg_dump, then psql into a new cluster; a node starts on the copy.
    let new_db = Arc::new(old_db.dump_and_restore(&old_cluster, &new_cluster).await);
    let node = TestApp::spawn_on(&new_db).await;
    let mut last = String::new();
    for n in 0..3 {
        let title = format!("invoice after {n}");
        let response = ana.gql(&node, CREATE, json!({ "w": ws, "t": title })).await;
        last = response["data"]["createItem"]["position"]
            .as_str()
            .unwrap_or_else(|| panic!("{response}"))
            .to_string();
        titles.push(title);
    }

    // The `events` query: the whole history, then the new events, in position order.
    let events = ana
        .gql(
            &node,
            "query($w: ID!) { events(filter: { workspaceId: $w }, first: 100) {
                edges { node { position eventId eventType payload } } } }",
            json!({ "w": ws }),
        )
        .await;
    let nodes: Vec<Value> = events["data"]["events"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{events}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    let created: Vec<&str> = nodes
        .iter()
        .filter(|n| n["eventType"] == "ItemCreated")
        .map(|n| n["payload"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(created, titles, "history first, then the new events");
    assert_eq!(nodes.len(), 1 + titles.len(), "{events}");
    assert!(
        nodes
            .windows(2)
            .all(|w| w[0]["position"].as_str() < w[1]["position"].as_str())
    );
    assert_eq!(nodes.last().unwrap()["position"], last.as_str());

    // `/events.ndjson`: the same events, in the same order.
    let ndjson = node
        .client
        .get(node.url("/events.ndjson"))
        .query(&[("workspace", ws.as_str())])
        .bearer_auth(&ana.token)
        .send()
        .await
        .unwrap();
    assert_eq!(ndjson.status(), 200);
    let mut lines: Vec<Value> = ndjson
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let trailer = lines.pop().expect("a trailer");
    assert_eq!(trailer["end"]["complete"], true, "{trailer}");
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["eventId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&lines), ids(&nodes));

    // The new node's search index, built from the log, has every item once it reflects the
    // last write.
    let search = ana
        .gql(
            &node,
            "query($w: ID!, $min: String) { search(workspaceId: $w, query: \"invoice\", first: 50,
                                                   minPosition: $min) { totalCount } }",
            json!({ "w": ws, "min": last }),
        )
        .await;
    assert_eq!(
        search["data"]["search"]["totalCount"],
        titles.len(),
        "{search}"
    );
}
