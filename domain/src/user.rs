//! The user aggregate: sign-up, profile changes and global staff roles. Email uniqueness across
//! users is enforced outside the domain (a unique index), since one user cannot see the others.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::context::{Actor, Context};
use crate::error::{DomainError, ValidationError};
use crate::ids::{UserId, WorkspaceId};
use crate::referral::{self, Claim, Decision};
use crate::values::{DisplayName, Email, ReferralCode, StaffRole};

/// What may be asked of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Registers a new user. The caller generates the id and the referral code.
    SignUp {
        /// The new user's id.
        user_id: UserId,
        /// The user's email (uniqueness is checked by the caller's storage).
        email: Email,
        /// The user's display name.
        display_name: DisplayName,
        /// The user's own code, to share with others.
        referral_code: ReferralCode,
        /// The user whose referral code was used, if any.
        referred_by: Option<UserId>,
    },
    /// Changes the display name (the user themself, or the system).
    Rename {
        /// The new display name.
        display_name: DisplayName,
    },
    /// Grants a global staff role (system only: operators via the CLI).
    GrantStaffRole {
        /// The role to grant.
        role: StaffRole,
    },
    /// Revokes a global staff role (system only: operators via the CLI).
    RevokeStaffRole {
        /// The role to revoke.
        role: StaffRole,
    },
    /// Rewards this user for a referral whose first workspace got its first item (system
    /// only: the referral-reward job). Decided by [`referral::decide`]; a referral rewarded
    /// before, or one that earns nothing, records nothing.
    RewardReferral {
        /// The referral, as the job found it (`referrer` must be this user).
        claim: Claim,
    },
}

/// What happened to a user. Never carries a password or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A user signed up (schema v2: v1 had no `referred_by`).
    UserSignedUp {
        /// The user's id.
        user_id: UserId,
        /// The user's email.
        email: Email,
        /// The user's display name.
        display_name: DisplayName,
        /// The user's own referral code.
        referral_code: ReferralCode,
        /// Who referred the user, if anyone.
        referred_by: Option<UserId>,
    },
    /// The display name changed.
    UserRenamed {
        /// The previous name.
        from: DisplayName,
        /// The new name.
        to: DisplayName,
    },
    /// A staff role was granted.
    StaffRoleGranted {
        /// The granted role.
        role: StaffRole,
    },
    /// A staff role was revoked.
    StaffRoleRevoked {
        /// The revoked role.
        role: StaffRole,
    },
    /// The user earned a referral reward: each named workspace (theirs, on trial) gets
    /// [`referral::REWARD_DAYS`] more days (each records its own `TrialExtended`).
    ReferralRewarded {
        /// The referred user whose first workspace got its first item.
        referred_user: UserId,
        /// The workspaces the reward extends.
        workspaces: Vec<WorkspaceId>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::UserSignedUp { .. } => "UserSignedUp",
            Self::UserRenamed { .. } => "UserRenamed",
            Self::StaffRoleGranted { .. } => "StaffRoleGranted",
            Self::StaffRoleRevoked { .. } => "StaffRoleRevoked",
            Self::ReferralRewarded { .. } => "ReferralRewarded",
        }
    }
}

/// A signed-up user's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Profile {
    id: UserId,
    email: Email,
    display_name: DisplayName,
    referral_code: ReferralCode,
    referred_by: Option<UserId>,
}

/// A user's state, folded from their events. The default value is a user that does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    profile: Option<Profile>,
    staff_roles: BTreeSet<StaffRole>,
    /// Referral rewards earned: referred user → the workspaces the reward extended.
    referral_rewards: BTreeMap<UserId, Vec<WorkspaceId>>,
    version: i64,
}

impl User {
    /// Whether the user has signed up.
    pub fn exists(&self) -> bool {
        self.profile.is_some()
    }

    /// The user's id, once signed up.
    pub fn id(&self) -> Option<UserId> {
        self.profile.as_ref().map(|p| p.id)
    }

    /// The user's email, once signed up.
    pub fn email(&self) -> Option<&Email> {
        self.profile.as_ref().map(|p| &p.email)
    }

    /// The user's display name, once signed up.
    pub fn display_name(&self) -> Option<&DisplayName> {
        self.profile.as_ref().map(|p| &p.display_name)
    }

    /// The user's own referral code, once signed up.
    pub fn referral_code(&self) -> Option<&ReferralCode> {
        self.profile.as_ref().map(|p| &p.referral_code)
    }

    /// Who referred the user, if anyone.
    pub fn referred_by(&self) -> Option<UserId> {
        self.profile.as_ref().and_then(|p| p.referred_by)
    }

    /// The user's global staff roles.
    pub fn staff_roles(&self) -> &BTreeSet<StaffRole> {
        &self.staff_roles
    }

    /// Whether the user holds `role`.
    pub fn has_staff_role(&self, role: StaffRole) -> bool {
        self.staff_roles.contains(&role)
    }

    /// The referral rewards the user earned: referred user → the workspaces each extended.
    pub fn referral_rewards(&self) -> &BTreeMap<UserId, Vec<WorkspaceId>> {
        &self.referral_rewards
    }

    /// How `claim` (a referral of this user) is decided now.
    pub fn decide_referral(&self, claim: &Claim) -> Decision {
        referral::decide(claim, &self.referral_rewards)
    }

    /// The number of events folded into this state.
    pub fn version(&self) -> i64 {
        self.version
    }

    fn profile(&self) -> Result<&Profile, DomainError> {
        self.profile.as_ref().ok_or(DomainError::not_found("user"))
    }
}

fn require_system(ctx: &Context) -> Result<(), DomainError> {
    if ctx.actor.is_system() {
        Ok(())
    } else {
        Err(DomainError::forbidden(
            "staff roles are managed by operators only",
        ))
    }
}

impl Aggregate for User {
    const STREAM_TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;

    fn decide(&self, command: UserCommand, ctx: &Context) -> Result<Vec<UserEvent>, DomainError> {
        match command {
            UserCommand::SignUp {
                user_id,
                email,
                display_name,
                referral_code,
                referred_by,
            } => {
                if self.exists() {
                    return Err(DomainError::conflict("the user already exists"));
                }
                if referred_by == Some(user_id) {
                    return Err(ValidationError::new(
                        "referral_code",
                        "a user cannot refer themself",
                    )
                    .into());
                }
                Ok(vec![UserEvent::UserSignedUp {
                    user_id,
                    email,
                    display_name,
                    referral_code,
                    referred_by,
                }])
            }
            UserCommand::Rename { display_name } => {
                let profile = self.profile()?;
                match &ctx.actor {
                    Actor::User(id) if *id == profile.id => {}
                    Actor::System { .. } => {}
                    Actor::User(_) => {
                        return Err(DomainError::forbidden(
                            "only the user themself can change their name",
                        ));
                    }
                }
                if profile.display_name == display_name {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserRenamed {
                    from: profile.display_name.clone(),
                    to: display_name,
                }])
            }
            UserCommand::GrantStaffRole { role } => {
                self.profile()?;
                require_system(ctx)?;
                if self.has_staff_role(role) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::StaffRoleGranted { role }])
            }
            UserCommand::RevokeStaffRole { role } => {
                self.profile()?;
                require_system(ctx)?;
                if !self.has_staff_role(role) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::StaffRoleRevoked { role }])
            }
            UserCommand::RewardReferral { claim } => {
                let profile = self.profile()?;
                if !ctx.actor.is_system() {
                    return Err(DomainError::forbidden(
                        "referral rewards are granted by the system only",
                    ));
                }
                if claim.referrer != profile.id {
                    return Err(DomainError::conflict("the referral names another referrer"));
                }
                match self.decide_referral(&claim) {
                    Decision::Reward(workspaces) => Ok(vec![UserEvent::ReferralRewarded {
                        referred_user: claim.referred_user,
                        workspaces,
                    }]),
                    Decision::AlreadyRewarded(_) | Decision::Refused(_) => Ok(vec![]),
                }
            }
        }
    }

    fn evolve(mut self, event: &UserEvent) -> Self {
        self.version += 1;
        match event {
            UserEvent::UserSignedUp {
                user_id,
                email,
                display_name,
                referral_code,
                referred_by,
            } => {
                self.profile = Some(Profile {
                    id: *user_id,
                    email: email.clone(),
                    display_name: display_name.clone(),
                    referral_code: referral_code.clone(),
                    referred_by: *referred_by,
                });
            }
            UserEvent::UserRenamed { to, .. } => {
                if let Some(profile) = &mut self.profile {
                    profile.display_name = to.clone();
                }
            }
            UserEvent::StaffRoleGranted { role } => {
                self.staff_roles.insert(*role);
            }
            UserEvent::StaffRoleRevoked { role } => {
                self.staff_roles.remove(role);
            }
            UserEvent::ReferralRewarded {
                referred_user,
                workspaces,
            } => {
                self.referral_rewards
                    .insert(*referred_user, workspaces.clone());
            }
        }
        self
    }
}

#[cfg(test)]
mod tests;
