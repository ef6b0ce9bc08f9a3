//! Audit history for people (SPEC §1 support staff, §8 `auditLog`, `itemHistory`): each event
//! as who did what, when, from where, in one line, with field-level before and after.

use std::collections::{HashMap, HashSet};

use async_graphql::{Context, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use domain::{
    Aggregate, Item as ItemState, ItemEvent, StaffRole, Workspace as WorkspaceState,
    WorkspaceCommand,
};
use eventlog::{Actor, EventLog, RecordedEvent, StreamRef};
use projections::audit::{self, EntityKind, Names};
use projections::inline::AnyEvent;
use projections::queries::{self, UserRow};

use crate::cache::reads;
use uuid::Uuid;

use super::ids::{Kind, encode};
use super::types::{ItemStatus, lane, pool};
use crate::error::ApiError;
use crate::request::RequestContext;
use crate::writes::Writes;

/// The kind of thing an audit entry is about.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "projections::audit::EntityKind")]
pub enum AuditEntity {
    /// The workspace itself: name, plan, trial.
    Workspace,
    /// A membership.
    Member,
    /// An invite.
    Invite,
    /// An export.
    Export,
    /// An item.
    Item,
    /// A user account.
    User,
}

/// Which audit entries to return.
#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// Only what this user did.
    pub actor_id: Option<ID>,
    /// Only entries about this kind of entity.
    pub entity: Option<AuditEntity>,
    /// Only entries about this item (its history, with the audit log's rights: SUPPORT staff
    /// read it with a reason).
    pub item_id: Option<ID>,
    /// Only these event types (e.g. `ItemRetitled`).
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
    /// Oldest first instead of newest first.
    #[graphql(default)]
    pub oldest_first: bool,
}

/// Who caused an event.
#[derive(SimpleObject)]
pub struct AuditActor {
    /// The user, when a user acted.
    pub user_id: Option<ID>,
    /// Their name now (or the system part's name).
    pub display_name: String,
    /// Their email now.
    pub email: Option<String>,
    /// The role they acted in.
    pub role: Option<String>,
    /// True when the system (a job, an operator command) acted.
    pub system: bool,
}

/// One field before and after.
#[derive(SimpleObject)]
pub struct FieldChange {
    /// The field, as named in the API.
    pub field: String,
    /// Its value before (null: it did not exist).
    pub before: Option<String>,
    /// Its value after (null: it no longer exists).
    pub after: Option<String>,
}

/// One event, told for people.
#[derive(SimpleObject)]
pub struct AuditEntry {
    /// Log position.
    pub position: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The event type, e.g. `ItemRetitled`.
    pub action: String,
    /// What it is about.
    pub entity: AuditEntity,
    /// The id of what it is about.
    pub entity_id: ID,
    /// Who did it.
    pub actor: AuditActor,
    /// One line: "Ana renamed item 'Q3 invoice' to 'Q3 invoice (final)'".
    pub summary: String,
    /// Field-level before and after.
    pub changes: Vec<FieldChange>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// From where.
    pub client_ip: Option<String>,
    /// With what.
    pub user_agent: Option<String>,
    /// The GraphQL operation.
    pub operation_name: Option<String>,
    /// The reason a staff member gave, if staff acted.
    pub staff_reason: Option<String>,
    /// The event that caused it: what a background job records names the event it ran for.
    pub causation_id: Option<ID>,
    /// Shared by every event one user action led to (including what jobs did about it).
    pub correlation_id: Option<String>,
    /// For an entry about an item: the item just after it, folded from its events (time
    /// travel, with the rights of the list the entry is in).
    pub item_after: Option<ItemSnapshot>,
}

/// An item as it stood at one point of its history.
#[derive(SimpleObject, Clone)]
pub struct ItemSnapshot {
    /// Its title then.
    pub title: String,
    /// Its body then.
    pub body: String,
    /// Its tags then.
    pub tags: Vec<String>,
    /// Its status then.
    pub status: ItemStatus,
    /// True once the item was deleted.
    pub deleted: bool,
    /// Events folded so far (the item's version then).
    pub version: i64,
}

impl ItemSnapshot {
    /// The snapshot of a created item (`None` before its creation).
    fn of(state: &ItemState) -> Option<ItemSnapshot> {
        Some(ItemSnapshot {
            title: state.title()?.as_str().to_string(),
            body: state.body()?.as_str().to_string(),
            tags: state
                .tags()?
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            status: state.status()?.into(),
            deleted: state.is_deleted(),
            version: state.version(),
        })
    }
}

impl AuditFilter {
    /// The log filter for a workspace (or one stream), with `entity` as event types.
    pub fn to_log_filter(
        &self,
        workspace_id: Option<Uuid>,
        stream_id: Option<Uuid>,
    ) -> Result<eventlog::EventFilter, ApiError> {
        let actor_id = self
            .actor_id
            .as_ref()
            .map(|id| super::ids::decode(Kind::User, id))
            .transpose()?;
        let stream_id = match &self.item_id {
            Some(item) => Some(super::ids::decode(Kind::Item, item)?),
            None => stream_id,
        };
        let mut types: Option<Vec<String>> = self.event_types.clone();
        if let Some(entity) = self.entity {
            let of_entity = EntityKind::from(entity)
                .event_types()
                .iter()
                .map(|t| t.to_string());
            types = Some(match types {
                None => of_entity.collect(),
                Some(asked) => of_entity.filter(|t| asked.contains(t)).collect(),
            });
        }
        Ok(eventlog::EventFilter {
            workspace_id,
            stream_id,
            actor_id,
            event_types: types,
            from: self.from,
            to: self.to,
            ..Default::default()
        })
    }
}

/// Tells `events` (of any streams) for people.
pub async fn entries(
    ctx: &Context<'_>,
    events: Vec<RecordedEvent>,
) -> async_graphql::Result<Vec<AuditEntry>> {
    let db = lane(ctx)?;
    let decoded: Vec<(RecordedEvent, AnyEvent)> = events
        .into_iter()
        .filter_map(|recorded| match AnyEvent::decode(&recorded) {
            Ok(Some(event)) => Some(Ok((recorded, event))),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        })
        .collect::<Result<_, _>>()
        .map_err(ApiError::from)?;

    // Everyone named on the page, in one query.
    let mut people: HashSet<Uuid> = HashSet::new();
    for (recorded, event) in &decoded {
        if let Actor::User { id, .. } = &recorded.metadata.actor {
            people.insert(*id);
        }
        if let Some(member) = member_of(event) {
            people.insert(member);
        }
    }
    let people: Vec<Uuid> = people.into_iter().collect();
    for person in &people {
        reads::user(ctx, *person);
    }
    let users: HashMap<Uuid, UserRow> = queries::users_by_ids(db, &people)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let items = item_states(ctx.data::<EventLog>()?, &decoded).await?;

    Ok(decoded
        .iter()
        .map(|(recorded, event)| {
            let actor = actor(&recorded.metadata.actor, &users);
            let member = member_of(event)
                .and_then(|id| users.get(&id))
                .map(|u| u.display_name.as_str());
            let names = Names {
                actor: &actor.display_name,
                member,
                item_title: items
                    .get(&recorded.event_id)
                    .and_then(|(before, _)| before.as_deref()),
            };
            let description = audit::describe(recorded.stream_id, event, names);
            let kind = match description.entity {
                EntityKind::Item => Kind::Item,
                EntityKind::Workspace => Kind::Workspace,
                EntityKind::Member | EntityKind::User => Kind::User,
                EntityKind::Invite => Kind::Invite,
                EntityKind::Export => Kind::Workspace,
            };
            let metadata = &recorded.metadata;
            AuditEntry {
                position: recorded.position.to_string(),
                at: recorded.recorded_at,
                action: recorded.event_type.clone(),
                entity: description.entity.into(),
                entity_id: encode(kind, description.entity_id),
                actor,
                summary: description.summary,
                changes: description
                    .changes
                    .into_iter()
                    .map(|c| FieldChange {
                        field: c.field.to_string(),
                        before: c.before,
                        after: c.after,
                    })
                    .collect(),
                request_id: metadata.request_id.clone(),
                client_ip: metadata.client_ip.clone(),
                user_agent: metadata.user_agent.clone(),
                operation_name: metadata.operation_name.clone(),
                staff_reason: metadata.staff_reason.clone(),
                causation_id: metadata.causation_id.map(|id| encode(Kind::Event, id)),
                correlation_id: metadata.correlation_id.map(|id| id.to_string()),
                item_after: items
                    .get(&recorded.event_id)
                    .and_then(|(_, after)| after.clone()),
            }
        })
        .collect())
}

fn member_of(event: &AnyEvent) -> Option<Uuid> {
    use domain::WorkspaceEvent as W;
    match event {
        AnyEvent::Workspace(
            W::MemberAdded { user_id, .. }
            | W::MemberRoleChanged { user_id, .. }
            | W::MemberRemoved { user_id, .. },
        ) => Some(user_id.as_uuid()),
        _ => None,
    }
}

fn actor(actor: &Actor, users: &HashMap<Uuid, UserRow>) -> AuditActor {
    match actor {
        Actor::User { id, role } => {
            let user = users.get(id);
            AuditActor {
                user_id: Some(encode(Kind::User, *id)),
                display_name: user
                    .map_or_else(|| "a deleted user".to_string(), |u| u.display_name.clone()),
                email: user.map(|u| u.email.clone()),
                role: role.clone(),
                system: false,
            }
        }
        Actor::System { name } => AuditActor {
            user_id: None,
            display_name: name.clone(),
            email: None,
            role: None,
            system: true,
        },
    }
}

/// For each item event on the page, the item's title just before it and the item just after
/// it (one read per item).
async fn item_states(
    log: &EventLog,
    page: &[(RecordedEvent, AnyEvent)],
) -> async_graphql::Result<HashMap<Uuid, (Option<String>, Option<ItemSnapshot>)>> {
    let items: HashSet<Uuid> = page
        .iter()
        .filter(|(r, _)| r.stream_type == ItemState::STREAM_TYPE)
        .map(|(r, _)| r.stream_id)
        .collect();
    let mut states = HashMap::new();
    for item in items {
        let mut state = ItemState::default();
        for recorded in log.read_stream(item).await.map_err(ApiError::from)? {
            let before = state.title().map(|t| t.as_str().to_string());
            let event: ItemEvent =
                eventlog::aggregates::decode(&recorded).map_err(ApiError::from)?;
            state = state.evolve(&event);
            states.insert(recorded.event_id, (before, ItemSnapshot::of(&state)));
        }
    }
    Ok(states)
}

/// Lets a SUPPORT staff member read a workspace's audit log, recording who looked and why as an
/// event of that workspace. Anyone else is refused by the domain: non-members are told the
/// workspace does not exist, members below admin that they may not.
pub async fn record_staff_access(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    user_id: Uuid,
    reason: Option<String>,
) -> async_graphql::Result<()> {
    reads::uncacheable(ctx, "a staff member's look is recorded");
    let writes = ctx.data::<Writes>()?;
    let req = ctx.data::<RequestContext>()?;
    let staff_roles = crate::authz::staff_roles(pool(ctx)?, user_id).await?;
    let is_support = staff_roles.contains(&StaffRole::Support);
    if is_support && reason.is_none() {
        let refusal =
            domain::DomainError::forbidden("support staff must give a reason to read an audit log");
        return Err(ApiError::Domain(refusal).into());
    }
    let command = WorkspaceCommand::RecordStaffAccess {
        staff_roles,
        reason: reason.clone().unwrap_or_default(),
    };
    let stream = StreamRef {
        stream_type: WorkspaceState::STREAM_TYPE,
        stream_id: workspace_id,
        workspace_id: Some(workspace_id),
    };
    let metadata = eventlog::Metadata {
        staff_reason: reason,
        ..req.metadata(Some(user_id), Some(StaffRole::Support.as_str()))
    };
    // A look does not depend on the workspace's state: when another write to the workspace
    // wins the race for the next version, decide again on the fresh state and append again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let recorded = writes
            .run(async |conn| {
                let loaded = writes.log().load::<WorkspaceState>(workspace_id).await?;
                let ctx = domain::Context::user(writes.now(), domain::UserId::from_uuid(user_id));
                let events = loaded.state.decide(command.clone(), &ctx)?;
                writes
                    .append(conn, &stream, loaded.expected_version(), events, &metadata)
                    .await
            })
            .await;
        match recorded {
            Err(ApiError::Log(eventlog::Error::Conflict { .. }))
                if attempt < STAFF_ACCESS_ATTEMPTS =>
            {
                continue;
            }
            recorded => {
                recorded?;
                return Ok(());
            }
        }
    }
}

/// How often recording a staff look is tried when concurrent writes keep winning the race.
const STAFF_ACCESS_ATTEMPTS: usize = 32;
