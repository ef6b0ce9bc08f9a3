//! Two tantivy queries the search query is built from, each doing in one pass what a
//! combination of tantivy's own queries would do in several.

use std::fmt;
use std::sync::Arc;

use tantivy::postings::TermInfo;
use tantivy::query::{
    AllScorer, AutomatonWeight, ConstScorer, DfaWrapper, EmptyScorer, EnableScoring, Explanation,
    Query, Scorer, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, InvertedIndexReader, Score, SegmentReader, TERMINATED, Term};

/// A required clause that restricts matches without scoring, like a `ConstScoreQuery` of
/// score 0, except that where it matches a whole segment (a workspace alone in a segment, the
/// usual case of a big tenant) its `AllScorer` is kept, which tantivy drops from intersections
/// instead of checking every document against it.
#[derive(Clone, Debug)]
pub(crate) struct Filter<Q>(pub(crate) Q);

impl<Q: Query + Clone> Query for Filter<Q> {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let without_scores = match enable_scoring.searcher() {
            Some(searcher) => EnableScoring::disabled_from_searcher(searcher),
            None => EnableScoring::disabled_from_schema(enable_scoring.schema()),
        };
        let weight = self.0.weight(without_scores)?;
        Ok(Box::new(FilterWeight(weight)))
    }
}

struct FilterWeight(Box<dyn Weight>);

impl Weight for FilterWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let scorer = self.0.scorer(reader, boost)?;
        if scorer.is::<AllScorer>() || scorer.is::<EmptyScorer>() {
            return Ok(scorer);
        }
        Ok(Box::new(ConstScorer::new(scorer, 0.0)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)?;
        Ok(Explanation::new("Filter", 0.0))
    }
}

/// One word of the user's text: the documents matching any of its alternatives, scored by the
/// best alternative that matched. An alternative is a field and a way to match in it: the exact
/// term, scored `tier` plus its BM25 times a factor, or the terms an automaton accepts (prefix,
/// typos), scored `tier`.
///
/// This is what a `DisjunctionMaxQuery` of the alternatives computes, without its cost: that
/// query merges one scorer per alternative at every document. Here each segment's matches are
/// first marked, one byte per document holding the rank of the best alternative that matched
/// it, by reading each alternative's postings once (an automaton's bitset would be built the
/// same way); the search then walks the marks, and reads the exact term's frequency (its BM25)
/// only for a document whose best alternative is an exact one.
///
/// The alternatives rank by tier, an exact one above an automaton of the same tier; the BM25
/// part must never lift an exact alternative past the next tier (`matching.rs` keeps it below
/// 1, between integer tiers).
#[derive(Clone, Debug)]
pub(crate) struct WordQuery {
    alternatives: Vec<Alternative>,
}

/// One way a word matches, in one field.
#[derive(Clone)]
pub(crate) struct Alternative {
    pub(crate) field: Field,
    pub(crate) tier: Score,
    pub(crate) matcher: Matcher,
}

impl fmt::Debug for Alternative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let matcher = match &self.matcher {
            Matcher::Exact { term, .. } => format!("exact {term:?}"),
            Matcher::Automaton(_) => "automaton".to_owned(),
        };
        f.debug_struct("Alternative")
            .field("field", &self.field)
            .field("tier", &self.tier)
            .field("matcher", &matcher)
            .finish()
    }
}

/// How an [`Alternative`] matches.
#[derive(Clone)]
pub(crate) enum Matcher {
    /// The term itself, adding its BM25 times `bm25_scale` to the tier.
    Exact { term: Term, bm25_scale: Score },
    /// Any term the automaton accepts. An automaton, costly to build, is shared by the fields of
    /// a word.
    Automaton(Arc<DfaWrapper>),
}

impl WordQuery {
    pub(crate) fn new(mut alternatives: Vec<Alternative>) -> WordQuery {
        let exact =
            |alternative: &Alternative| matches!(alternative.matcher, Matcher::Exact { .. });
        alternatives.sort_by(|a, b| a.tier.total_cmp(&b.tier).then(exact(a).cmp(&exact(b))));
        assert!(
            alternatives.len() < usize::from(u8::MAX),
            "a rank is a byte"
        );
        WordQuery { alternatives }
    }
}

impl Query for WordQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let alternatives = self.alternatives.iter().map(|alternative| {
            let matcher = match &alternative.matcher {
                Matcher::Exact { term, bm25_scale } => {
                    let query = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                    MatcherWeight::Exact {
                        term: term.clone(),
                        bm25: query.weight(enable_scoring)?,
                        bm25_scale: *bm25_scale,
                    }
                }
                Matcher::Automaton(automaton) => MatcherWeight::Automaton(AutomatonWeight::new(
                    alternative.field,
                    Arc::clone(automaton),
                )),
            };
            Ok(AlternativeWeight {
                field: alternative.field,
                tier: alternative.tier,
                matcher,
            })
        });
        let alternatives = alternatives.collect::<tantivy::Result<_>>()?;
        let scoring = enable_scoring.is_scoring_enabled();
        Ok(Box::new(WordWeight {
            alternatives,
            scoring,
        }))
    }
}

/// The alternatives of a [`WordQuery`], in rank order.
struct WordWeight {
    alternatives: Vec<AlternativeWeight>,
    /// Whether scores are asked for: without, no exact term's frequencies are read.
    scoring: bool,
}

struct AlternativeWeight {
    field: Field,
    tier: Score,
    matcher: MatcherWeight,
}

enum MatcherWeight {
    Exact {
        term: Term,
        bm25: Box<dyn Weight>,
        bm25_scale: Score,
    },
    Automaton(AutomatonWeight<DfaWrapper>),
}

impl Weight for WordWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut ranks = vec![0; reader.max_doc() as usize];
        let mut scores = Vec::with_capacity(self.alternatives.len());
        let mut postings = 0;
        for (rank, alternative) in (1..).zip(&self.alternatives) {
            let index = reader.inverted_index(alternative.field)?;
            let mut bm25 = None;
            match &alternative.matcher {
                MatcherWeight::Exact {
                    term,
                    bm25: weight,
                    bm25_scale,
                } => {
                    if let Some(info) = index.get_term_info(term)? {
                        postings += mark(&index, &info, rank, &mut ranks)?;
                        if self.scoring {
                            bm25 = Some(weight.scorer(reader, bm25_scale * boost)?);
                        }
                    }
                }
                MatcherWeight::Automaton(weight) => {
                    for info in weight.get_match_term_infos(reader)? {
                        postings += mark(&index, &info, rank, &mut ranks)?;
                    }
                }
            }
            scores.push((alternative.tier * boost, bm25));
        }
        if postings == 0 {
            return Ok(Box::new(EmptyScorer));
        }
        let mut scorer = WordScorer {
            doc: 0,
            ranks,
            scores,
            size_hint: postings.min(u64::from(reader.max_doc())) as u32,
        };
        scorer.doc = scorer.next_match(0);
        Ok(Box::new(scorer))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            let message = format!("document {doc} does not match the word");
            return Err(tantivy::TantivyError::InvalidArgument(message));
        }
        Ok(Explanation::new("Word", scorer.score()))
    }
}

/// Marks the documents of a term's postings with `rank`; returns how many there are.
fn mark(
    index: &InvertedIndexReader,
    info: &TermInfo,
    rank: u8,
    ranks: &mut [u8],
) -> tantivy::Result<u64> {
    let mut block = index.read_block_postings_from_terminfo(info, IndexRecordOption::Basic)?;
    loop {
        let docs = block.docs();
        if docs.is_empty() {
            return Ok(u64::from(info.doc_freq));
        }
        for &doc in docs {
            ranks[doc as usize] = rank;
        }
        block.advance();
    }
}

/// The scorer of a [`WordQuery`] in one segment.
struct WordScorer {
    doc: DocId,
    /// Per document, the rank of the best alternative that matched it (from 1), 0 for none.
    ranks: Vec<u8>,
    /// Per rank (from 1): the tier, and the exact term's scorer for an exact alternative.
    scores: Vec<(Score, Option<Box<dyn Scorer>>)>,
    size_hint: u32,
}

impl WordScorer {
    /// The first matching document from `from` on.
    fn next_match(&self, from: usize) -> DocId {
        let rest = self.ranks.get(from..).unwrap_or_default();
        let mut words = rest.chunks_exact(8);
        let mut offset = from;
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            if word != 0 {
                return (offset + word.trailing_zeros() as usize / 8) as DocId;
            }
            offset += 8;
        }
        let last = words.remainder().iter().position(|&rank| rank != 0);
        last.map_or(TERMINATED, |i| (offset + i) as DocId)
    }
}

impl DocSet for WordScorer {
    fn advance(&mut self) -> DocId {
        if self.doc != TERMINATED {
            self.doc = self.next_match(self.doc as usize + 1);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc < target {
            self.doc = self.next_match(target as usize);
        }
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.size_hint
    }
}

impl Scorer for WordScorer {
    fn score(&mut self) -> Score {
        let doc = self.doc;
        let rank = self.ranks.get(doc as usize).copied().unwrap_or_default();
        let Some((tier, bm25)) = usize::from(rank)
            .checked_sub(1)
            .and_then(|index| self.scores.get_mut(index))
        else {
            return 0.0;
        };
        match bm25 {
            Some(bm25) => {
                if bm25.doc() < doc {
                    bm25.seek(doc);
                }
                *tier + bm25.score()
            }
            None => *tier,
        }
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::TopDocs;
    use tantivy::query::{
        BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, FuzzyTermQuery, Occur,
    };
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{DocAddress, Index, Searcher, TantivyDocument};

    use super::*;

    const WORDS: &[&str] = &["invoice", "invoices", "invioce", "voice", "inv", "report"];
    const BM25_SCALE: Score = 0.05;

    /// Three fields of texts drawn from [`WORDS`], in three segments, some documents deleted.
    fn searcher() -> tantivy::Result<(Searcher, [Field; 3])> {
        let mut schema = Schema::builder();
        let fields = ["title", "tags", "body"].map(|name| schema.add_text_field(name, TEXT));
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000)?;
        let mut state = 7_u64;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as usize % n
        };
        for segment in 0..3 {
            for _ in 0..300 {
                let mut doc = TantivyDocument::default();
                for field in fields {
                    let words: Vec<&str> = (0..next(4)).map(|_| WORDS[next(WORDS.len())]).collect();
                    doc.add_text(field, words.join(" "));
                }
                writer.add_document(doc)?;
            }
            if segment == 1 {
                writer.delete_term(Term::from_field_text(fields[0], "report"));
            }
            writer.commit()?;
        }
        Ok((index.reader()?.searcher(), fields))
    }

    /// Every match with its score, by address.
    fn scores(searcher: &Searcher, query: &dyn Query) -> tantivy::Result<Vec<(DocAddress, Score)>> {
        let mut hits: Vec<_> = searcher
            .search(query, &TopDocs::with_limit(10_000).order_by_score())?
            .into_iter()
            .map(|(score, address)| (address, score))
            .collect();
        hits.sort_by_key(|&(address, _)| address);
        Ok(hits)
    }

    #[test]
    fn a_word_scores_like_the_disjunction_of_its_alternatives() -> tantivy::Result<()> {
        let (searcher, fields) = searcher()?;
        for (word, prefix, typos) in [
            ("invoice", false, 1),
            ("invioce", true, 1),
            ("inv", true, 0),
        ] {
            let mut alternatives = Vec::new();
            let mut reference: Vec<Box<dyn Query>> = Vec::new();
            for (rank, field) in [3.0, 2.0, 1.0].into_iter().zip(fields) {
                let term = Term::from_field_text(field, word);
                let (exact, prefix_tier, typo_tier) = (6.0 + rank, 3.0 + rank, rank);
                alternatives.push(Alternative {
                    field,
                    tier: exact,
                    matcher: Matcher::Exact {
                        term: term.clone(),
                        bm25_scale: BM25_SCALE,
                    },
                });
                let bm25 = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                let tier = TermQuery::new(term.clone(), IndexRecordOption::Basic);
                reference.push(Box::new(BooleanQuery::new(vec![
                    (
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(bm25), BM25_SCALE)),
                    ),
                    (
                        Occur::Should,
                        Box::new(ConstScoreQuery::new(Box::new(tier), exact)),
                    ),
                ])));
                let mut automata = Vec::new();
                if prefix {
                    automata.push((
                        FuzzyTermQuery::new_prefix(term.clone(), 0, true),
                        prefix_tier,
                    ));
                }
                if typos > 0 {
                    automata.push((
                        FuzzyTermQuery::new_prefix(term.clone(), typos, true),
                        typo_tier,
                    ));
                }
                for (automaton, tier) in automata {
                    alternatives.push(Alternative {
                        field,
                        tier,
                        matcher: Matcher::Automaton(Arc::new(automaton.automaton()?)),
                    });
                    reference.push(Box::new(ConstScoreQuery::new(Box::new(automaton), tier)));
                }
            }
            let expected = scores(&searcher, &DisjunctionMaxQuery::new(reference))?;
            let actual = scores(&searcher, &WordQuery::new(alternatives))?;
            assert!(expected.len() > 20, "{word}: {} matches", expected.len());
            assert_eq!(actual.len(), expected.len(), "{word}");
            for ((address, score), (expected_address, expected_score)) in
                actual.iter().zip(&expected)
            {
                assert_eq!(address, expected_address, "{word}");
                assert!(
                    (score - expected_score).abs() < 1e-5,
                    "{word}: {score} vs {expected_score}"
                );
            }
        }
        Ok(())
    }
}
