//! [`SearchIndex`]: the index directory, its one writer and its reader.

use std::fs;
use std::num::NonZero;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, SegmentOrdinal,
    TERMINATED, TantivyDocument,
};
use uuid::Uuid;

use crate::collector::{Candidate, Page, PageCollector};
use crate::cursor::SortKey;
use crate::highlight::Highlighter;
use crate::matching::{self, QueryWord, TokenMatcher};
use crate::parallel;
use crate::schema::{self, ANALYZER, Fields};
use crate::tag_sets::TagSetCache;
use crate::{Change, Error, Hit, ItemDoc, MAX_PAGE_SIZE, Order, SearchQuery, SearchResults};

/// Memory the writer may use to buffer documents before it writes a segment.
const WRITER_MEMORY_BYTES: usize = 100_000_000;

/// How [`SearchIndex::open`] found the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The existing index was opened. Resume feeding it after `checkpoint`, the one stored with
    /// its last commit (`None`: nothing was committed with a checkpoint, replay from the start).
    Reopened {
        /// The checkpoint of the last [`SearchIndex::apply`].
        checkpoint: Option<String>,
    },
    /// There was no index: a new, empty one was created. Replay from the start.
    Created,
    /// The index there could not be used (corrupt, unreadable, or built with another schema or
    /// analyzer) and was replaced by a new, empty one. Replay from the start.
    Recreated {
        /// Why the old index was unusable.
        reason: String,
    },
}

impl Opened {
    /// Where to resume feeding the index: `None` means from the start of the log.
    pub fn checkpoint(&self) -> Option<&str> {
        match self {
            Opened::Reopened { checkpoint } => checkpoint.as_deref(),
            Opened::Created | Opened::Recreated { .. } => None,
        }
    }
}

/// A full-text index of items, stored in one directory.
///
/// It is `Send + Sync`: searches run concurrently, lock-free, on the last committed state;
/// updates ([`apply`](Self::apply), [`clear`](Self::clear)) are serialised by an internal lock.
/// Only one `SearchIndex` (in any process) may have a directory open at a time.
pub struct SearchIndex {
    fields: Fields,
    analyzer: TextAnalyzer,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// The checkpoint of the commit the reader shows.
    checkpoint: RwLock<Option<String>>,
    tag_sets: TagSetCache,
    /// The threads of the index's executor, which a search shares its matches between.
    threads: usize,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index when there is none,
    /// and replacing an unusable index (corrupt, unreadable, other schema) by an empty one.
    ///
    /// Fails if the directory cannot be created or wiped, or if another `SearchIndex` holds it.
    #[tracing::instrument(skip_all, fields(dir = %dir.display()))]
    pub fn open(dir: &Path) -> Result<(SearchIndex, Opened), Error> {
        fs::create_dir_all(dir)?;
        let (index, opened) = match open_existing(dir) {
            Ok(Some(index)) => {
                let checkpoint = index.load_metas()?.payload;
                (index, Opened::Reopened { checkpoint })
            }
            Ok(None) => (
                Index::create_in_dir(dir, schema::schema())?,
                Opened::Created,
            ),
            Err(reason) => {
                tracing::warn!(%reason, "search index unusable, recreating it empty");
                wipe(dir)?;
                let index = Index::create_in_dir(dir, schema::schema())?;
                (index, Opened::Recreated { reason })
            }
        };
        Ok((SearchIndex::start(index)?, opened))
    }

    fn start(mut index: Index) -> Result<SearchIndex, Error> {
        index.tokenizers().register(ANALYZER, schema::analyzer());
        // A search visits every match (totals and facets), so its time grows with them: the
        // matches are shared between threads, one per core (`src/parallel.rs`).
        let threads = std::thread::available_parallelism().map_or(1, NonZero::get);
        index.set_multithread_executor(threads)?;
        let writer = index.writer(WRITER_MEMORY_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            fields: Fields::new(&index.schema())?,
            analyzer: schema::analyzer(),
            reader,
            writer: Mutex::new(writer),
            checkpoint: RwLock::new(index.load_metas()?.payload),
            tag_sets: TagSetCache::default(),
            threads,
        })
    }

    /// The checkpoint stored with the last commit, `None` if there is none (new or cleared
    /// index). Searches see at least every change applied up to it.
    pub fn checkpoint(&self) -> Option<String> {
        let checkpoint = self
            .checkpoint
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        checkpoint.clone()
    }

    /// How many items the index holds.
    pub fn doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Applies `changes` in order and commits them together with `checkpoint`, atomically:
    /// after a crash the index holds either all of them and this checkpoint, or none and the
    /// previous one. When this returns, searches see the changes.
    ///
    /// On error nothing is applied: the checkpoint stays the previous one.
    #[tracing::instrument(skip_all, fields(checkpoint = %checkpoint))]
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = Change>,
        checkpoint: &str,
    ) -> Result<(), Error> {
        let mut bulk = self.bulk()?;
        for change in changes {
            match change {
                Change::Upsert(item) => bulk.upsert(&item)?,
                Change::Delete(id) => bulk.delete(id),
            }
        }
        bulk.commit(checkpoint)
    }

    /// Takes the index's writer to stage changes and commit them in several steps: the
    /// index analyses what is staged in the background while the caller prepares more, which
    /// is how a rebuild keeps reading while it indexes. Updates by others wait until the
    /// [`Bulk`] is dropped.
    pub fn bulk(&self) -> Result<Bulk<'_>, Error> {
        Ok(Bulk {
            index: self,
            writer: self.lock_writer()?,
            staged: false,
        })
    }

    /// Removes every document and the checkpoint, e.g. before rebuilding from the start.
    #[tracing::instrument(skip_all)]
    pub fn clear(&self) -> Result<(), Error> {
        let mut writer = self.lock_writer()?;
        let cleared = writer.delete_all_documents().map_err(Error::from);
        if let Err(error) = cleared.and_then(|_| commit(&mut writer, None)) {
            discard(&mut writer);
            return Err(error);
        }
        self.publish(None)
    }

    /// The item with this id as last committed, if the index has it.
    ///
    /// Read from the id's postings segment by segment, on this thread: a query would also
    /// weigh the term for scoring across every segment first, and the projections look up
    /// every item a batch changes but does not hold (a rebuild, hundreds of thousands).
    pub fn get(&self, id: Uuid) -> Result<Option<ItemDoc>, Error> {
        let searcher = self.reader.searcher();
        let term = self.fields.id_term(id);
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let postings = segment
                .inverted_index(term.field())?
                .read_postings(&term, IndexRecordOption::Basic)?;
            let Some(mut postings) = postings else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if segment
                    .alive_bitset()
                    .is_none_or(|alive| alive.is_alive(doc))
                {
                    let address = DocAddress::new(ordinal as SegmentOrdinal, doc);
                    let doc: TantivyDocument = searcher.doc(address)?;
                    return self.fields.item(&doc).map(Some);
                }
                doc = postings.advance();
            }
        }
        Ok(None)
    }

    /// One page of the items of a workspace matching a text and a filter; see [`SearchQuery`]
    /// and the crate documentation for the rules.
    #[tracing::instrument(skip_all, fields(workspace_id = %request.workspace_id))]
    pub fn search(&self, request: &SearchQuery) -> Result<SearchResults, Error> {
        if request.first > MAX_PAGE_SIZE {
            let message = format!("`first` must be at most {MAX_PAGE_SIZE}");
            return Err(Error::InvalidInput(message));
        }
        let words = QueryWord::parse(&mut self.analyzer.clone(), &request.text);
        let order = request.order.effective(!words.is_empty());
        let after = request.after.as_deref();
        let after = after
            .map(|cursor| SortKey::decode(cursor, order))
            .transpose()?;
        let backward = request.backward;
        let after = after.map(|key| if backward { key.reversed() } else { key });
        let searcher = self.reader.searcher();
        let mut page = self.collect(&searcher, request, &words, order, (after, backward))?;
        let has_more = page.top.len() > request.first;
        page.top.truncate(request.first);
        if backward {
            // Back to the order's keys and sequence.
            page.top.reverse();
            for candidate in &mut page.top {
                candidate.key = candidate.key.reversed();
            }
        }
        Ok(SearchResults {
            total: page.total,
            hits: self.hits(&searcher, &page.top, &words, order)?,
            has_more,
            status_facets: page.status_facets,
            tag_facets: page.tag_facets,
        })
    }

    /// Runs the query: the total, the facets and the page's candidates plus one (their keys
    /// reversed when reading backward).
    fn collect(
        &self,
        searcher: &Searcher,
        request: &SearchQuery,
        words: &[QueryWord],
        order: Order,
        after: (Option<SortKey>, bool),
    ) -> Result<Page, Error> {
        let workspace_id = request.workspace_id;
        let scale = matching::bm25_scale(searcher);
        let fields = &self.fields;
        let query = matching::build_query(fields, words, workspace_id, &request.filter, scale)?;
        let limit = request.first + 1;
        let collector = PageCollector::new(
            &self.tag_sets,
            order,
            after,
            limit,
            request.facets,
            &request.filter,
        );
        Ok(parallel::search(
            searcher,
            &query,
            &collector,
            self.threads,
        )?)
    }

    /// The hits of the candidates, with their highlights.
    fn hits(
        &self,
        searcher: &Searcher,
        candidates: &[Candidate],
        words: &[QueryWord],
        order: Order,
    ) -> Result<Vec<Hit>, Error> {
        let mut highlighter = Highlighter::new(self.analyzer.clone(), TokenMatcher::new(words));
        let hits = candidates.iter().map(|candidate| {
            let doc: TantivyDocument = searcher.doc(candidate.address)?;
            let title = schema::text(&doc, self.fields.title, "title")?;
            let body = schema::text(&doc, self.fields.body, "body")?;
            Ok(Hit {
                id: candidate.key.id(),
                score: candidate.score,
                title_highlight: highlighter.title(title),
                body_highlight: highlighter.body(body),
                cursor: candidate.key.encode(order),
            })
        });
        hits.collect()
    }

    /// Shows the last commit to searches, then its checkpoint to callers.
    fn publish(&self, checkpoint: Option<&str>) -> Result<(), Error> {
        self.reader.reload()?;
        self.tag_sets.retain(&self.reader.searcher());
        let mut current = self
            .checkpoint
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *current = checkpoint.map(str::to_owned);
        Ok(())
    }

    /// The writer, without what an update that panicked had staged.
    fn lock_writer(&self) -> Result<MutexGuard<'_, IndexWriter>, Error> {
        match self.writer.lock() {
            Ok(writer) => Ok(writer),
            Err(poisoned) => {
                let mut writer = poisoned.into_inner();
                writer.rollback()?;
                self.writer.clear_poison();
                Ok(writer)
            }
        }
    }
}

/// The index's writer, held to stage changes and commit them ([`SearchIndex::bulk`]).
///
/// Each commit stores everything staged since the previous one together with a checkpoint,
/// atomically, and shows it to searches. What is staged when the `Bulk` is dropped (or when a
/// commit fails) is discarded: the index keeps its last commit and that commit's checkpoint.
pub struct Bulk<'a> {
    index: &'a SearchIndex,
    writer: MutexGuard<'a, IndexWriter>,
    /// Whether anything was staged since the last commit.
    staged: bool,
}

impl Bulk<'_> {
    /// Stages the item: it replaces any document with its id at the next commit. Fails, staging
    /// nothing, if a timestamp cannot be represented.
    pub fn upsert(&mut self, item: &ItemDoc) -> Result<(), Error> {
        let doc = self.index.fields.document(item)?;
        self.staged = true;
        self.writer.delete_term(self.index.fields.id_term(item.id));
        self.writer.add_document(doc)?;
        Ok(())
    }

    /// Stages the removal of the item with this id, if the index has it.
    pub fn delete(&mut self, id: Uuid) {
        self.staged = true;
        self.writer.delete_term(self.index.fields.id_term(id));
    }

    /// Commits what was staged with `checkpoint` (see [`SearchIndex::apply`]); when this
    /// returns, searches see it. On error nothing staged since the previous commit is applied.
    #[tracing::instrument(skip_all, fields(checkpoint = %checkpoint))]
    pub fn commit(&mut self, checkpoint: &str) -> Result<(), Error> {
        if let Err(error) = commit(&mut self.writer, Some(checkpoint)) {
            self.discard();
            return Err(error);
        }
        self.staged = false;
        self.index.publish(Some(checkpoint))
    }

    fn discard(&mut self) {
        discard(&mut self.writer);
        self.staged = false;
    }
}

impl Drop for Bulk<'_> {
    fn drop(&mut self) {
        if self.staged {
            self.discard();
        }
    }
}

/// The index in `dir` if there is one and it is usable; why not, if it is not.
fn open_existing(dir: &Path) -> Result<Option<Index>, String> {
    if !dir.join("meta.json").exists() {
        return Ok(None);
    }
    let index = Index::open_in_dir(dir).map_err(|error| format!("cannot open it: {error}"))?;
    if index.schema() != schema::schema() {
        return Err("its schema is not this version's".to_owned());
    }
    let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual);
    let _: IndexReader = reader
        .try_into()
        .map_err(|error| format!("cannot read its segments: {error}"))?;
    Ok(Some(index))
}

/// Removes everything in `dir`, keeping the directory itself.
fn wipe(dir: &Path) -> Result<(), Error> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(path)?;
        } else {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

fn commit(writer: &mut IndexWriter, checkpoint: Option<&str>) -> Result<(), Error> {
    let mut prepared = writer.prepare_commit()?;
    if let Some(checkpoint) = checkpoint {
        prepared.set_payload(checkpoint);
    }
    prepared.commit()?;
    Ok(())
}

/// Drops whatever was staged since the last commit, after a failed update.
fn discard(writer: &mut IndexWriter) {
    if let Err(error) = writer.rollback() {
        tracing::error!(
            error = &error as &dyn std::error::Error,
            "search index rollback failed"
        );
    }
}
