//! Highlighted snippets of a hit's title and body.
//!
//! tantivy's `SnippetGenerator` only marks the exact terms of a query, while our words also
//! match by prefix and with typos, and it returns nothing for a text without matches. So the
//! hit's text is run through the index's analyzer here, each token is tested with
//! [`QueryWord::matches`](crate::matching::QueryWord::matches) (the query's own rules), and the
//! matched tokens' original characters are wrapped in `<b>…</b>`; everything else is
//! HTML-escaped.

use std::ops::Range;

use tantivy::tokenizer::TextAnalyzer;

use crate::matching::TokenMatcher;

/// About how many characters of the body a snippet shows.
const FRAGMENT_CHARS: usize = 150;
/// About how many characters of context come before the first highlighted word.
const LEAD_CHARS: usize = 30;

/// Highlights texts for the words of one search.
pub(crate) struct Highlighter<'a> {
    analyzer: TextAnalyzer,
    matcher: TokenMatcher<'a>,
}

impl<'a> Highlighter<'a> {
    pub(crate) fn new(analyzer: TextAnalyzer, matcher: TokenMatcher<'a>) -> Highlighter<'a> {
        Highlighter { analyzer, matcher }
    }

    /// The whole title, escaped, with matched words in bold.
    pub(crate) fn title(&mut self, title: &str) -> String {
        let marks = self.marks(title);
        render(title, 0..title.len(), &marks)
    }

    /// About [`FRAGMENT_CHARS`] of the body around its densest cluster of matched words (or its
    /// beginning), escaped, with matched words in bold and `…` where the body was cut.
    pub(crate) fn body(&mut self, body: &str) -> String {
        let marks = self.marks(body);
        render(body, fragment(body, &marks), &marks)
    }

    /// Byte ranges of the matched tokens of `text`, in order.
    fn marks(&mut self, text: &str) -> Vec<Range<usize>> {
        if self.matcher.is_empty() {
            return Vec::new();
        }
        let mut marks = Vec::new();
        let mut stream = self.analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            if self.matcher.matches(&token.text) {
                marks.push(token.offset_from..token.offset_to);
            }
        }
        marks
    }
}

/// The part of `text` a snippet shows, on word boundaries.
fn fragment(text: &str, marks: &[Range<usize>]) -> Range<usize> {
    if text.chars().count() <= FRAGMENT_CHARS {
        return 0..text.len();
    }
    let start = match densest(marks, FRAGMENT_CHARS - LEAD_CHARS) {
        Some(anchor) => word_start_before(text, anchor),
        None => 0,
    };
    start..word_end_within(text, start)
}

/// The start of the match beginning the window of `span` bytes with the most matches.
fn densest(marks: &[Range<usize>], span: usize) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    let mut end = 0;
    for (i, mark) in marks.iter().enumerate() {
        end = end.max(i);
        while end + 1 < marks.len() && marks[end + 1].end - mark.start <= span {
            end += 1;
        }
        let count = end - i + 1;
        if best.is_none_or(|(best_count, _)| count > best_count) {
            best = Some((count, mark.start));
        }
    }
    best.map(|(_, start)| start)
}

/// Up to [`LEAD_CHARS`] before `anchor`, moved forward to the start of a word.
fn word_start_before(text: &str, anchor: usize) -> usize {
    let lead = text[..anchor].char_indices().rev().take(LEAD_CHARS).last();
    let Some((start, _)) = lead else {
        return anchor;
    };
    if start == 0 || text[..start].ends_with(char::is_whitespace) {
        return start;
    }
    match text[start..anchor].find(char::is_whitespace) {
        Some(space) => start + space + 1,
        None => anchor,
    }
}

/// [`FRAGMENT_CHARS`] after `start`, moved back to the end of a word.
fn word_end_within(text: &str, start: usize) -> usize {
    let Some((limit, _)) = text[start..].char_indices().nth(FRAGMENT_CHARS) else {
        return text.len();
    };
    let end = start + limit;
    if text[end..].starts_with(char::is_whitespace) {
        return end;
    }
    match text[start..end].rfind(char::is_whitespace) {
        Some(space) => start + space,
        None => end,
    }
}

/// `text[window]`, escaped, with the marks inside the window in bold and `…` where cut.
fn render(text: &str, window: Range<usize>, marks: &[Range<usize>]) -> String {
    let mut html = String::with_capacity(window.len() + 16);
    if window.start > 0 {
        html.push('…');
    }
    let mut at = window.start;
    let inside = marks.iter().filter(|mark| window.contains(&mark.start));
    for mark in inside.filter(|mark| mark.end <= window.end) {
        escape_into(&mut html, &text[at..mark.start]);
        html.push_str("<b>");
        escape_into(&mut html, &text[mark.clone()]);
        html.push_str("</b>");
        at = mark.end;
    }
    escape_into(&mut html, &text[at..window.end]);
    if window.end < text.len() {
        html.push('…');
    }
    html
}

fn escape_into(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#x27;"),
            c => html.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::QueryWord;
    use crate::schema::analyzer;

    fn highlight(text: &str, query: &str) -> (String, String) {
        let words = QueryWord::parse(&mut analyzer(), query);
        let mut highlighter = Highlighter::new(analyzer(), TokenMatcher::new(&words));
        (highlighter.title(text), highlighter.body(text))
    }

    #[test]
    fn exact_prefix_and_typo_matches_are_bold_and_the_rest_escaped() {
        let (title, _) = highlight("<Invoice> & Cafés for invoicing", "invioce cafe inv");
        assert_eq!(
            title,
            "&lt;<b>Invoice</b>&gt; &amp; Cafés for <b>invoicing</b>"
        );
        let (title, _) = highlight("Café \"menu\"", "cafe");
        assert_eq!(title, "<b>Café</b> &quot;menu&quot;");
    }

    #[test]
    fn without_words_nothing_is_bold() {
        let (title, body) = highlight("a <b> title", "");
        assert_eq!(title, "a &lt;b&gt; title");
        assert_eq!(body, title);
    }

    #[test]
    fn a_long_body_is_cut_around_the_matches_on_word_boundaries() {
        let filler = "lorem ipsum dolor sit amet ".repeat(20);
        let body = format!("{filler}the overdue invoice was paid {filler}");
        let (_, snippet) = highlight(&body, "invoice");
        assert!(
            snippet.starts_with('…') && snippet.ends_with('…'),
            "{snippet}"
        );
        assert!(
            snippet.contains("overdue <b>invoice</b> was paid"),
            "{snippet}"
        );
        let visible = snippet
            .trim_matches('…')
            .replace("<b>", "")
            .replace("</b>", "");
        assert!(visible.chars().count() <= FRAGMENT_CHARS, "{snippet}");
        assert!(
            !visible.starts_with(' ') && !visible.ends_with(' '),
            "{snippet}"
        );
    }

    #[test]
    fn a_long_body_without_matches_shows_its_beginning() {
        let body = "word ".repeat(100);
        let (_, snippet) = highlight(&body, "absent");
        assert!(snippet.starts_with("word word") && snippet.ends_with('…'));
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let body = format!("{} naïve café {}", "é".repeat(200), "ü".repeat(200));
        let (_, snippet) = highlight(&body, "cafe");
        assert!(snippet.contains("<b>café</b>"), "{snippet}");
    }
}
