//! Relay-style pagination shared by every list: `first` / `after` (and, where the list's order
//! can be reversed, `last` / `before`), opaque cursors, `pageInfo`.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, ObjectType, OutputType};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::types::{lane, pool};
use crate::error::ApiError;

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

/// The complexity of a page of `first` elements (default 20, at most 100) that each cost
/// `child_complexity`: what the query-complexity limit counts, so that a large page of deep
/// elements, aliased many times, is refused before it runs.
pub fn complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.map_or(DEFAULT_PAGE, |n| {
        usize::try_from(n).unwrap_or(1).clamp(1, MAX_PAGE)
    });
    size.saturating_mul(child_complexity).saturating_add(1)
}

/// A requested page: how many, and after which cursor. A backward page (`last`/`before`) is
/// read as a forward page of the reversed order and turned around by [`Page::connection`].
pub struct Page<'a> {
    first: usize,
    after: Option<&'a str>,
    backward: bool,
}

impl<'a> Page<'a> {
    /// Validates `first` (1–100, default 20).
    pub fn new(first: Option<i32>, after: Option<&'a str>) -> Result<Page<'a>, ApiError> {
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) if (1..=MAX_PAGE as i32).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::BadInput(format!(
                    "`first` must be between 1 and {MAX_PAGE}, not {n}"
                )));
            }
        };
        Ok(Page {
            first,
            after,
            backward: false,
        })
    }

    /// Validates a page in either direction: `first`/`after` (default), or `last`/`before`
    /// (the last `last` elements before `before`, or of the whole list). Mixing the two
    /// directions is `BAD_USER_INPUT`.
    pub fn either_way(
        first: Option<i32>,
        after: Option<&'a str>,
        last: Option<i32>,
        before: Option<&'a str>,
    ) -> Result<Page<'a>, ApiError> {
        match (
            first.is_some() || after.is_some(),
            last.is_some() || before.is_some(),
        ) {
            (true, true) => Err(ApiError::BadInput(
                "page forward (`first`, `after`) or backward (`last`, `before`), not both".into(),
            )),
            (false, true) => {
                let page = Page::new(last, before).map_err(|_| {
                    ApiError::BadInput(format!("`last` must be between 1 and {MAX_PAGE}"))
                })?;
                Ok(Page {
                    backward: true,
                    ..page
                })
            }
            _ => Page::new(first, after),
        }
    }

    /// Whether the page is read backward: the list's order must be reversed to fetch it.
    pub fn backward(&self) -> bool {
        self.backward
    }

    /// How many the page holds.
    pub fn size(&self) -> usize {
        self.first
    }

    /// The decoded cursor the page starts from: `after`, or `before` for a backward page.
    pub fn after<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        self.after
            .map(|cursor| {
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|json| serde_json::from_slice(&json).ok())
                    .ok_or_else(|| {
                        let name = if self.backward { "before" } else { "after" };
                        ApiError::BadInput(format!("`{name}` is not a cursor from this list"))
                    })
            })
            .transpose()
    }

    /// Rows to fetch: one more than the page, to know whether there is a next page.
    pub fn fetch(&self) -> i64 {
        self.first as i64 + 1
    }

    /// `(hasPreviousPage, hasNextPage)` of the page, given whether more elements were found
    /// beyond it in the direction it was read. A cursor was taken from an element on its other
    /// side, so that side is not empty.
    pub fn page_info(&self, more: bool) -> (bool, bool) {
        if self.backward {
            (more, self.after.is_some())
        } else {
            (self.after.is_some(), more)
        }
    }

    /// Reads the page with `read(cursor, backward, limit)` — the rows after the cursor in the
    /// list's order, or, `backward`, before it in the reverse order; at most `limit` — and
    /// makes its connection, with the connection's own `fields`.
    pub async fn load<K, R, N, F, E, Rows>(
        &self,
        read: impl FnOnce(Option<K>, bool, i64) -> Rows,
        cursor: impl Fn(&R) -> String,
        node: impl Fn(R) -> N,
        fields: F,
    ) -> Result<Connection<String, N, F>, ApiError>
    where
        K: DeserializeOwned,
        N: OutputType,
        F: ObjectType,
        Rows: Future<Output = Result<Vec<R>, E>>,
        ApiError: From<E>,
    {
        let rows = read(self.after()?, self.backward, self.fetch()).await?;
        Ok(self.connection_with(rows, cursor, node, fields))
    }

    /// The connection for the fetched `rows`.
    pub fn connection<R, N: OutputType>(
        &self,
        rows: Vec<R>,
        cursor: impl Fn(&R) -> String,
        node: impl Fn(R) -> N,
    ) -> Connection<String, N> {
        self.connection_with(rows, cursor, node, EmptyFields)
    }

    /// The connection for the fetched `rows`, with the connection's own `fields` (such as
    /// [`TotalCount`]).
    pub fn connection_with<R, N: OutputType, F: ObjectType>(
        &self,
        mut rows: Vec<R>,
        cursor: impl Fn(&R) -> String,
        node: impl Fn(R) -> N,
        fields: F,
    ) -> Connection<String, N, F> {
        let (has_previous, has_next) = self.page_info(rows.len() > self.first);
        rows.truncate(self.first);
        if self.backward {
            rows.reverse();
        }
        let mut connection = Connection::with_additional_fields(has_previous, has_next, fields);
        connection.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(cursor(&row), node(row))),
        );
        connection
    }
}

/// A list whose length is one cheap, indexed count.
#[derive(Clone, Copy)]
pub enum Counted {
    /// The workspaces this user is a member of.
    WorkspacesOf(Uuid),
    /// A workspace's members.
    Members(Uuid),
    /// A workspace's invites, whatever they became.
    Invites(Uuid),
    /// A workspace's exports, whatever they became.
    Exports(Uuid),
    /// A workspace's failed jobs (retrying and dead).
    FailedJobs(Uuid),
}

/// The `totalCount` field of a connection over a [`Counted`] list: counted only when selected.
pub struct TotalCount(pub Counted);

#[Object]
impl TotalCount {
    /// How many elements the whole list holds, over all pages (the field that returns the
    /// list says what it counts). Counted only when selected, by one count query.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let db = lane(ctx)?;
        let count = match self.0 {
            Counted::WorkspacesOf(user_id) => {
                projections::queries::count_workspaces_of(db, user_id).await
            }
            Counted::Members(workspace_id) => {
                projections::queries::count_members(db, workspace_id).await
            }
            Counted::Invites(workspace_id) => {
                projections::queries::count_invites(db, workspace_id).await
            }
            Counted::Exports(workspace_id) => {
                projections::queries::count_exports(db, workspace_id).await
            }
            Counted::FailedJobs(workspace_id) => {
                return Ok(jobs::failed::count(pool(ctx)?, workspace_id)
                    .await
                    .map_err(|err| ApiError::Internal(err.into()))?);
            }
        };
        Ok(count.map_err(ApiError::from)?)
    }
}

/// An opaque cursor for a sort key.
pub fn encode_cursor<T: Serialize>(key: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}
