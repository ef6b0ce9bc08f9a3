//! The inline read models are a pure function of the log.

use serde_json::{Value, json};

use crate::TestApp;
use crate::workspaces::{add_member, create_workspace};

async fn snapshot(app: &TestApp) -> Vec<Value> {
    let mut tables = Vec::new();
    for table in [
        "users",
        "workspaces",
        "members",
        "invites",
        "items",
        "exports",
    ] {
        let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t::text), '[]') FROM {table} t"
        )))
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        tables.push(rows);
    }
    tables
}

#[tokio::test]
async fn rebuilding_the_read_models_from_the_log_gives_identical_tables() {
    let app = TestApp::spawn().await;
    let (ana, bo) = (app.sign_up("ana").await, app.sign_up("bo").await);
    let ws = create_workspace(&app, &ana, "Acme").await;
    add_member(&app, &ana, &ws, &bo, domain::Role::Member).await;
    create_workspace(&app, &bo, "Bo's own").await;
    let create = "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t, tags: [\"a\"] }) { item { id } } }";
    let mut ids = Vec::new();
    for (who, title) in [(&ana, "one"), (&bo, "two"), (&ana, "three")] {
        let response = who.gql(&app, create, json!({ "w": ws, "t": title })).await;
        ids.push(
            response["data"]["createItem"]["item"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let steps = [
        (
            &ana,
            "mutation($id: ID!) { updateItem(input: { id: $id, expectedVersion: 1, title: \"one!\", body: \"text\" }) { position } }",
            &ids[0],
        ),
        (
            &bo,
            "mutation($id: ID!) { archiveItem(id: $id) { position } }",
            &ids[1],
        ),
        (
            &ana,
            "mutation($id: ID!) { deleteItem(id: $id) { position } }",
            &ids[2],
        ),
        (
            &ana,
            "mutation($id: ID!) { renameWorkspace(id: $id, name: \"Acme Inc\") { position } }",
            &ws,
        ),
        (
            &ana,
            "mutation($id: ID!) { upgradePlan(id: $id) { position } }",
            &ws,
        ),
        (
            &bo,
            "mutation($id: ID!) { requestExport(workspaceId: $id, format: PDF, filter: { tags: [\"a\"], status: DRAFT }) { position } }",
            &ws,
        ),
    ];
    for (who, mutation, id) in steps {
        let response = who.gql(&app, mutation, json!({ "id": id })).await;
        assert!(response["errors"].is_null(), "{mutation}: {response}");
    }
    let promote = "mutation($w: ID!, $u: ID!) { changeMemberRole(workspaceId: $w, userId: $u, role: ADMIN) { position } }";
    assert!(
        ana.gql(&app, promote, json!({ "w": ws, "u": bo.user_id }))
            .await["errors"]
            .is_null()
    );

    let live = snapshot(&app).await;
    assert_eq!(
        live[3].as_array().unwrap().len(),
        1,
        "one invite (of the added member)"
    );
    assert_eq!(live[4].as_array().unwrap().len(), 2, "two items remain");
    assert_eq!(live[5].as_array().unwrap().len(), 1, "one export");
    let log = eventlog::EventLog::new(app.db.pool().clone());
    let applied = projections::inline::rebuild(&log, |_| {}).await.unwrap();
    assert!(applied >= 15, "{applied}");
    assert_eq!(snapshot(&app).await, live);
}

/// Writers and readers go on while the rebuild runs, and what they did is in the result.
/// The rebuild pauses after each batch of its replay (its copies of the tables exist then):
/// each pause writes an item through the API and reads it back, and reads an item from before
/// the rebuild. A writer and a reader also run throughout, the swap included.
#[tokio::test]
async fn a_rebuild_beside_the_live_tables_keeps_readers_and_writers_going() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let create = "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { item { id } } }";
    let create_item = {
        let (app, ana, ws) = (app.clone(), ana.clone(), ws.clone());
        move |title: String| {
            let (app, ana, ws) = (app.clone(), ana.clone(), ws.clone());
            async move {
                let response = ana.gql(&app, create, json!({ "w": ws, "t": title })).await;
                response["data"]["createItem"]["item"]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{title}: {response}"))
                    .to_string()
            }
        }
    };
    let title_of = |id: String| {
        let (app, ana) = (app.clone(), ana.clone());
        async move {
            let response = ana
                .gql(
                    &app,
                    "query($id: ID!) { item(id: $id) { title } }",
                    json!({ "id": id }),
                )
                .await;
            response["data"]["item"]["title"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: {response}"))
                .to_string()
        }
    };
    let first = create_item("before 0".into()).await;
    for n in 1..30 {
        create_item(format!("before {n}")).await;
    }

    let done = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (done, written) = (done.clone(), written.clone());
        let create_item = create_item.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let n = written.load(Ordering::SeqCst);
                create_item(format!("during {n}")).await;
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (app, done, reads) = (app.clone(), done.clone(), reads.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            while !done.load(Ordering::SeqCst) {
                let count: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
                    .fetch_one(app.db.pool())
                    .await
                    .unwrap();
                assert!(count >= seen, "items went from {seen} to {count}");
                seen = count;
                reads.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Waits until `counter` has moved past what it was: a write (or a read) happened.
    let one_more = |counter: Arc<AtomicUsize>| async move {
        let at = counter.load(Ordering::SeqCst);
        while counter.load(Ordering::SeqCst) == at {
            tokio::task::yield_now().await;
        }
    };
    one_more(written.clone()).await;

    let log = eventlog::EventLog::new(app.db.pool().clone());
    let mut paused = Vec::new();
    projections::inline::rebuild_with(&log, async |_| {
        let rebuilding: bool =
            sqlx::query_scalar("SELECT to_regclass('projection_rebuild.items') IS NOT NULL")
                .fetch_one(app.db.pool())
                .await
                .unwrap();
        assert!(rebuilding, "paused while the copies are being built");
        let pause = async {
            let title = format!("paused {}", paused.len());
            let id = create_item(title.clone()).await;
            assert_eq!(title_of(id).await, title, "a write is read back at once");
            assert_eq!(title_of(first.clone()).await, "before 0");
            one_more(written.clone()).await;
            one_more(reads.clone()).await;
            title
        };
        let title = tokio::time::timeout(Duration::from_secs(30), pause)
            .await
            .expect("writes and reads go through while the rebuild runs");
        paused.push(title);
    })
    .await
    .unwrap();
    assert!(!paused.is_empty(), "the rebuild paused after its batches");
    one_more(written.clone()).await;
    done.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    reader.await.unwrap();
    let written_during = written.load(Ordering::SeqCst);

    // Every item written before, during and around the rebuild, each once.
    let mut expected: Vec<String> = (0..30).map(|n| format!("before {n}")).collect();
    expected.extend(paused);
    expected.extend((0..written_during).map(|n| format!("during {n}")));
    expected.sort();
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM items ORDER BY title")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert_eq!(titles, expected);
    let after = snapshot(&app).await;
    projections::inline::rebuild(&log, |_| {}).await.unwrap();
    assert_eq!(snapshot(&app).await, after, "equal to a fresh rebuild");
}

/// The replay holds no transaction open between batches: while it runs, log readers (a tail
/// here, as a projection or subscription on any node would read) keep getting new events.
/// Before, the whole replay ran in one writing transaction, which pinned the read horizon
/// until it ended.
#[tokio::test]
async fn log_readers_make_progress_while_the_inline_rebuild_runs() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let create = "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { item { id } } }";
    for n in 0..5 {
        ana.gql(&app, create, json!({ "w": ws, "t": format!("item {n}") }))
            .await;
    }
    let log = eventlog::EventLog::new(app.db.pool().clone());
    // Everything written so far is below the read horizon (a transaction of another test can
    // hold it back for a moment), so the replay has batches to run.
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let mut tail = log.tail(eventlog::Position::START);
    for _ in 0..history {
        tail.next().await.unwrap();
    }
    let mut probes = 0;
    projections::inline::rebuild_with(&log, async |_| {
        let probe = eventlog::NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "Probed".into(),
            schema_version: 1,
            payload: json!({}),
            metadata: eventlog::Metadata::system("test"),
        };
        let stream = eventlog::StreamRef {
            stream_type: "probe",
            stream_id: uuid::Uuid::now_v7(),
            workspace_id: None,
        };
        log.append(
            &stream,
            eventlog::ExpectedVersion::NoStream,
            std::slice::from_ref(&probe),
        )
        .await
        .unwrap();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next())
            .await
            .expect("a tail gets a new event while the rebuild runs")
            .unwrap();
        assert_eq!(seen.event_id, probe.event_id);
        probes += 1;
    })
    .await
    .unwrap();
    assert!(probes >= 1, "a probe after each batch ({probes})");
}
