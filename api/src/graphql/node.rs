//! Relay's object identification (SPEC §8): every object with an identity implements the
//! [`Node`] interface, and `node(id)`/`nodes(ids)` fetch any of them again by global id. The
//! lookups (events as their reader may see them: pseudonymised for ANALYST staff) are batched
//! by a per-operation loader ([`NodeLoader`]) that reads the rows by id and
//! asks [`crate::authz`] about each one — the same rule the typed queries apply — so an id the
//! caller may not see, a malformed id and an unknown id are indistinguishable.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{ID, Interface};
use eventlog::EventLog;
use projections::queries;
use uuid::Uuid;

use super::events::{Event, Pseudonymizer};
use super::exports::Export;
use super::ids::{GlobalId, Kind};
use super::jobs::FailedJob;
use super::types::{Invite, Item, Member, User, Workspace};
use crate::authz::{self, Read, Standing};
use crate::cache::reads;
use crate::error::ApiError;

/// An object with a global id, which `node(id:)` and `nodes(ids:)` fetch again.
#[derive(Interface, Clone)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "Global id: opaque, stable, unique across types."
))]
pub enum Node {
    User(User),
    Workspace(Workspace),
    Member(Member),
    Invite(Invite),
    Item(Item),
    Event(Event),
    Export(Export),
    FailedJob(FailedJob),
}

impl Node {
    /// Tells the response cache what showing this node reads.
    pub(crate) fn record_read(&self, ctx: &async_graphql::Context<'_>) {
        match self {
            Node::User(user) => reads::user(ctx, user.row.id),
            Node::Workspace(workspace) => reads::workspace(ctx, workspace.0.id),
            Node::Member(member) => {
                reads::workspace(ctx, member.0.workspace_id);
                reads::user(ctx, member.0.user_id);
            }
            Node::Invite(invite) => reads::workspace(ctx, invite.0.workspace_id),
            Node::Item(item) => reads::workspace(ctx, item.row.workspace_id),
            Node::Export(export) => reads::workspace(ctx, export.0.workspace_id),
            // The raw log is not cached (see `reads::CACHEABLE_ROOTS`).
            Node::Event(_) => reads::uncacheable(ctx, "a raw event"),
            // A job's runs change the queue, not the log (`failedJobs` is not cached either).
            Node::FailedJob(_) => reads::uncacheable(ctx, "a failed job"),
        }
    }
}

/// Loads nodes by global id for one caller.
pub struct Nodes {
    log: EventLog,
    pseudonymizer: Pseudonymizer,
    caller: Uuid,
}

/// The per-operation node loader (see [`super::operation`]).
pub type NodeLoader = DataLoader<Nodes>;

/// A fresh node loader for `caller`.
pub fn loader(log: EventLog, pseudonymizer: Pseudonymizer, caller: Uuid) -> NodeLoader {
    let nodes = Nodes {
        log,
        pseudonymizer,
        caller,
    };
    DataLoader::new(nodes, tokio::spawn)
}

impl Loader<GlobalId> for Nodes {
    type Value = Node;
    type Error = Arc<ApiError>;

    async fn load(&self, ids: &[GlobalId]) -> Result<HashMap<GlobalId, Node>, Self::Error> {
        self.load_visible(ids).await.map_err(Arc::new)
    }
}

/// The ids asked for, by kind.
#[derive(Default)]
struct Wanted {
    users: Vec<Uuid>,
    workspaces: Vec<Uuid>,
    items: Vec<Uuid>,
    invites: Vec<Uuid>,
    exports: Vec<Uuid>,
    jobs: Vec<Uuid>,
    events: Vec<Uuid>,
    member_workspaces: Vec<Uuid>,
    member_users: Vec<Uuid>,
}

impl Nodes {
    /// The nodes among `ids` that exist and that the caller may see.
    async fn load_visible(&self, ids: &[GlobalId]) -> Result<HashMap<GlobalId, Node>, ApiError> {
        let mut wanted = Wanted::default();
        for id in ids {
            match *id {
                GlobalId::Entity(Kind::User, uuid) => wanted.users.push(uuid),
                GlobalId::Entity(Kind::Workspace, uuid) => wanted.workspaces.push(uuid),
                GlobalId::Entity(Kind::Item, uuid) => wanted.items.push(uuid),
                GlobalId::Entity(Kind::Invite, uuid) => wanted.invites.push(uuid),
                GlobalId::Entity(Kind::Export, uuid) => wanted.exports.push(uuid),
                GlobalId::Entity(Kind::Event, uuid) => wanted.events.push(uuid),
                GlobalId::Entity(Kind::Job, uuid) => wanted.jobs.push(uuid),
                GlobalId::Member {
                    workspace_id,
                    user_id,
                } => {
                    wanted.member_workspaces.push(workspace_id);
                    wanted.member_users.push(user_id);
                }
            }
        }
        let pool = self.log.pool();
        let users = nonempty(&wanted.users, queries::users_by_ids(pool, &wanted.users));
        let workspaces = nonempty(
            &wanted.workspaces,
            queries::workspaces_with_ids(pool, &wanted.workspaces, self.caller),
        );
        let items = nonempty(&wanted.items, queries::items_with_ids(pool, &wanted.items));
        let invites = nonempty(
            &wanted.invites,
            queries::invites_with_ids(pool, &wanted.invites),
        );
        let exports = nonempty(
            &wanted.exports,
            queries::exports_with_ids(pool, &wanted.exports),
        );
        let members = nonempty(
            &wanted.member_users,
            queries::members_with_ids(pool, &wanted.member_workspaces, &wanted.member_users),
        );
        let jobs = async {
            if wanted.jobs.is_empty() {
                return Ok(Vec::new());
            }
            jobs::failed::with_ids(pool, &wanted.jobs)
                .await
                .map_err(|err| ApiError::Internal(err.into()))
        };
        let events = async {
            if wanted.events.is_empty() {
                return Ok(Vec::new());
            }
            Ok::<_, ApiError>(self.log.read_by_ids(&wanted.events).await?)
        };
        let (users, workspaces, items, invites, exports, members, jobs, events) = futures::try_join!(
            users, workspaces, items, invites, exports, members, jobs, events
        )?;

        let involved: Vec<Uuid> = workspaces
            .iter()
            .map(|w| w.id)
            .chain(items.iter().map(|i| i.workspace_id))
            .chain(invites.iter().map(|i| i.workspace_id))
            .chain(exports.iter().map(|e| e.workspace_id))
            .chain(members.iter().map(|m| m.workspace_id))
            .chain(jobs.iter().map(|j| j.workspace_id))
            .chain(events.iter().filter_map(|e| e.workspace_id))
            .collect();
        let standing = Standing::load(pool, self.caller, &involved).await?;
        let visible_users = authz::visible_users(pool, self.caller, &wanted.users).await?;

        let mut found = HashMap::new();
        for row in workspaces {
            if standing.may(row.id, Read::Content).is_ok() {
                found.insert(
                    GlobalId::Entity(Kind::Workspace, row.id),
                    Node::Workspace(Workspace(row)),
                );
            }
        }
        for row in items {
            if standing.may(row.workspace_id, Read::Content).is_ok() {
                found.insert(GlobalId::Entity(Kind::Item, row.id), Node::Item(row.into()));
            }
        }
        for row in invites {
            if standing.may(row.workspace_id, Read::Invites).is_ok() {
                found.insert(
                    GlobalId::Entity(Kind::Invite, row.id),
                    Node::Invite(Invite(row)),
                );
            }
        }
        for row in exports {
            if standing.may(row.workspace_id, Read::Content).is_ok() {
                found.insert(
                    GlobalId::Entity(Kind::Export, row.id),
                    Node::Export(Export(row)),
                );
            }
        }
        for row in members {
            if standing.may(row.workspace_id, Read::Content).is_ok() {
                let id = GlobalId::Member {
                    workspace_id: row.workspace_id,
                    user_id: row.user_id,
                };
                found.insert(id, Node::Member(Member(row)));
            }
        }
        for job in jobs {
            if standing.may(job.workspace_id, Read::Jobs).is_ok() {
                let id = GlobalId::Entity(Kind::Job, job.id);
                found.insert(id, Node::FailedJob(job.into()));
            }
        }
        for event in events {
            if let Ok(grant) = standing.may_read_event(event.workspace_id) {
                let id = GlobalId::Entity(Kind::Event, event.event_id);
                found.insert(id, Node::Event(self.pseudonymizer.present(event, grant)));
            }
        }
        for row in users {
            if visible_users.contains(&row.id) {
                let is_caller = row.id == self.caller;
                found.insert(
                    GlobalId::Entity(Kind::User, row.id),
                    Node::User(User { row, is_caller }),
                );
            }
        }
        Ok(found)
    }
}

/// Runs `query` unless there is nothing to look up.
async fn nonempty<T>(
    ids: &[Uuid],
    query: impl Future<Output = Result<Vec<T>, projections::Error>>,
) -> Result<Vec<T>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(query.await?)
}
