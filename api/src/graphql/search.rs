//! `search`: full-text search of a workspace's items (SPEC §5), answered by this node's
//! search index, with highlights and facet counts. Hits are read back from the items read
//! model, so they carry every `Item` field.

use std::collections::HashMap;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use projections::queries;
use uuid::Uuid;

use super::ids::{Kind, decode};
use super::pagination::Page;
use super::query::{ReadModel, consistent};
use super::types::{Item, ItemStatus, lane, rights};
use crate::authz::{self, Read};
use crate::cache::reads;
use crate::error::ApiError;
use crate::read_side::ReadSide;

/// Which items a search may return.
#[derive(InputObject, Default)]
pub struct SearchFilter {
    /// Only these statuses. Archived items are returned only when `ARCHIVED` is listed.
    #[graphql(validator(max_items = 3))]
    pub statuses: Option<Vec<ItemStatus>>,
    /// Only items carrying all of these tags (at most 20).
    #[graphql(validator(max_items = 20))]
    pub tags: Option<Vec<String>>,
    /// Only items created by this user.
    pub author_id: Option<ID>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Last changed at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Last changed before.
    pub updated_to: Option<DateTime<Utc>>,
}

/// The order of search hits; ties are broken by id, so pages never repeat or skip an item.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SearchOrder {
    /// Best match first: exact words above typo matches, title above body. Without words,
    /// most recently changed first.
    #[default]
    Relevance,
    CreatedDesc,
    CreatedAsc,
    UpdatedDesc,
    UpdatedAsc,
}

impl From<SearchOrder> for search::Order {
    fn from(order: SearchOrder) -> Self {
        match order {
            SearchOrder::Relevance => search::Order::Relevance,
            SearchOrder::CreatedDesc => search::Order::CreatedDesc,
            SearchOrder::CreatedAsc => search::Order::CreatedAsc,
            SearchOrder::UpdatedDesc => search::Order::UpdatedDesc,
            SearchOrder::UpdatedAsc => search::Order::UpdatedAsc,
        }
    }
}

/// How many matching items have a value.
#[derive(SimpleObject)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Counts over every match, not just the page.
#[derive(SimpleObject)]
pub struct SearchFacets {
    /// Per status, among the items matching the words and the filter except its statuses
    /// (so a client can show what another status filter would give).
    pub statuses: Vec<FacetCount>,
    /// Per tag, among the items matching the words and the whole filter.
    pub tags: Vec<FacetCount>,
}

/// The page's totals and facets.
#[derive(SimpleObject)]
pub struct SearchSummary {
    /// Items matching the words and the whole filter.
    pub total_count: u64,
    pub facets: SearchFacets,
}

/// Why an item matched.
#[derive(SimpleObject)]
pub struct SearchHighlight {
    /// Relevance (only comparable within one search; 0 when ordered by date).
    pub score: f64,
    /// The title, HTML-escaped, matched words in `<b>…</b>`.
    pub title: String,
    /// A fragment of the body around the matched words, HTML-escaped, in `<b>…</b>`.
    pub body: String,
}

/// A page of search hits.
pub type SearchConnection =
    Connection<String, Item, SearchSummary, SearchHighlight, SearchConnectionName, SearchEdgeName>;

/// The connection's GraphQL type name.
pub struct SearchConnectionName;

impl async_graphql::connection::ConnectionNameType for SearchConnectionName {
    fn type_name<T: async_graphql::OutputType>() -> String {
        "SearchConnection".into()
    }
}

/// The edge's GraphQL type name.
pub struct SearchEdgeName;

impl async_graphql::connection::EdgeNameType for SearchEdgeName {
    fn type_name<T: async_graphql::OutputType>() -> String {
        "SearchEdge".into()
    }
}

/// What the client asked for.
pub struct SearchRequest {
    pub workspace_id: ID,
    pub query: String,
    pub filter: Option<SearchFilter>,
    pub order_by: Option<SearchOrder>,
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
    pub min_position: Option<String>,
}

/// The longest query string accepted.
const MAX_QUERY_CHARS: usize = 500;

/// Runs a search for `reader`, a member of the workspace.
pub async fn search(
    ctx: &Context<'_>,
    reader: Uuid,
    request: SearchRequest,
) -> async_graphql::Result<SearchConnection> {
    let workspace_id = decode(Kind::Workspace, &request.workspace_id)?;
    let db = lane(ctx)?;
    reads::search_index(ctx, workspace_id);
    authz::workspace(rights(ctx)?, reader, workspace_id, Read::Content).await?;
    if request.query.len() > MAX_QUERY_CHARS * 4 || request.query.chars().count() > MAX_QUERY_CHARS
    {
        return Err(ApiError::BadInput(format!(
            "a search query holds at most {MAX_QUERY_CHARS} characters"
        ))
        .into());
    }
    consistent(ctx, request.min_position.as_deref(), ReadModel::Search).await?;
    let page = Page::either_way(
        request.first,
        request.after.as_deref(),
        request.last,
        request.before.as_deref(),
    )?;
    let query = search::SearchQuery {
        workspace_id,
        text: request.query,
        filter: index_filter(request.filter.unwrap_or_default())?,
        order: request.order_by.unwrap_or_default().into(),
        first: page.size(),
        after: request.after.clone().or(request.before.clone()),
        backward: page.backward(),
        // Counting facets visits every match's tags: only when the client selects them.
        facets: ctx.look_ahead().field("facets").exists(),
    };
    let index = ctx.data::<ReadSide>()?.search();
    let results = tokio::task::spawn_blocking(move || index.search(&query))
        .await
        .map_err(|err| ApiError::Internal(err.into()))?
        .map_err(ApiError::from)?;

    let ids: Vec<Uuid> = results.hits.iter().map(|hit| hit.id).collect();
    let mut rows: HashMap<Uuid, _> = queries::items_by_ids(db, workspace_id, &ids)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let facets = |counts: Vec<(String, u64)>| {
        counts
            .into_iter()
            .map(|(value, count)| FacetCount { value, count })
            .collect()
    };
    let (has_previous, has_next) = page.page_info(results.has_more);
    let mut connection = Connection::with_additional_fields(
        has_previous,
        has_next,
        SearchSummary {
            total_count: results.total,
            facets: SearchFacets {
                statuses: facets(results.status_facets),
                tags: facets(results.tag_facets),
            },
        },
    );
    // A hit the read model no longer holds was deleted since the index saw it: skipped.
    connection
        .edges
        .extend(results.hits.into_iter().filter_map(|hit| {
            let row = rows.remove(&hit.id)?;
            let highlight = SearchHighlight {
                score: f64::from(hit.score),
                title: hit.title_highlight,
                body: hit.body_highlight,
            };
            Some(Edge::with_additional_fields(
                hit.cursor,
                Item::from(row),
                highlight,
            ))
        }));
    Ok(connection)
}

fn index_filter(filter: SearchFilter) -> Result<search::SearchFilter, ApiError> {
    Ok(search::SearchFilter {
        statuses: filter.statuses.map(|statuses| {
            statuses
                .into_iter()
                .map(|s| domain::ItemStatus::from(s).as_str().to_string())
                .collect()
        }),
        tags: filter.tags.unwrap_or_default(),
        author_id: filter
            .author_id
            .map(|id| decode(Kind::User, &id))
            .transpose()?,
        created_from: filter.created_from,
        created_to: filter.created_to,
        updated_from: filter.updated_from,
        updated_to: filter.updated_to,
    })
}
