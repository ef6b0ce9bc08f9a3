use chrono::Duration;

use super::*;
use crate::aggregate::DomainEvent;
use crate::fixtures::*;
use crate::testing::{Given, given};
use crate::values::{ExportFormat, StaffRole};

const OWNER: u128 = 1;
const ADMIN: u128 = 2;
const MEMBER: u128 = 3;
const VIEWER: u128 = 4;
const OWNER2: u128 = 5;
const OUTSIDER: u128 = 9;

fn ws(events: impl IntoIterator<Item = WorkspaceEvent>) -> Given<Workspace> {
    given::<Workspace>(events)
}

fn created() -> WorkspaceEvent {
    WorkspaceEvent::WorkspaceCreated {
        workspace_id: workspace_id(),
        name: ws_name("Acme"),
        region: Region::Eu,
        plan: Plan::Trial,
        trial_ends_at: days(TRIAL_DAYS),
        owner: user(OWNER),
        created_at: t0(),
    }
}

fn added(n: u128, role: Role) -> WorkspaceEvent {
    WorkspaceEvent::MemberAdded {
        user_id: user(n),
        role,
    }
}

/// A workspace with an owner, an admin, a member and a viewer.
fn team() -> Vec<WorkspaceEvent> {
    vec![
        created(),
        added(ADMIN, Role::Admin),
        added(MEMBER, Role::Member),
        added(VIEWER, Role::Viewer),
    ]
}

fn with(
    mut events: Vec<WorkspaceEvent>,
    more: impl IntoIterator<Item = WorkspaceEvent>,
) -> Vec<WorkspaceEvent> {
    events.extend(more);
    events
}

fn upgraded() -> WorkspaceEvent {
    WorkspaceEvent::PlanUpgraded {
        from: Plan::Trial,
        to: Plan::Pro,
    }
}

fn invite_cmd(n: u128, to: &str, role: Role) -> WorkspaceCommand {
    WorkspaceCommand::InviteMember {
        invite_id: invite_id(n),
        email: email(to),
        role,
        token_hash: format!("hash-{n}"),
    }
}

fn invited_at(n: u128, to: &str, role: Role, at: chrono::DateTime<Utc>) -> WorkspaceEvent {
    WorkspaceEvent::InviteCreated {
        invite_id: invite_id(n),
        email: email(to),
        role,
        token_hash: format!("hash-{n}"),
        expires_at: at + Duration::days(INVITE_TTL_DAYS),
    }
}

fn invited(n: u128, to: &str, role: Role) -> WorkspaceEvent {
    invited_at(n, to, role, t0())
}

fn accept_cmd(n: u128, by: u128, address: &str) -> WorkspaceCommand {
    WorkspaceCommand::AcceptInvite {
        invite_id: invite_id(n),
        token_hash: format!("hash-{n}"),
        user_id: user(by),
        email: email(address),
    }
}

fn export_cmd(n: u128) -> WorkspaceCommand {
    WorkspaceCommand::RequestExport {
        export_id: export_id(n),
        format: ExportFormat::Csv,
        filter: tagged_filter(),
    }
}

fn export_requested(n: u128, by: u128) -> WorkspaceEvent {
    WorkspaceEvent::ExportRequested {
        export_id: export_id(n),
        format: ExportFormat::Csv,
        requested_by: user(by),
        filter: tagged_filter(),
    }
}

/// An export filter that is not the default one, so events show it is carried along.
fn tagged_filter() -> ExportFilter {
    ExportFilter {
        status: Some(crate::values::ItemStatus::Active),
        tags: vec![crate::values::Tag::parse("q3").expect("tag")],
        author_id: None,
    }
}

/// The file a completed export wrote, of `rows` items.
fn file(rows: u64) -> ExportFile {
    ExportFile {
        file_id: uuid::Uuid::from_u128(u128::from(rows)),
        row_count: rows,
        size_bytes: rows * 100,
    }
}

fn change_role(n: u128, role: Role) -> WorkspaceCommand {
    WorkspaceCommand::ChangeMemberRole {
        user_id: user(n),
        role,
    }
}

fn role_changed(n: u128, from: Role, to: Role) -> WorkspaceEvent {
    WorkspaceEvent::MemberRoleChanged {
        user_id: user(n),
        from,
        to,
    }
}

fn remove(n: u128) -> WorkspaceCommand {
    WorkspaceCommand::RemoveMember { user_id: user(n) }
}

fn removed(n: u128, role: Role) -> WorkspaceEvent {
    WorkspaceEvent::MemberRemoved {
        user_id: user(n),
        role,
    }
}

fn extend(referred: u128) -> WorkspaceCommand {
    WorkspaceCommand::ExtendTrial {
        days: 14,
        referred_user: user(referred),
    }
}

fn is_forbidden(e: &DomainError) -> bool {
    matches!(e, DomainError::Forbidden { .. })
}

fn is_conflict(e: &DomainError) -> bool {
    matches!(e, DomainError::Conflict { .. })
}

const WORKSPACE_NOT_FOUND: DomainError = DomainError::NotFound {
    entity: "workspace",
};

// --- Create -------------------------------------------------------------------------------

#[test]
fn create_makes_the_creator_owner_on_a_14_day_trial() {
    let state = ws([])
        .when(
            WorkspaceCommand::Create {
                workspace_id: workspace_id(),
                name: ws_name("Acme"),
                region: Region::Eu,
            },
            &as_user(OWNER),
        )
        .then([created()]);
    assert_eq!(state.id(), Some(workspace_id()));
    assert_eq!(state.role_of(user(OWNER)), Some(Role::Owner));
    assert_eq!(state.owners_count(), 1);
    assert_eq!(state.plan(), Some(Plan::Trial));
    assert_eq!(state.region(), Some(Region::Eu));
    assert_eq!(state.created_at(), Some(t0()));
    assert_eq!(state.trial_ends_at(), Some(days(14)));
    assert_eq!(state.version(), 1);
}

#[test]
fn create_twice_conflicts() {
    ws([created()])
        .when(
            WorkspaceCommand::Create {
                workspace_id: workspace_id(),
                name: ws_name("Again"),
                region: Region::Us,
            },
            &as_user(OWNER),
        )
        .then_err_matching(is_conflict);
}

#[test]
fn create_by_the_system_is_forbidden() {
    ws([])
        .when(
            WorkspaceCommand::Create {
                workspace_id: workspace_id(),
                name: ws_name("Acme"),
                region: Region::Eu,
            },
            &as_system(),
        )
        .then_err_matching(is_forbidden);
}

// --- Membership is never revealed -----------------------------------------------------------

#[test]
fn non_members_and_missing_workspaces_get_not_found() {
    let commands = || {
        vec![
            WorkspaceCommand::Rename {
                name: ws_name("Mine"),
            },
            WorkspaceCommand::UpgradePlan,
            invite_cmd(1, "x@example.com", Role::Member),
            WorkspaceCommand::RevokeInvite {
                invite_id: invite_id(1),
            },
            change_role(MEMBER, Role::Admin),
            remove(MEMBER),
            export_cmd(1),
            WorkspaceCommand::CompleteExport {
                export_id: export_id(1),
                file: file(1),
            },
        ]
    };
    for command in commands() {
        ws(team())
            .when(command, &as_user(OUTSIDER))
            .then_err(WORKSPACE_NOT_FOUND);
    }
    for command in commands() {
        ws([])
            .when(command, &as_user(OWNER))
            .then_err(WORKSPACE_NOT_FOUND);
    }
    ws([])
        .when(extend(7), &as_system())
        .then_err(WORKSPACE_NOT_FOUND);
}

#[test]
fn the_system_cannot_act_as_a_member() {
    ws(team())
        .when(
            WorkspaceCommand::Rename {
                name: ws_name("Ops"),
            },
            &as_system(),
        )
        .then_err_matching(is_forbidden);
}

// --- Rename ----------------------------------------------------------------------------------

#[test]
fn owners_and_admins_rename() {
    for actor in [OWNER, ADMIN] {
        let state = ws(team())
            .when(
                WorkspaceCommand::Rename {
                    name: ws_name("Acme Corp"),
                },
                &as_user(actor),
            )
            .then([WorkspaceEvent::WorkspaceRenamed {
                from: ws_name("Acme"),
                to: ws_name("Acme Corp"),
            }]);
        assert_eq!(state.name(), Some(&ws_name("Acme Corp")));
    }
}

#[test]
fn members_and_viewers_cannot_rename() {
    for actor in [MEMBER, VIEWER] {
        ws(team())
            .when(
                WorkspaceCommand::Rename {
                    name: ws_name("Mine"),
                },
                &as_user(actor),
            )
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn rename_to_the_same_name_is_a_no_op() {
    ws(team())
        .when(
            WorkspaceCommand::Rename {
                name: ws_name(" Acme "),
            },
            &as_user(OWNER),
        )
        .then_nothing();
}

// --- Plan and trial ---------------------------------------------------------------------------

#[test]
fn only_an_owner_upgrades() {
    let state = ws(team())
        .when(WorkspaceCommand::UpgradePlan, &as_user(OWNER))
        .then([upgraded()]);
    assert_eq!(state.plan(), Some(Plan::Pro));
    for actor in [ADMIN, MEMBER, VIEWER] {
        ws(team())
            .when(WorkspaceCommand::UpgradePlan, &as_user(actor))
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn upgrading_twice_conflicts() {
    ws(with(team(), [upgraded()]))
        .when(WorkspaceCommand::UpgradePlan, &as_user(OWNER))
        .then_err_matching(is_conflict);
}

#[test]
fn lock_starts_exactly_at_trial_end() {
    let state = ws(team()).state().clone();
    assert!(!state.is_locked(t0()));
    assert!(!state.is_locked(days(14) - Duration::seconds(1)));
    assert!(state.is_locked(days(14)));
    assert!(state.is_locked(days(100)));
    let upgraded = ws(with(team(), [upgraded()])).state().clone();
    assert!(!upgraded.is_locked(days(100)));
    assert!(!Workspace::default().is_locked(days(100)));
}

#[test]
fn invites_are_locked_at_and_after_trial_end_but_not_before() {
    let just_before = days(14) - Duration::seconds(1);
    ws(team())
        .when(
            invite_cmd(1, "new@example.com", Role::Member),
            &as_user_at(OWNER, just_before),
        )
        .then([invited_at(1, "new@example.com", Role::Member, just_before)]);
    for at in [days(14), days(30)] {
        ws(team())
            .when(
                invite_cmd(1, "new@example.com", Role::Member),
                &as_user_at(OWNER, at),
            )
            .then_err(DomainError::FeatureLocked { feature: "invites" });
    }
}

#[test]
fn exports_are_locked_at_and_after_trial_end_but_not_before() {
    ws(team())
        .when(
            export_cmd(1),
            &as_user_at(MEMBER, days(14) - Duration::seconds(1)),
        )
        .then([export_requested(1, MEMBER)]);
    for at in [days(14), days(30)] {
        ws(team())
            .when(export_cmd(1), &as_user_at(MEMBER, at))
            .then_err(DomainError::FeatureLocked { feature: "exports" });
    }
}

#[test]
fn upgrading_lifts_the_lock() {
    let later = days(30);
    ws(team())
        .when(WorkspaceCommand::UpgradePlan, &as_user_at(OWNER, later))
        .then([upgraded()]);
    let events = with(team(), [upgraded()]);
    ws(events.clone())
        .when(
            invite_cmd(1, "new@example.com", Role::Member),
            &as_user_at(OWNER, later),
        )
        .then([invited_at(1, "new@example.com", Role::Member, later)]);
    ws(events)
        .when(export_cmd(1), &as_user_at(OWNER, later))
        .then([export_requested(1, OWNER)]);
}

#[test]
fn everything_else_keeps_working_while_locked() {
    let locked = days(15);
    let events = with(
        team(),
        [invited_at(1, "late@example.com", Role::Member, days(10))],
    );
    ws(events.clone())
        .when(
            WorkspaceCommand::Rename {
                name: ws_name("Still here"),
            },
            &as_user_at(OWNER, locked),
        )
        .then([WorkspaceEvent::WorkspaceRenamed {
            from: ws_name("Acme"),
            to: ws_name("Still here"),
        }]);
    ws(events.clone())
        .when(change_role(MEMBER, Role::Admin), &as_user_at(OWNER, locked))
        .then([role_changed(MEMBER, Role::Member, Role::Admin)]);
    ws(events.clone())
        .when(remove(VIEWER), &as_user_at(VIEWER, locked))
        .then([removed(VIEWER, Role::Viewer)]);
    ws(events.clone())
        .when(
            WorkspaceCommand::RevokeInvite {
                invite_id: invite_id(1),
            },
            &as_user_at(ADMIN, locked),
        )
        .then([WorkspaceEvent::InviteRevoked {
            invite_id: invite_id(1),
        }]);
    ws(events)
        .when(accept_cmd(1, 6, "late@example.com"), &as_user_at(6, locked))
        .then([
            WorkspaceEvent::InviteAccepted {
                invite_id: invite_id(1),
                user_id: user(6),
            },
            added(6, Role::Member),
        ]);
}

// --- Referral rewards -------------------------------------------------------------------------

#[test]
fn the_system_extends_a_trial_for_a_referral() {
    let state = ws(team())
        .when(extend(7), &as_system())
        .then([WorkspaceEvent::TrialExtended {
            from: days(14),
            to: days(28),
            referred_user: user(7),
        }]);
    assert_eq!(state.trial_ends_at(), Some(days(28)));
    assert!(state.rewarded_referrals().contains(&user(7)));
}

#[test]
fn each_referral_is_rewarded_once() {
    let events = with(
        team(),
        [WorkspaceEvent::TrialExtended {
            from: days(14),
            to: days(28),
            referred_user: user(7),
        }],
    );
    ws(events.clone())
        .when(extend(7), &as_system())
        .then_nothing();
    ws(events)
        .when(extend(8), &as_system())
        .then([WorkspaceEvent::TrialExtended {
            from: days(28),
            to: days(42),
            referred_user: user(8),
        }]);
}

#[test]
fn an_ended_trial_is_extended_from_now() {
    let state =
        ws(team())
            .when(extend(7), &as_system_at(days(20)))
            .then([WorkspaceEvent::TrialExtended {
                from: days(14),
                to: days(34),
                referred_user: user(7),
            }]);
    assert!(!state.is_locked(days(20)));
}

#[test]
fn pro_workspaces_get_no_trial_extension() {
    ws(with(team(), [upgraded()]))
        .when(extend(7), &as_system())
        .then_nothing();
}

#[test]
fn only_the_system_extends_trials() {
    ws(team())
        .when(extend(7), &as_user(OWNER))
        .then_err_matching(is_forbidden);
    ws(team())
        .when(extend(7), &as_user(OUTSIDER))
        .then_err(WORKSPACE_NOT_FOUND);
}

#[test]
fn trial_extension_days_are_validated() {
    for days in [0, MAX_TRIAL_EXTENSION_DAYS + 1] {
        ws(team())
            .when(
                WorkspaceCommand::ExtendTrial {
                    days,
                    referred_user: user(7),
                },
                &as_system(),
            )
            .then_err_matching(|e| matches!(e, DomainError::Validation(v) if v.field == "days"));
    }
}

// --- Invites ----------------------------------------------------------------------------------

#[test]
fn owners_and_admins_invite_for_seven_days() {
    for actor in [OWNER, ADMIN] {
        let state = ws(team())
            .when(
                invite_cmd(1, "new@example.com", Role::Admin),
                &as_user(actor),
            )
            .then([invited(1, "new@example.com", Role::Admin)]);
        let invite = state.invite(invite_id(1)).expect("invite recorded");
        assert_eq!(invite.status, InviteStatus::Pending);
        assert_eq!(invite.expires_at, days(7));
        assert!(invite.is_open(t0()));
        assert!(!invite.is_open(days(7)));
    }
}

#[test]
fn members_and_viewers_cannot_invite() {
    for actor in [MEMBER, VIEWER] {
        ws(team())
            .when(
                invite_cmd(1, "new@example.com", Role::Viewer),
                &as_user(actor),
            )
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn only_an_owner_invites_an_owner() {
    ws(team())
        .when(
            invite_cmd(1, "boss@example.com", Role::Owner),
            &as_user(OWNER),
        )
        .then([invited(1, "boss@example.com", Role::Owner)]);
    ws(team())
        .when(
            invite_cmd(1, "boss@example.com", Role::Owner),
            &as_user(ADMIN),
        )
        .then_err_matching(is_forbidden);
}

#[test]
fn invite_ids_are_unique_and_token_hashes_required() {
    ws(with(team(), [invited(1, "a@example.com", Role::Member)]))
        .when(
            invite_cmd(1, "b@example.com", Role::Member),
            &as_user(OWNER),
        )
        .then_err_matching(is_conflict);
    ws(team())
        .when(
            WorkspaceCommand::InviteMember {
                invite_id: invite_id(1),
                email: email("a@example.com"),
                role: Role::Member,
                token_hash: " ".into(),
            },
            &as_user(OWNER),
        )
        .then_err_matching(|e| matches!(e, DomainError::Validation(v) if v.field == "token_hash"));
}

#[test]
fn accepting_an_invite_adds_the_member() {
    let state = ws(with(team(), [invited(1, "new@example.com", Role::Admin)]))
        .when(accept_cmd(1, 6, "NEW@Example.com"), &as_user(6))
        .then([
            WorkspaceEvent::InviteAccepted {
                invite_id: invite_id(1),
                user_id: user(6),
            },
            added(6, Role::Admin),
        ]);
    assert_eq!(state.role_of(user(6)), Some(Role::Admin));
    assert_eq!(
        state.invite(invite_id(1)).map(|i| i.status),
        Some(InviteStatus::Accepted)
    );
    assert_eq!(state.access_of(user(6)).map(|a| a.role), Some(Role::Admin));
}

#[test]
fn unknown_invites_and_wrong_tokens_are_not_found() {
    let events = with(team(), [invited(1, "new@example.com", Role::Member)]);
    ws(events.clone())
        .when(accept_cmd(2, 6, "new@example.com"), &as_user(6))
        .then_err(DomainError::NotFound { entity: "invite" });
    ws(events)
        .when(
            WorkspaceCommand::AcceptInvite {
                invite_id: invite_id(1),
                token_hash: "forged".into(),
                user_id: user(6),
                email: email("new@example.com"),
            },
            &as_user(6),
        )
        .then_err(DomainError::NotFound { entity: "invite" });
}

#[test]
fn an_invite_is_accepted_once() {
    let events = with(
        team(),
        [
            invited(1, "new@example.com", Role::Member),
            WorkspaceEvent::InviteAccepted {
                invite_id: invite_id(1),
                user_id: user(6),
            },
            added(6, Role::Member),
        ],
    );
    ws(events.clone())
        .when(accept_cmd(1, 6, "new@example.com"), &as_user(6))
        .then_err_matching(is_conflict);
    ws(events)
        .when(accept_cmd(1, 7, "new@example.com"), &as_user(7))
        .then_err_matching(is_conflict);
}

#[test]
fn a_revoked_invite_cannot_be_accepted() {
    ws(with(
        team(),
        [
            invited(1, "new@example.com", Role::Member),
            WorkspaceEvent::InviteRevoked {
                invite_id: invite_id(1),
            },
        ],
    ))
    .when(accept_cmd(1, 6, "new@example.com"), &as_user(6))
    .then_err_matching(
        |e| matches!(e, DomainError::Conflict { reason } if reason.contains("revoked")),
    );
}

#[test]
fn an_invite_expires_after_seven_days() {
    let events = with(team(), [invited(1, "new@example.com", Role::Member)]);
    ws(events.clone())
        .when(
            accept_cmd(1, 6, "new@example.com"),
            &as_user_at(6, days(7) - Duration::seconds(1)),
        )
        .then([
            WorkspaceEvent::InviteAccepted {
                invite_id: invite_id(1),
                user_id: user(6),
            },
            added(6, Role::Member),
        ]);
    ws(events)
        .when(accept_cmd(1, 6, "new@example.com"), &as_user_at(6, days(7)))
        .then_err(DomainError::InviteExpired);
}

#[test]
fn an_invite_for_another_email_is_forbidden() {
    ws(with(team(), [invited(1, "new@example.com", Role::Member)]))
        .when(accept_cmd(1, 6, "other@example.com"), &as_user(6))
        .then_err_matching(is_forbidden);
}

#[test]
fn an_existing_member_cannot_accept() {
    ws(with(
        team(),
        [invited(1, "member@example.com", Role::Admin)],
    ))
    .when(
        accept_cmd(1, MEMBER, "member@example.com"),
        &as_user(MEMBER),
    )
    .then_err_matching(is_conflict);
}

#[test]
fn only_the_invited_user_accepts_for_themself() {
    let events = with(team(), [invited(1, "new@example.com", Role::Member)]);
    ws(events.clone())
        .when(accept_cmd(1, 6, "new@example.com"), &as_user(7))
        .then_err_matching(is_forbidden);
    ws(events)
        .when(accept_cmd(1, 6, "new@example.com"), &as_system())
        .then_err_matching(is_forbidden);
}

#[test]
fn owners_and_admins_revoke_pending_invites() {
    for actor in [OWNER, ADMIN] {
        let state = ws(with(team(), [invited(1, "new@example.com", Role::Member)]))
            .when(
                WorkspaceCommand::RevokeInvite {
                    invite_id: invite_id(1),
                },
                &as_user(actor),
            )
            .then([WorkspaceEvent::InviteRevoked {
                invite_id: invite_id(1),
            }]);
        assert_eq!(
            state.invite(invite_id(1)).map(|i| i.status),
            Some(InviteStatus::Revoked)
        );
    }
    for actor in [MEMBER, VIEWER] {
        ws(with(team(), [invited(1, "new@example.com", Role::Member)]))
            .when(
                WorkspaceCommand::RevokeInvite {
                    invite_id: invite_id(1),
                },
                &as_user(actor),
            )
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn only_pending_invites_can_be_revoked() {
    let revoke = || WorkspaceCommand::RevokeInvite {
        invite_id: invite_id(1),
    };
    ws(team())
        .when(revoke(), &as_user(OWNER))
        .then_err(DomainError::NotFound { entity: "invite" });
    ws(with(
        team(),
        [
            invited(1, "new@example.com", Role::Member),
            WorkspaceEvent::InviteRevoked {
                invite_id: invite_id(1),
            },
        ],
    ))
    .when(revoke(), &as_user(OWNER))
    .then_err_matching(is_conflict);
    ws(with(
        team(),
        [
            invited(1, "new@example.com", Role::Member),
            WorkspaceEvent::InviteAccepted {
                invite_id: invite_id(1),
                user_id: user(6),
            },
            added(6, Role::Member),
        ],
    ))
    .when(revoke(), &as_user(OWNER))
    .then_err_matching(is_conflict);
}

// --- Member roles ----------------------------------------------------------------------------

#[test]
fn an_owner_changes_any_role() {
    ws(team())
        .when(change_role(ADMIN, Role::Viewer), &as_user(OWNER))
        .then([role_changed(ADMIN, Role::Admin, Role::Viewer)]);
    let state = ws(team())
        .when(change_role(MEMBER, Role::Owner), &as_user(OWNER))
        .then([role_changed(MEMBER, Role::Member, Role::Owner)]);
    assert_eq!(state.owners_count(), 2);
    ws(with(team(), [added(OWNER2, Role::Owner)]))
        .when(change_role(OWNER2, Role::Member), &as_user(OWNER))
        .then([role_changed(OWNER2, Role::Owner, Role::Member)]);
}

#[test]
fn an_admin_changes_members_viewers_and_themself_but_grants_no_ownership() {
    ws(team())
        .when(change_role(MEMBER, Role::Viewer), &as_user(ADMIN))
        .then([role_changed(MEMBER, Role::Member, Role::Viewer)]);
    ws(team())
        .when(change_role(VIEWER, Role::Admin), &as_user(ADMIN))
        .then([role_changed(VIEWER, Role::Viewer, Role::Admin)]);
    ws(team())
        .when(change_role(ADMIN, Role::Member), &as_user(ADMIN))
        .then([role_changed(ADMIN, Role::Admin, Role::Member)]);
    ws(team())
        .when(change_role(MEMBER, Role::Owner), &as_user(ADMIN))
        .then_err_matching(is_forbidden);
    ws(team())
        .when(change_role(OWNER, Role::Admin), &as_user(ADMIN))
        .then_err_matching(is_forbidden);
}

#[test]
fn an_admin_cannot_demote_another_admin_and_then_remove_them() {
    // One rule for acting on another member: admins act on members and viewers only, so the
    // demote-then-remove detour around "an admin cannot remove an admin" is closed.
    let events = with(team(), [added(6, Role::Admin)]);
    for role in [Role::Member, Role::Viewer] {
        ws(events.clone())
            .when(change_role(6, role), &as_user(ADMIN))
            .then_err_matching(is_forbidden);
    }
    ws(events.clone())
        .when(remove(6), &as_user(ADMIN))
        .then_err_matching(is_forbidden);
    ws(events)
        .when(change_role(6, Role::Member), &as_user(OWNER))
        .then([role_changed(6, Role::Admin, Role::Member)]);
}

#[test]
fn members_and_viewers_cannot_change_roles() {
    for actor in [MEMBER, VIEWER] {
        ws(team())
            .when(change_role(VIEWER, Role::Member), &as_user(actor))
            .then_err_matching(is_forbidden);
        ws(team())
            .when(change_role(actor, Role::Admin), &as_user(actor))
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn changing_a_non_member_role_is_not_found() {
    ws(team())
        .when(change_role(OUTSIDER, Role::Admin), &as_user(OWNER))
        .then_err(DomainError::NotFound { entity: "member" });
}

#[test]
fn the_same_role_is_a_no_op() {
    ws(team())
        .when(change_role(MEMBER, Role::Member), &as_user(OWNER))
        .then_nothing();
    ws(team())
        .when(change_role(OWNER, Role::Owner), &as_user(OWNER))
        .then_nothing();
}

#[test]
fn the_last_owner_cannot_be_demoted() {
    for role in [Role::Admin, Role::Member, Role::Viewer] {
        ws(team())
            .when(change_role(OWNER, role), &as_user(OWNER))
            .then_err(DomainError::LastOwner);
    }
    ws(with(team(), [added(OWNER2, Role::Owner)]))
        .when(change_role(OWNER, Role::Admin), &as_user(OWNER))
        .then([role_changed(OWNER, Role::Owner, Role::Admin)]);
}

// --- Removing members ------------------------------------------------------------------------

#[test]
fn any_member_may_leave() {
    for (actor, role) in [
        (ADMIN, Role::Admin),
        (MEMBER, Role::Member),
        (VIEWER, Role::Viewer),
    ] {
        let state = ws(team())
            .when(remove(actor), &as_user(actor))
            .then([removed(actor, role)]);
        assert_eq!(state.role_of(user(actor)), None);
    }
}

#[test]
fn the_last_owner_cannot_leave_but_one_of_two_can() {
    ws(team())
        .when(remove(OWNER), &as_user(OWNER))
        .then_err(DomainError::LastOwner);
    ws(with(team(), [added(OWNER2, Role::Owner)]))
        .when(remove(OWNER), &as_user(OWNER))
        .then([removed(OWNER, Role::Owner)]);
}

#[test]
fn an_owner_removes_anyone_but_the_last_owner() {
    let events = with(team(), [added(OWNER2, Role::Owner)]);
    for (target, role) in [
        (OWNER2, Role::Owner),
        (ADMIN, Role::Admin),
        (MEMBER, Role::Member),
        (VIEWER, Role::Viewer),
    ] {
        ws(events.clone())
            .when(remove(target), &as_user(OWNER))
            .then([removed(target, role)]);
    }
    // After one owner removed the other, the remaining owner is the last one.
    ws(with(events, [removed(OWNER2, Role::Owner)]))
        .when(remove(OWNER), &as_user(OWNER))
        .then_err(DomainError::LastOwner);
}

#[test]
fn an_admin_removes_members_and_viewers_only() {
    let events = with(team(), [added(6, Role::Admin)]);
    for (target, role) in [(MEMBER, Role::Member), (VIEWER, Role::Viewer)] {
        ws(events.clone())
            .when(remove(target), &as_user(ADMIN))
            .then([removed(target, role)]);
    }
    for target in [OWNER, 6] {
        ws(events.clone())
            .when(remove(target), &as_user(ADMIN))
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn members_and_viewers_remove_only_themselves() {
    ws(team())
        .when(remove(VIEWER), &as_user(MEMBER))
        .then_err_matching(is_forbidden);
    ws(team())
        .when(remove(MEMBER), &as_user(VIEWER))
        .then_err_matching(is_forbidden);
}

#[test]
fn removing_a_non_member_is_not_found() {
    ws(team())
        .when(remove(OUTSIDER), &as_user(OWNER))
        .then_err(DomainError::NotFound { entity: "member" });
}

// --- Exports ---------------------------------------------------------------------------------

#[test]
fn owners_admins_and_members_request_exports() {
    for actor in [OWNER, ADMIN, MEMBER] {
        let state = ws(team())
            .when(export_cmd(1), &as_user(actor))
            .then([export_requested(1, actor)]);
        let export = state.export(export_id(1)).expect("export recorded");
        assert_eq!(export.status, ExportStatus::Pending);
        assert!(!export.is_downloadable(t0()));
    }
}

#[test]
fn viewers_cannot_request_exports() {
    ws(team())
        .when(export_cmd(1), &as_user(VIEWER))
        .then_err_matching(is_forbidden);
}

#[test]
fn export_ids_are_unique() {
    ws(with(team(), [export_requested(1, OWNER)]))
        .when(export_cmd(1), &as_user(OWNER))
        .then_err_matching(is_conflict);
}

#[test]
fn the_system_completes_an_export_downloadable_for_24_hours() {
    let done_at = t0() + Duration::hours(1);
    let state = ws(with(team(), [export_requested(1, MEMBER)]))
        .when(
            WorkspaceCommand::CompleteExport {
                export_id: export_id(1),
                file: file(42),
            },
            &as_system_at(done_at),
        )
        .then([WorkspaceEvent::ExportCompleted {
            export_id: export_id(1),
            row_count: 42,
            size_bytes: 4200,
            file_id: uuid::Uuid::from_u128(42),
            expires_at: done_at + Duration::hours(24),
        }]);
    let export = state.export(export_id(1)).expect("export");
    assert!(export.is_downloadable(done_at + Duration::hours(23)));
    assert!(!export.is_downloadable(done_at + Duration::hours(24)));
}

#[test]
fn the_system_records_a_failed_export() {
    let state = ws(with(team(), [export_requested(1, MEMBER)]))
        .when(
            WorkspaceCommand::FailExport {
                export_id: export_id(1),
                reason: "renderer crashed".into(),
            },
            &as_system(),
        )
        .then([WorkspaceEvent::ExportFailed {
            export_id: export_id(1),
            reason: "renderer crashed".into(),
        }]);
    assert_eq!(
        state.export(export_id(1)).map(|e| e.status.clone()),
        Some(ExportStatus::Failed {
            reason: "renderer crashed".into()
        })
    );
}

#[test]
fn members_cannot_complete_or_fail_exports() {
    for actor in [OWNER, MEMBER] {
        ws(with(team(), [export_requested(1, MEMBER)]))
            .when(
                WorkspaceCommand::CompleteExport {
                    export_id: export_id(1),
                    file: file(1),
                },
                &as_user(actor),
            )
            .then_err_matching(is_forbidden);
        ws(with(team(), [export_requested(1, MEMBER)]))
            .when(
                WorkspaceCommand::FailExport {
                    export_id: export_id(1),
                    reason: "no".into(),
                },
                &as_user(actor),
            )
            .then_err_matching(is_forbidden);
    }
}

#[test]
fn export_outcomes_follow_the_export_lifecycle() {
    let complete = || WorkspaceCommand::CompleteExport {
        export_id: export_id(1),
        file: file(3),
    };
    let fail = || WorkspaceCommand::FailExport {
        export_id: export_id(1),
        reason: "boom".into(),
    };
    ws(team())
        .when(complete(), &as_system())
        .then_err(DomainError::NotFound { entity: "export" });
    let completed = with(
        team(),
        [
            export_requested(1, MEMBER),
            WorkspaceEvent::ExportCompleted {
                export_id: export_id(1),
                row_count: 3,
                size_bytes: 300,
                file_id: uuid::Uuid::from_u128(3),
                expires_at: days(1),
            },
        ],
    );
    ws(completed.clone())
        .when(complete(), &as_system())
        .then_err_matching(is_conflict);
    ws(completed)
        .when(fail(), &as_system())
        .then_err_matching(is_conflict);
    let failed = with(
        team(),
        [
            export_requested(1, MEMBER),
            WorkspaceEvent::ExportFailed {
                export_id: export_id(1),
                reason: "boom".into(),
            },
        ],
    );
    ws(failed.clone())
        .when(fail(), &as_system())
        .then_err_matching(is_conflict);
    ws(failed)
        .when(complete(), &as_system())
        .then([WorkspaceEvent::ExportCompleted {
            export_id: export_id(1),
            row_count: 3,
            size_bytes: 300,
            file_id: uuid::Uuid::from_u128(3),
            expires_at: t0() + Duration::hours(24),
        }]);
}

// --- Events ----------------------------------------------------------------------------------

fn one_of_each_event() -> Vec<WorkspaceEvent> {
    vec![
        created(),
        WorkspaceEvent::WorkspaceRenamed {
            from: ws_name("Acme"),
            to: ws_name("Acme Corp"),
        },
        upgraded(),
        WorkspaceEvent::TrialExtended {
            from: days(14),
            to: days(28),
            referred_user: user(7),
        },
        invited(1, "new@example.com", Role::Member),
        WorkspaceEvent::InviteAccepted {
            invite_id: invite_id(1),
            user_id: user(6),
        },
        WorkspaceEvent::InviteRevoked {
            invite_id: invite_id(2),
        },
        added(6, Role::Member),
        role_changed(6, Role::Member, Role::Admin),
        removed(6, Role::Admin),
        export_requested(1, OWNER),
        WorkspaceEvent::ExportCompleted {
            export_id: export_id(1),
            row_count: 9,
            size_bytes: 900,
            file_id: uuid::Uuid::from_u128(9),
            expires_at: days(1),
        },
        WorkspaceEvent::ExportFailed {
            export_id: export_id(2),
            reason: "boom".into(),
        },
        WorkspaceEvent::StaffAccessedAuditLog {
            user_id: user(OUTSIDER),
            reason: "ticket 42".into(),
        },
        WorkspaceEvent::InviteEmailSent {
            invite_id: invite_id(1),
            message_id: "<invite-1@chronicle>".into(),
        },
        WorkspaceEvent::WeeklySummarySent {
            summary: summary("2024-W52"),
        },
        WorkspaceEvent::JobDied {
            job_id: uuid::Uuid::from_u128(77),
            kind: "chronicle.invite-email".into(),
            caused_by: uuid::Uuid::from_u128(5),
            attempts: 8,
            error: "connection refused".into(),
        },
        WorkspaceEvent::JobRetried {
            job_id: uuid::Uuid::from_u128(77),
        },
    ]
}

#[test]
fn every_workspace_event_round_trips_through_parts() {
    let events = one_of_each_event();
    assert_one_of_each_type(&events);
    for event in events {
        let (event_type, payload) = event.to_parts();
        assert!(payload.is_object(), "{event_type}");
        assert_eq!(WorkspaceEvent::schema_version(event_type), 1);
        assert_eq!(
            WorkspaceEvent::from_parts(event_type, payload).expect("round trip"),
            event
        );
    }
    assert_unknown_type::<WorkspaceEvent>("ItemCreated");
}

#[test]
fn payloads_use_the_documented_shapes() {
    let (event_type, payload) = role_changed(6, Role::Member, Role::Admin).to_parts();
    assert_eq!(event_type, "MemberRoleChanged");
    assert_eq!(
        payload,
        serde_json::json!({"user_id": user(6), "from": "MEMBER", "to": "ADMIN"})
    );
    let (_, payload) = created().to_parts();
    assert_eq!(payload["region"], "eu");
    assert_eq!(payload["plan"], "TRIAL");
}

#[test]
fn evolve_counts_every_event() {
    let events = one_of_each_event();
    assert_one_of_each_type(&events);
    let state = Workspace::fold(&events);
    assert_eq!(state.version(), WorkspaceEvent::event_types().len() as i64);
}

fn staff_access(roles: &[StaffRole], reason: &str) -> WorkspaceCommand {
    WorkspaceCommand::RecordStaffAccess {
        staff_roles: roles.to_vec(),
        reason: reason.into(),
    }
}

#[test]
fn support_staff_read_the_audit_log_giving_a_reason_that_is_recorded() {
    ws(team())
        .when(
            staff_access(&[StaffRole::Support], "  ticket #42: lost items  "),
            &as_user(OUTSIDER),
        )
        .then(vec![WorkspaceEvent::StaffAccessedAuditLog {
            user_id: user(OUTSIDER),
            reason: "ticket #42: lost items".into(),
        }]);
}

#[test]
fn staff_access_needs_a_real_reason() {
    for reason in ["", "  ", "ab", &"x".repeat(501), "line\nbreak"] {
        ws(team())
            .when(
                staff_access(&[StaffRole::Support], reason),
                &as_user(OUTSIDER),
            )
            .then_err_matching(|e| matches!(e, DomainError::Validation(_)));
    }
}

#[test]
fn analysts_and_non_staff_cannot_record_support_access() {
    // An analyst is staff, but not support: forbidden (members are told no more than that).
    ws(team())
        .when(
            staff_access(&[StaffRole::Analyst], "curious"),
            &as_user(MEMBER),
        )
        .then_err_matching(is_forbidden);
    // A non-member without the role is told nothing exists.
    ws(team())
        .when(staff_access(&[], "curious"), &as_user(OUTSIDER))
        .then_err_matching(|e| matches!(e, DomainError::NotFound { .. }));
    ws(team())
        .when(
            staff_access(&[StaffRole::Support], "a system look"),
            &as_system(),
        )
        .then_err_matching(is_forbidden);
    ws([])
        .when(
            staff_access(&[StaffRole::Support], "no such workspace"),
            &as_user(OUTSIDER),
        )
        .then_err_matching(|e| matches!(e, DomainError::NotFound { .. }));
}

fn record_sent(n: u128) -> WorkspaceCommand {
    WorkspaceCommand::RecordInviteEmailSent {
        invite_id: invite_id(n),
        message_id: format!("<invite-{n}@chronicle>"),
    }
}

#[test]
fn the_system_records_an_invite_email_once() {
    let sent = WorkspaceEvent::InviteEmailSent {
        invite_id: invite_id(1),
        message_id: "<invite-1@chronicle>".into(),
    };
    let events = with(team(), [invited(1, "new@example.com", Role::Member)]);
    let state = ws(events.clone())
        .when(record_sent(1), &as_system())
        .then([sent.clone()]);
    assert_eq!(state.invite(invite_id(1)).map(|i| i.email_sent), Some(true));
    // A job that runs again (at-least-once delivery) records nothing more.
    ws(with(events, [sent]))
        .when(record_sent(1), &as_system())
        .then([]);
}

#[test]
fn only_the_system_records_invite_emails_of_existing_invites() {
    let events = with(team(), [invited(1, "new@example.com", Role::Member)]);
    ws(events.clone())
        .when(record_sent(1), &as_user(OWNER))
        .then_err_matching(is_forbidden);
    ws(events)
        .when(record_sent(2), &as_system())
        .then_err(DomainError::NotFound { entity: "invite" });
}

fn dead(attempts: u32) -> WorkspaceCommand {
    WorkspaceCommand::RecordJobDead {
        job_id: uuid::Uuid::from_u128(77),
        kind: "chronicle.invite-email".into(),
        caused_by: uuid::Uuid::from_u128(5),
        attempts,
        error: "connection refused".into(),
    }
}

#[test]
fn a_job_death_is_recorded_once_per_death() {
    let died = |attempts| WorkspaceEvent::JobDied {
        job_id: uuid::Uuid::from_u128(77),
        kind: "chronicle.invite-email".into(),
        caused_by: uuid::Uuid::from_u128(5),
        attempts,
        error: "connection refused".into(),
    };
    ws(team()).when(dead(8), &as_system()).then([died(8)]);
    ws(with(team(), [died(8)]))
        .when(dead(8), &as_system())
        .then([]);
    // Retried and dead again: a new death.
    ws(with(team(), [died(8)]))
        .when(dead(16), &as_system())
        .then([died(16)]);
    ws(team())
        .when(dead(8), &as_user(OWNER))
        .then_err_matching(is_forbidden);
}

#[test]
fn owners_admins_and_support_staff_retry_jobs() {
    let retry = |staff_roles: Vec<StaffRole>| WorkspaceCommand::RetryJob {
        job_id: uuid::Uuid::from_u128(77),
        staff_roles,
    };
    let retried = WorkspaceEvent::JobRetried {
        job_id: uuid::Uuid::from_u128(77),
    };
    for actor in [OWNER, ADMIN] {
        ws(team())
            .when(retry(vec![]), &as_user(actor))
            .then([retried.clone()]);
    }
    ws(team())
        .when(retry(vec![StaffRole::Support]), &as_user(OUTSIDER))
        .then([retried]);
    ws(team())
        .when(retry(vec![]), &as_user(MEMBER))
        .then_err_matching(is_forbidden);
    ws(team())
        .when(retry(vec![StaffRole::Analyst]), &as_user(OUTSIDER))
        .then_err_matching(|e| matches!(e, DomainError::NotFound { .. }));
}

fn summary(week: &str) -> crate::WeeklySummary {
    crate::WeeklySummary {
        week: crate::weekly::IsoWeek::parse(week).unwrap(),
        items_created: 3,
        items_updated: 2,
        items_archived: 1,
        members_joined: 1,
        recipients: 1,
        message_id: format!("<weekly-{week}@chronicle.test>"),
    }
}

#[test]
fn a_weekly_summary_is_recorded_once_per_week_by_the_system() {
    // t0 is 2025-01-01, in 2025-W01; the week before ended on 2024-12-30.
    let sent = WorkspaceEvent::WeeklySummarySent {
        summary: summary("2024-W52"),
    };
    let record = |week: &str| WorkspaceCommand::RecordWeeklySummarySent {
        summary: summary(week),
    };
    let state = ws([created()])
        .when(record("2024-W52"), &as_system())
        .then([sent.clone()]);
    assert!(
        state
            .summarized_weeks()
            .contains(&crate::weekly::IsoWeek::parse("2024-W52").unwrap())
    );
    ws([created(), sent.clone()])
        .when(record("2024-W52"), &as_system())
        .then([]);
    ws([created(), sent])
        .when(record("2024-W52"), &as_user(1))
        .then_err_matching(is_forbidden);
    // A week that has not ended yet cannot have been summarised.
    ws([created()])
        .when(record("2025-W01"), &as_system())
        .then_err_matching(|e| matches!(e, DomainError::Validation(v) if v.field == "week"));
}
