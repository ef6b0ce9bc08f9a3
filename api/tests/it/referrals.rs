//! Referral rewards end to end (SPEC §2): a referred user's first workspace gets its first item,
//! and each of the referrer's workspaces on trial gains 14 days — once, whatever happens after,
//! and for at most `CHRONICLE_MAX_REFERRAL_REWARDS` referrals.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventlog::Position;
use pgcluster::TestDatabase;
use projections::runner::SharedCheckpoint;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::jobs::{events_of, eventually, queue_jobs};
use crate::workspaces::create_workspace;
use crate::{Session, TestApp, error_codes};

const CREATE_ITEM: &str = "mutation($w: ID!, $title: String!) {
    createItem(input: { workspaceId: $w, title: $title }) { item { id } position } }";
const WORKSPACE: &str = "query($w: ID!) { workspace(id: $w) { plan trialEndsAt } }";
const SIGN_UP: &str = "mutation($input: SignUpInput!) { signUp(input: $input) { user { id } } }";

/// A node running the job workers, rewarding at most `max_rewards` referrals per referrer.
async fn node(db: &Arc<TestDatabase>, max_rewards: u32) -> TestApp {
    jobs::setup(db.pool()).await.unwrap();
    TestApp::spawn_configured(db, |config| {
        config.workers = true;
        config.max_referral_rewards = max_rewards;
        config.job_poll_interval = Duration::from_millis(50);
        config.job_retry = crate::jobs::fast_retry();
    })
    .await
}

async fn referral_code(app: &TestApp, user: &Session) -> String {
    let me = user.gql(app, "{ me { referralCode } }", Value::Null).await;
    me["data"]["me"]["referralCode"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates an item; returns the position written.
async fn create_item(app: &TestApp, user: &Session, workspace: &str, title: &str) -> Position {
    let response = user
        .gql(app, CREATE_ITEM, json!({ "w": workspace, "title": title }))
        .await;
    response["data"]["createItem"]["position"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .parse()
        .unwrap()
}

async fn trial_end(app: &TestApp, user: &Session, workspace: &str) -> DateTime<Utc> {
    let response = user.gql(app, WORKSPACE, json!({ "w": workspace })).await;
    response["data"]["workspace"]["trialEndsAt"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .parse()
        .unwrap()
}

/// The referral-reward jobs' (status, attempts).
async fn reward_jobs(pool: &PgPool) -> Vec<(String, i32)> {
    queue_jobs(pool, jobs::referral_reward::QUEUE).await
}

/// Waits until the dispatcher has passed `position` and every referral job has run.
async fn settled(pool: &PgPool, position: Position) {
    eventually(
        "the dispatcher passes the position and the jobs are done",
        async || {
            let dispatched = SharedCheckpoint::new(jobs::dispatch::NAME)
                .load(pool)
                .await
                .unwrap();
            dispatched >= position
                && reward_jobs(pool)
                    .await
                    .iter()
                    .all(|(status, _)| status == "Done")
        },
    )
    .await;
}

#[tokio::test]
async fn a_referred_users_first_item_extends_the_referrers_trials_once() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node(&db, 10).await;
    let ana = app.sign_up("ana").await;
    let (a1, a2, pro) = (
        create_workspace(&app, &ana, "A1").await,
        create_workspace(&app, &ana, "A2").await,
        create_workspace(&app, &ana, "Pro").await,
    );
    let upgraded = ana
        .gql(
            &app,
            "mutation($w: ID!) { upgradePlan(id: $w) { workspace { plan } } }",
            json!({ "w": pro }),
        )
        .await;
    assert_eq!(
        upgraded["data"]["upgradePlan"]["workspace"]["plan"], "PRO",
        "{upgraded}"
    );
    let before: Vec<_> = [&a1, &a2, &pro]
        .iter()
        .map(|w| trial_end(&app, &ana, w))
        .collect();
    let before = futures::future::join_all(before).await;

    let bo = app
        .sign_up_referred("bo", Some(&referral_code(&app, &ana).await))
        .await;
    let b1 = create_workspace(&app, &bo, "B1").await;
    let b1_before = trial_end(&app, &bo, &b1).await;
    // A workspace alone earns nothing: the reward waits for its first item.
    let quiet = create_workspace(&app, &bo, "B2").await;
    let _ = quiet;
    let first = create_item(&app, &bo, &b1, "first").await;
    settled(db.pool(), first).await;

    let days = chrono::Duration::days(domain::referral::REWARD_DAYS.into());
    assert_eq!(trial_end(&app, &ana, &a1).await, before[0] + days);
    assert_eq!(trial_end(&app, &ana, &a2).await, before[1] + days);
    assert_eq!(
        trial_end(&app, &ana, &pro).await,
        before[2],
        "a Pro workspace is not on trial"
    );
    assert_eq!(
        trial_end(&app, &bo, &b1).await,
        b1_before,
        "the referred user gains nothing"
    );

    // More items, in that workspace and in the referred user's second one: no more jobs.
    create_item(&app, &bo, &b1, "second").await;
    let last = create_item(&app, &bo, &quiet, "elsewhere").await;
    settled(db.pool(), last).await;
    assert_eq!(reward_jobs(db.pool()).await, [("Done".to_string(), 1)]);
    // A replay of the whole log through the dispatcher enqueues nothing new either.
    let dispatch = jobs::dispatch::Dispatch::new(
        eventlog::EventLog::new(db.pool().clone()),
        jobs::retry::RetryPolicy::default(),
    );
    assert_eq!(dispatch.replay().await.unwrap(), 0);
    assert_eq!(reward_jobs(db.pool()).await, [("Done".to_string(), 1)]);

    // The same job run again (at-least-once delivery) changes nothing.
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Pending', run_at = now(), lock_by = NULL,
                lock_at = NULL, done_at = NULL
         WHERE job_type = $1",
    )
    .bind(jobs::referral_reward::QUEUE)
    .execute(db.pool())
    .await
    .unwrap();
    eventually("the job ran again", async || {
        reward_jobs(db.pool()).await == [("Done".to_string(), 2)]
    })
    .await;
    assert_eq!(trial_end(&app, &ana, &a1).await, before[0] + days);
    assert_eq!(trial_end(&app, &ana, &a2).await, before[1] + days);
    assert_eq!(events_of(db.pool(), "ReferralRewarded").await.len(), 1);
    let extended = events_of(db.pool(), "TrialExtended").await;
    assert_eq!(extended.len(), 2, "{extended:?}");

    // The audit log shows the system acting, caused by the referred user's first item.
    let item_event: uuid::Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE event_type = 'ItemCreated' ORDER BY tx_id, seq LIMIT 1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let log = ana
        .gql(
            &app,
            "query($w: ID!) { auditLog(workspaceId: $w, first: 5) { edges { node {
                action summary actor { displayName system } causationId correlationId } } } }",
            json!({ "w": a1 }),
        )
        .await;
    let entry = &log["data"]["auditLog"]["edges"][0]["node"];
    assert_eq!(entry["action"], "TrialExtended", "{log}");
    assert_eq!(entry["actor"]["system"], true);
    assert_eq!(entry["actor"]["displayName"], "referral-reward-job");
    let causation = entry["causationId"].as_str().unwrap();
    assert_eq!(
        global_id_uuid(causation),
        item_event,
        "caused by the first item"
    );
    let item_correlation: Option<String> =
        sqlx::query_scalar("SELECT metadata->>'correlation_id' FROM events WHERE event_id = $1")
            .bind(item_event)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(entry["correlationId"].as_str(), item_correlation.as_deref());
}

/// The UUID inside a global id (`base64("Kind:uuid")`).
fn global_id_uuid(id: &str) -> uuid::Uuid {
    use base64::Engine;
    let text = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id)
            .unwrap(),
    )
    .unwrap();
    text.split_once(':').unwrap().1.parse().unwrap()
}

#[tokio::test]
async fn the_cap_holds_when_referrals_are_rewarded_at_once() {
    const REFERRED: usize = 6;
    const CAP: u32 = 2;
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node(&db, CAP).await;
    let ana = app.sign_up("ana").await;
    let a1 = create_workspace(&app, &ana, "A1").await;
    let before = trial_end(&app, &ana, &a1).await;
    let code = referral_code(&app, &ana).await;
    let mut referred = Vec::new();
    for n in 0..REFERRED {
        let user = app
            .sign_up_referred(&format!("referred{n}"), Some(&code))
            .await;
        let workspace = create_workspace(&app, &user, "Mine").await;
        referred.push((user, workspace));
    }
    // Every first item at once: their jobs are enqueued together and run side by side.
    let positions = futures::future::join_all(
        referred
            .iter()
            .map(|(user, workspace)| create_item(&app, user, workspace, "first")),
    )
    .await;
    settled(db.pool(), positions.into_iter().max().unwrap()).await;
    assert_eq!(
        reward_jobs(db.pool()).await.len(),
        REFERRED,
        "every referral was considered"
    );

    assert_eq!(
        events_of(db.pool(), "ReferralRewarded").await.len(),
        CAP as usize
    );
    assert_eq!(
        trial_end(&app, &ana, &a1).await,
        before + chrono::Duration::days(14 * i64::from(CAP)),
        "as many rewards as the cap, no more"
    );
    let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM referral_rewards")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(ledger, i64::from(CAP));
}

#[tokio::test]
async fn nobody_can_sign_up_with_their_own_code() {
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = TestApp::spawn_on(&db).await;
    let ana = app.sign_up("ana").await;
    let code = referral_code(&app, &ana).await;
    // The code's owner signing up again (another case of the same address) is refused: a
    // referral always links two different accounts.
    let again = app
        .graphql(
            SIGN_UP,
            json!({ "input": { "email": "ANA@example.com", "password": "correct horse battery",
                               "displayName": "Ana again", "referralCode": code } }),
        )
        .await;
    assert_eq!(error_codes(&again), ["CONFLICT"], "{again}");
    let referred: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE referred_by IS NOT NULL")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(referred, 0);
}
