//! How the user's words match documents: the tantivy query built from them, and the same rules
//! applied to single tokens for highlighting.
//!
//! Each word becomes a disjunction (scored by its best alternative) of, for the `title`,
//! `tag_words` and `body` fields:
//!
//! - **exact**: the word itself, scored `tier + BM25 / bound` where `bound` caps BM25 below 1;
//! - **prefix** (last word only, 2+ characters): any term starting with the word;
//! - **typo** (words of 5+ characters): any term within 1 edit (2 edits from 9 characters),
//!   a transposition counting as one edit; for the last word, any term *starting with* such a
//!   variant.
//!
//! Tiers are constants chosen so that the kind of match dominates and the field decides within
//! a kind: exact title 9, tags 8, body 7; prefix title 6, tags 5, body 4; typo title 3, tags 2,
//! body 1. Since BM25 adds less than 1, any exact match outranks any prefix or typo match, and
//! a title match outranks a tag or body match of the same kind. A document's score is the sum
//! of its words' scores; the words are required (AND), and filters add nothing to the score.

use std::collections::HashMap;
use std::sync::Arc;

use tantivy::query::{BooleanQuery, DfaWrapper, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Score, Searcher, Term};
use uuid::Uuid;

use crate::SearchFilter;
use crate::clauses::{Alternative, Filter, Matcher, WordQuery};
use crate::schema::{Fields, MAX_TOKEN_BYTES};

/// Distinct words of a search text beyond this many are ignored, to bound the cost of a query.
pub const MAX_WORDS: usize = 12;
/// The last word matches as a prefix from this many characters.
const MIN_PREFIX_CHARS: usize = 2;
/// Words of this many characters tolerate one typo...
const ONE_TYPO_CHARS: usize = 5;
/// ...and words of this many characters two.
const TWO_TYPOS_CHARS: usize = 9;
/// Words and tokens are at most this long ([`MAX_TOKEN_BYTES`] bytes).
const MAX_CHARS: usize = MAX_TOKEN_BYTES;
/// tantivy's BM25 `k1` (`Bm25Weight` keeps it private).
const BM25_K1: Score = 1.2;

/// How a word matched a term; better kinds outrank worse ones whatever the field.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Typo = 0,
    Prefix = 1,
    Exact = 2,
}

/// The constant score of a match of `kind` in a field of `rank` (1 to 3).
fn tier(kind: Kind, rank: u8) -> Score {
    Score::from(kind as u8 * 3 + rank)
}

/// One word of the user's text, as the analyzer produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueryWord {
    text: String,
    chars: usize,
    /// Whether it was the last word, the one still being typed.
    last: bool,
}

impl QueryWord {
    fn new(text: String, last: bool) -> QueryWord {
        let chars = text.chars().count();
        QueryWord { text, chars, last }
    }

    /// The distinct words of `text`, in order, at most [`MAX_WORDS`].
    pub(crate) fn parse(analyzer: &mut TextAnalyzer, text: &str) -> Vec<QueryWord> {
        let mut tokens: Vec<String> = Vec::new();
        let mut last_token = None;
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            if !tokens.contains(&token.text) {
                if tokens.len() == MAX_WORDS {
                    last_token = None;
                    break;
                }
                tokens.push(token.text.clone());
            }
            last_token = Some(token.text.clone());
        }
        let words = tokens.into_iter().map(|token| {
            let last = last_token.as_ref() == Some(&token);
            QueryWord::new(token, last)
        });
        words.collect()
    }

    fn matches_prefix(&self) -> bool {
        self.last && self.chars >= MIN_PREFIX_CHARS
    }

    fn max_typos(&self) -> u8 {
        match self.chars {
            n if n >= TWO_TYPOS_CHARS => 2,
            n if n >= ONE_TYPO_CHARS => 1,
            _ => 0,
        }
    }

    /// Whether an analyzed token of a document is matched by this word, by the same rules as
    /// the query.
    pub(crate) fn matches(&self, token: &str) -> bool {
        token == self.text
            || (self.matches_prefix() && token.starts_with(&self.text))
            || (self.max_typos() > 0
                && within_edits(&self.text, token, self.max_typos(), self.matches_prefix()))
    }

    /// The query matching this word in any searchable field, scored by its best match.
    fn query(&self, fields: &Fields, bm25_scale: Score) -> tantivy::Result<Box<dyn Query>> {
        let automata = self.automata(fields.title)?;
        let searchable = [(fields.title, 3), (fields.tag_words, 2), (fields.body, 1)];
        let mut alternatives = Vec::new();
        for (field, rank) in searchable {
            let term = Term::from_field_text(field, &self.text);
            alternatives.push(Alternative {
                field,
                tier: tier(Kind::Exact, rank),
                matcher: Matcher::Exact { term, bm25_scale },
            });
            for (kind, dfa) in &automata {
                alternatives.push(Alternative {
                    field,
                    tier: tier(*kind, rank),
                    matcher: Matcher::Automaton(Arc::clone(dfa)),
                });
            }
        }
        Ok(Box::new(WordQuery::new(alternatives)))
    }

    /// The automata of the word's prefix and typo matches, built once for every field (the
    /// field of `any_field` is irrelevant to the automaton).
    fn automata(&self, any_field: Field) -> tantivy::Result<Vec<(Kind, Arc<DfaWrapper>)>> {
        let term = Term::from_field_text(any_field, &self.text);
        let mut automata = Vec::new();
        if self.matches_prefix() {
            let prefix = FuzzyTermQuery::new_prefix(term.clone(), 0, true);
            automata.push((Kind::Prefix, Arc::new(prefix.automaton()?)));
        }
        let typos = self.max_typos();
        if typos > 0 {
            let typo = match self.matches_prefix() {
                true => FuzzyTermQuery::new_prefix(term, typos, true),
                false => FuzzyTermQuery::new(term, typos, true),
            };
            automata.push((Kind::Typo, Arc::new(typo.automaton()?)));
        }
        Ok(automata)
    }
}

/// The factor bringing any BM25 score of this searcher below 1.
///
/// A term's BM25 is below `idf · (1 + k1)`, and its idf, `ln(1 + (N - n + 0.5) / (n + 0.5))`
/// with `N` documents of which `n ≥ 1` hold the term, is below `ln(2N + 2)`.
pub(crate) fn bm25_scale(searcher: &Searcher) -> Score {
    let segments = searcher.segment_readers().iter();
    let docs: u64 = segments.map(|segment| u64::from(segment.max_doc())).sum();
    1.0 / ((1.0 + BM25_K1) * ((2 * docs + 2) as Score).ln())
}

/// The whole query: every word, in the workspace, with the tags and author of the filter.
///
/// Statuses and dates are filtered by the collector, which reads them from fast fields anyway
/// and needs the matches of every status for the status facets.
pub(crate) fn build_query(
    fields: &Fields,
    words: &[QueryWord],
    workspace_id: Uuid,
    filter: &SearchFilter,
    bm25_scale: Score,
) -> tantivy::Result<BooleanQuery> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = words
        .iter()
        .map(|word| Ok((Occur::Must, word.query(fields, bm25_scale)?)))
        .collect::<tantivy::Result<_>>()?;
    let workspace = workspace_id.to_string();
    clauses.push((Occur::Must, keyword(fields.workspace_id, &workspace)));
    for tag in &filter.tags {
        clauses.push((Occur::Must, keyword(fields.tag, tag)));
    }
    if let Some(author_id) = filter.author_id {
        let author = author_id.to_string();
        clauses.push((Occur::Must, keyword(fields.author_id, &author)));
    }
    Ok(BooleanQuery::new(clauses))
}

/// Documents whose keyword field holds `value`, adding nothing to the score.
fn keyword(field: Field, value: &str) -> Box<dyn Query> {
    let term = Term::from_field_text(field, value);
    Box::new(Filter(TermQuery::new(term, IndexRecordOption::Basic)))
}

/// Whether `token` (or, with `prefix`, some prefix of it) is within `max` edits of `word`,
/// counting insertions, deletions, substitutions and transpositions of adjacent characters
/// (optimal string alignment, as tantivy's Levenshtein automata with transpositions).
fn within_edits(word: &str, token: &str, max: u8, prefix: bool) -> bool {
    let (mut word_chars, mut token_chars) = (['\0'; MAX_CHARS], ['\0'; MAX_CHARS]);
    let (Some(word), Some(token)) = (
        chars_of(word, &mut word_chars),
        chars_of(token, &mut token_chars),
    ) else {
        return false;
    };
    let max_len = usize::from(max);
    if token.len() + max_len < word.len() || (!prefix && word.len() + max_len < token.len()) {
        return false;
    }
    let last_row = last_edit_row(word, token);
    let last_row = &last_row[..=token.len()];
    match prefix {
        true => last_row.iter().any(|&distance| distance <= max),
        false => last_row[token.len()] <= max,
    }
}

/// The characters of `text`, if there are at most [`MAX_CHARS`].
fn chars_of<'a>(text: &str, buffer: &'a mut [char; MAX_CHARS]) -> Option<&'a [char]> {
    let mut len = 0;
    for c in text.chars() {
        *buffer.get_mut(len)? = c;
        len += 1;
    }
    Some(&buffer[..len])
}

/// The last row of the optimal-string-alignment table: `[j]` is the distance from `word` to
/// `token[..j]`. Both have at most [`MAX_CHARS`] characters.
fn last_edit_row(word: &[char], token: &[char]) -> [u8; MAX_CHARS + 1] {
    let mut before = [0; MAX_CHARS + 1];
    let mut previous: [u8; MAX_CHARS + 1] = std::array::from_fn(|j| j as u8);
    for i in 1..=word.len() {
        let mut row = [0; MAX_CHARS + 1];
        row[0] = i as u8;
        for j in 1..=token.len() {
            let substitution = u8::from(word[i - 1] != token[j - 1]);
            let mut best = (previous[j] + 1)
                .min(row[j - 1] + 1)
                .min(previous[j - 1] + substitution);
            if i > 1 && j > 1 && word[i - 1] == token[j - 2] && word[i - 2] == token[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            row[j] = best;
        }
        (before, previous) = (previous, row);
    }
    previous
}

/// Remembers which tokens match, as long texts repeat their words.
pub(crate) struct TokenMatcher<'a> {
    words: &'a [QueryWord],
    seen: HashMap<String, bool>,
}

impl<'a> TokenMatcher<'a> {
    pub(crate) fn new(words: &'a [QueryWord]) -> TokenMatcher<'a> {
        TokenMatcher {
            words,
            seen: HashMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether any word matches this analyzed token.
    pub(crate) fn matches(&mut self, token: &str) -> bool {
        if let Some(&matched) = self.seen.get(token) {
            return matched;
        }
        let matched = self.words.iter().any(|word| word.matches(token));
        self.seen.insert(token.to_owned(), matched);
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::analyzer;

    fn words(text: &str) -> Vec<QueryWord> {
        QueryWord::parse(&mut analyzer(), text)
    }

    #[test]
    fn words_are_analyzed_deduplicated_and_only_the_last_is_a_prefix() {
        let parsed = words("Café, INVOICE: café \"title:x\" -*");
        let texts: Vec<_> = parsed.iter().map(|w| (w.text.as_str(), w.last)).collect();
        assert_eq!(
            texts,
            [
                ("cafe", false),
                ("invoice", false),
                ("title", false),
                ("x", true)
            ]
        );
    }

    #[test]
    fn text_without_words_has_no_words() {
        assert!(words(" *** \"( - \\ 🎉 ").is_empty());
    }

    #[test]
    fn beyond_max_words_the_rest_is_ignored_and_no_word_is_a_prefix() {
        let text: Vec<String> = (0..MAX_WORDS + 3).map(|i| format!("w{i}")).collect();
        let parsed = words(&text.join(" "));
        assert_eq!(parsed.len(), MAX_WORDS);
        assert!(parsed.iter().all(|word| !word.last));
    }

    #[test]
    fn typos_allowed_grow_with_length() {
        let typos = |text: &str| QueryWord::new(text.into(), false).max_typos();
        assert_eq!(
            (typos("four"), typos("fives"), typos("eightchr")),
            (0, 1, 1)
        );
        assert_eq!(typos("ninechars"), 2);
    }

    #[test]
    fn a_transposition_is_one_edit() {
        assert!(within_edits("invioce", "invoice", 1, false));
        assert!(!within_edits("invioce", "invoices", 1, false));
        assert!(within_edits("invioce", "invoices", 1, true));
        assert!(!within_edits("abcdef", "badcfe", 2, false));
        assert!(within_edits("accomodation", "accommodation", 2, false));
    }

    #[test]
    fn tokens_match_like_the_query() {
        let last = QueryWord::new("inv".into(), true);
        assert!(last.matches("invoice") && last.matches("inv") && !last.matches("in"));
        let inner = QueryWord::new("inv".into(), false);
        assert!(!inner.matches("invoice") && inner.matches("inv"));
        let typo = QueryWord::new("invioce".into(), false);
        assert!(typo.matches("invoice") && !typo.matches("invoices"));
    }
}
