//! The referral reward (SPEC §2): when a referred user's first workspace gets its first item,
//! each workspace on trial that the referrer owns gets [`REWARD_DAYS`] more days, once per
//! referral, for at most a configured number of referrals per referrer.
//!
//! **Dispatch.** The dispatcher notes each referred user's first workspace (`referral_watch`,
//! from `WorkspaceCreated`, one row per referred user) and, for a batch of events, looks up the
//! workspaces of its `ItemCreated` events there in one indexed query. A job is keyed by the
//! workspace, so only its first item enqueues one; every other item costs nothing more.
//!
//! **Effects.** The reward is decided on the referrer's user stream (`ReferralRewarded`, with
//! the workspaces it extends, and a row in the `referral_rewards` ledger keyed by the referred
//! user): two referrals of one referrer rewarded at once are serialised by that stream's
//! version, so the cap holds. Each workspace then records its own `TrialExtended` in its own
//! transaction (the log lets a transaction extend only one existing stream); the workspace
//! refuses a referral it already rewarded. A job stopped half-way finds the reward recorded
//! when it runs again and extends the workspaces still missing, so every workspace is extended
//! exactly once.

use std::sync::Arc;

use domain::referral::{Claim, Decision, REWARD_DAYS};
use domain::{UserId, WorkspaceEvent, WorkspaceId};
use eventlog::RecordedEvent;
use eventlog::aggregates::decode;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::dispatch::{self, NewJob};
use crate::retry::RetryPolicy;
use crate::worker::{Job, Origin};
use crate::{BoxError, Recorder, ReferralClaim, TrialExtension};

/// The queue (apalis `job_type`) of referral rewards.
pub const QUEUE: &str = "chronicle.referral-reward";

/// The job's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralReward {
    /// The first `ItemCreated` of the referred user's first workspace, that workspace, and the
    /// event's correlation id.
    #[serde(flatten)]
    pub origin: Origin,
    pub referred_user: Uuid,
    pub referrer: Uuid,
}

/// What the referral-reward job needs.
pub struct ReferralRewards {
    pub pool: PgPool,
    pub recorder: Arc<dyn Recorder>,
    /// `CHRONICLE_MAX_REFERRAL_REWARDS`: the most rewards one referrer earns.
    pub max_rewards: u32,
}

impl Job for ReferralReward {
    const QUEUE: &'static str = QUEUE;
    type Runner = ReferralRewards;

    fn origin(&self) -> Origin {
        self.origin
    }

    async fn run(&self, rewards: &ReferralRewards) -> Result<String, BoxError> {
        let referred_by = sqlx::query_scalar!(
            "SELECT referred_by FROM users WHERE id = $1",
            self.referred_user
        )
        .fetch_optional(&rewards.pool)
        .await?
        .flatten();
        let on_trial = sqlx::query_scalar!(
            r#"SELECT w.id FROM members m JOIN workspaces w ON w.id = m.workspace_id
               WHERE m.user_id = $1 AND m.role = 'OWNER' AND w.plan = 'TRIAL'
               ORDER BY w.id"#,
            self.referrer
        )
        .fetch_all(&rewards.pool)
        .await?;
        let claim = ReferralClaim {
            claim: Claim {
                referrer: UserId::from_uuid(self.referrer),
                referred_user: UserId::from_uuid(self.referred_user),
                referred_by: referred_by.map(UserId::from_uuid),
                on_trial: on_trial.into_iter().map(WorkspaceId::from_uuid).collect(),
                max_rewards: rewards.max_rewards,
            },
            cause: self.origin.event_id,
            correlation_id: self.origin.correlation_id,
        };
        let decision = rewards.recorder.referral_rewarded(&claim).await?;
        let workspaces = match &decision {
            Decision::Refused(refusal) => return Ok(format!("no referral reward: {refusal}")),
            Decision::Reward(workspaces) | Decision::AlreadyRewarded(workspaces) => workspaces,
        };
        let mut extended = 0;
        for workspace in workspaces {
            let extension = TrialExtension {
                workspace_id: workspace.as_uuid(),
                referred_user: self.referred_user,
                days: REWARD_DAYS,
                cause: self.origin.event_id,
                correlation_id: self.origin.correlation_id,
            };
            if rewards.recorder.trial_extended(&extension).await? {
                extended += 1;
            }
        }
        let before = if matches!(decision, Decision::AlreadyRewarded(_)) {
            " (rewarded before)"
        } else {
            ""
        };
        Ok(format!(
            "referral rewarded{before}: {extended} of {} workspace(s) extended now",
            workspaces.len()
        ))
    }
}

/// Enqueues the referral rewards `events` call for (part of the dispatcher's transaction);
/// returns how many were new. See the module docs.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
    retry: RetryPolicy,
) -> Result<u64, projections::Error> {
    // Workspaces created by referred users: the first one of each is watched.
    let mut owners = Vec::new();
    let mut created = Vec::new();
    for event in events.iter().filter(|e| e.event_type == "WorkspaceCreated") {
        if let WorkspaceEvent::WorkspaceCreated {
            workspace_id,
            owner,
            ..
        } = decode::<WorkspaceEvent>(event)?
        {
            owners.push(owner.as_uuid());
            created.push(workspace_id.as_uuid());
        }
    }
    if !created.is_empty() {
        sqlx::query!(
            r#"INSERT INTO referral_watch (referred_user, referrer, workspace_id)
               SELECT u.id, u.referred_by, c.workspace_id
               FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS c(owner, workspace_id, n)
               JOIN users u ON u.id = c.owner
               WHERE u.referred_by IS NOT NULL
               ORDER BY c.n
               ON CONFLICT DO NOTHING"#,
            &owners,
            &created
        )
        .execute(&mut *conn)
        .await?;
    }

    // The first item of a watched workspace.
    let items: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.event_type == "ItemCreated" && e.workspace_id.is_some())
        .collect();
    if items.is_empty() {
        return Ok(0);
    }
    let workspaces: Vec<Uuid> = items.iter().filter_map(|e| e.workspace_id).collect();
    let watched = sqlx::query!(
        "SELECT referred_user, referrer, workspace_id FROM referral_watch
         WHERE workspace_id = ANY($1)",
        &workspaces
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut enqueued = 0;
    for watch in watched {
        let Some(first) = items
            .iter()
            .find(|e| e.workspace_id == Some(watch.workspace_id))
        else {
            continue;
        };
        let args = ReferralReward {
            origin: Origin {
                event_id: first.event_id,
                workspace_id: watch.workspace_id,
                correlation_id: first.metadata.correlation_id,
            },
            referred_user: watch.referred_user,
            referrer: watch.referrer,
        };
        let job = NewJob {
            queue: QUEUE,
            args: serde_json::to_vec(&args).expect("job arguments serialise"),
            // One per workspace: its later items find the key taken.
            key: watch.workspace_id.to_string(),
        };
        enqueued += dispatch::insert(conn, &job, retry).await?;
    }
    Ok(enqueued)
}
