//! The audit view of events (SPEC §1, support staff): what each event did, to which entity,
//! said in one line a person can read, with field-level before and after values. Pure: the
//! caller supplies the names (the actor's, a member's) and the item title the event concerns.

use domain::{ItemEvent, Tags, UserEvent, WorkspaceEvent};
use uuid::Uuid;

use crate::inline::AnyEvent;

/// The kind of thing an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Workspace,
    Member,
    Invite,
    Export,
    Item,
    User,
}

impl EntityKind {
    /// The event types that change entities of this kind.
    pub fn event_types(self) -> &'static [&'static str] {
        match self {
            EntityKind::Workspace => &[
                "WorkspaceCreated",
                "WorkspaceRenamed",
                "PlanUpgraded",
                "TrialExtended",
                "StaffAccessedAuditLog",
                "JobDied",
                "JobRetried",
                "WeeklySummarySent",
            ],
            EntityKind::Member => &["MemberAdded", "MemberRoleChanged", "MemberRemoved"],
            EntityKind::Invite => &[
                "InviteCreated",
                "InviteAccepted",
                "InviteRevoked",
                "InviteEmailSent",
            ],
            EntityKind::Export => &["ExportRequested", "ExportCompleted", "ExportFailed"],
            EntityKind::Item => &[
                "ItemCreated",
                "ItemRetitled",
                "ItemBodyEdited",
                "ItemRetagged",
                "ItemPublished",
                "ItemArchived",
                "ItemRestored",
                "ItemDeleted",
            ],
            EntityKind::User => &[
                "UserSignedUp",
                "UserRenamed",
                "StaffRoleGranted",
                "StaffRoleRevoked",
                "ReferralRewarded",
            ],
        }
    }
}

/// One field's values before and after an event (`None`: the field did not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: &'static str,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub entity: EntityKind,
    pub entity_id: Uuid,
    pub summary: String,
    pub changes: Vec<Change>,
}

/// Names an event's description needs, looked up by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// Who acted ("Ana", or the system part's name).
    pub actor: &'a str,
    /// For member events: the member's name.
    pub member: Option<&'a str>,
    /// For item events: the item's title just before the event.
    pub item_title: Option<&'a str>,
}

/// Describes `event` of the stream `stream_id`.
pub fn describe(stream_id: Uuid, event: &AnyEvent, names: Names<'_>) -> Description {
    match event {
        AnyEvent::Item(event) => describe_item(stream_id, event, names),
        AnyEvent::Workspace(event) => describe_workspace(stream_id, event, names),
        AnyEvent::User(event) => describe_user(stream_id, event, names),
    }
}

fn change(
    field: &'static str,
    before: Option<impl ToString>,
    after: Option<impl ToString>,
) -> Change {
    Change {
        field,
        before: before.map(|v| v.to_string()),
        after: after.map(|v| v.to_string()),
    }
}

fn tag_list(tags: &Tags) -> String {
    let names: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    format!("[{}]", names.join(", "))
}

fn describe_item(id: Uuid, event: &ItemEvent, names: Names<'_>) -> Description {
    use ItemEvent as E;
    let actor = names.actor;
    let title = names.item_title.unwrap_or("(untitled)");
    let none = None::<&str>;
    let (summary, changes) = match event {
        E::ItemCreated {
            title,
            body,
            tags,
            status,
            ..
        } => (
            format!("{actor} created item '{title}'"),
            vec![
                change("title", none, Some(title.as_str())),
                change("body", none, Some(body.as_str())),
                change("tags", none, Some(tag_list(tags))),
                change("status", none, Some(status.as_str())),
            ],
        ),
        E::ItemRetitled { from, to, .. } => (
            format!("{actor} renamed item '{from}' to '{to}'"),
            vec![change("title", Some(from.as_str()), Some(to.as_str()))],
        ),
        E::ItemBodyEdited { from, to, .. } => (
            format!("{actor} edited the body of item '{title}'"),
            vec![change("body", Some(from.as_str()), Some(to.as_str()))],
        ),
        E::ItemRetagged { from, to, .. } => (
            format!(
                "{actor} changed the tags of item '{title}' from {} to {}",
                tag_list(from),
                tag_list(to)
            ),
            vec![change("tags", Some(tag_list(from)), Some(tag_list(to)))],
        ),
        E::ItemPublished { .. } => (
            format!("{actor} published item '{title}'"),
            vec![change("status", Some("DRAFT"), Some("ACTIVE"))],
        ),
        E::ItemArchived { from, .. } => (
            format!("{actor} archived item '{title}'"),
            vec![change("status", Some(from.as_str()), Some("ARCHIVED"))],
        ),
        E::ItemRestored { to, .. } => (
            format!("{actor} restored item '{title}'"),
            vec![change("status", Some("ARCHIVED"), Some(to.as_str()))],
        ),
        E::ItemDeleted { title, .. } => (format!("{actor} deleted item '{title}'"), vec![]),
    };
    Description {
        entity: EntityKind::Item,
        entity_id: id,
        summary,
        changes,
    }
}

fn describe_workspace(id: Uuid, event: &WorkspaceEvent, names: Names<'_>) -> Description {
    use WorkspaceEvent as E;
    let actor = names.actor;
    let member = names.member.unwrap_or("a user");
    let none = None::<&str>;
    let (entity, entity_id, summary, changes) = match event {
        E::WorkspaceCreated {
            name, region, plan, ..
        } => (
            EntityKind::Workspace,
            id,
            format!("{actor} created workspace '{name}' in region {region}"),
            vec![
                change("name", none, Some(name.as_str())),
                change("plan", none, Some(plan.as_str())),
            ],
        ),
        E::WorkspaceRenamed { from, to } => (
            EntityKind::Workspace,
            id,
            format!("{actor} renamed the workspace from '{from}' to '{to}'"),
            vec![change("name", Some(from.as_str()), Some(to.as_str()))],
        ),
        E::PlanUpgraded { from, to } => (
            EntityKind::Workspace,
            id,
            format!("{actor} upgraded the plan from {from} to {to}"),
            vec![change("plan", Some(from.as_str()), Some(to.as_str()))],
        ),
        E::TrialExtended { from, to, .. } => (
            EntityKind::Workspace,
            id,
            format!("{actor} extended the trial to {}", to.format("%Y-%m-%d")),
            vec![change(
                "trialEndsAt",
                Some(from.to_rfc3339()),
                Some(to.to_rfc3339()),
            )],
        ),
        E::InviteCreated {
            invite_id,
            email,
            role,
            ..
        } => (
            EntityKind::Invite,
            invite_id.as_uuid(),
            format!("{actor} invited {email} as {role}"),
            vec![
                change("email", none, Some(email.as_str())),
                change("role", none, Some(role.as_str())),
            ],
        ),
        E::InviteAccepted { invite_id, .. } => (
            EntityKind::Invite,
            invite_id.as_uuid(),
            format!("{actor} accepted an invite"),
            vec![change("status", Some("PENDING"), Some("ACCEPTED"))],
        ),
        E::InviteRevoked { invite_id } => (
            EntityKind::Invite,
            invite_id.as_uuid(),
            format!("{actor} revoked an invite"),
            vec![change("status", Some("PENDING"), Some("REVOKED"))],
        ),
        E::JobDied {
            kind,
            attempts,
            error,
            ..
        } => (
            EntityKind::Workspace,
            id,
            format!("a background job ({kind}) failed for good after {attempts} runs: {error}"),
            vec![],
        ),
        E::JobRetried { .. } => (
            EntityKind::Workspace,
            id,
            format!("{actor} retried a failed background job"),
            vec![],
        ),
        E::WeeklySummarySent { summary } => (
            EntityKind::Workspace,
            id,
            format!(
                "{actor} sent the weekly summary of {} to {} owner(s): {} items created, {} \
                 updated, {} archived, {} members joined",
                summary.week,
                summary.recipients,
                summary.items_created,
                summary.items_updated,
                summary.items_archived,
                summary.members_joined
            ),
            vec![],
        ),
        E::InviteEmailSent { invite_id, .. } => (
            EntityKind::Invite,
            invite_id.as_uuid(),
            format!("{actor} sent the invite email"),
            vec![],
        ),
        E::MemberAdded { user_id, role } => (
            EntityKind::Member,
            user_id.as_uuid(),
            format!("{member} joined as {role}"),
            vec![change("role", none, Some(role.as_str()))],
        ),
        E::MemberRoleChanged { user_id, from, to } => (
            EntityKind::Member,
            user_id.as_uuid(),
            format!("{actor} changed {member}'s role from {from} to {to}"),
            vec![change("role", Some(from.as_str()), Some(to.as_str()))],
        ),
        E::MemberRemoved { user_id, role } => (
            EntityKind::Member,
            user_id.as_uuid(),
            if names.member == Some(actor) {
                format!("{actor} left the workspace")
            } else {
                format!("{actor} removed {member} ({role})")
            },
            vec![change("role", Some(role.as_str()), none)],
        ),
        E::ExportRequested {
            export_id, format, ..
        } => (
            EntityKind::Export,
            export_id.as_uuid(),
            format!("{actor} requested a {format} export"),
            vec![],
        ),
        E::ExportCompleted {
            export_id,
            row_count,
            ..
        } => (
            EntityKind::Export,
            export_id.as_uuid(),
            format!("{actor} completed an export of {row_count} items"),
            vec![],
        ),
        E::StaffAccessedAuditLog { reason, .. } => (
            EntityKind::Workspace,
            id,
            format!("{actor} (support staff) read the audit log: {reason}"),
            vec![],
        ),
        E::ExportFailed { export_id, reason } => (
            EntityKind::Export,
            export_id.as_uuid(),
            format!("an export failed: {reason}"),
            vec![],
        ),
    };
    Description {
        entity,
        entity_id,
        summary,
        changes,
    }
}

fn describe_user(id: Uuid, event: &UserEvent, names: Names<'_>) -> Description {
    use UserEvent as E;
    let actor = names.actor;
    let none = None::<&str>;
    let (summary, changes) = match event {
        E::UserSignedUp {
            email,
            display_name,
            ..
        } => (
            format!("{display_name} signed up as {email}"),
            vec![
                change("email", none, Some(email.as_str())),
                change("displayName", none, Some(display_name.as_str())),
            ],
        ),
        E::UserRenamed { from, to } => (
            format!("{actor} renamed themself from '{from}' to '{to}'"),
            vec![change(
                "displayName",
                Some(from.as_str()),
                Some(to.as_str()),
            )],
        ),
        E::StaffRoleGranted { role } => (
            format!("{actor} granted the {role} staff role"),
            vec![change("staffRole", none, Some(role.as_str()))],
        ),
        E::StaffRoleRevoked { role } => (
            format!("{actor} revoked the {role} staff role"),
            vec![change("staffRole", Some(role.as_str()), none)],
        ),
        E::ReferralRewarded { workspaces, .. } => (
            format!(
                "{actor} rewarded a referral: {} workspace(s) on trial get {} more days",
                workspaces.len(),
                domain::referral::REWARD_DAYS
            ),
            vec![],
        ),
    };
    Description {
        entity: EntityKind::User,
        entity_id: id,
        summary,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use domain::{ItemTitle, Role, UserId};

    use super::*;

    fn names<'a>(member: Option<&'a str>, title: Option<&'a str>) -> Names<'a> {
        Names {
            actor: "Ana",
            member,
            item_title: title,
        }
    }

    #[test]
    fn a_retitle_reads_like_a_sentence_with_before_and_after() {
        let event = AnyEvent::Item(ItemEvent::ItemRetitled {
            from: ItemTitle::parse("Q3 invoice").unwrap(),
            to: ItemTitle::parse("Q3 invoice (final)").unwrap(),
            at: chrono::Utc::now(),
        });
        let description = describe(Uuid::nil(), &event, names(None, Some("Q3 invoice")));
        assert_eq!(
            description.summary,
            "Ana renamed item 'Q3 invoice' to 'Q3 invoice (final)'"
        );
        assert_eq!(
            description.changes,
            vec![change(
                "title",
                Some("Q3 invoice"),
                Some("Q3 invoice (final)")
            )]
        );
        assert_eq!(description.entity, EntityKind::Item);
    }

    /// The audit filter by entity reads these lists: an event type missing from them would
    /// never show under its entity. The types come from the event enums themselves.
    #[test]
    fn every_event_type_belongs_to_exactly_one_entity_kind() {
        use domain::DomainEvent;
        let kinds = [
            EntityKind::Workspace,
            EntityKind::Member,
            EntityKind::Invite,
            EntityKind::Export,
            EntityKind::Item,
            EntityKind::User,
        ];
        let every_type = [
            ItemEvent::event_types(),
            WorkspaceEvent::event_types(),
            UserEvent::event_types(),
        ]
        .concat();
        for event_type in &every_type {
            let holders: Vec<EntityKind> = kinds
                .into_iter()
                .filter(|kind| kind.event_types().contains(event_type))
                .collect();
            assert_eq!(holders.len(), 1, "{event_type}: {holders:?}");
        }
        let listed: usize = kinds.iter().map(|kind| kind.event_types().len()).sum();
        assert_eq!(listed, every_type.len(), "no unknown type is listed");
    }

    #[test]
    fn a_role_change_names_the_member_and_both_roles() {
        let event = AnyEvent::Workspace(WorkspaceEvent::MemberRoleChanged {
            user_id: UserId::new(),
            from: Role::Viewer,
            to: Role::Admin,
        });
        let description = describe(Uuid::nil(), &event, names(Some("Bo"), None));
        assert_eq!(
            description.summary,
            "Ana changed Bo's role from VIEWER to ADMIN"
        );
        assert_eq!(description.entity, EntityKind::Member);
    }
}
