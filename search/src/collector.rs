//! The single pass over the documents a query matches: status and date filters, the total, the
//! status and tag facets (when asked), and the page of best-sorted hits after the cursor.
//!
//! Everything is read from fast fields (columns); no stored document is loaded here. Status
//! and tag values are counted by per-segment ordinals and turned into strings when the
//! segments' results are merged.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DateTime as IndexDateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::cursor::SortKey;
use crate::schema::{self, CREATED_AT, ID_HI, ID_LO, STATUS, TAG_SET, UPDATED_AT};
use crate::tag_sets::{SegmentTags, TagSetCache};
use crate::{ARCHIVED, Order, SearchFilter};

/// Vocabularies (of tag sets) up to this size are counted in a vector, larger ones in a map.
const DENSE_COUNTS_MAX: usize = 1 << 16;

/// What a search collects: see the module documentation.
pub(crate) struct PageCollector<'a> {
    tag_sets: &'a TagSetCache,
    order: Order,
    /// The cursor, in the order read (reversed when `backward`).
    after: Option<SortKey>,
    /// Whether hits are ranked by their reversed keys (see [`SortKey::reversed`]).
    backward: bool,
    /// How many hits to keep: the page size plus one, to know whether a next page exists.
    limit: usize,
    /// Whether to count the facets.
    facets: bool,
    statuses: Option<Vec<String>>,
    created: TimeRange,
    updated: TimeRange,
}

/// The result of [`PageCollector`].
pub(crate) struct Page {
    pub(crate) total: u64,
    pub(crate) top: Vec<Candidate>,
    pub(crate) status_facets: Vec<(String, u64)>,
    pub(crate) tag_facets: Vec<(String, u64)>,
}

/// A hit, before its stored fields are read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) key: SortKey,
    pub(crate) score: Score,
    pub(crate) address: DocAddress,
}

impl<'a> PageCollector<'a> {
    /// Keeps up to `limit` hits sorted by `order` after `after` — or, `backward`, by the
    /// reversed order after the reversed `after` (so the candidates' keys are reversed) —
    /// applying the filter's statuses and dates (its tags and author are in the query), and
    /// counts the facets if `facets` (they are left empty otherwise).
    pub(crate) fn new(
        tag_sets: &'a TagSetCache,
        order: Order,
        (after, backward): (Option<SortKey>, bool),
        limit: usize,
        facets: bool,
        filter: &SearchFilter,
    ) -> PageCollector<'a> {
        let statuses = filter.statuses.clone().filter(|list| !list.is_empty());
        PageCollector {
            tag_sets,
            order,
            after,
            backward,
            limit,
            facets,
            statuses,
            created: TimeRange::new(filter.created_from, filter.created_to),
            updated: TimeRange::new(filter.updated_from, filter.updated_to),
        }
    }

    fn allows_status(&self, status: &str) -> bool {
        match &self.statuses {
            Some(statuses) => statuses.iter().any(|allowed| allowed == status),
            None => status != ARCHIVED,
        }
    }

    /// Per ordinal of the segment's status column, whether the filter allows that status.
    fn allowed_statuses(&self, column: Option<&StrColumn>) -> tantivy::Result<Vec<bool>> {
        let Some(column) = column else {
            return Ok(Vec::new());
        };
        let mut status = String::new();
        (0..column.dictionary().num_terms() as u64)
            .map(|ord| {
                column.ord_to_str(ord, &mut status)?;
                Ok(self.allows_status(&status))
            })
            .collect()
    }
}

impl Collector for PageCollector<'_> {
    type Fruit = Page;
    type Child = SegmentPage;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentPage> {
        let fast = reader.fast_fields();
        let status = fast.str(STATUS)?;
        let tag_sets = if self.facets {
            fast.str(TAG_SET)?
        } else {
            None
        };
        let segment_tags = match &tag_sets {
            Some(column) => Some(self.tag_sets.get(reader, column)?),
            None => None,
        };
        let counted_statuses = status.as_ref().filter(|_| self.facets);
        Ok(SegmentPage {
            segment_ord,
            order: self.order,
            after: self.after,
            backward: self.backward,
            created: self.created,
            updated: self.updated,
            facets: self.facets,
            status_allowed: self.allowed_statuses(status.as_ref())?,
            status_counts: OrdCounts::for_column(counted_statuses),
            tag_set_counts: OrdCounts::for_column(tag_sets.as_ref()),
            segment_tags,
            columns: Columns {
                id_hi: fast.u64(ID_HI)?,
                id_lo: fast.u64(ID_LO)?,
                created: fast.date(CREATED_AT)?,
                updated: fast.date(UPDATED_AT)?,
                status,
                tag_sets,
            },
            block: Block::default(),
            total: 0,
            top: TopK::new(self.limit),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.order == Order::Relevance
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Page> {
        let mut total = 0;
        let mut top = TopK::new(self.limit);
        let mut statuses = HashMap::new();
        let mut tags = HashMap::new();
        for fruit in fruits {
            total += fruit.total;
            fruit
                .top
                .into_iter()
                .for_each(|candidate| top.push(candidate));
            add_counts(&mut statuses, fruit.status_column, fruit.status_counts)?;
            if let Some(segment_tags) = fruit.segment_tags {
                segment_tags.add_counts(&fruit.tag_set_counts, &mut tags);
            }
        }
        Ok(Page {
            total,
            top: top.into_sorted(),
            status_facets: sorted_facets(statuses),
            tag_facets: sorted_facets(tags),
        })
    }
}

/// The columns of one segment the collector reads.
pub(crate) struct Columns {
    id_hi: Column<u64>,
    id_lo: Column<u64>,
    created: Column<IndexDateTime>,
    updated: Column<IndexDateTime>,
    status: Option<StrColumn>,
    tag_sets: Option<StrColumn>,
}

/// [`PageCollector`]'s work on one segment.
pub(crate) struct SegmentPage {
    segment_ord: SegmentOrdinal,
    order: Order,
    after: Option<SortKey>,
    backward: bool,
    created: TimeRange,
    updated: TimeRange,
    columns: Columns,
    block: Block,
    facets: bool,
    status_allowed: Vec<bool>,
    status_counts: OrdCounts,
    tag_set_counts: OrdCounts,
    segment_tags: Option<Arc<SegmentTags>>,
    total: u64,
    top: TopK,
}

/// What [`SegmentPage`] found in its segment.
pub(crate) struct SegmentFruit {
    total: u64,
    top: Vec<Candidate>,
    status_column: Option<StrColumn>,
    status_counts: Vec<(u64, u64)>,
    tag_set_counts: Vec<(u64, u64)>,
    segment_tags: Option<Arc<SegmentTags>>,
}

impl SegmentCollector for SegmentPage {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.block.push(doc, score) {
            self.flush();
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        for &doc in docs {
            self.collect(doc, 0.0);
        }
    }

    fn harvest(mut self) -> SegmentFruit {
        self.flush();
        SegmentFruit {
            total: self.total,
            top: self.top.into_sorted(),
            status_column: self.columns.status,
            status_counts: self.status_counts.into_counts(),
            tag_set_counts: self.tag_set_counts.into_counts(),
            segment_tags: self.segment_tags,
        }
    }
}

impl SegmentPage {
    /// Processes the block of matches collected so far. Each column is read in bulk, and only
    /// for the matches that still need it: statuses (and dates, when filtered or sorted on) for
    /// all, tag sets for those the filter keeps, the ids for those that may make the page.
    fn flush(&mut self) {
        let mut block = std::mem::take(&mut self.block);
        let created = self.order.sorts_by_creation() || !self.created.is_unbounded();
        let updated = self.order.sorts_by_update() || !self.updated.is_unbounded();
        block.read(&self.columns, created, updated);
        self.keep(&mut block);
        self.total += block.kept.len() as u64;
        if self.facets {
            let tag_sets = self.columns.tag_sets.as_ref().map(|column| column.ords());
            block.read_kept(tag_sets);
            for &tag_set in block.values.iter().flatten() {
                self.tag_set_counts.add(tag_set);
            }
        }
        self.rank(&mut block);
        block.clear();
        self.block = block;
    }

    /// Keeps the matches the filter allows, counting the matches of every status for the
    /// facets.
    ///
    /// Whether a match is kept is unpredictable (statuses come mixed), so it decides how far
    /// the list advances rather than whether to write: no branch to mispredict.
    fn keep(&mut self, block: &mut Block) {
        let dated = !self.created.is_unbounded() || !self.updated.is_unbounded();
        block.kept.resize(block.statuses.len(), 0);
        let mut kept = 0;
        for (i, &status) in block.statuses.iter().enumerate() {
            let in_range = !dated
                || (self.created.contains(nanos(block.created[i]))
                    && self.updated.contains(nanos(block.updated[i])));
            let status = status.filter(|_| in_range);
            if self.facets
                && let Some(status) = status
            {
                self.status_counts.add(status);
            }
            let allowed = status.and_then(|status| self.status_allowed.get(status as usize));
            block.kept[kept] = i;
            kept += usize::from(allowed.copied().unwrap_or(false));
        }
        block.kept.truncate(kept);
    }

    /// Offers the kept matches to the page. A match's key starts with its score or time, so
    /// most are turned away before their id is read: only those tying with or beating the
    /// worst key kept (and after the cursor) read the id's first half, and only those still
    /// tying its second half.
    fn rank(&mut self, block: &mut Block) {
        // Reversing a key inverts every bit of it (`SortKey::reversed`), part by part.
        let backward = self.backward;
        let read = |bits: u64| if backward { !bits } else { bits };
        // Values from the cursor's to the worst kept compete (see `keep` for the branchless
        // list).
        let lowest = self.after.map_or(0, |after| after.value());
        let highest = self.top.worst.map_or(u64::MAX, |worst| worst.value());
        block.contenders.resize(block.kept.len(), (0, 0));
        let mut contenders = 0;
        for &i in &block.kept {
            let time = match self.order {
                Order::Relevance => 0,
                Order::CreatedAsc | Order::CreatedDesc => nanos(block.created[i]),
                Order::UpdatedAsc | Order::UpdatedDesc => nanos(block.updated[i]),
            };
            let value = read(SortKey::value_for(self.order, block.scores[i], time));
            block.contenders[contenders] = (i, value);
            contenders += usize::from((lowest <= value) & (value <= highest));
        }
        block.contenders.truncate(contenders);
        let ids_hi = Some(&self.columns.id_hi);
        block.read_contenders(ids_hi);
        for (&(i, value), hi) in block.contenders.iter().zip(&block.values) {
            let doc = block.docs[i];
            let hi = read(hi.unwrap_or_default());
            let hi_only = SortKey::new(value, schema::join_id(hi, 0));
            if self.top.worst.is_some_and(|worst| hi_only > worst) {
                continue;
            }
            let lo = read(self.columns.id_lo.first(doc).unwrap_or_default());
            let key = SortKey::new(value, schema::join_id(hi, lo));
            if self.after.is_none_or(|after| key > after) {
                self.top.push(Candidate {
                    key,
                    score: block.scores[i],
                    address: DocAddress::new(self.segment_ord, doc),
                });
            }
        }
    }
}

/// Matches are processed by blocks of this many, each column being read for a whole block at
/// once, which is several times cheaper than document by document.
const BLOCK_LEN: usize = 64;

/// A block of matches, their values as read, and which of them are still in the running.
#[derive(Default)]
struct Block {
    docs: Vec<DocId>,
    scores: Vec<Score>,
    statuses: Vec<Option<u64>>,
    created: Vec<Option<IndexDateTime>>,
    updated: Vec<Option<IndexDateTime>>,
    /// The matches (indexes into `docs`) the filter keeps.
    kept: Vec<usize>,
    /// The kept matches that may make the page, with the first part of their key.
    contenders: Vec<(usize, u64)>,
    /// The documents of a subset of the matches, and their values in the last column read for
    /// them.
    subset: Vec<DocId>,
    values: Vec<Option<u64>>,
}

impl Block {
    /// Adds a match; returns whether the block is full.
    fn push(&mut self, doc: DocId, score: Score) -> bool {
        self.docs.push(doc);
        self.scores.push(score);
        self.docs.len() == BLOCK_LEN
    }

    /// Reads the values every match needs: statuses always, creation and update times if
    /// asked (left `None` otherwise).
    fn read(&mut self, columns: &Columns, created: bool, updated: bool) {
        let status = columns.status.as_ref().map(|column| column.ords());
        read_column(status, &self.docs, &mut self.statuses);
        let created = created.then_some(&columns.created);
        read_column(created, &self.docs, &mut self.created);
        let updated = updated.then_some(&columns.updated);
        read_column(updated, &self.docs, &mut self.updated);
    }

    /// Reads `column` for the kept matches, into `values`.
    fn read_kept(&mut self, column: Option<&Column<u64>>) {
        self.subset.clear();
        self.subset.extend(self.kept.iter().map(|&i| self.docs[i]));
        read_column(column, &self.subset, &mut self.values);
    }

    /// Reads `column` for the contenders, into `values`.
    fn read_contenders(&mut self, column: Option<&Column<u64>>) {
        self.subset.clear();
        let docs = self.contenders.iter().map(|&(i, _)| self.docs[i]);
        self.subset.extend(docs);
        read_column(column, &self.subset, &mut self.values);
    }

    fn clear(&mut self) {
        self.docs.clear();
        self.scores.clear();
        self.kept.clear();
    }
}

/// A time read from a column, in nanoseconds; 0 if not read.
fn nanos(time: Option<IndexDateTime>) -> i64 {
    time.map_or(0, IndexDateTime::into_timestamp_nanos)
}

/// The first value of each document in `column` (`None` for every document without the
/// column).
fn read_column<T: PartialOrd + Copy + Send + Sync + fmt::Debug + 'static>(
    column: Option<&Column<T>>,
    docs: &[DocId],
    values: &mut Vec<Option<T>>,
) {
    values.clear();
    values.resize(docs.len(), None);
    if let Some(column) = column {
        column.first_vals(docs, values);
    }
}

/// A range of instants in nanoseconds, `from` inclusive, `to` exclusive.
#[derive(Clone, Copy, Debug)]
struct TimeRange {
    from: Option<i64>,
    to: Option<i64>,
}

impl TimeRange {
    fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> TimeRange {
        TimeRange {
            from: from.map(saturating_nanos),
            to: to.map(saturating_nanos),
        }
    }

    fn is_unbounded(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    fn contains(&self, nanos: i64) -> bool {
        self.from.is_none_or(|from| nanos >= from) && self.to.is_none_or(|to| nanos < to)
    }
}

/// Nanoseconds since the epoch, clamped to what an `i64` holds (indexed timestamps never are
/// outside, so clamping keeps filters exact).
fn saturating_nanos(at: DateTime<Utc>) -> i64 {
    schema::nanos(at).unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Counts per term ordinal of a string column.
enum OrdCounts {
    Dense(Vec<u64>),
    Sparse(HashMap<u64, u64>),
}

impl OrdCounts {
    fn for_column(column: Option<&StrColumn>) -> OrdCounts {
        let terms = column.map_or(0, |column| column.dictionary().num_terms());
        if terms <= DENSE_COUNTS_MAX {
            OrdCounts::Dense(vec![0; terms])
        } else {
            OrdCounts::Sparse(HashMap::new())
        }
    }

    fn add(&mut self, ord: u64) {
        match self {
            OrdCounts::Dense(counts) => {
                if let Some(count) = counts.get_mut(ord as usize) {
                    *count += 1;
                }
            }
            OrdCounts::Sparse(counts) => *counts.entry(ord).or_default() += 1,
        }
    }

    /// The non-zero counts, sorted by ordinal.
    fn into_counts(self) -> Vec<(u64, u64)> {
        match self {
            OrdCounts::Dense(counts) => (0..).zip(counts).filter(|&(_, count)| count > 0).collect(),
            OrdCounts::Sparse(counts) => {
                let mut counts: Vec<_> = counts.into_iter().collect();
                counts.sort_unstable();
                counts
            }
        }
    }
}

/// Adds one segment's counts per ordinal of `column`, sorted by ordinal, to the counts per
/// value.
fn add_counts(
    facets: &mut HashMap<String, u64>,
    column: Option<StrColumn>,
    counts: Vec<(u64, u64)>,
) -> tantivy::Result<()> {
    let Some(column) = column else {
        return Ok(());
    };
    let ords: Vec<u64> = counts.iter().map(|&(ord, _)| ord).collect();
    let mut counts = counts.into_iter().map(|(_, count)| count);
    column.dictionary().sorted_ords_to_term_cb(&ords, |value| {
        let value = String::from_utf8_lossy(value);
        let count = counts.next().unwrap_or_default();
        match facets.get_mut(value.as_ref()) {
            Some(total) => *total += count,
            None => {
                facets.insert(value.into_owned(), count);
            }
        }
    })?;
    Ok(())
}

/// Most frequent first, then by value.
fn sorted_facets(facets: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut facets: Vec<_> = facets.into_iter().collect();
    facets.sort_by(|(a, a_count), (b, b_count)| b_count.cmp(a_count).then_with(|| a.cmp(b)));
    facets
}

/// The `limit` candidates with the smallest keys.
struct TopK {
    limit: usize,
    candidates: Vec<Candidate>,
    /// Once pruned, the largest key kept: larger keys cannot make it.
    worst: Option<SortKey>,
}

impl TopK {
    fn new(limit: usize) -> TopK {
        TopK {
            limit: limit.max(1),
            candidates: Vec::new(),
            worst: None,
        }
    }

    fn push(&mut self, candidate: Candidate) {
        if self.worst.is_some_and(|worst| candidate.key > worst) {
            return;
        }
        self.candidates.push(candidate);
        if self.candidates.len() >= 2 * self.limit {
            self.prune();
        }
    }

    fn prune(&mut self) {
        let nth = self.limit - 1;
        self.candidates.select_nth_unstable_by_key(nth, |c| c.key);
        self.candidates.truncate(self.limit);
        self.worst = Some(self.candidates[nth].key);
    }

    fn into_sorted(mut self) -> Vec<Candidate> {
        self.candidates.sort_unstable_by_key(|c| c.key);
        self.candidates.truncate(self.limit);
        self.candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: u128) -> Candidate {
        Candidate {
            key: SortKey::new(0, id),
            score: 0.0,
            address: DocAddress::new(0, id as DocId),
        }
    }

    #[test]
    fn top_k_keeps_the_smallest_keys_in_order() {
        let mut top = TopK::new(3);
        for id in [9, 4, 7, 1, 8, 2, 6, 3, 5, 0] {
            top.push(candidate(id));
        }
        let ids: Vec<_> = top.into_sorted().iter().map(|c| c.key.id()).collect();
        let expected: Vec<_> = [0, 1, 2].map(uuid::Uuid::from_u128).into();
        assert_eq!(ids, expected);
    }

    #[test]
    fn time_ranges_include_from_and_exclude_to() {
        let range = TimeRange {
            from: Some(10),
            to: Some(20),
        };
        assert!(range.contains(10) && range.contains(19));
        assert!(!range.contains(9) && !range.contains(20));
    }

    #[test]
    fn out_of_range_instants_saturate() {
        let ancient = DateTime::parse_from_rfc3339("1000-01-01T00:00:00Z").unwrap();
        let far = DateTime::parse_from_rfc3339("3000-01-01T00:00:00Z").unwrap();
        assert_eq!(saturating_nanos(ancient.to_utc()), i64::MIN);
        assert_eq!(saturating_nanos(far.to_utc()), i64::MAX);
    }
}
