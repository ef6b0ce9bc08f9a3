//! Live feeds (SPEC §1 analysts, §8): subscriptions, served over WebSocket at `/graphql` with
//! the `graphql-transport-ws` protocol (see [`crate::websocket`] for the transport and how a
//! connection is authenticated).
//!
//! Both feeds are a [`eventlog::Tail`]: history and live events come from the same reads below
//! the log's read horizon, so a subscriber that starts in the past catches up and then follows
//! without a gap or a repeat at the seam.

use std::time::{Duration, Instant};

use async_graphql::{Context, ID, SimpleObject, Subscription as GraphQLSubscription};
use eventlog::aggregates::AsOf;
use eventlog::{EventFilter, EventLog, Position, RecordedEvent, Tail};
use futures::Stream;
use futures::stream;
use uuid::Uuid;

use super::events::{self, Event, EventsFilter, Pseudonymizer};
use super::history::fold_item;
use super::ids::{Kind, decode};
use super::query::caller;
use super::types::{Item, rights};
use crate::authz::{self, Grant, Read, Rights};
use crate::error::ApiError;

/// How often a running subscription checks again that its subscriber may still read it.
const RECHECK_RIGHTS: Duration = Duration::from_secs(30);

/// Subscriptions: the log and the items, live.
#[derive(Default)]
pub struct Subscription;

#[GraphQLSubscription]
impl Subscription {
    /// The log in position order from `fromPosition` (exclusive; the beginning when omitted):
    /// first the history, then every event as it commits, each exactly once. Filters, rights
    /// and pseudonymisation are those of the `events` query; `filter.afterPosition` is another
    /// way to give the start. The feed is open-ended, so `filter.upToPosition` is refused: use
    /// the `events` query for a closed range. Stops with `NOT_FOUND` if the subscriber loses
    /// access to the workspace.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventsFilter>,
        from_position: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>> + use<>> {
        let filter = filter.unwrap_or_default();
        if filter.up_to_position.is_some() {
            return Err(ApiError::BadInput(
                "a subscription is open-ended: drop upToPosition, or use the events query".into(),
            )
            .into());
        }
        let workspace_id = filter
            .workspace_id
            .as_ref()
            .map(|id| decode(Kind::Workspace, id))
            .transpose()?;
        let (log_filter, after) = filter.to_log_filter(workspace_id)?;
        let from = from_position.as_deref().map(events::position).transpose()?;
        let start = after.max(from).unwrap_or(Position::START);
        let feed = Feed::open(ctx, Right::Log(workspace_id), start, log_filter).await?;
        let pseudonymizer = ctx.data::<Pseudonymizer>()?.clone();
        Ok(stream::try_unfold(feed, move |mut feed| {
            let pseudonymizer = pseudonymizer.clone();
            async move {
                let event = feed.next().await?;
                let event = pseudonymizer.present(event, feed.grant);
                Ok::<_, async_graphql::Error>(Some((event, feed)))
            }
        }))
    }

    /// Every change to the items of a workspace (members only), from `fromPosition`
    /// (exclusive) or, when omitted, from now on: the item just after the change, folded from
    /// the log (so `deleted` is true after a deletion), with the event that changed it.
    async fn item_changed(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        from_position: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ItemChange>> + use<>> {
        let workspace_id = decode(Kind::Workspace, &workspace_id)?;
        let log = ctx.data::<EventLog>()?.clone();
        let start = match from_position.as_deref().map(events::position) {
            Some(position) => position?,
            None => log.head().await.map_err(ApiError::from)?,
        };
        let filter = EventFilter {
            workspace_id: Some(workspace_id),
            stream_type: Some("item".into()),
            ..EventFilter::default()
        };
        let feed = Feed::open(ctx, Right::Content(workspace_id), start, filter).await?;
        Ok(stream::try_unfold(feed, move |mut feed| {
            let log = log.clone();
            async move {
                let event = feed.next().await?;
                let (_, item) = fold_item(&log, event.stream_id, AsOf::Position(event.position))
                    .await?
                    .ok_or_else(|| {
                        ApiError::Internal(anyhow::anyhow!(
                            "item event {} folds to no item",
                            event.event_id
                        ))
                    })?;
                let change = ItemChange {
                    position: event.position.to_string(),
                    event_type: event.event_type,
                    item,
                };
                Ok::<_, async_graphql::Error>(Some((change, feed)))
            }
        }))
    }
}

/// One change to an item, as delivered by `itemChanged`.
#[derive(SimpleObject)]
pub struct ItemChange {
    /// The change's place in the log: resume after it with `fromPosition`.
    pub position: String,
    /// What happened: `ItemCreated`, `ItemRetitled`, `ItemDeleted`…
    pub event_type: String,
    /// The item just after the change.
    pub item: Item,
}

/// What a feed's subscriber must keep the right to read.
#[derive(Clone, Copy)]
enum Right {
    /// The raw log of a workspace, or of all (`None`).
    Log(Option<Uuid>),
    /// A workspace's content.
    Content(Uuid),
}

/// A tail that ends with its subscriber's rights: they are checked when it opens and again
/// every [`RECHECK_RIGHTS`] while it runs (by [`crate::authz`], like every read), so someone
/// removed from a workspace, or demoted below what the feed needs, stops receiving it.
struct Feed {
    tail: Tail,
    rights: Rights,
    user_id: Uuid,
    right: Right,
    /// How the subscriber reads (pseudonymised for ANALYST staff).
    grant: Grant,
    checked_at: Instant,
}

impl Feed {
    async fn open(
        ctx: &Context<'_>,
        right: Right,
        after: Position,
        filter: EventFilter,
    ) -> async_graphql::Result<Feed> {
        let user_id = caller(ctx)?;
        let rights = rights(ctx)?.clone();
        let grant = Feed::authorize(&rights, user_id, right).await?;
        let tail = ctx.data::<EventLog>()?.tail(after).with_filter(filter);
        Ok(Feed {
            tail,
            rights,
            user_id,
            right,
            grant,
            checked_at: Instant::now(),
        })
    }

    async fn authorize(rights: &Rights, user_id: Uuid, right: Right) -> Result<Grant, ApiError> {
        match right {
            Right::Log(workspace_id) => authz::log(rights, user_id, workspace_id).await,
            Right::Content(workspace_id) => {
                authz::workspace(rights, user_id, workspace_id, Read::Content).await
            }
        }
    }

    async fn next(&mut self) -> Result<RecordedEvent, ApiError> {
        let event = self.tail.next().await?;
        if self.checked_at.elapsed() >= RECHECK_RIGHTS {
            self.grant = Feed::authorize(&self.rights, self.user_id, self.right).await?;
            self.checked_at = Instant::now();
        }
        Ok(event)
    }
}
