//! Highlighted titles and body fragments of hits.

use uuid::Uuid;

use crate::support::{TestIndex, item};

#[test]
fn exact_typo_and_prefix_matches_are_highlighted() {
    let ws = Uuid::new_v4();
    let test = TestIndex::with(&[item(ws, "Invoice for the café", "Invoices are due")]);
    let hit = &test.search(ws, "invioce cafe").hits[0];
    assert_eq!(hit.title_highlight, "<b>Invoice</b> for the <b>café</b>");
    assert_eq!(hit.body_highlight, "Invoices are due");
    let hit = &test.search(ws, "du").hits[0];
    assert_eq!(hit.body_highlight, "Invoices are <b>due</b>");
}

#[test]
fn highlights_are_html_escaped() {
    let ws = Uuid::new_v4();
    let title = "<script>alert('x')</script> & invoice";
    let test = TestIndex::with(&[item(ws, title, "a \"quoted\" <b>invoice</b>")]);
    let hit = &test.search(ws, "invoice").hits[0];
    assert_eq!(
        hit.title_highlight,
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; <b>invoice</b>"
    );
    assert_eq!(
        hit.body_highlight,
        "a &quot;quoted&quot; &lt;b&gt;<b>invoice</b>&lt;/b&gt;"
    );
}

#[test]
fn a_long_body_is_shown_as_a_fragment_around_the_matches() {
    let ws = Uuid::new_v4();
    let filler = "lorem ipsum dolor sit amet ".repeat(40);
    let body = format!("{filler}the overdue invoice was paid {filler}");
    let test = TestIndex::with(&[item(ws, "Note", &body)]);
    let hit = &test.search(ws, "invoice").hits[0];
    assert!(
        hit.body_highlight
            .contains("overdue <b>invoice</b> was paid")
    );
    assert!(hit.body_highlight.starts_with('…') && hit.body_highlight.ends_with('…'));
    assert!(
        hit.body_highlight.chars().count() <= 160,
        "{}",
        hit.body_highlight
    );
    assert_eq!(hit.title_highlight, "Note");
}

#[test]
fn without_words_nothing_is_highlighted() {
    let ws = Uuid::new_v4();
    let test = TestIndex::with(&[item(ws, "Invoice", "Body")]);
    let hit = &test.search(ws, "").hits[0];
    assert_eq!(
        (hit.title_highlight.as_str(), hit.body_highlight.as_str()),
        ("Invoice", "Body")
    );
}
