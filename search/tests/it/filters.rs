//! Restricting hits by status, tags, author and dates.

use search::{ItemDoc, SearchFilter, SearchQuery};
use uuid::Uuid;

use crate::support::{TestIndex, at, ids, item, query};

fn with_status(workspace: Uuid, status: &str) -> ItemDoc {
    ItemDoc {
        status: status.to_owned(),
        ..item(workspace, "report", "")
    }
}

/// The ids (sorted) of the items matching `filter`, which must be the same with and without
/// text since every item is titled "report".
fn filtered(test: &TestIndex, workspace: Uuid, filter: SearchFilter) -> Vec<Uuid> {
    let with_text = matching(test, workspace, "report", &filter);
    let without_text = matching(test, workspace, "", &filter);
    assert_eq!(with_text, without_text, "text and no text disagree");
    without_text
}

fn matching(test: &TestIndex, workspace: Uuid, text: &str, filter: &SearchFilter) -> Vec<Uuid> {
    let request = SearchQuery {
        filter: filter.clone(),
        ..query(workspace, text)
    };
    sorted(ids(&test.index.search(&request).unwrap()))
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[test]
fn archived_items_are_returned_only_when_asked_for() {
    let ws = Uuid::new_v4();
    let draft = with_status(ws, "DRAFT");
    let published = with_status(ws, "PUBLISHED");
    let archived = with_status(ws, "ARCHIVED");
    let test = TestIndex::with(&[draft.clone(), published.clone(), archived.clone()]);
    let statuses = |list: Option<&[&str]>| SearchFilter {
        statuses: list.map(|list| list.iter().map(|s| s.to_string()).collect()),
        ..SearchFilter::default()
    };
    let default = sorted(vec![draft.id, published.id]);
    assert_eq!(filtered(&test, ws, statuses(None)), default);
    assert_eq!(filtered(&test, ws, statuses(Some(&[]))), default);
    assert_eq!(
        filtered(&test, ws, statuses(Some(&["ARCHIVED"]))),
        [archived.id]
    );
    assert_eq!(
        filtered(&test, ws, statuses(Some(&["PUBLISHED"]))),
        [published.id]
    );
    let all = sorted(vec![draft.id, published.id, archived.id]);
    let every_status = Some(&["DRAFT", "PUBLISHED", "ARCHIVED"][..]);
    assert_eq!(filtered(&test, ws, statuses(every_status)), all);
}

#[test]
fn items_must_have_every_tag_asked_for() {
    let ws = Uuid::new_v4();
    let tagged = |tags: &[&str]| ItemDoc {
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        ..item(ws, "report", "")
    };
    let both = tagged(&["finance", "Q3 planning"]);
    let one = tagged(&["finance"]);
    let test = TestIndex::with(&[both.clone(), one.clone(), tagged(&[])]);
    let tags = |tags: &[&str]| SearchFilter {
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        ..SearchFilter::default()
    };
    assert_eq!(
        filtered(&test, ws, tags(&["finance"])),
        sorted(vec![both.id, one.id])
    );
    assert_eq!(
        filtered(&test, ws, tags(&["finance", "Q3 planning"])),
        [both.id]
    );
    assert!(
        filtered(&test, ws, tags(&["q3 planning"])).is_empty(),
        "exact tags"
    );
    assert!(filtered(&test, ws, tags(&["Q3"])).is_empty(), "whole tags");
}

#[test]
fn items_can_be_restricted_to_an_author() {
    let ws = Uuid::new_v4();
    let author = Uuid::new_v4();
    let theirs = ItemDoc {
        author_id: author,
        ..item(ws, "report", "")
    };
    let test = TestIndex::with(&[theirs.clone(), item(ws, "report", "")]);
    let filter = SearchFilter {
        author_id: Some(author),
        ..SearchFilter::default()
    };
    assert_eq!(filtered(&test, ws, filter), [theirs.id]);
}

#[test]
fn date_ranges_include_their_start_and_exclude_their_end() {
    let ws = Uuid::new_v4();
    let items: Vec<ItemDoc> = (0..4)
        .map(|minutes| ItemDoc {
            created_at: at(minutes),
            updated_at: at(10 - minutes),
            ..item(ws, "report", "")
        })
        .collect();
    let test = TestIndex::with(&items);
    let created = SearchFilter {
        created_from: Some(at(1)),
        created_to: Some(at(3)),
        ..SearchFilter::default()
    };
    assert_eq!(
        filtered(&test, ws, created),
        sorted(vec![items[1].id, items[2].id])
    );
    let updated = SearchFilter {
        updated_from: Some(at(8)),
        updated_to: Some(at(10)),
        ..SearchFilter::default()
    };
    assert_eq!(
        filtered(&test, ws, updated),
        sorted(vec![items[1].id, items[2].id])
    );
    let both = SearchFilter {
        created_from: Some(at(2)),
        updated_to: Some(at(8)),
        ..SearchFilter::default()
    };
    assert_eq!(filtered(&test, ws, both), [items[3].id]);
    let open_ended = SearchFilter {
        created_to: Some(at(1)),
        ..SearchFilter::default()
    };
    assert_eq!(filtered(&test, ws, open_ended), [items[0].id]);
}

#[test]
fn out_of_range_dates_filter_without_failing() {
    let ws = Uuid::new_v4();
    let test = TestIndex::with(&[item(ws, "report", "")]);
    let far_past = "1000-01-01T00:00:00Z".parse().unwrap();
    let far_future = "3000-01-01T00:00:00Z".parse().unwrap();
    let everything = SearchFilter {
        created_from: Some(far_past),
        created_to: Some(far_future),
        ..SearchFilter::default()
    };
    assert_eq!(filtered(&test, ws, everything).len(), 1);
    let nothing = SearchFilter {
        updated_from: Some(far_future),
        ..SearchFilter::default()
    };
    assert!(filtered(&test, ws, nothing).is_empty());
}
