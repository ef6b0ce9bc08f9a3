//! Which items a text matches.

use search::{ItemDoc, SearchFilter};
use uuid::Uuid;

use crate::support::{TestIndex, item, query};

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
    let test = TestIndex::with(std::slice::from_ref(&doc));
    let texts = [
        "title:x",
        "\"unclosed",
        "a AND (b",
        "b OR c)",
        "-title",
        "+x",
        "title^2",
        "x~2",
        "[a TO c]",
        "unclo*",
        "\\",
        "*",
        "-",
        "\"",
        "/regex/",
        "🎉🔥 title 🎉",
        "\u{0}\u{7f}\u{feff}",
        "NOT",
    ];
    for text in texts {
        let results = test.index.search(&query(ws, text));
        assert!(results.is_ok(), "{text:?}: {results:?}");
    }
    assert_eq!(test.ids(ws, "title:x"), [doc.id]);
    assert_eq!(test.ids(ws, "\"unclosed"), [doc.id]);
    assert_eq!(test.ids(ws, "a AND (b"), [doc.id]);
}

#[test]
fn very_long_texts_do_not_fail() {
    let ws = Uuid::new_v4();
    let test = TestIndex::with(&[item(ws, "title", "body")]);
    let long_word = "a".repeat(100_000);
    let many_words = "invoice receipt ".repeat(10_000);
    for text in [long_word, many_words] {
        assert!(test.index.search(&query(ws, &text)).is_ok());
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
        ..item(theirs, "shared words", &format!("{mine} {theirs}"))
    };
    let test = TestIndex::with(&[my_item.clone(), their_item]);
    let texts = [
        "shared".to_owned(),
        String::new(),
        mine.to_string(),
        theirs.to_string(),
        format!("workspace_id:{theirs}"),
    ];
    for text in texts {
        let results = test.search(mine, &text);
        assert!(
            results.hits.iter().all(|hit| hit.id == my_item.id),
            "{text}"
        );
        assert!(results.total <= 1, "{text}");
    }
    let mut by_tag = query(mine, "");
    by_tag.filter = SearchFilter {
        tags: vec!["shared".into()],
        ..SearchFilter::default()
    };
    assert_eq!(test.index.search(&by_tag).unwrap().total, 0);
}
