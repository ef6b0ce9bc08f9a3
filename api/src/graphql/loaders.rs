//! Batched loading for fields that every row of a list resolves (`Item.author`,
//! `Member.user`): a page of 100 items loads its authors in one query, not 100. Loaders keep
//! no cache, so a loader never answers from what it loaded for an earlier request; HTTP
//! requests each get their own (see [`crate::http`]), a WebSocket connection one for its
//! operations.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use projections::queries::{self, UserRow};
use uuid::Uuid;

use crate::database::Lane;

/// Users by id.
pub struct Users {
    lane: Lane,
}

impl Loader<Uuid> for Users {
    type Value = UserRow;
    type Error = Arc<projections::Error>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, UserRow>, Self::Error> {
        let rows = queries::users_by_ids(&self.lane, ids)
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// The per-request (or per-connection) loaders, put into the request's data.
pub type UserLoader = DataLoader<Users>;

/// A fresh user loader reading through `lane`.
pub fn users(lane: Lane) -> UserLoader {
    DataLoader::new(Users { lane }, tokio::spawn)
}
