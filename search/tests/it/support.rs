//! Fixtures: temporary indexes, items and queries.

use chrono::{DateTime, Duration, TimeZone, Utc};
use search::{Change, ItemDoc, Order, SearchFilter, SearchIndex, SearchQuery, SearchResults};
use tempfile::TempDir;
use uuid::Uuid;

/// An index in its own temporary directory.
pub struct TestIndex {
    pub index: SearchIndex,
    pub dir: TempDir,
}

impl TestIndex {
    pub fn new() -> TestIndex {
        let dir = tempfile::tempdir().expect("temp dir");
        let (index, _) = SearchIndex::open(dir.path()).expect("open index");
        TestIndex { index, dir }
    }

    /// An index holding `items`, committed with checkpoint "1".
    pub fn with(items: &[ItemDoc]) -> TestIndex {
        let test = TestIndex::new();
        test.upsert(items);
        test
    }

    pub fn upsert(&self, items: &[ItemDoc]) {
        let changes = items.iter().cloned().map(Change::Upsert);
        self.index.apply(changes, "1").expect("apply");
    }

    /// The first 100 hits for `text` in `workspace`, default filter, by relevance.
    pub fn search(&self, workspace: Uuid, text: &str) -> SearchResults {
        self.index.search(&query(workspace, text)).expect("search")
    }

    /// The ids of the first 100 hits for `text` in `workspace`.
    pub fn ids(&self, workspace: Uuid, text: &str) -> Vec<Uuid> {
        ids(&self.search(workspace, text))
    }
}

pub fn query(workspace_id: Uuid, text: &str) -> SearchQuery {
    SearchQuery {
        workspace_id,
        text: text.to_owned(),
        filter: SearchFilter::default(),
        order: Order::Relevance,
        first: 100,
        after: None,
        backward: false,
        facets: true,
    }
}

pub fn ids(results: &SearchResults) -> Vec<Uuid> {
    results.hits.iter().map(|hit| hit.id).collect()
}

/// An instant `minutes` after a fixed origin.
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

/// A draft item of `workspace` without tags, created and updated at the origin.
pub fn item(workspace_id: Uuid, title: &str, body: &str) -> ItemDoc {
    ItemDoc {
        id: Uuid::new_v4(),
        workspace_id,
        title: title.to_owned(),
        body: body.to_owned(),
        tags: Vec::new(),
        status: "DRAFT".to_owned(),
        author_id: Uuid::nil(),
        created_at: at(0),
        updated_at: at(0),
    }
}

/// Items with ids in ascending order.
pub fn sorted_by_id(mut items: Vec<ItemDoc>) -> Vec<ItemDoc> {
    let mut ids: Vec<Uuid> = items.iter().map(|item| item.id).collect();
    ids.sort();
    for (item, id) in items.iter_mut().zip(ids) {
        item.id = id;
    }
    items
}
