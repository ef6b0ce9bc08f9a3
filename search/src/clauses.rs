//! Three small tantivy queries the search query is built from, each doing in one pass what a
//! combination of tantivy's own queries would do in several.

use std::fmt;
use std::sync::Arc;

use tantivy::query::{
    AllScorer, AutomatonWeight, ConstScorer, DfaWrapper, EmptyScorer, EnableScoring, Explanation,
    Query, Scorer, Weight,
};
use tantivy::schema::Field;
use tantivy::{DocId, DocSet, Score, SeekDangerResult, SegmentReader};

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

/// A query's score plus a constant: what a union of the query and a constant-score copy of
/// it computes, reading the postings once instead of twice.
#[derive(Clone, Debug)]
pub(crate) struct Shifted<Q> {
    pub(crate) query: Q,
    pub(crate) offset: Score,
}

impl<Q: Query + Clone> Query for Shifted<Q> {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let weight = self.query.weight(enable_scoring)?;
        let offset = self.offset;
        Ok(Box::new(ShiftedWeight { weight, offset }))
    }
}

struct ShiftedWeight {
    weight: Box<dyn Weight>,
    offset: Score,
}

impl Weight for ShiftedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let scorer = self.weight.scorer(reader, boost)?;
        if scorer.is::<EmptyScorer>() {
            return Ok(scorer);
        }
        let offset = self.offset * boost;
        Ok(Box::new(ShiftedScorer { scorer, offset }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let inner = self.weight.explain(reader, doc)?;
        let mut explanation = Explanation::new("Shifted", inner.value() + self.offset);
        explanation.add_const("offset", self.offset);
        explanation.add_detail(inner);
        Ok(explanation)
    }
}

struct ShiftedScorer {
    scorer: Box<dyn Scorer>,
    offset: Score,
}

impl DocSet for ShiftedScorer {
    fn advance(&mut self) -> DocId {
        self.scorer.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.scorer.seek(target)
    }

    fn seek_danger(&mut self, target: DocId) -> SeekDangerResult {
        self.scorer.seek_danger(target)
    }

    fn doc(&self) -> DocId {
        self.scorer.doc()
    }

    fn size_hint(&self) -> u32 {
        self.scorer.size_hint()
    }

    fn cost(&self) -> u64 {
        self.scorer.cost()
    }
}

impl Scorer for ShiftedScorer {
    fn score(&mut self) -> Score {
        self.scorer.score() + self.offset
    }
}

/// The documents holding, in one field, any term an automaton accepts: a `FuzzyTermQuery`
/// whose automaton, costly to build, is shared by the fields of a word instead of rebuilt for
/// each. Scores 1.
#[derive(Clone)]
pub(crate) struct AutomatonQuery {
    pub(crate) field: Field,
    pub(crate) automaton: Arc<DfaWrapper>,
}

impl fmt::Debug for AutomatonQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutomatonQuery")
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

impl Query for AutomatonQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let automaton = Arc::clone(&self.automaton);
        let weight = AutomatonWeight::<DfaWrapper>::new(self.field, automaton);
        Ok(Box::new(weight))
    }
}
