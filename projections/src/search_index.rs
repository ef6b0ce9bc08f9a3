//! `search`: the tantivy search index of items (SPEC §5), a node-local projection — every node
//! keeps its own index in its own directory and runs this projection.
//!
//! The checkpoint is stored in the index's own commit (see [`search::SearchIndex::apply`]), so
//! the documents and the position they reflect are always committed together: after a crash
//! the index reopens at its checkpoint and resumes from there. A missing or unreadable index is
//! rebuilt from the log.
//!
//! The directory holds generations of the index and a `CURRENT` file naming the one in use.
//! [`rebuild`] (`chronicle projections rebuild search`) builds a new generation beside the live
//! one from position 0 and then points `CURRENT` at it; a running node notices at its next
//! batch, brings the new generation up to the live one's position and only then switches to
//! it, so searches always see a complete index that never goes back in time.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use domain::{Aggregate, Item, ItemEvent};
use eventlog::aggregates::decode_owned;
use eventlog::{EventLog, Position, RecordedEvent, ScannedEvent};
use search::{Bulk, ItemDoc, SearchIndex};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::Error;
use crate::runner::{Projection, Scope, hooks, report_local};

/// The projection's name.
pub const NAME: &str = "search";
/// The file naming the generation in use.
const CURRENT: &str = "CURRENT";
/// Events between commits while rebuilding (each commit writes a segment).
const REBUILD_COMMIT_EVERY: usize = 200_000;
/// Events read per query while rebuilding.
const REBUILD_BATCH: usize = 10_000;

/// The node's search index: the generation in use, switched when a rebuild replaces it.
pub struct SearchStore {
    dir: PathBuf,
    current: RwLock<Arc<Generation>>,
}

struct Generation {
    name: String,
    index: SearchIndex,
}

impl SearchStore {
    /// Opens the generation `CURRENT` names in `dir`, creating a first one if there is none
    /// (an unreadable index is recreated empty, to be refilled from the log).
    pub fn open(dir: &Path) -> Result<SearchStore, Error> {
        fs::create_dir_all(dir)?;
        let name = match fs::read_to_string(dir.join(CURRENT)) {
            Ok(name) if valid_generation(name.trim()) => name.trim().to_string(),
            _ => {
                let name = new_generation();
                point_current(dir, &name)?;
                name
            }
        };
        let generation = Generation::open(dir, name)?;
        Ok(SearchStore {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(generation)),
        })
    }

    /// The index searches read. The handle keeps its generation open while it is used, even
    /// if a rebuild replaces it meanwhile.
    pub fn index(&self) -> IndexHandle {
        IndexHandle(self.generation())
    }

    fn generation(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The generation a rebuild made and `CURRENT` now names, if it is not the one in use:
    /// opened, not yet in use.
    fn rebuilt(&self) -> Result<Option<Generation>, Error> {
        let named = fs::read_to_string(self.dir.join(CURRENT))?;
        let named = named.trim();
        if named == self.generation().name || !valid_generation(named) {
            return Ok(None);
        }
        Generation::open(&self.dir, named.to_string()).map(Some)
    }

    /// Puts `generation` in use and removes the one it replaces.
    fn switch_to(&self, generation: Arc<Generation>) {
        let old = std::mem::replace(
            &mut *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            generation,
        );
        tracing::info!(from = %old.name, "switched to the rebuilt search index");
        let old_dir = self.dir.join(&old.name);
        drop(old);
        // Searches still holding the old generation keep their open files until they finish.
        if let Err(err) = fs::remove_dir_all(&old_dir) {
            tracing::warn!(error = %err, dir = %old_dir.display(), "cannot remove an old search index");
        }
    }
}

/// A generation's index, kept alive while a search uses it.
pub struct IndexHandle(Arc<Generation>);

impl std::ops::Deref for IndexHandle {
    type Target = SearchIndex;
    fn deref(&self) -> &SearchIndex {
        &self.0.index
    }
}

impl Generation {
    fn open(dir: &Path, name: String) -> Result<Generation, Error> {
        let (index, opened) = SearchIndex::open(&dir.join(&name))?;
        tracing::info!(generation = %name, ?opened, "opened the search index");
        Ok(Generation { name, index })
    }

    fn checkpoint(&self) -> Position {
        self.index
            .checkpoint()
            .and_then(|text| text.parse().ok())
            .unwrap_or(Position::START)
    }
}

fn new_generation() -> String {
    format!("gen-{}", Uuid::now_v7().simple())
}

fn valid_generation(name: &str) -> bool {
    name.starts_with("gen-") && name[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Points `CURRENT` at `name`, atomically (write a temporary file, then rename it).
fn point_current(dir: &Path, name: &str) -> Result<(), Error> {
    let temporary = dir.join(format!("{CURRENT}.tmp"));
    fs::write(&temporary, name)?;
    fs::rename(&temporary, dir.join(CURRENT))?;
    Ok(())
}

/// The `search` projection of one node.
pub struct SearchProjection {
    store: Arc<SearchStore>,
    log: EventLog,
    /// This node's name in `projection_checkpoints`.
    node: String,
}

impl SearchProjection {
    pub fn new(store: Arc<SearchStore>, log: EventLog, node: String) -> SearchProjection {
        SearchProjection { store, log, node }
    }
}

impl SearchProjection {
    /// Adopts a generation a rebuild made: brings it up to the live one's checkpoint first,
    /// so that searches never go back in time, then puts it in use.
    async fn adopt_rebuild(&self) -> Result<(), Error> {
        let Some(rebuilt) = self.store.rebuilt()? else {
            return Ok(());
        };
        let rebuilt = Arc::new(rebuilt);
        let live = self.store.generation().checkpoint();
        let mut at = rebuilt.checkpoint();
        while at < live {
            let mut events = self.log.read_all(at, REBUILD_BATCH).await?;
            events.retain(|event| event.position <= live);
            let Some(last) = events.last().map(|event| event.position) else {
                break;
            };
            apply_batch(rebuilt.clone(), events, last).await?;
            at = last;
        }
        self.store.switch_to(rebuilt);
        Ok(())
    }
}

impl Projection for SearchProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn scope(&self) -> Scope {
        Scope::NodeLocal
    }

    async fn checkpoint(&self) -> Result<Position, Error> {
        self.adopt_rebuild().await?;
        let position = self.store.generation().checkpoint();
        report_local(self.log.pool(), NAME, &self.node, position).await?;
        Ok(position)
    }

    async fn apply(&self, after: Position, events: &[RecordedEvent]) -> Result<(), Error> {
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(());
        };
        self.adopt_rebuild().await?;
        let generation = self.store.generation();
        if generation.checkpoint() != after {
            return Err(Error::Fenced { projection: NAME });
        }
        apply_batch(generation, events.to_vec(), last).await?;
        report_local(self.log.pool(), NAME, &self.node, last).await?;
        Ok(())
    }
}

/// Applies `events` to `generation`'s index and commits it with `checkpoint`.
async fn apply_batch(
    generation: Arc<Generation>,
    events: Vec<RecordedEvent>,
    checkpoint: Position,
) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || {
        let index = &generation.index;
        let mut changes = Changes::default();
        for event in events {
            if let Some(event) = ItemChange::decode(event)? {
                changes.add(index, event)?;
            }
        }
        let mut bulk = index.bulk()?;
        changes.stage(&mut bulk)?;
        hooks::before_commit(NAME)?;
        bulk.commit(&checkpoint.to_string())?;
        Ok::<_, Error>(())
    })
    .await
    .map_err(|err| Error::Storage(std::io::Error::other(err)))?
}

/// An event of an item's stream, decoded: what the index needs of it.
struct ItemChange {
    id: Uuid,
    /// When it was recorded: the item's last update.
    at: DateTime<Utc>,
    event: ItemEvent,
}

impl ItemChange {
    /// The item event `recorded` holds; `None` for the events of other streams.
    fn decode(recorded: RecordedEvent) -> Result<Option<ItemChange>, Error> {
        if recorded.stream_type != Item::STREAM_TYPE {
            return Ok(None);
        }
        Ok(Some(ItemChange {
            id: recorded.stream_id,
            at: recorded.recorded_at,
            event: decode_owned(recorded)?,
        }))
    }

    /// [`ItemChange::decode`] for an event read lean (by a rebuild).
    fn decode_scanned(scanned: &ScannedEvent) -> Result<Option<ItemChange>, Error> {
        if scanned.stream_type != Item::STREAM_TYPE {
            return Ok(None);
        }
        Ok(Some(ItemChange {
            id: scanned.stream_id,
            at: scanned.recorded_at,
            event: scanned.decode()?,
        }))
    }
}

/// The index changes a run of events makes: the current state of each item they touch,
/// staged in the index as often as the caller likes and committed by it.
#[derive(Default)]
struct Changes {
    /// Each touched item's document (`None`: deleted), and whether it changed since it was
    /// last staged.
    docs: HashMap<Uuid, (Option<ItemDoc>, bool)>,
    /// The items changed since the last staging, each once, in first-changed order.
    unstaged: Vec<Uuid>,
}

impl Changes {
    /// Takes in one more event. The state of an item it has not seen yet is read from the
    /// index's last commit, so everything staged must be committed before it forgets (is
    /// replaced by a new `Changes`).
    fn add(&mut self, index: &SearchIndex, change: ItemChange) -> Result<(), Error> {
        let ItemChange { id, at, event } = change;
        if let ItemEvent::ItemCreated {
            workspace_id,
            title,
            body,
            tags,
            status,
            author,
            created_at,
            ..
        } = event
        {
            let doc = ItemDoc {
                id,
                workspace_id: workspace_id.as_uuid(),
                title: title.into(),
                body: body.into(),
                tags: tags.iter().map(|tag| tag.as_str().to_string()).collect(),
                status: status.as_str().to_string(),
                author_id: author.as_uuid(),
                created_at,
                updated_at: at,
            };
            self.set(id, Some(doc));
            return Ok(());
        }
        let current = match self.docs.get_mut(&id) {
            Some((doc, _)) => doc.take(),
            None => index.get(id)?,
        };
        let Some(mut doc) = current else {
            // Not in the index: deleted already, or created before a lost index; nothing to do.
            return Ok(());
        };
        match event {
            ItemEvent::ItemCreated { .. } => unreachable!("handled above"),
            ItemEvent::ItemDeleted { .. } => {
                self.set(id, None);
                return Ok(());
            }
            ItemEvent::ItemRetitled { to, .. } => doc.title = to.into(),
            ItemEvent::ItemBodyEdited { to, .. } => doc.body = to.into(),
            ItemEvent::ItemRetagged { to, .. } => {
                doc.tags = to.iter().map(|tag| tag.as_str().to_string()).collect();
            }
            ItemEvent::ItemPublished { .. } => {
                doc.status = domain::ItemStatus::Active.as_str().to_string();
            }
            ItemEvent::ItemArchived { .. } => {
                doc.status = domain::ItemStatus::Archived.as_str().to_string();
            }
            ItemEvent::ItemRestored { to, .. } => doc.status = to.as_str().to_string(),
        }
        doc.updated_at = at;
        self.set(id, Some(doc));
        Ok(())
    }

    fn set(&mut self, id: Uuid, doc: Option<ItemDoc>) {
        let previous = self.docs.insert(id, (doc, true));
        if !previous.is_some_and(|(_, unstaged)| unstaged) {
            self.unstaged.push(id);
        }
    }

    /// Stages the items changed since the last staging, as they stand now.
    fn stage(&mut self, bulk: &mut Bulk<'_>) -> Result<(), Error> {
        for id in self.unstaged.drain(..) {
            let Some((doc, unstaged)) = self.docs.get_mut(&id) else {
                continue;
            };
            *unstaged = false;
            match doc {
                Some(doc) => bulk.upsert(doc)?,
                None => bulk.delete(id),
            }
        }
        Ok(())
    }
}

/// Rebuilds the search index in `dir` from position 0 as a new generation beside the live
/// one, then makes it the one in use. `progress` is told the events read so far. Returns the
/// events read.
///
/// Reading and indexing overlap: this task reads the log (through its read horizon, like
/// every reader; lean, with [`EventLog::scan`]) and decodes the item events straight from
/// their stored text, up to [`REBUILD_READ_AHEAD`] batches ahead of a thread that stages them
/// in the index and commits every so many events, while tantivy analyses what is staged on
/// threads of its own.
pub async fn rebuild(log: &EventLog, dir: &Path, progress: impl FnMut(u64)) -> Result<u64, Error> {
    rebuild_with(log, dir, RebuildBatches::default(), progress).await
}

/// How a rebuild reads and commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildBatches {
    /// Events read from the log per query.
    pub read: usize,
    /// Events between two commits of the index (each commit writes segments).
    pub commit_every: usize,
}

impl Default for RebuildBatches {
    fn default() -> RebuildBatches {
        RebuildBatches {
            read: REBUILD_BATCH,
            commit_every: REBUILD_COMMIT_EVERY,
        }
    }
}

/// [`rebuild`] with the given batch sizes.
pub async fn rebuild_with(
    log: &EventLog,
    dir: &Path,
    batches: RebuildBatches,
    mut progress: impl FnMut(u64),
) -> Result<u64, Error> {
    fs::create_dir_all(dir)?;
    let name = new_generation();
    let generation = Arc::new(Generation::open(dir, name.clone())?);
    let (to_indexer, from_reader) = mpsc::channel(REBUILD_READ_AHEAD);
    let indexer = {
        let generation = generation.clone();
        let commit_every = batches.commit_every;
        tokio::task::spawn_blocking(move || {
            index_batches(&generation.index, from_reader, commit_every)
        })
    };
    let read = read_batches(log, batches.read, to_indexer, &mut progress).await;
    let indexed = indexer
        .await
        .map_err(|err| Error::Storage(std::io::Error::other(err)))?;
    // An indexer that failed stopped the reading: its error is the cause.
    indexed?;
    let read = read?;
    // Release the index's writer lock before any node opens it.
    drop(generation);
    point_current(dir, &name)?;
    Ok(read)
}

/// Read batches the rebuild's reader may be ahead of its indexer.
const REBUILD_READ_AHEAD: usize = 4;

/// A batch of the log for the rebuild's indexer: its item events, decoded, and the position
/// of its last event (of any stream).
struct RebuildBatch {
    changes: Vec<ItemChange>,
    events: usize,
    last: Position,
}

/// Reads the whole log into `batches`, decoded, until none is readable; stops early if the
/// indexer is gone (it failed). Returns the events read.
async fn read_batches(
    log: &EventLog,
    size: usize,
    batches: mpsc::Sender<RebuildBatch>,
    progress: &mut impl FnMut(u64),
) -> Result<u64, Error> {
    let mut after = Position::START;
    let mut read = 0u64;
    loop {
        let events = log.scan(after, size).await?;
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(read);
        };
        let count = events.len();
        let mut changes = Vec::with_capacity(count);
        for event in &events {
            changes.extend(ItemChange::decode_scanned(event)?);
        }
        let batch = RebuildBatch {
            changes,
            events: count,
            last,
        };
        if batches.send(batch).await.is_err() {
            return Ok(read);
        }
        after = last;
        read += count as u64;
        progress(read);
    }
}

/// Stages the batches in `index` as they come, committing every `commit_every` events and
/// once more at the end, each commit with the position of its last event.
fn index_batches(
    index: &SearchIndex,
    mut batches: mpsc::Receiver<RebuildBatch>,
    commit_every: usize,
) -> Result<(), Error> {
    let mut bulk = index.bulk()?;
    let mut changes = Changes::default();
    let (mut since_commit, mut last) = (0, Position::START);
    while let Some(batch) = batches.blocking_recv() {
        for change in batch.changes {
            changes.add(index, change)?;
        }
        changes.stage(&mut bulk)?;
        since_commit += batch.events;
        last = batch.last;
        if since_commit >= commit_every {
            bulk.commit(&last.to_string())?;
            // Committed: what it held is read from the index from now on.
            changes = Changes::default();
            since_commit = 0;
        }
    }
    Ok(bulk.commit(&last.to_string())?)
}
