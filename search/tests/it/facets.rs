//! Counts per status and per tag.

use search::{ItemDoc, SearchFilter, SearchQuery};
use uuid::Uuid;

use crate::support::{TestIndex, item, query};

fn doc(ws: Uuid, title: &str, status: &str, tags: &[&str]) -> ItemDoc {
    ItemDoc {
        status: status.to_owned(),
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        ..item(ws, title, "")
    }
}

fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs
        .iter()
        .map(|&(name, n)| (name.to_owned(), n))
        .collect()
}

fn fixture(ws: Uuid) -> TestIndex {
    TestIndex::with(&[
        doc(ws, "invoice one", "DRAFT", &["finance", "urgent"]),
        doc(ws, "invoice two", "DRAFT", &["finance"]),
        doc(ws, "invoice three", "PUBLISHED", &["finance", "legal"]),
        doc(ws, "invoice four", "ARCHIVED", &["finance", "old"]),
        doc(ws, "receipt", "DRAFT", &["finance", "other"]),
        doc(Uuid::new_v4(), "invoice elsewhere", "DRAFT", &["finance"]),
    ])
}

#[test]
fn facets_count_every_match_not_only_the_page() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let request = SearchQuery {
        first: 1,
        ..query(ws, "invoice")
    };
    let results = test.index.search(&request).unwrap();
    assert_eq!((results.total, results.hits.len()), (3, 1));
    let tags = [("finance", 3), ("legal", 1), ("urgent", 1)];
    assert_eq!(results.tag_facets, counts(&tags));
}

#[test]
fn status_facets_ignore_the_status_filter_but_nothing_else() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let statuses = [("DRAFT", 2), ("ARCHIVED", 1), ("PUBLISHED", 1)];
    assert_eq!(test.search(ws, "invoice").status_facets, counts(&statuses));
    let only_published = SearchQuery {
        filter: SearchFilter {
            statuses: Some(vec!["PUBLISHED".into()]),
            ..SearchFilter::default()
        },
        ..query(ws, "invoice")
    };
    let results = test.index.search(&only_published).unwrap();
    assert_eq!(results.total, 1);
    assert_eq!(results.status_facets, counts(&statuses));
    assert_eq!(results.tag_facets, counts(&[("finance", 1), ("legal", 1)]));
}

#[test]
fn facets_follow_the_tag_filter() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let urgent = SearchQuery {
        filter: SearchFilter {
            tags: vec!["urgent".into()],
            ..SearchFilter::default()
        },
        ..query(ws, "")
    };
    let results = test.index.search(&urgent).unwrap();
    assert_eq!(results.status_facets, counts(&[("DRAFT", 1)]));
    assert_eq!(results.tag_facets, counts(&[("finance", 1), ("urgent", 1)]));
}

#[test]
fn facets_are_empty_without_matches() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let results = test.search(ws, "nothing matches this");
    assert_eq!(results.total, 0);
    assert!(results.status_facets.is_empty() && results.tag_facets.is_empty());
}

#[test]
fn facets_add_up_across_segments() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    test.upsert(&[doc(ws, "invoice five", "DRAFT", &["legal"])]);
    let results = test.search(ws, "invoice");
    assert_eq!(results.total, 4);
    let tags = [("finance", 3), ("legal", 2), ("urgent", 1)];
    assert_eq!(results.tag_facets, counts(&tags));
}

#[test]
fn without_facets_a_search_finds_the_same_page_and_total() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    for text in ["invoice", "", "invoice one"] {
        let with = test.index.search(&query(ws, text)).unwrap();
        let without = SearchQuery {
            facets: false,
            ..query(ws, text)
        };
        let without = test.index.search(&without).unwrap();
        assert!(!with.tag_facets.is_empty(), "{text:?}");
        assert!(without.status_facets.is_empty() && without.tag_facets.is_empty());
        assert_eq!(
            (without.total, &without.hits),
            (with.total, &with.hits),
            "{text:?}"
        );
    }
}
