//! Pages, cursors and their errors.

use search::{Error, ItemDoc, MAX_PAGE_SIZE, Order, SearchQuery};
use uuid::Uuid;

use crate::support::{TestIndex, at, ids, item, query};

/// Eleven items matching "report" with a spread of scores, dates and ties.
fn fixture(ws: Uuid) -> TestIndex {
    let items: Vec<ItemDoc> = (0..11)
        .map(|i| ItemDoc {
            created_at: at(i % 4),
            updated_at: at(i % 3),
            ..item(
                ws,
                &format!("report {}", "filler ".repeat(i as usize % 5)),
                "",
            )
        })
        .collect();
    TestIndex::with(&items)
}

/// Every hit of `request`, fetched page by page: forward from the start, or, `backward`,
/// from the end; in the order's sequence either way.
fn all_pages(test: &TestIndex, mut request: SearchQuery) -> Vec<Uuid> {
    let mut found = Vec::new();
    loop {
        let page = test.index.search(&request).unwrap();
        assert!(page.hits.len() <= request.first);
        let (hits, Some(first), Some(last)) = (ids(&page), page.hits.first(), page.hits.last())
        else {
            assert!(!page.has_more, "an empty page is the last one read");
            return found;
        };
        if request.backward {
            found.splice(0..0, hits);
        } else {
            found.extend(hits);
        }
        if !page.has_more {
            return found;
        }
        assert_eq!(
            page.hits.len(),
            request.first,
            "a short page must be the last one read"
        );
        let next = if request.backward { first } else { last };
        request.after = Some(next.cursor.clone());
    }
}

#[test]
fn pages_return_every_hit_once_in_order() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let orders = [
        Order::Relevance,
        Order::CreatedAsc,
        Order::CreatedDesc,
        Order::UpdatedAsc,
        Order::UpdatedDesc,
    ];
    for order in orders {
        for text in ["report", "repo", ""] {
            let whole = SearchQuery {
                order,
                ..query(ws, text)
            };
            let expected = ids(&test.index.search(&whole).unwrap());
            assert_eq!(expected.len(), 11);
            for first in [1, 3, 11] {
                let paged = SearchQuery {
                    first,
                    ..whole.clone()
                };
                assert_eq!(
                    all_pages(&test, paged.clone()),
                    expected,
                    "{order:?} {text:?} {first}"
                );
                let backward = SearchQuery {
                    backward: true,
                    ..paged
                };
                assert_eq!(
                    all_pages(&test, backward),
                    expected,
                    "backward: {order:?} {text:?} {first}"
                );
            }
        }
    }
}

#[test]
fn has_more_tells_whether_hits_remain() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let page = |first| {
        let request = SearchQuery {
            first,
            ..query(ws, "report")
        };
        test.index.search(&request).unwrap()
    };
    assert!(page(10).has_more);
    assert!(!page(11).has_more);
    assert!(!page(12).has_more);
    let empty = page(0);
    assert!(empty.hits.is_empty() && empty.has_more);
    assert_eq!(empty.total, 11);
}

#[test]
fn a_garbage_cursor_is_an_invalid_cursor_error() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    for cursor in ["", "garbage", "rel:00:00", "🎉", "rel:0000000000000000:zz"] {
        let request = SearchQuery {
            after: Some(cursor.to_owned()),
            ..query(ws, "report")
        };
        let result = test.index.search(&request);
        assert!(
            matches!(result, Err(Error::InvalidCursor(_))),
            "{cursor:?}: {result:?}"
        );
    }
}

#[test]
fn a_cursor_of_another_order_is_an_invalid_cursor_error() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let by_date = SearchQuery {
        order: Order::CreatedAsc,
        ..query(ws, "report")
    };
    let cursor = test.index.search(&by_date).unwrap().hits[0].cursor.clone();
    let by_relevance = SearchQuery {
        after: Some(cursor),
        ..query(ws, "report")
    };
    let result = test.index.search(&by_relevance);
    assert!(matches!(result, Err(Error::InvalidCursor(_))), "{result:?}");
}

#[test]
fn a_page_larger_than_the_maximum_is_invalid_input() {
    let ws = Uuid::new_v4();
    let test = fixture(ws);
    let request = SearchQuery {
        first: MAX_PAGE_SIZE + 1,
        ..query(ws, "report")
    };
    assert!(matches!(
        test.index.search(&request),
        Err(Error::InvalidInput(_))
    ));
}
