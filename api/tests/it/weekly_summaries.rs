//! The weekly summary end to end: two nodes run the schedule and the workers; their clocks cross
//! a week boundary; each workspace's owners get the past week's summary once, over real SMTP,
//! and each workspace records `WeeklySummarySent` once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::weekly::IsoWeek;
use pgcluster::TestDatabase;
use serde_json::json;
use sqlx::PgPool;

use crate::TestApp;
use crate::jobs::{SmtpServer, events_of, eventually, fast_retry, parse, queue_jobs};
use crate::workspaces::create_workspace;

const CREATE_ITEM: &str = "mutation($w: ID!, $title: String!) {
    createItem(input: { workspaceId: $w, title: $title }) { item { id } } }";

/// The weekly-summary jobs' idempotency keys.
async fn summary_keys(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM apalis.jobs WHERE job_type = $1 ORDER BY 1")
        .bind(jobs::weekly_summary::QUEUE)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_nodes_crossing_a_week_boundary_send_each_summary_once() {
    let mut smtp = SmtpServer::on_free_port();
    smtp.start().await;
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    jobs::setup(db.pool()).await.unwrap();

    // This week's activity, written through a node without workers.
    let writer = TestApp::spawn_on(&db).await;
    let (ana, bo) = (writer.sign_up("ana").await, writer.sign_up("bo").await);
    let acme = create_workspace(&writer, &ana, "Acme").await;
    let beta = create_workspace(&writer, &bo, "Beta").await;
    for title in ["one", "two", "three"] {
        let created = ana
            .gql(&writer, CREATE_ITEM, json!({ "w": acme, "title": title }))
            .await;
        assert!(created["data"]["createItem"].is_object(), "{created}");
    }
    bo.gql(&writer, CREATE_ITEM, json!({ "w": beta, "title": "solo" }))
        .await;

    // Two nodes whose clocks stand just before the end of this week, and cross it.
    let this_week = IsoWeek::containing(Utc::now());
    let ahead = this_week.end() - Utc::now() - chrono::Duration::seconds(4);
    let node = async || {
        let settings = smtp.settings();
        TestApp::spawn_configured(&db, |config| {
            config.workers = true;
            config.smtp = Some(settings);
            config.smtp_from = "Chronicle <noreply@chronicle.test>".into();
            config.public_url = "https://chronicle.test".into();
            config.job_retry = fast_retry();
            config.job_poll_interval = Duration::from_millis(50);
            config.weekly_summary_interval = Duration::from_millis(50);
            config.clock_offset = ahead;
        })
        .await
    };
    let (_first, _second) = (node().await, node().await);

    eventually("both summaries are sent", async || {
        let jobs = queue_jobs(db.pool(), jobs::weekly_summary::QUEUE).await;
        jobs.len() == 2 && jobs.iter().all(|(status, _)| status == "Done")
    })
    .await;
    // Let both nodes' schedules run well past the boundary: nothing more is enqueued.
    eventually(
        "both nodes checked the schedule after the boundary",
        async || {
            let weeks: Vec<String> =
                sqlx::query_scalar("SELECT week FROM weekly_summary_weeks ORDER BY week_start")
                    .fetch_all(db.pool())
                    .await
                    .unwrap();
            weeks.last() == Some(&this_week.to_string())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys = summary_keys(db.pool()).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.ends_with(&format!(":{this_week}"))));

    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "one email per workspace: {messages:?}");
    let mut mails: Vec<_> = messages.iter().map(|m| parse(m)).collect();
    mails.sort_by(|a, b| a.to.cmp(&b.to));
    assert!(mails[0].to.contains("ana@example.com"), "{}", mails[0].to);
    assert!(
        mails[0].text.contains("Items created: 3"),
        "{}",
        mails[0].text
    );
    assert!(
        mails[0].text.contains("ana (4 changes)"),
        "{}",
        mails[0].text
    );
    assert!(
        mails[0].html.contains("<strong>Acme</strong>"),
        "{}",
        mails[0].html
    );
    assert!(mails[1].to.contains("bo@example.com"), "{}", mails[1].to);
    assert!(
        mails[1].text.contains("Items created: 1"),
        "{}",
        mails[1].text
    );
    assert!(mails.iter().all(|m| {
        m.message_id.starts_with("<weekly-")
            && m.message_id
                .ends_with(&format!("-{this_week}@chronicle.test>"))
    }),);

    let sent = events_of(db.pool(), "WeeklySummarySent").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(_, actor, _, _)| actor["name"] == "weekly-summary-job")
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM weekly_summaries WHERE week = $1")
        .bind(this_week.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(recorded, 2);
}
