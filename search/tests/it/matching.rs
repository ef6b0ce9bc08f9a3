//! Which items a text matches.

use search::{ItemDoc, SearchFilter};
use uuid::Uuid;

use crate::support::{TestIndex, ids, item, query};

fn tagged(workspace: Uuid, title: &str, tags: &[&str]) -> ItemDoc {
    ItemDoc {
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        ..item(workspace, title, "")
    }
}

#[test]
fn words_match_in_the_title_the_body_or_the_tags() {
    let ws = Uuid::new_v4();
    let in_title = item(ws, "Invoice for March", "");
    let in_body = item(ws, "March", "Please pay this invoice.");
    let in_tags = tagged(ws, "March", &["invoice-2025"]);
    let neither = item(ws, "Receipt", "for March");
    let test = TestIndex::with(&[in_title.clone(), in_body.clone(), in_tags.clone(), neither]);
    let mut found = test.ids(ws, "invoice");
    found.sort();
    let mut expected = vec![in_title.id, in_body.id, in_tags.id];
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn every_word_must_match_somewhere() {
    let ws = Uuid::new_v4();
    let both = item(ws, "Invoice", "paid in March");
    let one = item(ws, "Invoice", "paid in April");
    let test = TestIndex::with(&[both.clone(), one]);
    assert_eq!(test.ids(ws, "march invoice"), [both.id]);
}

#[test]
fn one_typo_is_tolerated_from_five_characters() {
    let ws = Uuid::new_v4();
    let invoice = item(ws, "Invoice", "");
    let test = TestIndex::with(&[invoice.clone(), item(ws, "test", "")]);
    for typo in ["invioce", "invoce", "invoicr", "innvoice", "INVIOCE"] {
        assert_eq!(test.ids(ws, &format!("{typo} ")), [invoice.id], "{typo}");
    }
    assert!(
        test.ids(ws, "inviocr").is_empty(),
        "two typos in 7 characters"
    );
    assert!(
        test.ids(ws, "tast").is_empty(),
        "no typo under 5 characters"
    );
}

#[test]
fn two_typos_are_tolerated_from_nine_characters() {
    let ws = Uuid::new_v4();
    let doc = item(ws, "accommodation expenses", "");
    let test = TestIndex::with(&[doc.clone(), item(ws, "painting", "")]);
    assert_eq!(test.ids(ws, "acomodation"), [doc.id]);
    assert_eq!(test.ids(ws, "accomodatoin expenses"), [doc.id]);
    assert!(
        test.ids(ws, "pianitng").is_empty(),
        "two typos in 8 characters"
    );
}

#[test]
fn the_last_word_also_matches_as_a_prefix() {
    let ws = Uuid::new_v4();
    let invoice = item(ws, "Invoice March", "");
    let test = TestIndex::with(std::slice::from_ref(&invoice));
    assert_eq!(test.ids(ws, "inv"), [invoice.id]);
    assert_eq!(test.ids(ws, "march in"), [invoice.id]);
    assert!(test.ids(ws, "inv march").is_empty(), "only the last word");
    assert!(
        test.ids(ws, "i").is_empty(),
        "a prefix needs two characters"
    );
}

#[test]
fn the_last_word_tolerates_typos_as_a_prefix() {
    let ws = Uuid::new_v4();
    let doc = item(ws, "Accommodation", "");
    let test = TestIndex::with(std::slice::from_ref(&doc));
    assert_eq!(test.ids(ws, "acommo"), [doc.id]);
}

#[test]
fn accents_and_case_are_ignored() {
    let ws = Uuid::new_v4();
    let accented = item(ws, "Le Café de Flore", "");
    let plain = item(ws, "cafe menu", "");
    let test = TestIndex::with(&[accented.clone(), plain.clone()]);
    assert_eq!(test.ids(ws, "CAFE flore"), [accented.id]);
    assert_eq!(test.ids(ws, "café menu"), [plain.id]);
}

#[test]
fn query_syntax_is_read_as_plain_words() {
    let ws = Uuid::new_v4();
    let doc = item(ws, "title x unclosed", "a and b or c");
    let other = item(ws, "other", "unrelated");
    let test = TestIndex::with(&[doc.clone(), other.clone()]);
    let mut both = vec![doc.id, other.id];
    both.sort();
    // Operators are no operators: what is left are words, each of which must match; text
    // without a word matches everything.
    let cases: [(&str, Vec<Uuid>); 18] = [
        ("title:x", vec![doc.id]),
        ("\"unclosed", vec![doc.id]),
        ("a AND (b", vec![doc.id]),
        ("b OR c)", vec![doc.id]),
        ("-title", vec![doc.id]),
        ("+x", vec![doc.id]),
        ("title^2", vec![]),
        ("x~2", vec![]),
        ("[a TO c]", vec![]),
        ("unclo*", vec![doc.id]),
        ("\\", both.clone()),
        ("*", both.clone()),
        ("-", both.clone()),
        ("\"", both.clone()),
        ("/regex/", vec![]),
        ("🎉🔥 title 🎉", vec![doc.id]),
        ("\u{0}\u{7f}\u{feff}", both.clone()),
        ("NOT", vec![]),
    ];
    for (text, expected) in cases {
        let mut found = test.ids(ws, text);
        found.sort();
        assert_eq!(found, expected, "{text:?}");
    }
}

#[test]
fn very_long_texts_do_not_fail() {
    let ws = Uuid::new_v4();
    let doc = item(ws, "invoice", "receipt");
    let other = item(ws, "other", "");
    let test = TestIndex::with(&[doc.clone(), other.clone()]);
    let mut both = vec![doc.id, other.id];
    both.sort();
    // A word too long to be indexed is no word (as in documents); many words are only the
    // distinct ones.
    let long_word = "a".repeat(100_000);
    let many_words = "invoice receipt ".repeat(10_000);
    for (text, expected) in [(long_word, both), (many_words, vec![doc.id])] {
        let mut found = test.ids(ws, &text);
        found.sort();
        assert_eq!(found, expected, "{}…", &text[..20]);
    }
}

#[test]
fn text_without_words_matches_everything_the_filter_allows() {
    let ws = Uuid::new_v4();
    let items = [item(ws, "one", ""), item(ws, "two", "")];
    let test = TestIndex::with(&items);
    for text in ["", "   ", "*", "🎉", "-\"()"] {
        assert_eq!(test.search(ws, text).total, 2, "{text:?}");
    }
}

#[test]
fn another_workspace_s_items_are_never_returned() {
    let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    let my_item = item(mine, "shared words", "");
    let their_item = ItemDoc {
        tags: vec!["shared".into()],
        ..item(
            theirs,
            "shared words",
            &format!("{mine} {theirs} workspace_id"),
        )
    };
    let test = TestIndex::with(&[my_item.clone(), their_item.clone()]);
    let texts = [
        "shared".to_owned(),
        String::new(),
        mine.to_string(),
        theirs.to_string(),
        format!("workspace_id:{theirs}"),
    ];
    // Only my item, for words both items hold, and nothing for words only theirs holds —
    // which find their item in their workspace.
    let expected = [vec![my_item.id], vec![my_item.id], vec![], vec![], vec![]];
    for (text, expected) in texts.iter().zip(expected) {
        let results = test.search(mine, text);
        assert_eq!(ids(&results), expected, "{text}");
        assert_eq!(results.total, expected.len() as u64, "{text}");
        assert_eq!(test.ids(theirs, text), [their_item.id], "{text}");
    }
    let mut by_tag = query(mine, "");
    by_tag.filter = SearchFilter {
        tags: vec!["shared".into()],
        ..SearchFilter::default()
    };
    assert_eq!(test.index.search(&by_tag).unwrap().total, 0);
}
