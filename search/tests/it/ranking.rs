//! The order of hits.

use search::{ItemDoc, Order};
use uuid::Uuid;

use crate::support::{TestIndex, at, ids, item, query, sorted_by_id};

#[test]
fn exact_matches_rank_above_typo_matches() {
    let ws = Uuid::new_v4();
    let [typo, exact] = sorted_by_id(vec![
        item(ws, "Invoce for March", ""),
        item(ws, "Invoice for March", ""),
    ])
    .try_into()
    .unwrap();
    let test = TestIndex::with(&[typo.clone(), exact.clone()]);
    assert_eq!(test.ids(ws, "invoice"), [exact.id, typo.id]);
}

#[test]
fn title_matches_rank_above_tag_matches_above_body_matches() {
    let ws = Uuid::new_v4();
    let long_title = "a long title that mentions the invoice once among many other words";
    let [body, tags, title] = sorted_by_id(vec![
        item(ws, "Note", "invoice invoice invoice"),
        ItemDoc {
            tags: vec!["invoice".into()],
            ..item(ws, "Note", "")
        },
        item(ws, long_title, ""),
    ])
    .try_into()
    .unwrap();
    let test = TestIndex::with(&[body.clone(), tags.clone(), title.clone()]);
    assert_eq!(test.ids(ws, "invoice"), [title.id, tags.id, body.id]);
}

#[test]
fn an_exact_body_match_ranks_above_a_typo_in_the_title() {
    let ws = Uuid::new_v4();
    let [typo_title, exact_body] = sorted_by_id(vec![
        item(ws, "Invoce", ""),
        item(ws, "Note", "the invoice"),
    ])
    .try_into()
    .unwrap();
    let test = TestIndex::with(&[typo_title.clone(), exact_body.clone()]);
    assert_eq!(test.ids(ws, "invoice"), [exact_body.id, typo_title.id]);
}

#[test]
fn a_whole_word_ranks_above_a_longer_word_it_prefixes() {
    let ws = Uuid::new_v4();
    let [longer, whole] = sorted_by_id(vec![item(ws, "Invoices", ""), item(ws, "Invoice", "")])
        .try_into()
        .unwrap();
    let test = TestIndex::with(&[longer.clone(), whole.clone()]);
    assert_eq!(test.ids(ws, "invoice"), [whole.id, longer.id]);
}

#[test]
fn bm25_orders_matches_of_the_same_kind() {
    let ws = Uuid::new_v4();
    let [diluted, focused] = sorted_by_id(vec![
        item(
            ws,
            "Invoice with a very long title about many unrelated things",
            "",
        ),
        item(ws, "Invoice", ""),
    ])
    .try_into()
    .unwrap();
    let test = TestIndex::with(&[diluted.clone(), focused.clone()]);
    let results = test.search(ws, "invoice");
    assert_eq!(ids(&results), [focused.id, diluted.id]);
    assert!(results.hits[0].score > results.hits[1].score);
}

#[test]
fn equal_scores_are_ordered_by_id() {
    let ws = Uuid::new_v4();
    let items = sorted_by_id((0..5).map(|_| item(ws, "Same title", "")).collect());
    let test = TestIndex::with(&items);
    let expected: Vec<Uuid> = items.iter().map(|item| item.id).collect();
    assert_eq!(test.ids(ws, "same"), expected);
}

#[test]
fn dates_order_both_ways_with_ties_by_id() {
    let ws = Uuid::new_v4();
    let times = [(3, 1), (1, 3), (2, 2), (2, 2)];
    let items = sorted_by_id(
        times
            .iter()
            .map(|&(created, updated)| ItemDoc {
                created_at: at(created),
                updated_at: at(updated),
                ..item(ws, "report", "")
            })
            .collect(),
    );
    let test = TestIndex::with(&items);
    let id = |i: usize| items[i].id;
    let cases = [
        (Order::CreatedAsc, [id(1), id(2), id(3), id(0)]),
        (Order::CreatedDesc, [id(0), id(2), id(3), id(1)]),
        (Order::UpdatedAsc, [id(0), id(2), id(3), id(1)]),
        (Order::UpdatedDesc, [id(1), id(2), id(3), id(0)]),
    ];
    for (order, expected) in cases {
        for text in ["report", ""] {
            let request = search::SearchQuery {
                order,
                ..query(ws, text)
            };
            let results = test.index.search(&request).unwrap();
            assert_eq!(ids(&results), expected, "{order:?} {text:?}");
            assert!(results.hits.iter().all(|hit| hit.score == 0.0));
        }
    }
}

#[test]
fn relevance_without_words_is_most_recently_updated_first() {
    let ws = Uuid::new_v4();
    let items: Vec<ItemDoc> = (0..3)
        .map(|minutes| ItemDoc {
            updated_at: at(minutes),
            ..item(ws, "x", "")
        })
        .collect();
    let test = TestIndex::with(&items);
    assert_eq!(test.ids(ws, ""), [items[2].id, items[1].id, items[0].id]);
}
