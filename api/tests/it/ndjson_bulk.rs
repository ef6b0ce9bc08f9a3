//! `/events.ndjson` over a workspace of 100,000 events: the stream is the log exactly — every
//! event of the workspace once, in log order, with its stored content, and nothing of another
//! workspace — and resuming after a line's position returns exactly the rest. The stream and
//! the log are compared as they go (the expected ids are read in pages), so neither is held
//! whole.

use chrono::{DateTime, Utc};
use domain::{ItemBody, ItemEvent, ItemId, ItemStatus, ItemTitle, Tags, UserId, WorkspaceId};
use eventlog::aggregates::to_new_events;
use eventlog::{EventLog, ExpectedVersion, Metadata, StreamRef};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::workspaces::create_workspace;
use crate::{Session, TestApp};

/// Item events written into the workspace that is read back.
const EVENTS: usize = 100_000;
/// Events per item: created, then edited over and over.
const EVENTS_PER_ITEM: usize = 100;
/// Items per transaction (1,000 events).
const ITEMS_PER_TRANSACTION: usize = 10;
/// Expected rows read from the log at a time.
const PAGE: i64 = 10_000;
/// The line (1-based) whose position the second read resumes after.
const RESUME_AFTER_LINE: usize = 50_000;

// Two workers: the server's projections, started on the test's runtime, follow the writes in
// parallel instead of taking turns with the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_ndjson_streams_100000_events_exactly_as_logged_and_resumes_mid_way() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let acme = create_workspace(&app, &ana, "Acme").await;
    create_workspace(&app, &ana, "Globex").await;
    let id_of = async |name: &str| -> Uuid {
        sqlx::query_scalar("SELECT id FROM workspaces WHERE name = $1")
            .bind(name)
            .fetch_one(app.db.pool())
            .await
            .unwrap()
    };
    let (acme_id, globex_id) = (id_of("Acme").await, id_of("Globex").await);
    let author: Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    write_items(&app, acme_id, globex_id, author).await;
    let total = count(&app, acme_id, None).await;
    assert!(
        total > EVENTS,
        "the workspace's own events and {EVENTS} item events"
    );

    // The whole workspace, checked line by line against the log, a few lines in full.
    let spot_checked = [0, 1, 2, 7, 12_345, RESUME_AFTER_LINE - 1, 77_777, total - 1];
    let mut resume_at = None;
    let mut full_lines = Vec::new();
    let read = compare_with_log(&app, &ana, &acme, acme_id, None, |index, line| {
        if index + 1 == RESUME_AFTER_LINE {
            let head: Head<'_> = serde_json::from_slice(line).unwrap();
            resume_at = Some(head.position.to_string());
        }
        if spot_checked.contains(&index) {
            full_lines.push(serde_json::from_slice::<Value>(line).unwrap());
        }
    })
    .await;
    assert_eq!(read, total, "every event of the workspace, once");
    assert_eq!(full_lines.len(), spot_checked.len());
    for line in &full_lines {
        assert_is_stored(&app, line).await;
    }
    let versions: Vec<u64> = full_lines
        .iter()
        .map(|line| line["streamVersion"].as_u64().unwrap())
        .collect();
    assert!(
        versions.iter().any(|&v| v > 1),
        "spot checks include later versions of a stream: {versions:?}"
    );

    // Resuming after line 50,000 returns exactly the rest.
    let resume_at = resume_at.unwrap();
    let rest = compare_with_log(&app, &ana, &acme, acme_id, Some(&resume_at), |_, _| {}).await;
    assert_eq!(rest, total - RESUME_AFTER_LINE);
    assert_eq!(rest, count(&app, acme_id, Some(&resume_at)).await);
}

/// Appends [`EVENTS`] item events to `workspace`, [`EVENTS_PER_ITEM`] to a stream in one
/// append and [`ITEMS_PER_TRANSACTION`] streams per transaction; each transaction also appends
/// a stream of `other`, so that the workspace's events are interleaved with another's. The
/// events go straight to the log: the export reads only the log, and skipping the read models
/// keeps the test fast.
async fn write_items(app: &TestApp, workspace: Uuid, other: Uuid, author: Uuid) {
    let log = EventLog::new(app.db.pool().clone());
    let metadata = Metadata::system("ndjson-bulk-test");
    let items = EVENTS / EVENTS_PER_ITEM;
    for first in (0..items).step_by(ITEMS_PER_TRANSACTION) {
        let batch = first..(first + ITEMS_PER_TRANSACTION).min(items);
        let mut tx = app.db.pool().begin().await.unwrap();
        for (n, workspace) in batch.map(|n| (n, workspace)).chain([(first, other)]) {
            let item_id = ItemId::new();
            let stream = StreamRef {
                stream_type: "item",
                stream_id: item_id.as_uuid(),
                workspace_id: Some(workspace),
            };
            let events = to_new_events(&item_events(n, item_id, workspace, author), &metadata);
            log.append_in(&mut tx, &stream, ExpectedVersion::NoStream, &events)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// The [`EVENTS_PER_ITEM`] events of item number `n`: created, then retitled, edited and
/// retagged in turn.
fn item_events(n: usize, item_id: ItemId, workspace: Uuid, author: Uuid) -> Vec<ItemEvent> {
    let title = |v: usize| ItemTitle::parse(&format!("Invoice {n}, revision {v}")).unwrap();
    let body = |v: usize| {
        ItemBody::parse(&format!(
            "Match order {} against the goods receipt; revision {v}.",
            n * 7
        ))
        .unwrap()
    };
    let tags = |v: usize| Tags::parse(vec!["finance".into(), format!("r{v}")]).unwrap();
    let at = Utc::now();
    let mut events = vec![ItemEvent::ItemCreated {
        item_id,
        workspace_id: WorkspaceId::from_uuid(workspace),
        title: title(1),
        body: body(1),
        tags: tags(1),
        status: ItemStatus::Draft,
        author: UserId::from_uuid(author),
        created_at: at,
    }];
    // The revision each field is at.
    let (mut titled, mut written, mut tagged) = (1, 1, 1);
    for version in 2..=EVENTS_PER_ITEM {
        events.push(match version % 3 {
            0 => {
                let from = std::mem::replace(&mut titled, version);
                ItemEvent::ItemRetitled {
                    from: title(from),
                    to: title(version),
                    at,
                }
            }
            1 => {
                let from = std::mem::replace(&mut written, version);
                ItemEvent::ItemBodyEdited {
                    from: body(from),
                    to: body(version),
                    at,
                }
            }
            _ => {
                let from = std::mem::replace(&mut tagged, version);
                ItemEvent::ItemRetagged {
                    from: tags(from),
                    to: tags(version),
                    at,
                }
            }
        });
    }
    events
}

/// Reads `/events.ndjson` for `workspace` (after `after`, if given) as `session`, checking each
/// line's event id and position against the log's next event (`ORDER BY tx_id, seq`), and
/// passing each line (unparsed) with its index to `inspect`. Returns the number of lines.
async fn compare_with_log(
    app: &TestApp,
    session: &Session,
    workspace: &str,
    workspace_id: Uuid,
    after: Option<&str>,
    mut inspect: impl FnMut(usize, &[u8]),
) -> usize {
    let mut query = vec![("workspace", workspace)];
    query.extend(after.map(|after| ("after", after)));
    let response = app
        .client
        .get(app.url("/events.ndjson"))
        .query(&query)
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut lines = Lines::new(response);
    let mut expected = LogPages::new(workspace_id, after);
    let mut index = 0;
    let mut trailer = None;
    while let Some(line) = lines.next().await {
        if line.starts_with(br#"{"end":"#) {
            trailer = Some(serde_json::from_slice::<serde_json::Value>(line).unwrap());
            continue;
        }
        assert!(trailer.is_none(), "the trailer is the last line");
        let head: Head<'_> = serde_json::from_slice(line).unwrap();
        let (event_id, position) = expected
            .next(app)
            .await
            .unwrap_or_else(|| panic!("line {} is beyond the log", index + 1));
        assert_eq!(
            (head.event_id, head.position),
            (event_id.to_string().as_str(), position.as_str()),
            "line {}",
            index + 1
        );
        inspect(index, line);
        index += 1;
    }
    assert_eq!(expected.next(app).await, None, "the stream ended early");
    let trailer = trailer.expect("the stream ends with its trailer");
    assert_eq!(trailer["end"]["complete"], true, "{trailer}");
    index
}

/// What the comparison reads of every line.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    event_id: &'a str,
    position: &'a str,
}

/// The lines of an NDJSON response, as they arrive.
struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Where the next line starts in `buffer`.
    start: usize,
}

impl Lines {
    fn new(response: reqwest::Response) -> Lines {
        Lines {
            response,
            buffer: Vec::new(),
            start: 0,
        }
    }

    async fn next(&mut self) -> Option<&[u8]> {
        loop {
            if let Some(length) = self.buffer[self.start..].iter().position(|&b| b == b'\n') {
                let line = self.start..self.start + length;
                self.start += length + 1;
                return Some(&self.buffer[line]);
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            match self.response.chunk().await.unwrap() {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => {
                    assert!(self.buffer.is_empty(), "the stream ends mid-line");
                    return None;
                }
            }
        }
    }
}

/// The log's events of a workspace in order, as (event id, position), read a page at a time.
struct LogPages {
    workspace_id: Uuid,
    after: (i64, i64),
    page: std::vec::IntoIter<(Uuid, i64, i64)>,
    done: bool,
}

impl LogPages {
    fn new(workspace_id: Uuid, after: Option<&str>) -> LogPages {
        LogPages {
            workspace_id,
            after: after.map_or((0, 0), tx_seq),
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    async fn next(&mut self, app: &TestApp) -> Option<(Uuid, String)> {
        if self.page.len() == 0 && !self.done {
            let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                "SELECT event_id, tx_id, seq FROM events
                 WHERE workspace_id = $1 AND (tx_id, seq) > ($2, $3)
                 ORDER BY tx_id, seq LIMIT $4",
            )
            .bind(self.workspace_id)
            .bind(self.after.0)
            .bind(self.after.1)
            .bind(PAGE)
            .fetch_all(app.db.pool())
            .await
            .unwrap();
            self.done = rows.len() < PAGE as usize;
            self.page = rows.into_iter();
        }
        let (event_id, tx_id, seq) = self.page.next()?;
        self.after = (tx_id, seq);
        Some((event_id, format!("{tx_id:016x}{seq:016x}")))
    }
}

/// The (transaction id, sequence) pair behind a position string.
fn tx_seq(position: &str) -> (i64, i64) {
    let parse = |hex: &str| i64::from_str_radix(hex, 16).unwrap();
    (parse(&position[..16]), parse(&position[16..]))
}

/// The workspace's events in the log (after `after`, if given).
async fn count(app: &TestApp, workspace_id: Uuid, after: Option<&str>) -> usize {
    let (tx_id, seq) = after.map_or((0, 0), tx_seq);
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE workspace_id = $1 AND (tx_id, seq) > ($2, $3)",
    )
    .bind(workspace_id)
    .bind(tx_id)
    .bind(seq)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    count as usize
}

/// Checks every field of an NDJSON line against the stored event.
async fn assert_is_stored(app: &TestApp, line: &Value) {
    type Stored = (
        i64,
        i64,
        Uuid,
        String,
        Uuid,
        i64,
        Option<Uuid>,
        String,
        i32,
        Value,
        Value,
        DateTime<Utc>,
    );
    let event_id: Uuid = line["eventId"].as_str().unwrap().parse().unwrap();
    let stored: Stored = sqlx::query_as(
        "SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                event_type, schema_version, payload, metadata, recorded_at
         FROM events WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let (tx_id, seq, _, stream_type, stream_id, version, workspace_id, event_type, schema, ..) =
        &stored;
    let recorded_at: DateTime<Utc> = line["recordedAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(line["position"], format!("{tx_id:016x}{seq:016x}"));
    assert_eq!(line["streamType"], stream_type.as_str());
    assert_eq!(line["streamId"], stream_id.to_string());
    assert_eq!(line["streamVersion"], *version);
    assert_eq!(line["workspaceId"], workspace_id.unwrap().to_string());
    assert_eq!(line["eventType"], event_type.as_str());
    assert_eq!(line["schemaVersion"], *schema);
    assert_eq!(line["payload"], stored.9, "{event_type} payload");
    assert_eq!(line["metadata"], stored.10, "{event_type} metadata");
    assert_eq!(recorded_at, stored.11);
    let fields = line.as_object().unwrap().len();
    assert_eq!(fields, 11, "no other fields: {line}");
}
