//! The read-model queries' statements, as PostgreSQL plans them.

use pgcluster::TestDatabase;
use projections::queries::{self, ITEMS_PLANNED_ONCE_MAX, ItemFilter, ItemOrder};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// A page of items without a filter is planned once per connection, not on every call
/// (planning it cost more than running it), with and without a cursor; and the pages are the
/// right ones, also past the size such a statement reads.
#[tokio::test]
async fn an_unfiltered_items_page_settles_on_a_generic_plan() {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let workspaces: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    // Of unequal sizes, with an author per item, as in the benchmark that found the statement
    // planned anew on every call.
    for (workspace, size) in workspaces.iter().zip([3000, 300, 300]) {
        sqlx::query(
            "INSERT INTO workspaces (id, name, region, plan, trial_ends_at, created_at,
                                     updated_at, version)
             VALUES ($1, 'w', 'eu', 'FREE', now(), now(), now(), 1)",
        )
        .bind(workspace)
        .execute(db.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO items (id, workspace_id, title, body, tags, status, author_id,
                                created_at, updated_at, version)
             SELECT gen_random_uuid(), $1, 'item ' || n, '', ARRAY['t' || (n % 7)],
                    CASE WHEN n % 3 = 0 THEN 'ACTIVE' ELSE 'DRAFT' END, gen_random_uuid(),
                    now() - n * interval '1 second', now(), 1
             FROM generate_series(1, $2) AS n",
        )
        .bind(workspace)
        .bind(size)
        .execute(db.pool())
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE items")
        .execute(db.pool())
        .await
        .unwrap();
    // One connection: the prepared statements below are all on it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.options().clone())
        .await
        .unwrap();
    let newest_first: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM items WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(workspaces[0])
    .fetch_all(&pool)
    .await
    .unwrap();
    let ids = |rows: Vec<queries::ItemRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let unfiltered = ItemFilter::default();

    for round in 0..8 {
        let workspace = workspaces[round % workspaces.len()];
        let first = queries::items(
            &pool,
            workspace,
            &unfiltered,
            ItemOrder::CreatedDesc,
            None,
            21,
        )
        .await
        .unwrap();
        assert_eq!(first.len(), 21);
        let after = first[20].cursor(ItemOrder::CreatedDesc);
        let second = queries::items(
            &pool,
            workspace,
            &unfiltered,
            ItemOrder::CreatedDesc,
            Some(after),
            21,
        )
        .await
        .unwrap();
        if workspace == workspaces[0] {
            assert_eq!(ids(first), newest_first[..21]);
            assert_eq!(ids(second), newest_first[21..42]);
        }
    }

    let plans: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%LIMIT 101%' AND name <> ''
           AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(plans.len(), 2, "{plans:?}");
    for (statement, generic, custom) in plans {
        assert!(
            generic >= 3,
            "{generic} generic and {custom} custom plans for {statement}"
        );
    }

    // Past the size the planned-once statement reads, and filtered: the other statement.
    let large = queries::items(
        &pool,
        workspaces[0],
        &unfiltered,
        ItemOrder::CreatedDesc,
        None,
        ITEMS_PLANNED_ONCE_MAX + 50,
    )
    .await
    .unwrap();
    assert_eq!(ids(large), newest_first[..151]);
    let newest_page = async |filter: ItemFilter| {
        let rows = queries::items(
            &pool,
            workspaces[0],
            &filter,
            ItemOrder::CreatedDesc,
            None,
            21,
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 21);
        assert!(rows.windows(2).all(|w| w[0].created_at > w[1].created_at));
        rows
    };
    let tagged = newest_page(ItemFilter {
        tags: vec!["t3".into()],
        ..ItemFilter::default()
    })
    .await;
    assert!(tagged.iter().all(|r| r.tags == ["t3"]));
    let active = newest_page(ItemFilter {
        status: Some("ACTIVE".into()),
        ..ItemFilter::default()
    })
    .await;
    assert!(active.iter().all(|r| r.status == "ACTIVE"));
}
