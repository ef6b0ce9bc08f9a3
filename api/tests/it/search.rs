//! `search` through the API: the index follows the log (read-your-write with `minPosition`),
//! typos, prefixes, filters, facets, order, highlights, archived and deleted items, isolation
//! between workspaces, and a second node answering for a write made through the first.

use serde_json::{Value, json};

use crate::workspaces::create_workspace;
use crate::{Session, TestApp, error_codes};

const SEARCH: &str = "query($w: ID!, $q: String!, $filter: SearchFilter, $order: SearchOrder,
                             $first: Int, $after: String, $min: String) {
    search(workspaceId: $w, query: $q, filter: $filter, orderBy: $order, first: $first,
           after: $after, minPosition: $min) {
        totalCount
        facets { statuses { value count } tags { value count } }
        edges { cursor score title body node { id title status tags } }
        pageInfo { hasNextPage endCursor } } }";

/// Creates an item and returns its id and the position written.
async fn create(
    app: &TestApp,
    who: &Session,
    ws: &str,
    title: &str,
    body: &str,
    tags: &[&str],
) -> (String, String) {
    let response = who
        .gql(
            app,
            "mutation($input: CreateItemInput!) { createItem(input: $input) { item { id } position } }",
            json!({ "input": { "workspaceId": ws, "title": title, "body": body, "tags": tags } }),
        )
        .await;
    let payload = &response["data"]["createItem"];
    assert!(payload.is_object(), "{response}");
    (
        payload["item"]["id"].as_str().unwrap().to_string(),
        payload["position"].as_str().unwrap().to_string(),
    )
}

async fn search(app: &TestApp, who: &Session, variables: Value) -> Value {
    let response = who.gql(app, SEARCH, variables).await;
    assert!(response["errors"].is_null(), "{response}");
    response["data"]["search"].clone()
}

fn titles(result: &Value) -> Vec<String> {
    result["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_finds_words_with_typos_and_prefixes_and_reads_its_own_writes() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    create(
        &app,
        &ana,
        &ws,
        "Q3 invoice",
        "for the accounting team",
        &["finance"],
    )
    .await;
    create(
        &app,
        &ana,
        &ws,
        "Roadmap",
        "the invoice flow needs work",
        &["product"],
    )
    .await;
    let (_, last) = create(&app, &ana, &ws, "Lunch menu", "soup and bread", &["office"]).await;

    let found = search(&app, &ana, json!({ "w": ws, "q": "invioce", "min": last })).await;
    assert_eq!(
        titles(&found),
        ["Q3 invoice", "Roadmap"],
        "typo found both; the title match ranks first"
    );
    let title = found["edges"][0]["title"].as_str().unwrap();
    assert_eq!(title, "Q3 <b>invoice</b>");
    assert!(
        found["edges"][1]["body"]
            .as_str()
            .unwrap()
            .contains("<b>invoice</b>")
    );

    let typed = search(&app, &ana, json!({ "w": ws, "q": "lunch me" })).await;
    assert_eq!(titles(&typed), ["Lunch menu"], "the last word is a prefix");
    let tag = search(&app, &ana, json!({ "w": ws, "q": "finance" })).await;
    assert_eq!(titles(&tag), ["Q3 invoice"], "tags are searched");
    let none = search(&app, &ana, json!({ "w": ws, "q": "xylophone" })).await;
    assert_eq!(none["totalCount"], 0);

    // Query syntax is just words.
    for junk in [
        "title:invoice",
        "\"unclosed",
        "a AND (b",
        "*",
        "\\",
        "-x",
        "🙂",
    ] {
        let response = ana.gql(&app, SEARCH, json!({ "w": ws, "q": junk })).await;
        assert!(response["errors"].is_null(), "{junk}: {response}");
    }
}

#[tokio::test]
async fn filters_facets_order_and_pages() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut last = String::new();
    for n in 0..5 {
        let tags: &[&str] = if n % 2 == 0 {
            &["even", "report"]
        } else {
            &["report"]
        };
        (_, last) = create(
            &app,
            &ana,
            &ws,
            &format!("report {n}"),
            "quarterly numbers",
            tags,
        )
        .await;
    }
    let all = search(&app, &ana, json!({ "w": ws, "q": "report", "min": last })).await;
    assert_eq!(all["totalCount"], 5);
    assert_eq!(
        all["facets"]["tags"],
        json!([{ "value": "report", "count": 5 }, { "value": "even", "count": 3 }])
    );
    let even = search(
        &app,
        &ana,
        json!({ "w": ws, "q": "report", "filter": { "tags": ["even"] } }),
    )
    .await;
    assert_eq!(even["totalCount"], 3);
    // Facets are counted only when selected, however they are selected.
    let tags = "facets { tags { value count } }";
    let selections = [
        ("totalCount", String::new()),
        (
            &*format!("... on SearchConnection {{ {tags} }}"),
            String::new(),
        ),
        (
            "...counts",
            format!("fragment counts on SearchConnection {{ {tags} }}"),
        ),
    ];
    for (n, (selection, fragment)) in selections.into_iter().enumerate() {
        let query = format!(
            "query($w: ID!) {{ search(workspaceId: $w, query: \"report\") {{ {selection} }} }} {fragment}"
        );
        let response = ana.gql(&app, &query, json!({ "w": ws })).await;
        assert!(response["errors"].is_null(), "{response}");
        let result = &response["data"]["search"];
        match n {
            0 => assert_eq!(result["totalCount"], 5),
            _ => assert_eq!(
                result["facets"]["tags"], all["facets"]["tags"],
                "{selection}"
            ),
        }
    }

    // Oldest first, two per page, no repeats or gaps.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = search(
            &app,
            &ana,
            json!({ "w": ws, "q": "report", "order": "CREATED_ASC", "first": 2, "after": after }),
        )
        .await;
        seen.extend(titles(&page));
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        seen,
        ["report 0", "report 1", "report 2", "report 3", "report 4"]
    );

    let bad = ana
        .gql(
            &app,
            SEARCH,
            json!({ "w": ws, "q": "report", "after": "nonsense" }),
        )
        .await;
    assert_eq!(error_codes(&bad), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn archived_items_only_when_asked_and_deleted_items_never() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let (kept, _) = create(&app, &ana, &ws, "budget kept", "", &[]).await;
    let (archived, _) = create(&app, &ana, &ws, "budget archived", "", &[]).await;
    let (deleted, _) = create(&app, &ana, &ws, "budget deleted", "", &[]).await;
    ana.gql(
        &app,
        "mutation($id: ID!) { archiveItem(id: $id) { position } }",
        json!({ "id": archived }),
    )
    .await;
    let response = ana
        .gql(
            &app,
            "mutation($id: ID!) { deleteItem(id: $id) { position } }",
            json!({ "id": deleted }),
        )
        .await;
    let last = response["data"]["deleteItem"]["position"].clone();

    let default = search(&app, &ana, json!({ "w": ws, "q": "budget", "min": last })).await;
    assert_eq!(titles(&default), ["budget kept"]);
    assert_eq!(default["edges"][0]["node"]["id"], kept);
    let statuses = &default["facets"]["statuses"];
    assert!(
        statuses
            .as_array()
            .unwrap()
            .contains(&json!({ "value": "ARCHIVED", "count": 1 })),
        "{statuses}"
    );
    let with_archived = search(
        &app,
        &ana,
        json!({ "w": ws, "q": "budget", "filter": { "statuses": ["ARCHIVED", "DRAFT", "ACTIVE"] } }),
    )
    .await;
    let mut found = titles(&with_archived);
    found.sort();
    assert_eq!(found, ["budget archived", "budget kept"]);
}

#[tokio::test]
async fn a_workspace_never_sees_another_workspaces_items() {
    let app = TestApp::spawn().await;
    let (ana, eve) = (app.sign_up("Ana").await, app.sign_up("Eve").await);
    let ours = create_workspace(&app, &ana, "Acme").await;
    let theirs = create_workspace(&app, &eve, "Other").await;
    create(&app, &eve, &theirs, "secret invoice", "", &[]).await;
    let (_, last) = create(&app, &ana, &ours, "our invoice", "", &[]).await;
    let found = search(
        &app,
        &ana,
        json!({ "w": ours, "q": "invoice", "min": last }),
    )
    .await;
    assert_eq!(titles(&found), ["our invoice"]);
    // Another workspace's id is not found, whatever the query.
    let response = ana
        .gql(&app, SEARCH, json!({ "w": theirs, "q": "invoice" }))
        .await;
    assert_eq!(error_codes(&response), ["NOT_FOUND"]);
}

#[tokio::test]
async fn a_write_through_one_node_is_searchable_through_another_with_min_position() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(&first.db).await;
    let ana = first.sign_up("Ana").await;
    let ws = create_workspace(&first, &ana, "Acme").await;
    let (_, position) = create(&first, &ana, &ws, "meeting notes", "", &[]).await;
    let found = search(
        &second,
        &ana,
        json!({ "w": ws, "q": "meetng", "min": position }),
    )
    .await;
    assert_eq!(titles(&found), ["meeting notes"]);

    // The activity projection runs on one of the two nodes; either answers with minPosition.
    let response = ana
        .gql(
            &second,
            "query($w: ID!, $min: String) { workspace(id: $w) { activity(minPosition: $min) {
                events itemsCreated itemsDeleted } } }",
            json!({ "w": ws, "min": position }),
        )
        .await;
    assert_eq!(
        response["data"]["workspace"]["activity"],
        json!({ "events": 2, "itemsCreated": 1, "itemsDeleted": 0 }),
        "{response}"
    );
}

#[tokio::test]
async fn readiness_reports_projection_lag() {
    let app = TestApp::spawn().await;
    let response: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "ready", "{response}");
    assert!(
        response["checks"]["projection_lag_events"]["search"].is_u64(),
        "{response}"
    );
}
