//! Asynchronous projections against a real PostgreSQL: exactly-once effects across crashes,
//! and rebuilds beside the live copy while writers append and readers read.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

mod queries;
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
    append_item_events(log, workspace, id, 0, &[event]).await;
}

/// Appends `events` to the item stream `id`, which has `version` events.
async fn append_item_events(
    log: &EventLog,
    workspace: Uuid,
    id: Uuid,
    version: u64,
    events: &[ItemEvent],
) {
    let stream = StreamRef {
        stream_type: "item",
        stream_id: id,
        workspace_id: Some(workspace),
    };
    let expected = match version {
        0 => ExpectedVersion::NoStream,
        version => ExpectedVersion::Exact(version),
    };
    let events = to_new_events(events, &Metadata::system("test"));
    log.append(&stream, expected, &events).await.unwrap();
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
        Node::on(log, Arc::new(SearchStore::open(dir).unwrap()))
    }

    /// Starts a node on `dir` after one there was killed, once the killed one's index writer
    /// is gone: the index work it had handed to a blocking thread runs to its end (the crash
    /// of a process would end it with the process).
    async fn restart(log: &EventLog, dir: &Path) -> Node {
        let killed = tokio::time::Instant::now();
        loop {
            match SearchStore::open(dir) {
                Ok(store) => return Node::on(log, Arc::new(store)),
                Err(err) => assert!(
                    killed.elapsed() < Duration::from_secs(30),
                    "the killed node's index is still open: {err}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn on(log: &EventLog, store: Arc<SearchStore>) -> Node {
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
        facets: true,
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

    // Both projections fail once: activity after its batch's effect and before its checkpoint
    // (both in one transaction, so the effect rolls back; the events count shows a double
    // apply), search before its index commit (which stores the documents and the checkpoint
    // together; a double apply is an upsert there, so only a lost event would show).
    hooks::fail_next_commit(activity::NAME);
    hooks::fail_next_commit(search_index::NAME);
    for n in 50..100 {
        create_item(&log, workspace, n).await;
    }
    node.catch_up(&log).await;
    assert!(hooks::armed().is_empty(), "both hooks fired");
    assert_activity_matches_the_log(&log).await;
    assert_eq!(searchable(&node.store, workspace), 100);

    // A crash of the whole node while it is busy, then a restart from what is stored. A
    // slow transaction locks the activity table (a table lock takes no transaction id, so
    // it holds no log reader back), so the node's activity transaction waits in the middle
    // of its work, its checkpoint locked and its effect running, when the node dies.
    let mut slow = log.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE workspace_activity IN SHARE MODE")
        .execute(&mut *slow)
        .await
        .unwrap();
    for n in 100..120 {
        create_item(&log, workspace, n).await;
    }
    let busy = tokio::time::Instant::now();
    loop {
        let (waiting, _) = sessions(&log).await;
        if waiting == 1 {
            break;
        }
        assert!(
            busy.elapsed() < Duration::from_secs(30),
            "the node's activity projection never got busy ({waiting} waiting)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill();
    slow.rollback().await.unwrap();
    let mut node = Node::restart(&log, dir.path()).await;
    node.catch_up(&log).await;
    assert_activity_matches_the_log(&log).await;
    assert_eq!(searchable(&node.store, workspace), 120);
}

/// A shared projection whose every application of an event is a row of its own (nothing
/// dedupes them), so that an event applied twice is counted twice. It can be told to stop in
/// the middle of its next batch, its first half applied and its checkpoint not yet stored:
/// there it fails, or waits (saying so) to be killed.
struct Counted {
    log: EventLog,
    crash: Option<MidBatch>,
}

enum MidBatch {
    Fail(AtomicBool),
    Wait(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>),
}

const COUNTED: runner::SharedCheckpoint = runner::SharedCheckpoint::new("counted");

impl runner::Projection for Counted {
    fn name(&self) -> &'static str {
        "counted"
    }

    fn scope(&self) -> runner::Scope {
        runner::Scope::Shared
    }

    async fn checkpoint(&self) -> Result<Position, projections::Error> {
        COUNTED.load(self.log.pool()).await
    }

    async fn apply(
        &self,
        after: Position,
        events: &[eventlog::RecordedEvent],
    ) -> Result<(), projections::Error> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut tx = self.log.pool().begin().await?;
        COUNTED.lock_at(&mut tx, after).await?;
        for (n, event) in events.iter().enumerate() {
            if n == events.len() / 2 && n > 0 {
                match &self.crash {
                    Some(MidBatch::Fail(armed)) if armed.swap(false, Ordering::SeqCst) => {
                        return Err(projections::Error::Crashed {
                            projection: "counted",
                        });
                    }
                    Some(MidBatch::Wait(busy)) => {
                        let first = busy.lock().unwrap().take();
                        if let Some(busy) = first {
                            let _ = busy.send(());
                            std::future::pending::<()>().await;
                        }
                    }
                    _ => {}
                }
            }
            sqlx::query("INSERT INTO counted_applications (tx_id, seq) VALUES ($1, $2)")
                .bind(event.position.tx_id())
                .bind(event.position.seq())
                .execute(&mut *tx)
                .await?;
        }
        COUNTED.store(&mut tx, last.position).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The sessions of this database waiting for a lock, and those idle in a transaction.
async fn sessions(log: &EventLog) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),
                count(*) FILTER (WHERE state = 'idle in transaction')
         FROM pg_stat_activity WHERE datname = current_database()",
    )
    .fetch_one(log.pool())
    .await
    .unwrap()
}

/// How many events of the log were applied once, and how many applications there were.
async fn applications(log: &EventLog) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM events e WHERE (SELECT count(*) FROM counted_applications a
                                                     WHERE (a.tx_id, a.seq) = (e.tx_id, e.seq)) = 1),
                (SELECT count(*) FROM counted_applications)",
    )
    .fetch_one(log.pool())
    .await
    .unwrap()
}

/// Runs `projection` until its progress reaches the log's head.
async fn run_to_head(log: &EventLog, projection: Counted) -> JoinHandle<()> {
    let (progress, mut seen) = watch::channel(Position::START);
    let task = tokio::spawn(runner::run(log.clone(), projection, progress));
    let head = log.head().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), seen.wait_for(|p| *p >= head))
        .await
        .expect("the projection reaches the head")
        .unwrap();
    task
}

/// A crash in the middle of a batch, after half of its effects and before its checkpoint —
/// a failure there, then a node killed while it is busy there — loses nothing and applies
/// nothing twice: every event of the log is applied exactly once in the end.
#[tokio::test]
async fn a_crash_mid_batch_after_its_effects_applies_every_event_exactly_once() {
    let _turn = SERIAL.lock().await;
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let log = EventLog::new(db.pool().clone());
    sqlx::raw_sql("CREATE TABLE counted_applications (tx_id bigint NOT NULL, seq bigint NOT NULL)")
        .execute(log.pool())
        .await
        .unwrap();
    let workspace = Uuid::now_v7();
    for n in 0..100 {
        create_item(&log, workspace, n).await;
    }
    // A failure half-way through the first batch (the whole log): the runner restarts
    // from the stored checkpoint.
    let failing = Counted {
        log: log.clone(),
        crash: Some(MidBatch::Fail(AtomicBool::new(true))),
    };
    let node = run_to_head(&log, failing).await;
    node.abort();
    assert_eq!(applications(&log).await, (100, 100));

    // A node killed while it applies: 200 more events, one batch, half applied in its open
    // transaction when the node dies.
    for n in 100..300 {
        create_item(&log, workspace, n).await;
    }
    let (busy, mid_batch) = tokio::sync::oneshot::channel();
    let (progress, _) = watch::channel(Position::START);
    let node = tokio::spawn(runner::run(
        log.clone(),
        Counted {
            log: log.clone(),
            crash: Some(MidBatch::Wait(std::sync::Mutex::new(Some(busy)))),
        },
        progress,
    ));
    tokio::time::timeout(Duration::from_secs(30), mid_batch)
        .await
        .expect("the node gets busy")
        .unwrap();
    let (_, open) = sessions(&log).await;
    assert_eq!(
        open, 1,
        "the node is killed in the middle of its transaction"
    );
    node.abort();
    let _ = node.await;
    assert_eq!(
        applications(&log).await,
        (100, 100),
        "nothing of the killed batch"
    );

    // A new node resumes where the effects stored end.
    let node = run_to_head(
        &log,
        Counted {
            log: log.clone(),
            crash: None,
        },
    )
    .await;
    node.abort();
    assert_eq!(applications(&log).await, (300, 300));
}

// Two workers: a rebuild paused in its progress callback blocks one (`block_in_place`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    let (writes, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (log, done, writes) = (log.clone(), done.clone(), writes.clone());
        tokio::spawn(async move {
            let mut n = 300;
            while !done.load(Ordering::SeqCst) {
                create_item(&log, workspace, n).await;
                writes.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    // Readers: the counts only grow (writers only add) — never an empty or partial copy.
    let reader = {
        let (log, done, store) = (log.clone(), done.clone(), node.store.clone());
        let counted = reads.clone();
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
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            reads
        })
    };

    // Each rebuild pauses after its first batch until writers and readers have been seen
    // working while it runs; it then takes in what they wrote and switches.
    let counters = (writes.as_ref(), reads.as_ref());
    let replayed = while_paused(counters, |pause| {
        let log = log.clone();
        async move { activity::rebuild(&log, pause).await }
    })
    .await;
    assert!(replayed >= 300);
    let replayed = while_paused(counters, |pause| {
        let (log, dir) = (log.clone(), dir.path().to_owned());
        async move { search_index::rebuild(&log, &dir, pause).await }
    })
    .await;
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

/// A rebuild, reading a few events at a time and committing every few (so that events of one
/// item fall in different reads and different commits), makes the same documents as the live
/// projection that applied every event as it came, whatever the kind of event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_search_index_has_the_live_ones_documents() {
    let _serial = SERIAL.lock().await;
    let Started {
        _db,
        log,
        dir: _dir,
        workspace,
        mut node,
    } = Started::with_items(3).await;
    let at = chrono::Utc::now();
    let title = |text: &str| ItemTitle::parse(text).unwrap();
    let body = |text: &str| ItemBody::parse(text).unwrap();
    let tags =
        |list: &[&str]| Tags::parse(list.iter().map(|tag| tag.to_string()).collect()).unwrap();
    let created = |id: Uuid, n: usize| ItemEvent::ItemCreated {
        item_id: ItemId::from_uuid(id),
        workspace_id: WorkspaceId::from_uuid(workspace),
        title: title(&format!("item {n} invoice")),
        body: body("first body"),
        tags: tags(&["finance"]),
        status: ItemStatus::Draft,
        author: UserId::from_uuid(Uuid::now_v7()),
        created_at: at,
    };
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    for (n, id) in ids.iter().enumerate() {
        append_item_events(&log, workspace, *id, 0, &[created(*id, n)]).await;
    }
    // One change per append, interleaved between items, so they spread over reads and commits.
    let changes = [
        (
            0,
            ItemEvent::ItemRetitled {
                from: title("item 0 invoice"),
                to: title("renamed receipt"),
                at,
            },
        ),
        (
            1,
            ItemEvent::ItemBodyEdited {
                from: body("first body"),
                to: body("second body"),
                at,
            },
        ),
        (
            2,
            ItemEvent::ItemRetagged {
                from: tags(&["finance"]),
                to: tags(&["legal", "q3"]),
                at,
            },
        ),
        (3, ItemEvent::ItemPublished { at }),
        (
            0,
            ItemEvent::ItemBodyEdited {
                from: body("first body"),
                to: body("edited again"),
                at,
            },
        ),
        (
            4,
            ItemEvent::ItemArchived {
                from: ItemStatus::Draft,
                at,
            },
        ),
        (
            5,
            ItemEvent::ItemDeleted {
                title: title("item 5 invoice"),
                at,
            },
        ),
        (
            4,
            ItemEvent::ItemRestored {
                to: ItemStatus::Draft,
                at,
            },
        ),
        (
            3,
            ItemEvent::ItemArchived {
                from: ItemStatus::Active,
                at,
            },
        ),
        (
            0,
            ItemEvent::ItemRetagged {
                from: tags(&["finance"]),
                to: tags(&[]),
                at,
            },
        ),
    ];
    let mut versions = vec![1u64; ids.len()];
    for (n, event) in changes {
        append_item_events(&log, workspace, ids[n], versions[n], &[event]).await;
        versions[n] += 1;
    }
    node.catch_up(&log).await;
    let live: Vec<_> = ids
        .iter()
        .map(|id| node.store.index().get(*id).unwrap())
        .collect();
    assert_eq!(
        live.iter().filter(|doc| doc.is_some()).count(),
        5,
        "one was deleted"
    );
    assert_eq!(live[0].as_ref().unwrap().title, "renamed receipt");

    let rebuilt_dir = tempfile::tempdir().unwrap();
    // Reads of two events, commits after four reads: item 0 changes in two reads of one
    // commit (its retitle and first body edit) and again after that commit (its retag).
    let batches = search_index::RebuildBatches {
        read: 2,
        commit_every: 7,
    };
    let read = search_index::rebuild_with(&log, rebuilt_dir.path(), batches, |_| {})
        .await
        .unwrap();
    assert_eq!(read, log.count_after(None, None).await.unwrap());
    let rebuilt = SearchStore::open(rebuilt_dir.path()).unwrap();
    let rebuilt_docs: Vec<_> = ids
        .iter()
        .map(|id| rebuilt.index().get(*id).unwrap())
        .collect();
    assert_eq!(rebuilt_docs, live);
    assert_eq!(rebuilt.index().doc_count(), node.store.index().doc_count());
    assert_eq!(
        rebuilt.index().checkpoint(),
        Some(log.head().await.unwrap().to_string())
    );
    node.kill();
}

/// Runs the rebuild `start` makes, pausing it in its progress callback (after its first
/// batch, before it takes in the rest and switches) until at least 20 more `writes` and
/// `reads` than at the pause have been counted, so they provably overlap the rebuild.
/// Returns what the rebuild returned.
async fn while_paused<F>(
    (writes, reads): (&AtomicU64, &AtomicU64),
    start: impl FnOnce(Box<dyn FnMut(u64) + Send>) -> F,
) -> u64
where
    F: std::future::Future<Output = Result<u64, projections::Error>> + Send + 'static,
{
    let (paused_tx, paused) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let mut paused_tx = Some(paused_tx);
    let pause = Box::new(move |_applied: u64| {
        if let Some(paused_tx) = paused_tx.take() {
            let _ = paused_tx.send(());
            // The rebuild is async; its callback is not: hand this worker's other tasks on.
            tokio::task::block_in_place(|| released.recv().unwrap());
        }
    });
    let rebuild = tokio::spawn(start(pause));
    tokio::time::timeout(Duration::from_secs(30), paused)
        .await
        .expect("the rebuild reports progress")
        .unwrap();
    let at_pause = (writes.load(Ordering::SeqCst), reads.load(Ordering::SeqCst));
    let working = tokio::time::Instant::now();
    while writes.load(Ordering::SeqCst) < at_pause.0 + 20
        || reads.load(Ordering::SeqCst) < at_pause.1 + 20
    {
        assert!(
            working.elapsed() < Duration::from_secs(30),
            "writers and readers stopped during the rebuild"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release.send(()).unwrap();
    rebuild.await.unwrap().unwrap()
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
    let (first, mut first_seen) = start(&log);
    // A runner publishes its starting checkpoint once it leads: the first node leads before
    // the second starts.
    tokio::time::timeout(Duration::from_secs(10), first_seen.changed())
        .await
        .expect("the first node leads")
        .unwrap();
    let (second, mut second_seen) = start(&log);
    for n in 0..20 {
        create_item(&log, workspace, n).await;
    }
    let head = log.head().await.unwrap();
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
