//! Tag facets without reading every tag of every match.
//!
//! Each document stores its tags, sorted and joined, as a single `tag_set` value: reading one
//! value per match is much cheaper than reading a list. The collector counts matches per
//! tag-set ordinal of the segment; [`SegmentTags`] then turns those counts into counts per tag.
//! Segments never change, so a segment's [`SegmentTags`] is built once and kept in a
//! [`TagSetCache`] while the segment is searched.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tantivy::columnar::StrColumn;
use tantivy::index::SegmentId;
use tantivy::{Searcher, SegmentReader};

use crate::schema::TAG_SEPARATOR;

/// The tags of each tag set of one segment.
pub(crate) struct SegmentTags {
    /// The segment's distinct tags.
    names: Vec<String>,
    /// Per tag-set ordinal, the positions of its tags in `names`.
    sets: Vec<Vec<usize>>,
}

impl SegmentTags {
    fn read(column: &StrColumn) -> io::Result<SegmentTags> {
        let mut names = Vec::new();
        let mut positions: HashMap<String, usize> = HashMap::new();
        let mut sets = Vec::with_capacity(column.dictionary().num_terms());
        let mut stream = column.dictionary().stream()?;
        while stream.advance() {
            let tag_set = String::from_utf8_lossy(stream.key());
            let tags = tag_set.split(TAG_SEPARATOR).filter(|tag| !tag.is_empty());
            let set = tags.map(|tag| {
                *positions.entry(tag.to_owned()).or_insert_with(|| {
                    names.push(tag.to_owned());
                    names.len() - 1
                })
            });
            sets.push(set.collect());
        }
        Ok(SegmentTags { names, sets })
    }

    /// Adds counts of matches per tag-set ordinal to counts per tag.
    pub(crate) fn add_counts(&self, counts: &[(u64, u64)], tags: &mut HashMap<String, u64>) {
        let mut per_tag = vec![0; self.names.len()];
        for &(ord, count) in counts {
            let set = self.sets.get(ord as usize).map_or(&[][..], Vec::as_slice);
            set.iter().for_each(|&tag| per_tag[tag] += count);
        }
        for (name, count) in self.names.iter().zip(per_tag) {
            if count > 0 {
                *tags.entry(name.clone()).or_default() += count;
            }
        }
    }
}

/// The [`SegmentTags`] of the segments being searched.
#[derive(Default)]
pub(crate) struct TagSetCache(Mutex<HashMap<SegmentId, Arc<SegmentTags>>>);

impl TagSetCache {
    /// The tags of the segment's tag sets, `column` being its `tag_set` column.
    pub(crate) fn get(
        &self,
        segment: &SegmentReader,
        column: &StrColumn,
    ) -> io::Result<Arc<SegmentTags>> {
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tags) = cache.get(&segment.segment_id()) {
            return Ok(Arc::clone(tags));
        }
        let tags = Arc::new(SegmentTags::read(column)?);
        cache.insert(segment.segment_id(), Arc::clone(&tags));
        Ok(tags)
    }

    /// Forgets the segments `searcher` no longer has (merged or emptied away).
    pub(crate) fn retain(&self, searcher: &Searcher) {
        let segments = searcher.segment_readers();
        let live = |id: &SegmentId| segments.iter().any(|segment| segment.segment_id() == *id);
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|id, _| live(id));
    }
}
