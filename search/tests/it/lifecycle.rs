//! Opening, reopening, recovering, updating and clearing the index.

use chrono::{TimeZone, Utc};
use search::{Change, Error, ItemDoc, Opened, SearchIndex};
use uuid::Uuid;

use crate::support::{TestIndex, at, item};

#[test]
fn a_missing_directory_gets_a_new_empty_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("search");
    let (index, opened) = SearchIndex::open(&path).unwrap();
    assert_eq!(opened, Opened::Created);
    assert_eq!(opened.checkpoint(), None);
    assert_eq!((index.doc_count(), index.checkpoint()), (0, None));
}

#[test]
fn a_reopened_index_has_its_checkpoint_and_documents() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Uuid::new_v4();
    let doc = item(workspace, "Quarterly invoice", "");
    {
        let (index, _) = SearchIndex::open(dir.path()).unwrap();
        index.apply([Change::Upsert(doc.clone())], "abc").unwrap();
        assert_eq!(index.checkpoint().as_deref(), Some("abc"));
    }
    let (index, opened) = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(opened.checkpoint(), Some("abc"));
    assert!(matches!(opened, Opened::Reopened { .. }));
    assert_eq!(index.checkpoint().as_deref(), Some("abc"));
    assert_eq!(index.get(doc.id).unwrap(), Some(doc.clone()));
    let results = index
        .search(&crate::support::query(workspace, "invoice"))
        .unwrap();
    assert_eq!(results.hits[0].id, doc.id);
}

#[test]
fn a_corrupt_index_is_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (index, _) = SearchIndex::open(dir.path()).unwrap();
        let doc = item(Uuid::new_v4(), "title", "body");
        index.apply([Change::Upsert(doc)], "abc").unwrap();
    }
    std::fs::write(dir.path().join("meta.json"), b"{ not json at all").unwrap();
    let (index, opened) = SearchIndex::open(dir.path()).unwrap();
    assert!(matches!(opened, Opened::Recreated { .. }), "{opened:?}");
    assert_eq!(opened.checkpoint(), None);
    assert_eq!((index.doc_count(), index.checkpoint()), (0, None));
    index
        .apply([Change::Upsert(item(Uuid::new_v4(), "t", "b"))], "1")
        .unwrap();
    assert_eq!(index.doc_count(), 1);
}

#[test]
fn an_index_with_missing_segment_files_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (index, _) = SearchIndex::open(dir.path()).unwrap();
        index
            .apply([Change::Upsert(item(Uuid::new_v4(), "t", "b"))], "abc")
            .unwrap();
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "store") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (index, opened) = SearchIndex::open(dir.path()).unwrap();
    assert!(matches!(opened, Opened::Recreated { .. }), "{opened:?}");
    assert_eq!(index.doc_count(), 0);
}

#[test]
fn an_index_with_another_schema_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut schema = tantivy::schema::Schema::builder();
    schema.add_text_field("title", tantivy::schema::TEXT);
    tantivy::Index::create_in_dir(dir.path(), schema.build()).unwrap();
    let (index, opened) = SearchIndex::open(dir.path()).unwrap();
    assert!(matches!(opened, Opened::Recreated { .. }), "{opened:?}");
    index
        .apply([Change::Upsert(item(Uuid::new_v4(), "t", "b"))], "1")
        .unwrap();
    assert_eq!(index.doc_count(), 1);
}

#[test]
fn a_directory_in_use_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = SearchIndex::open(dir.path()).unwrap();
    index
        .apply([Change::Upsert(item(Uuid::new_v4(), "t", "b"))], "abc")
        .unwrap();
    assert!(matches!(
        SearchIndex::open(dir.path()),
        Err(Error::Tantivy(_))
    ));
    assert_eq!(index.doc_count(), 1);
    drop(index);
    let (index, opened) = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(opened.checkpoint(), Some("abc"));
    assert_eq!(index.doc_count(), 1);
}

#[test]
fn get_returns_every_field_as_upserted() {
    let test = TestIndex::new();
    let doc = ItemDoc {
        tags: vec!["Q3 planning".into(), "finance".into()],
        status: "ACTIVE".into(),
        author_id: Uuid::new_v4(),
        created_at: Utc.timestamp_nanos(1_735_689_600_123_456_789),
        updated_at: at(90),
        ..item(Uuid::new_v4(), "Title <b>", "Body & more")
    };
    test.upsert(std::slice::from_ref(&doc));
    assert_eq!(test.index.get(doc.id).unwrap(), Some(doc));
    assert_eq!(test.index.get(Uuid::new_v4()).unwrap(), None);
}

#[test]
fn an_upsert_replaces_and_a_delete_removes() {
    let workspace = Uuid::new_v4();
    let original = item(workspace, "Draft invoice", "");
    let test = TestIndex::with(std::slice::from_ref(&original));
    let retitled = ItemDoc {
        title: "Final receipt".into(),
        ..original.clone()
    };
    test.index
        .apply([Change::Upsert(retitled.clone())], "2")
        .unwrap();
    assert_eq!(test.index.doc_count(), 1);
    assert_eq!(test.index.get(original.id).unwrap(), Some(retitled));
    assert!(test.ids(workspace, "invoice").is_empty());
    assert_eq!(test.ids(workspace, "receipt"), [original.id]);
    test.index
        .apply([Change::Delete(original.id)], "3")
        .unwrap();
    assert_eq!(
        (test.index.doc_count(), test.index.get(original.id).unwrap()),
        (0, None)
    );
    assert_eq!(test.index.checkpoint().as_deref(), Some("3"));
}

#[test]
fn changes_of_one_batch_apply_in_order() {
    let workspace = Uuid::new_v4();
    let kept = item(workspace, "first version", "");
    let deleted = item(workspace, "short lived", "");
    let changes = [
        Change::Upsert(kept.clone()),
        Change::Upsert(deleted.clone()),
        Change::Delete(kept.id),
        Change::Upsert(ItemDoc {
            title: "second version".into(),
            ..kept.clone()
        }),
        Change::Delete(deleted.id),
    ];
    let test = TestIndex::new();
    test.index.apply(changes, "1").unwrap();
    assert_eq!(test.index.doc_count(), 1);
    assert_eq!(
        test.index.get(kept.id).unwrap().unwrap().title,
        "second version"
    );
    assert_eq!(test.index.get(deleted.id).unwrap(), None);
}

#[test]
fn a_failing_batch_applies_nothing_and_keeps_the_checkpoint() {
    let workspace = Uuid::new_v4();
    let test = TestIndex::with(&[item(workspace, "kept", "")]);
    let good = item(workspace, "staged", "");
    let bad = ItemDoc {
        created_at: Utc.with_ymd_and_hms(2500, 1, 1, 0, 0, 0).unwrap(),
        ..item(workspace, "from the future", "")
    };
    let result = test
        .index
        .apply([Change::Upsert(good.clone()), Change::Upsert(bad)], "2");
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    assert_eq!(test.index.checkpoint().as_deref(), Some("1"));
    test.index.apply([], "3").unwrap();
    assert_eq!(test.index.get(good.id).unwrap(), None);
    assert_eq!(
        (test.index.doc_count(), test.index.checkpoint().as_deref()),
        (1, Some("3"))
    );
}

#[test]
fn a_bulk_commits_in_steps_and_discards_what_it_did_not_commit() {
    let workspace = Uuid::new_v4();
    let test = TestIndex::new();
    let first = item(workspace, "first version", "");
    let other = item(workspace, "other", "");
    let mut bulk = test.index.bulk().unwrap();
    bulk.upsert(&first).unwrap();
    bulk.commit("1").unwrap();
    assert_eq!(test.index.get(first.id).unwrap(), Some(first.clone()));
    // Staged again and again before the next commit: only the last version stays.
    let second = ItemDoc {
        title: "second version".into(),
        ..first.clone()
    };
    let third = ItemDoc {
        title: "third version".into(),
        ..first.clone()
    };
    bulk.upsert(&second).unwrap();
    bulk.upsert(&other).unwrap();
    bulk.upsert(&third).unwrap();
    assert_eq!(
        (test.index.get(first.id).unwrap(), test.index.checkpoint()),
        (Some(first.clone()), Some("1".into())),
        "staged changes are not seen before their commit"
    );
    bulk.commit("2").unwrap();
    assert_eq!(test.index.get(first.id).unwrap(), Some(third));
    assert_eq!(test.index.doc_count(), 2);
    // Staged, never committed.
    bulk.delete(other.id);
    bulk.upsert(&item(workspace, "never committed", ""))
        .unwrap();
    drop(bulk);
    test.index.apply([], "3").unwrap();
    assert_eq!(
        (test.index.doc_count(), test.index.get(other.id).unwrap()),
        (2, Some(other))
    );
    assert_eq!(test.index.checkpoint().as_deref(), Some("3"));
}

#[test]
fn clear_removes_every_document_and_the_checkpoint() {
    let workspace = Uuid::new_v4();
    let test = TestIndex::with(&[item(workspace, "a", ""), item(workspace, "b", "")]);
    test.index.clear().unwrap();
    assert_eq!((test.index.doc_count(), test.index.checkpoint()), (0, None));
    assert!(test.ids(workspace, "").is_empty());
    drop(test.index);
    let (index, opened) = SearchIndex::open(test.dir.path()).unwrap();
    assert_eq!((index.doc_count(), opened.checkpoint()), (0, None));
}
