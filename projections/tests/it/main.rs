//! Asynchronous projections against a real PostgreSQL: exactly-once effects across crashes,
//! and rebuilds beside the live copy while writers append and readers read.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::{ItemBody, ItemEvent, ItemId, ItemStatus, ItemTitle, Tags, UserId, WorkspaceId};
use eventlog::aggregates::to_new_events;
use eventlog::{EventLog, ExpectedVersion, Metadata, Position, StreamRef};
use pgcluster::TestDatabase;
use projections::activity::{self, Activity};
use projections::runner::{self, hooks};
use projections::search_index::{self, SearchProjection, SearchStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

mod restore;

/// The crash hooks are global to this process: tests that run projections take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends one `ItemCreated` to a new item stream of `workspace`.
async fn create_item(log: &EventLog, workspace: Uuid, n: usize) {
    let id = Uuid::now_v7();
    let event = ItemEvent::ItemCreated {
        item_id: ItemId::from_uuid(id),
        workspace_id: WorkspaceId::from_uuid(workspace),
        title: ItemTitle::parse(&format!("item {n} invoice")).unwrap(),
        body: ItemBody::parse("quarterly numbers").unwrap(),
        tags: Tags::parse(vec!["finance".into()]).unwrap(),
        status: ItemStatus::Draft,
        author: UserId::from_uuid(Uuid::nil()),
        created_at: chrono::Utc::now(),
    };
    let stream = StreamRef {
        stream_type: "item",
        stream_id: id,
        workspace_id: Some(workspace),
    };
    let events = to_new_events(&[event], &Metadata::system("test"));
    log.append(&stream, ExpectedVersion::NoStream, &events)
        .await
        .unwrap();
}

/// The two projections, running as a node would run them.
struct Node {
    store: Arc<SearchStore>,
    search: watch::Receiver<Position>,
    activity: watch::Receiver<Position>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    fn start(log: &EventLog, dir: &Path) -> Node {
        let store = Arc::new(SearchStore::open(dir).unwrap());
        let (search_tx, search) = watch::channel(Position::START);
        let (activity_tx, activity) = watch::channel(Position::START);
        let projection = SearchProjection::new(store.clone(), log.clone(), "test".into());
        let tasks = vec![
            tokio::spawn(runner::run(log.clone(), projection, search_tx)),
            tokio::spawn(runner::run(
                log.clone(),
                Activity::new(log.clone()),
                activity_tx,
            )),
        ];
        Node {
            store,
            search,
            activity,
            tasks,
        }
    }

    /// Waits until both projections have applied everything up to the head of the log.
    async fn catch_up(&mut self, log: &EventLog) {
        let head = log.head().await.unwrap();
        for progress in [&mut self.search, &mut self.activity] {
            tokio::time::timeout(Duration::from_secs(30), progress.wait_for(|p| *p >= head))
                .await
                .expect("the projection catches up")
                .unwrap();
        }
    }

    /// Stops the node as a crash would: its tasks end wherever they are.
    fn kill(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A fresh database whose log holds `items` items of one workspace, and a node whose
/// projections have caught up with them.
struct Started {
    _db: TestDatabase,
    log: EventLog,
    dir: tempfile::TempDir,
    workspace: Uuid,
    node: Node,
}

impl Started {
    async fn with_items(items: usize) -> Started {
        let db = TestDatabase::create(&eventlog::MIGRATOR).await;
        let log = EventLog::new(db.pool().clone());
        let dir = tempfile::tempdir().unwrap();
        let workspace = Uuid::now_v7();
        let mut node = Node::start(&log, dir.path());
        for n in 0..items {
            create_item(&log, workspace, n).await;
        }
        node.catch_up(&log).await;
        Started {
            _db: db,
            log,
            dir,
            workspace,
            node,
        }
    }
}

/// The activity table as the log says it must be.
async fn assert_activity_matches_the_log(log: &EventLog) {
    let mismatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT workspace_id, count(*) AS events,
                    count(*) FILTER (WHERE event_type = 'ItemCreated') AS items_created,
                    count(*) FILTER (WHERE event_type = 'ItemDeleted') AS items_deleted,
                    max(recorded_at) AS last_event_at
             FROM events WHERE workspace_id IS NOT NULL GROUP BY workspace_id
             EXCEPT
             SELECT workspace_id, events, items_created, items_deleted, last_event_at
             FROM workspace_activity) AS missing",
    )
    .fetch_one(log.pool())
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_activity")
        .fetch_one(log.pool())
        .await
        .unwrap();
    let workspaces: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT workspace_id) FROM events WHERE workspace_id IS NOT NULL",
    )
    .fetch_one(log.pool())
    .await
    .unwrap();
    assert_eq!(
        (mismatches, rows),
        (0, workspaces),
        "activity equals the log"
    );
}

/// Items the search index returns for `workspace` (every one of them matches `invoice`).
fn searchable(store: &SearchStore, workspace: Uuid) -> u64 {
    let query = search::SearchQuery {
        workspace_id: workspace,
        text: "invoice".into(),
        filter: search::SearchFilter::default(),
        order: search::Order::Relevance,
        first: 1,
        after: None,
        backward: false,
    };
    store.index().search(&query).unwrap().total
}

#[tokio::test]
async fn a_crash_between_effect_and_checkpoint_applies_every_event_exactly_once() {
    let _turn = SERIAL.lock().await;
    let Started {
        _db,
        log,
        dir,
        workspace,
        mut node,
    } = Started::with_items(50).await;

    // Both projections fail once after applying a batch's effect, before the checkpoint.
    hooks::fail_next_commit(activity::NAME);
    hooks::fail_next_commit(search_index::NAME);
    for n in 50..100 {
        create_item(&log, workspace, n).await;
    }
    node.catch_up(&log).await;
    assert!(hooks::armed().is_empty(), "both hooks fired");
    assert_activity_matches_the_log(&log).await;
    assert_eq!(searchable(&node.store, workspace), 100);

    // A crash of the whole node, then a restart from what is stored.
    node.kill();
    for n in 100..120 {
        create_item(&log, workspace, n).await;
    }
    let mut node = Node::start(&log, dir.path());
    node.catch_up(&log).await;
    assert_activity_matches_the_log(&log).await;
    assert_eq!(searchable(&node.store, workspace), 120);
}

#[tokio::test]
async fn rebuilds_beside_the_live_copy_never_show_readers_a_partial_one() {
    let _turn = SERIAL.lock().await;
    let Started {
        _db,
        log,
        dir,
        workspace,
        mut node,
    } = Started::with_items(300).await;

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (log.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 300;
            while !done.load(Ordering::SeqCst) {
                create_item(&log, workspace, n).await;
                n += 1;
            }
        })
    };
    // Readers: the counts only grow (writers only add) — never an empty or partial copy.
    let reader = {
        let (log, done, store) = (log.clone(), done.clone(), node.store.clone());
        tokio::spawn(async move {
            let (mut activity_seen, mut search_seen, mut reads) = (0i64, 0u64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let events: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(sum(events), 0)::bigint FROM workspace_activity",
                )
                .fetch_one(log.pool())
                .await
                .unwrap();
                assert!(
                    events >= activity_seen,
                    "activity went from {activity_seen} to {events}"
                );
                activity_seen = events;
                let found = searchable(&store, workspace);
                assert!(
                    found >= search_seen,
                    "search went from {search_seen} to {found}"
                );
                search_seen = found;
                reads += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            reads
        })
    };

    let replayed = activity::rebuild(&log, |_| {}).await.unwrap();
    assert!(replayed >= 300);
    let replayed = search_index::rebuild(&log, dir.path(), |_| {})
        .await
        .unwrap();
    assert!(replayed >= 300);
    // The node switches to the rebuilt index at its next batch: wait for that (the writer
    // keeps writing, so batches keep coming) rather than for a fixed time.
    let generations = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("gen-")
            })
            .count()
    };
    let switching = tokio::time::Instant::now();
    while generations() != 1 {
        assert!(
            switching.elapsed() < Duration::from_secs(30),
            "the node never switched to the rebuilt index"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    done.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let reads = reader.await.unwrap();
    assert!(reads > 10, "the readers read throughout ({reads} reads)");
    node.catch_up(&log).await;
    assert_activity_matches_the_log(&log).await;
    let items: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ItemCreated'")
            .fetch_one(log.pool())
            .await
            .unwrap();
    assert_eq!(searchable(&node.store, workspace), items as u64);
    assert_eq!(
        generations(),
        1,
        "the old index was removed after the switch"
    );
}

#[tokio::test]
async fn one_node_leads_a_shared_projection_and_another_takes_over_when_it_dies() {
    let _turn = SERIAL.lock().await;
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let log = EventLog::new(db.pool().clone());
    let workspace = Uuid::now_v7();
    let start = |log: &EventLog| {
        let (progress, seen) = watch::channel(Position::START);
        let task = tokio::spawn(runner::run(
            log.clone(),
            Activity::new(log.clone()),
            progress,
        ));
        (task, seen)
    };
    let (first, first_seen) = start(&log);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (second, mut second_seen) = start(&log);
    for n in 0..20 {
        create_item(&log, workspace, n).await;
    }
    let head = log.head().await.unwrap();
    let mut first_seen = first_seen;
    tokio::time::timeout(Duration::from_secs(10), first_seen.wait_for(|p| *p >= head))
        .await
        .expect("the first node leads and applies")
        .unwrap();
    assert_eq!(
        *second_seen.borrow(),
        Position::START,
        "the second node waits while the first leads"
    );

    // The leader dies; its lock goes with its connection, and the second node takes over.
    first.abort();
    another_node_takes_over(&log, workspace, &mut second_seen).await;
    second.abort();
}

/// Appends 20 more items and waits (seconds at most) until the node whose progress is `seen`
/// has applied them, then checks the activity table against the log.
async fn another_node_takes_over(
    log: &EventLog,
    workspace: Uuid,
    seen: &mut watch::Receiver<Position>,
) {
    for n in 20..40 {
        create_item(log, workspace, n).await;
    }
    let head = log.head().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), seen.wait_for(|p| *p >= head))
        .await
        .expect("the other node takes over within seconds")
        .unwrap();
    assert_activity_matches_the_log(log).await;
}

#[tokio::test]
async fn a_stopped_leader_ends_between_batches_and_another_node_takes_over() {
    let _turn = SERIAL.lock().await;
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let log = EventLog::new(db.pool().clone());
    let workspace = Uuid::now_v7();
    let stop = tokio_util::sync::CancellationToken::new();
    let (progress, mut first_seen) = watch::channel(Position::START);
    let first = tokio::spawn(runner::run_until(
        log.clone(),
        Activity::new(log.clone()),
        progress,
        stop.clone(),
    ));
    for n in 0..20 {
        create_item(&log, workspace, n).await;
    }
    let head = log.head().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), first_seen.wait_for(|p| *p >= head))
        .await
        .expect("the first node leads and applies")
        .unwrap();
    let (progress, mut second_seen) = watch::channel(Position::START);
    let second = tokio::spawn(runner::run(
        log.clone(),
        Activity::new(log.clone()),
        progress,
    ));

    // Told to stop, the leader returns on its own (it is not aborted), its work stored.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the stopped leader returns")
        .unwrap();
    // What it said it applied is stored: at least the head it was seen to reach (more when the
    // read horizon held the last events back while `head` was read; the other node may go on
    // from there, never back).
    let applied = *first_seen.borrow();
    assert!(applied >= head, "{applied:?} < {head:?}");
    let stored = runner::SharedCheckpoint::new(activity::NAME)
        .load(log.pool())
        .await
        .unwrap();
    assert!(stored >= applied, "{stored:?} < {applied:?}");
    another_node_takes_over(&log, workspace, &mut second_seen).await;
    second.abort();
}
