//! Runs a query on every core, whatever the sizes of the segments.
//!
//! tantivy's own executor gives each thread whole segments, so an index made of one large
//! segment and a few small ones keeps one core busy while the others wait. Here the documents
//! of all segments, taken in order, are cut into one contiguous share per thread, a segment
//! being split where a share ends; each thread collects its ranges with the collector's own
//! segment collectors, and the collector merges their fruits as it would merge segments'.
//!
//! A segment cut in two gets a scorer per part, each built for the whole segment and started at
//! its part (a word's marks, `src/clauses.rs`, are made twice there): with one cut per share,
//! at most `threads - 1` segments pay this.

use std::ops::Range;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DocId, DocSet, Searcher, SegmentOrdinal, SegmentReader};

/// A run of documents of one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    segment: SegmentOrdinal,
    docs: Range<DocId>,
}

/// Runs `query` through `collector` on `threads` threads of the index's executor.
pub(crate) fn search<C: Collector>(
    searcher: &Searcher,
    query: &dyn Query,
    collector: &C,
    threads: usize,
) -> tantivy::Result<C::Fruit> {
    let scoring = collector.requires_scoring();
    let weight = query.weight(match scoring {
        true => EnableScoring::enabled_from_searcher(searcher),
        false => EnableScoring::disabled_from_searcher(searcher),
    })?;
    let readers = searcher.segment_readers();
    let sizes: Vec<DocId> = readers.iter().map(SegmentReader::max_doc).collect();
    let collect_share = |share: Vec<Part>| {
        let fruits = share.into_iter().map(|part| {
            let reader = &readers[part.segment as usize];
            collect(collector, weight.as_ref(), reader, part, scoring)
        });
        fruits.collect::<tantivy::Result<Vec<_>>>()
    };
    let shares = shares(&sizes, threads).into_iter();
    let fruits = searcher
        .index()
        .search_executor()
        .map(collect_share, shares)?;
    collector.merge_fruits(fruits.into_iter().flatten().collect())
}

/// The matches of `part` of a segment, through a segment collector of `collector`.
fn collect<C: Collector>(
    collector: &C,
    weight: &dyn Weight,
    reader: &SegmentReader,
    part: Part,
    scoring: bool,
) -> tantivy::Result<<C::Child as SegmentCollector>::Fruit> {
    let mut segment_collector = collector.for_segment(part.segment, reader)?;
    let mut scorer = weight.scorer(reader, 1.0)?;
    let mut doc = scorer.doc();
    if doc < part.docs.start {
        doc = scorer.seek(part.docs.start);
    }
    let alive = reader.alive_bitset();
    // `TERMINATED` is beyond any range's end.
    while doc < part.docs.end {
        if alive.is_none_or(|alive| alive.is_alive(doc)) {
            let score = if scoring { scorer.score() } else { 0.0 };
            segment_collector.collect(doc, score);
        }
        doc = scorer.advance();
    }
    Ok(segment_collector.harvest())
}

/// Cuts the documents of segments of these sizes, in order, into at most `threads` shares of
/// nearly equal size (no share is empty).
fn shares(sizes: &[DocId], threads: usize) -> Vec<Vec<Part>> {
    let total: u64 = sizes.iter().map(|&size| u64::from(size)).sum();
    let threads = threads.max(1) as u64;
    let mut shares: Vec<Vec<Part>> = Vec::new();
    let mut share = Vec::new();
    // Documents still to place in the current share.
    let mut room = total.div_ceil(threads);
    for (segment, &size) in sizes.iter().enumerate() {
        let segment = segment as SegmentOrdinal;
        let mut start = 0;
        while start < size {
            let end = start + room.min(u64::from(size - start)) as DocId;
            share.push(Part {
                segment,
                docs: start..end,
            });
            room -= u64::from(end - start);
            start = end;
            if room == 0 {
                shares.push(std::mem::take(&mut share));
                room = total.div_ceil(threads);
            }
        }
    }
    if !share.is_empty() {
        shares.push(share);
    }
    shares
}

#[cfg(test)]
mod tests {
    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::TermQuery;
    use tantivy::schema::{IndexRecordOption, STRING, Schema, TEXT};
    use tantivy::{Index, TantivyDocument, Term};

    use super::*;

    fn part(segment: SegmentOrdinal, docs: Range<DocId>) -> Part {
        Part { segment, docs }
    }

    #[test]
    fn a_large_segment_is_split_between_threads() {
        let shares = shares(&[3_200, 3_200, 3_200, 400], 2);
        assert_eq!(
            shares,
            [
                vec![part(0, 0..3_200), part(1, 0..1_800)],
                vec![part(1, 1_800..3_200), part(2, 0..3_200), part(3, 0..400)],
            ]
        );
    }

    #[test]
    fn every_document_is_in_exactly_one_share() {
        for sizes in [&[7, 1, 0, 13][..], &[1], &[0, 0], &[], &[5, 5, 5]] {
            for threads in 1..6 {
                let shares = shares(sizes, threads);
                assert!(shares.len() <= threads && shares.iter().all(|s| !s.is_empty()));
                let mut seen: Vec<(SegmentOrdinal, DocId)> = Vec::new();
                for part in shares.iter().flatten() {
                    seen.extend(part.docs.clone().map(|doc| (part.segment, doc)));
                }
                let all: Vec<_> = (0..sizes.len() as SegmentOrdinal)
                    .flat_map(|segment| (0..sizes[segment as usize]).map(move |doc| (segment, doc)))
                    .collect();
                assert_eq!(seen, all, "sizes {sizes:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn a_split_search_finds_what_a_whole_one_finds() -> tantivy::Result<()> {
        let mut schema = Schema::builder();
        let id = schema.add_text_field("id", STRING);
        let text = schema.add_text_field("text", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000)?;
        // Three segments, some documents of the first deleted after it was committed.
        for batch in 0..3 {
            for n in 0..50 {
                let words = ["apple pie", "apple", "pear"][n % 3];
                let mut doc = TantivyDocument::default();
                doc.add_text(id, format!("{batch}-{n}"));
                doc.add_text(text, format!("{words} {}", "apple ".repeat(n % 5)));
                writer.add_document(doc)?;
            }
            if batch == 1 {
                for n in (0..50).step_by(4) {
                    writer.delete_term(Term::from_field_text(id, &format!("0-{n}")));
                }
            }
            writer.commit()?;
        }
        let searcher = index.reader()?.searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let query = TermQuery::new(
            Term::from_field_text(text, "apple"),
            IndexRecordOption::WithFreqs,
        );
        let collector = (Count, TopDocs::with_limit(7).order_by_score());
        let (count, top) = searcher.search(&query, &collector)?;
        assert!(count > 0 && count < 150);
        for threads in 1..5 {
            let split = search(&searcher, &query, &collector, threads)?;
            assert_eq!(split, (count, top.clone()), "{threads} threads");
        }
        Ok(())
    }
}
