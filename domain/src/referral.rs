//! Referral rewards (SPEC §2): when a referred user's first workspace gets its first item, each
//! of the referrer's workspaces on trial gets [`REWARD_DAYS`] more days — once per referral, and
//! at most a configured number of rewards per referrer.
//!
//! The reward is decided on the referrer (their user stream records [`crate::UserEvent::ReferralRewarded`]
//! naming the workspaces it extends), so two referrals of one referrer rewarded at the same time
//! are serialised by that stream's version and the cap holds. Each named workspace then records
//! its own `TrialExtended` once ([`crate::WorkspaceCommand::ExtendTrial`] ignores a referral it
//! already rewarded).

use std::collections::BTreeMap;

use crate::ids::{UserId, WorkspaceId};

/// Days a referral adds to each of the referrer's workspaces on trial.
pub const REWARD_DAYS: u32 = 14;
/// Rewards one referrer may earn unless configured otherwise.
pub const DEFAULT_MAX_REWARDS: u32 = 10;

/// What is known about a referral when its reward is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Who is to be rewarded.
    pub referrer: UserId,
    /// The referred user whose first workspace got its first item.
    pub referred_user: UserId,
    /// Who the referred user signed up with, as recorded at their sign-up.
    pub referred_by: Option<UserId>,
    /// The referrer's workspaces (those they own) on the `TRIAL` plan now.
    pub on_trial: Vec<WorkspaceId>,
    /// The most rewards one referrer may earn.
    pub max_rewards: u32,
}

/// Why a referral earns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The referrer and the referred user are the same person.
    SelfReferral,
    /// The referred user did not sign up with this referrer's code.
    NotTheirReferral,
    /// The referrer has earned the most rewards allowed.
    CapReached {
        /// The cap.
        max_rewards: u32,
    },
    /// The referrer owns no workspace on trial: there is nothing to extend.
    NothingOnTrial,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SelfReferral => f.write_str("a user cannot refer themself"),
            Refusal::NotTheirReferral => f.write_str("not referred by this user"),
            Refusal::CapReached { max_rewards } => {
                write!(
                    f,
                    "the referrer has earned the most rewards ({max_rewards})"
                )
            }
            Refusal::NothingOnTrial => f.write_str("the referrer owns no workspace on trial"),
        }
    }
}

/// The decision on a referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reward it now: extend these workspaces.
    Reward(Vec<WorkspaceId>),
    /// Rewarded before, extending these workspaces (a job run again finishes what it started).
    AlreadyRewarded(Vec<WorkspaceId>),
    /// It earns nothing.
    Refused(Refusal),
}

impl Decision {
    /// The workspaces whose trial this referral extends, if it is rewarded (now or before).
    pub fn workspaces(&self) -> Option<&[WorkspaceId]> {
        match self {
            Decision::Reward(w) | Decision::AlreadyRewarded(w) => Some(w),
            Decision::Refused(_) => None,
        }
    }
}

/// Decides `claim` given the rewards the referrer has earned so far (referred user → the
/// workspaces that reward extended). A referral already rewarded stays rewarded whatever the
/// cap says now; a new one is refused when the cap is reached, and earns nothing (and does not
/// count) when the referrer has no workspace on trial.
pub fn decide(claim: &Claim, rewarded: &BTreeMap<UserId, Vec<WorkspaceId>>) -> Decision {
    if claim.referrer == claim.referred_user {
        return Decision::Refused(Refusal::SelfReferral);
    }
    if claim.referred_by != Some(claim.referrer) {
        return Decision::Refused(Refusal::NotTheirReferral);
    }
    if let Some(workspaces) = rewarded.get(&claim.referred_user) {
        return Decision::AlreadyRewarded(workspaces.clone());
    }
    if rewarded.len() >= claim.max_rewards as usize {
        return Decision::Refused(Refusal::CapReached {
            max_rewards: claim.max_rewards,
        });
    }
    if claim.on_trial.is_empty() {
        return Decision::Refused(Refusal::NothingOnTrial);
    }
    let mut workspaces = claim.on_trial.clone();
    workspaces.sort();
    workspaces.dedup();
    Decision::Reward(workspaces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    fn workspace(n: u128) -> WorkspaceId {
        WorkspaceId::from_uuid(Uuid::from_u128(1000 + n))
    }

    fn claim(referred: u128) -> Claim {
        Claim {
            referrer: user(1),
            referred_user: user(referred),
            referred_by: Some(user(1)),
            on_trial: vec![workspace(2), workspace(1), workspace(2)],
            max_rewards: 2,
        }
    }

    #[test]
    fn a_referral_extends_each_workspace_on_trial_once() {
        assert_eq!(
            decide(&claim(7), &BTreeMap::new()),
            Decision::Reward(vec![workspace(1), workspace(2)])
        );
    }

    #[test]
    fn a_rewarded_referral_is_not_rewarded_again() {
        let rewarded = BTreeMap::from([(user(7), vec![workspace(1)])]);
        let decision = decide(&claim(7), &rewarded);
        assert_eq!(decision, Decision::AlreadyRewarded(vec![workspace(1)]));
        assert_eq!(decision.workspaces(), Some(&[workspace(1)][..]));
    }

    #[test]
    fn the_cap_stops_new_rewards_but_not_finished_ones() {
        let rewarded = BTreeMap::from([(user(7), vec![workspace(1)]), (user(8), vec![])]);
        assert_eq!(
            decide(&claim(9), &rewarded),
            Decision::Refused(Refusal::CapReached { max_rewards: 2 })
        );
        assert!(matches!(
            decide(&claim(8), &rewarded),
            Decision::AlreadyRewarded(_)
        ));
    }

    #[test]
    fn self_referrals_and_strangers_earn_nothing() {
        let mut own = claim(1);
        own.referred_by = Some(user(1));
        assert_eq!(
            decide(&own, &BTreeMap::new()),
            Decision::Refused(Refusal::SelfReferral)
        );
        let mut stranger = claim(7);
        stranger.referred_by = Some(user(5));
        assert_eq!(
            decide(&stranger, &BTreeMap::new()),
            Decision::Refused(Refusal::NotTheirReferral)
        );
        stranger.referred_by = None;
        assert_eq!(
            decide(&stranger, &BTreeMap::new()).workspaces(),
            None,
            "a user who signed up without a code earns nobody a reward"
        );
    }

    #[test]
    fn nothing_on_trial_earns_nothing() {
        let mut claim = claim(7);
        claim.on_trial.clear();
        assert_eq!(
            decide(&claim, &BTreeMap::new()),
            Decision::Refused(Refusal::NothingOnTrial)
        );
    }
}
