use super::*;
use crate::fixtures::*;
use crate::testing::given;

fn signed_up(referred_by: Option<UserId>) -> UserEvent {
    UserEvent::UserSignedUp {
        user_id: user(1),
        email: email("ada@example.com"),
        display_name: display_name("Ada"),
        referral_code: code("ADA1"),
        referred_by,
    }
}

fn sign_up(referred_by: Option<UserId>) -> UserCommand {
    UserCommand::SignUp {
        user_id: user(1),
        email: email("ada@example.com"),
        display_name: display_name("Ada"),
        referral_code: code("ADA1"),
        referred_by,
    }
}

fn rename(name: &str) -> UserCommand {
    UserCommand::Rename {
        display_name: display_name(name),
    }
}

#[test]
fn sign_up_records_the_user() {
    let state = given::<User>([])
        .when(sign_up(Some(user(9))), &as_system())
        .then([signed_up(Some(user(9)))]);
    assert!(state.exists());
    assert_eq!(state.id(), Some(user(1)));
    assert_eq!(state.referred_by(), Some(user(9)));
    assert_eq!(state.email().map(Email::as_str), Some("ada@example.com"));
    assert_eq!(
        state.referral_code().map(ReferralCode::as_str),
        Some("ADA1")
    );
    assert_eq!(state.version(), 1);
}

#[test]
fn sign_up_twice_conflicts() {
    given::<User>([signed_up(None)])
        .when(sign_up(None), &as_system())
        .then_err_matching(|e| matches!(e, DomainError::Conflict { .. }));
}

#[test]
fn a_user_cannot_refer_themself() {
    given::<User>([])
        .when(sign_up(Some(user(1))), &as_system())
        .then_err_matching(
            |e| matches!(e, DomainError::Validation(v) if v.field == "referral_code"),
        );
}

#[test]
fn rename_by_the_user_records_old_and_new() {
    let state = given::<User>([signed_up(None)])
        .when(rename("Ada L."), &as_user(1))
        .then([UserEvent::UserRenamed {
            from: display_name("Ada"),
            to: display_name("Ada L."),
        }]);
    assert_eq!(
        state.display_name().map(DisplayName::as_str),
        Some("Ada L.")
    );
}

#[test]
fn rename_by_the_system_is_allowed() {
    given::<User>([signed_up(None)])
        .when(rename("Ada L."), &as_system())
        .then([UserEvent::UserRenamed {
            from: display_name("Ada"),
            to: display_name("Ada L."),
        }]);
}

#[test]
fn rename_by_another_user_is_forbidden() {
    given::<User>([signed_up(None)])
        .when(rename("Mallory"), &as_user(2))
        .then_err_matching(|e| matches!(e, DomainError::Forbidden { .. }));
}

#[test]
fn rename_to_the_same_name_is_a_no_op() {
    given::<User>([signed_up(None)])
        .when(rename("Ada"), &as_user(1))
        .then_nothing();
}

#[test]
fn commands_on_a_missing_user_are_not_found() {
    for command in [
        rename("Ada"),
        UserCommand::GrantStaffRole {
            role: StaffRole::Support,
        },
        UserCommand::RevokeStaffRole {
            role: StaffRole::Support,
        },
    ] {
        given::<User>([])
            .when(command, &as_system())
            .then_err(DomainError::NotFound { entity: "user" });
    }
}

#[test]
fn staff_roles_are_granted_and_revoked_by_the_system() {
    let state = given::<User>([signed_up(None)])
        .when(
            UserCommand::GrantStaffRole {
                role: StaffRole::Support,
            },
            &as_system(),
        )
        .then([UserEvent::StaffRoleGranted {
            role: StaffRole::Support,
        }]);
    assert!(state.has_staff_role(StaffRole::Support));
    assert!(!state.has_staff_role(StaffRole::Analyst));

    let state = given::<User>([
        signed_up(None),
        UserEvent::StaffRoleGranted {
            role: StaffRole::Support,
        },
    ])
    .when(
        UserCommand::RevokeStaffRole {
            role: StaffRole::Support,
        },
        &as_system(),
    )
    .then([UserEvent::StaffRoleRevoked {
        role: StaffRole::Support,
    }]);
    assert!(state.staff_roles().is_empty());
}

#[test]
fn staff_role_changes_are_idempotent() {
    given::<User>([
        signed_up(None),
        UserEvent::StaffRoleGranted {
            role: StaffRole::Analyst,
        },
    ])
    .when(
        UserCommand::GrantStaffRole {
            role: StaffRole::Analyst,
        },
        &as_system(),
    )
    .then_nothing();
    given::<User>([signed_up(None)])
        .when(
            UserCommand::RevokeStaffRole {
                role: StaffRole::Analyst,
            },
            &as_system(),
        )
        .then_nothing();
}

#[test]
fn users_cannot_manage_staff_roles_even_their_own() {
    for command in [
        UserCommand::GrantStaffRole {
            role: StaffRole::Support,
        },
        UserCommand::RevokeStaffRole {
            role: StaffRole::Support,
        },
    ] {
        given::<User>([signed_up(None)])
            .when(command, &as_user(1))
            .then_err_matching(|e| matches!(e, DomainError::Forbidden { .. }));
    }
}

#[test]
fn every_user_event_round_trips_through_parts() {
    let events = [
        signed_up(Some(user(2))),
        UserEvent::UserRenamed {
            from: display_name("A"),
            to: display_name("B"),
        },
        UserEvent::StaffRoleGranted {
            role: StaffRole::Support,
        },
        UserEvent::StaffRoleRevoked {
            role: StaffRole::Analyst,
        },
        UserEvent::ReferralRewarded {
            referred_user: user(7),
            workspaces: vec![workspace_id()],
        },
    ];
    assert_one_of_each_type(&events);
    for event in events {
        let (event_type, payload) = event.to_parts();
        assert!(payload.is_object(), "{event_type}: payload is an object");
        assert_eq!(
            UserEvent::from_parts(event_type, payload.clone()).expect("round trip"),
            event
        );
        let version = UserEvent::schema_version(event_type);
        assert_eq!(
            UserEvent::from_stored(event_type, version, payload).expect("stored"),
            event
        );
    }
    assert_unknown_type::<UserEvent>("UserExploded");
    let partial = UserEvent::from_parts("UserRenamed", serde_json::json!({"from": "A"}))
        .expect_err("no new name");
    assert_eq!(partial.to_string(), "missing field `to`");
}

#[test]
fn no_user_event_carries_a_password_or_token() {
    let (_, payload) = signed_up(None).to_parts();
    let text = payload.to_string().to_lowercase();
    assert!(!text.contains("password") && !text.contains("token"));
}

fn reward(referred: u128, on_trial: &[WorkspaceId]) -> UserCommand {
    UserCommand::RewardReferral {
        claim: crate::referral::Claim {
            referrer: user(1),
            referred_user: user(referred),
            referred_by: Some(user(1)),
            on_trial: on_trial.to_vec(),
            max_rewards: 1,
        },
    }
}

#[test]
fn the_system_rewards_a_referral_once_and_up_to_the_cap() {
    let rewarded = UserEvent::ReferralRewarded {
        referred_user: user(7),
        workspaces: vec![workspace_id()],
    };
    let state = given::<User>([signed_up(None)])
        .when(reward(7, &[workspace_id()]), &as_system())
        .then([rewarded.clone()]);
    assert_eq!(
        state.referral_rewards().get(&user(7)),
        Some(&vec![workspace_id()])
    );
    // Again: nothing new (the job run twice).
    given::<User>([signed_up(None), rewarded.clone()])
        .when(reward(7, &[workspace_id()]), &as_system())
        .then([]);
    // Another referral past the cap (1): nothing.
    given::<User>([signed_up(None), rewarded])
        .when(reward(8, &[workspace_id()]), &as_system())
        .then([]);
}

#[test]
fn only_the_system_rewards_and_only_its_own_referrals() {
    given::<User>([signed_up(None)])
        .when(reward(7, &[workspace_id()]), &as_user(1))
        .then_err_matching(|e| matches!(e, DomainError::Forbidden { .. }));
    let UserCommand::RewardReferral { mut claim } = reward(7, &[workspace_id()]) else {
        unreachable!()
    };
    claim.referrer = user(2);
    given::<User>([signed_up(None)])
        .when(UserCommand::RewardReferral { claim }, &as_system())
        .then_err_matching(|e| matches!(e, DomainError::Conflict { .. }));
    // A user who referred themself gets nothing, however the claim came about.
    let UserCommand::RewardReferral { mut claim } = reward(1, &[workspace_id()]) else {
        unreachable!()
    };
    claim.referred_by = Some(user(1));
    given::<User>([signed_up(None)])
        .when(UserCommand::RewardReferral { claim }, &as_system())
        .then([]);
}
