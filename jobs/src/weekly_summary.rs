//! The weekly summary (SPEC §7): every workspace's owners get, once per ISO week (Monday 00:00
//! to Monday 00:00 UTC), an email with what happened in the week before — items created,
//! updated and archived, members who joined, the most active members — counted from the log.
//!
//! **Schedule.** Every worker node runs [`run_schedule`], which checks every
//! `interval` which weeks are due ([`domain::weekly::due_weeks`]: the last complete week, and
//! after a time when every node was down, the weeks missed since the last one scheduled, at most
//! [`domain::weekly::MAX_CATCH_UP_WEEKS`] in all). Under a transaction-scoped advisory lock,
//! the first node to see a week due enqueues one job per workspace that existed before the
//! week ended, keyed by (workspace, week) in the queue, and notes the week in
//! `weekly_summary_weeks` in the same transaction; the other nodes then find nothing due. So a
//! week is scheduled once however many nodes run, and the job key alone would keep a second
//! scheduling from enqueueing anything twice.
//!
//! **Effect.** The job sends one email to the workspace's owners (text and HTML, `Message-ID`
//! derived from the workspace and the week, so a resend after a crash is recognisable) and
//! records `WeeklySummarySent` once (the workspace refuses a week it recorded; the
//! `weekly_summaries` ledger is keyed by workspace and week). A job run again after the record
//! sends nothing.
//!
//! The job's causing event is the workspace's `WorkspaceCreated` (a summary is owed because the
//! workspace exists), which is what `failedJobs` and `JobDied` name.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::WeeklySummary;
use domain::weekly::{self, IsoWeek, MOST_ACTIVE};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::mail::{Delivery, Email, Mailer, escape_html};
use crate::retry::RetryPolicy;
use crate::worker::{Job, Origin};
use crate::{BoxError, Recorder, SentSummary};

/// The queue (apalis `job_type`) of weekly summaries.
pub const QUEUE: &str = "chronicle.weekly-summary";

/// Item events that count as an update (archiving counts on its own).
const UPDATES: [&str; 5] = [
    "ItemRetitled",
    "ItemBodyEdited",
    "ItemRetagged",
    "ItemPublished",
    "ItemRestored",
];

/// The job's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklySummaryJob {
    /// The workspace's `WorkspaceCreated` event and the workspace (no correlation id: no
    /// request asked for it).
    #[serde(flatten)]
    pub origin: Origin,
    /// The week to summarise.
    pub week: IsoWeek,
}

/// What the weekly-summary job needs.
pub struct WeeklySummaries {
    pub pool: PgPool,
    pub mailer: Mailer,
    /// `CHRONICLE_PUBLIC_URL`, without a trailing slash (links and `Message-ID`s).
    pub public_url: String,
    pub recorder: Arc<dyn Recorder>,
}

impl Job for WeeklySummaryJob {
    const QUEUE: &'static str = QUEUE;
    type Runner = WeeklySummaries;

    fn origin(&self) -> Origin {
        self.origin
    }

    async fn run(&self, summaries: &WeeklySummaries) -> Result<String, BoxError> {
        summaries.run(self).await
    }
}

/// A member named in a summary, and what they did (staff who looked in, and people who left
/// since, are not named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub name: String,
    pub events: u64,
}

/// A week of a workspace, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub items_created: u64,
    pub items_updated: u64,
    pub items_archived: u64,
    pub members_joined: u64,
    pub most_active: Vec<Active>,
}

impl WeeklySummaries {
    async fn run(&self, job: &WeeklySummaryJob) -> Result<String, BoxError> {
        let week = job.week.to_string();
        let sent = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM weekly_summaries WHERE workspace_id = $1 AND week = $2)
               AS "sent!""#,
            job.origin.workspace_id,
            week
        )
        .fetch_one(&self.pool)
        .await?;
        if sent {
            return Ok(format!("summary of {week} sent before; nothing to do"));
        }
        let Some(name) = sqlx::query_scalar!(
            "SELECT name FROM workspaces WHERE id = $1",
            job.origin.workspace_id
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok("workspace not found; not sent".into());
        };
        let owners = sqlx::query!(
            r#"SELECT u.email, u.display_name FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.workspace_id = $1 AND m.role = 'OWNER' ORDER BY u.email"#,
            job.origin.workspace_id
        )
        .fetch_all(&self.pool)
        .await?;
        let to = owners
            .iter()
            .map(|o| {
                let address = o.email.parse::<lettre::Address>()?;
                Ok(Mailbox::new(Some(o.display_name.clone()), address))
            })
            .collect::<Result<Vec<_>, lettre::address::AddressError>>()?;
        let figures = figures(&self.pool, job.origin.workspace_id, job.week).await?;
        let message_id = message_id(job.origin.workspace_id, job.week, &self.public_url);
        let email = compose(
            &name,
            job.week,
            &figures,
            &self.public_url,
            to,
            message_id.clone(),
        );
        match self.mailer.send(&email).await? {
            Delivery::Logged => Ok(format!("summary of {week} logged (no SMTP server)")),
            Delivery::Sent => {
                let sent = SentSummary {
                    workspace_id: job.origin.workspace_id,
                    cause: job.origin.event_id,
                    summary: WeeklySummary {
                        week: job.week,
                        items_created: figures.items_created,
                        items_updated: figures.items_updated,
                        items_archived: figures.items_archived,
                        members_joined: figures.members_joined,
                        recipients: u32::try_from(owners.len()).unwrap_or(u32::MAX),
                        message_id,
                    },
                };
                self.recorder.weekly_summary_sent(&sent).await?;
                Ok(format!(
                    "summary of {week} sent to {} owner(s)",
                    owners.len()
                ))
            }
        }
    }
}

/// The `Message-ID` of the summary of `week` for `workspace_id`.
pub fn message_id(workspace_id: Uuid, week: IsoWeek, public_url: &str) -> String {
    crate::mail::message_id(&format!("weekly-{workspace_id}-{week}"), public_url)
}

/// Counts `week` of workspace `workspace_id` from the log.
pub async fn figures(
    pool: &PgPool,
    workspace_id: Uuid,
    week: IsoWeek,
) -> Result<Figures, sqlx::Error> {
    let updates: Vec<String> = UPDATES.iter().map(ToString::to_string).collect();
    let counts = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE event_type = 'ItemCreated') AS "created!",
                  count(DISTINCT stream_id) FILTER (WHERE event_type = ANY($4)) AS "updated!",
                  count(DISTINCT stream_id) FILTER (WHERE event_type = 'ItemArchived') AS "archived!",
                  count(*) FILTER (WHERE event_type = 'MemberAdded') AS "joined!"
           FROM events
           WHERE workspace_id = $1 AND recorded_at >= $2 AND recorded_at < $3"#,
        workspace_id,
        week.start(),
        week.end(),
        &updates
    )
    .fetch_one(pool)
    .await?;
    let activity = sqlx::query!(
        r#"SELECT (metadata->'actor'->>'id')::uuid AS "user_id!", count(*) AS "events!"
           FROM events
           WHERE workspace_id = $1 AND recorded_at >= $2 AND recorded_at < $3
             AND metadata->'actor'->>'kind' = 'user'
             AND (metadata->'actor'->>'id')::uuid IN
                 (SELECT user_id FROM members WHERE workspace_id = $1)
           GROUP BY 1"#,
        workspace_id,
        week.start(),
        week.end()
    )
    .fetch_all(pool)
    .await?;
    let activity: Vec<(Uuid, u64)> = activity
        .into_iter()
        .map(|a| (a.user_id, a.events as u64))
        .collect();
    let ranked = weekly::most_active(&activity, MOST_ACTIVE);
    let ids: Vec<Uuid> = ranked.iter().map(|(id, _)| *id).collect();
    let names = sqlx::query!(
        "SELECT id, display_name FROM users WHERE id = ANY($1)",
        &ids
    )
    .fetch_all(pool)
    .await?;
    let most_active = ranked
        .into_iter()
        .map(|(id, events)| Active {
            name: names
                .iter()
                .find(|n| n.id == id)
                .map_or_else(|| "a former user".to_string(), |n| n.display_name.clone()),
            events,
        })
        .collect();
    Ok(Figures {
        items_created: counts.created as u64,
        items_updated: counts.updated as u64,
        items_archived: counts.archived as u64,
        members_joined: counts.joined as u64,
        most_active,
    })
}

/// The summary email.
fn compose(
    workspace: &str,
    week: IsoWeek,
    figures: &Figures,
    public_url: &str,
    to: Vec<Mailbox>,
    message_id: String,
) -> Email {
    let period = format!(
        "{week} ({} to {})",
        week.start().format("%Y-%m-%d"),
        (week.end() - chrono::Duration::days(1)).format("%Y-%m-%d")
    );
    let lines = [
        ("Items created", figures.items_created),
        ("Items updated", figures.items_updated),
        ("Items archived", figures.items_archived),
        ("Members joined", figures.members_joined),
    ];
    let active_text = if figures.most_active.is_empty() {
        "Nobody was active this week.".to_string()
    } else {
        figures
            .most_active
            .iter()
            .map(|a| format!("- {} ({} changes)", a.name, a.events))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let text = format!(
        "Your week in \"{workspace}\" on Chronicle, {period}:\n\n{}\n\nMost active members:\n{active_text}\n\n{public_url}\n",
        lines
            .iter()
            .map(|(label, n)| format!("{label}: {n}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let active_html = if figures.most_active.is_empty() {
        "<p>Nobody was active this week.</p>".to_string()
    } else {
        format!(
            "<ol>{}</ol>",
            figures
                .most_active
                .iter()
                .map(|a| format!("<li>{} ({} changes)</li>", escape_html(&a.name), a.events))
                .collect::<String>()
        )
    };
    let html = format!(
        "<p>Your week in <strong>{name}</strong> on Chronicle, {period}:</p>\n<table>{rows}</table>\n\
         <p>Most active members:</p>\n{active_html}\n<p><a href=\"{url}\">Open Chronicle</a></p>\n",
        name = escape_html(workspace),
        rows = lines
            .iter()
            .map(|(label, n)| format!("<tr><td>{label}</td><td>{n}</td></tr>"))
            .collect::<String>(),
        url = escape_html(public_url),
    );
    Email {
        to,
        subject: format!("Your week in {workspace}: {week}"),
        message_id,
        text,
        html,
    }
}

/// Enqueues the summaries due at `now` (see the module docs); returns each week scheduled now
/// with its number of jobs. Several nodes calling it at once schedule each week once.
pub async fn schedule(
    pool: &PgPool,
    now: DateTime<Utc>,
    retry: RetryPolicy,
) -> Result<Vec<(IsoWeek, u64)>, crate::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('chronicle.weekly-summary-schedule'))")
        .execute(&mut *tx)
        .await?;
    let last = sqlx::query_scalar!("SELECT max(week_start) FROM weekly_summary_weeks")
        .fetch_one(&mut *tx)
        .await?
        .map(IsoWeek::of_date);
    let mut scheduled = Vec::new();
    for week in weekly::due_weeks(last, now) {
        let label = week.to_string();
        let enqueued = sqlx::query!(
            r#"INSERT INTO apalis.jobs
                   (id, job_type, job, status, attempts, max_attempts, run_at, priority,
                    idempotency_key)
               SELECT apalis.generate_ulid(), $1,
                      convert_to(json_build_object('event_id', e.event_id,
                                                   'workspace_id', w.id,
                                                   'week', $2::text)::text, 'UTF8'),
                      'Pending', 0, $3, now(), 0, w.id::text || ':' || $2
               FROM workspaces w
               JOIN events e ON e.stream_id = w.id AND e.stream_version = 1
               WHERE w.created_at < $4
               ON CONFLICT (job_type, idempotency_key) DO NOTHING"#,
            QUEUE,
            label,
            retry.max_attempts as i32,
            week.end()
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query!(
            "INSERT INTO weekly_summary_weeks (week_start, week, workspaces) VALUES ($1, $2, $3)",
            week.monday(),
            label,
            enqueued as i64
        )
        .execute(&mut *tx)
        .await?;
        scheduled.push((week, enqueued));
    }
    tx.commit().await?;
    Ok(scheduled)
}

/// Runs the schedule on this node until `stop` is cancelled: at once (a node that starts after
/// every node was down catches up), then every `interval`, at the time `now` tells (the node's
/// clock: the system's, except in tests).
pub async fn run_schedule(
    pool: PgPool,
    interval: Duration,
    now: impl Fn() -> DateTime<Utc>,
    retry: RetryPolicy,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match schedule(&pool, now(), retry).await {
            Ok(weeks) => {
                for (week, jobs) in weeks {
                    tracing::info!(%week, jobs, "weekly summaries scheduled");
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not schedule weekly summaries"),
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counted types are item event types as the enum names them (a renamed variant
    /// would otherwise silently stop counting), and none of those counted on its own.
    #[test]
    fn updates_are_item_event_types_other_than_creation_archiving_and_deletion() {
        use domain::DomainEvent;
        let item_types = domain::ItemEvent::event_types();
        for update in UPDATES {
            assert!(item_types.contains(&update), "{update}");
        }
        let counted_apart = ["ItemCreated", "ItemArchived", "ItemDeleted"];
        let mut expected: Vec<&str> = item_types
            .iter()
            .copied()
            .filter(|t| !counted_apart.contains(t))
            .collect();
        let mut updates = UPDATES.to_vec();
        expected.sort_unstable();
        updates.sort_unstable();
        assert_eq!(updates, expected, "every other item event is an update");
    }

    #[test]
    fn the_email_has_every_figure_in_text_and_html() {
        let figures = Figures {
            items_created: 5,
            items_updated: 4,
            items_archived: 3,
            members_joined: 2,
            most_active: vec![Active {
                name: "Ana <script>".into(),
                events: 7,
            }],
        };
        let week = IsoWeek::parse("2026-W49").unwrap();
        let email = compose(
            "R&D",
            week,
            &figures,
            "https://chronicle.test",
            vec!["ana@example.com".parse().unwrap()],
            message_id(Uuid::nil(), week, "https://chronicle.test"),
        );
        assert_eq!(
            email.message_id,
            format!("<weekly-{}-2026-W49@chronicle.test>", Uuid::nil())
        );
        for expected in [
            "Items created: 5",
            "Items updated: 4",
            "Items archived: 3",
            "Members joined: 2",
            "Ana <script> (7 changes)",
            "2026-11-30 to 2026-12-06",
        ] {
            assert!(
                email.text.contains(expected),
                "{expected} in {}",
                email.text
            );
        }
        assert!(email.html.contains("R&amp;D"));
        assert!(email.html.contains("Ana &lt;script&gt; (7 changes)"));
        assert!(!email.html.contains("<script>"));
    }
}
