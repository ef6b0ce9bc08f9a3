//! Bulk data for the benchmarks: a workspace with its owner, created through the API as any user
//! would, then filled with realistic items written straight through the write path
//! ([`Writes`]: the events appended and the `items` read model updated in one transaction), a
//! thousand items per transaction and a few transactions at a time.
//!
//! The content is deterministic: item number `n` always gets the same title, body, tags, status
//! and age, drawn from [`WORDS`] and [`TAGS`] by a xorshift generator seeded by `n` (only the ids
//! and the clock differ from run to run). Most items are created `ACTIVE`, some stay `DRAFT`, and
//! some are archived later (an `ItemCreated` followed by an `ItemArchived`, as the domain allows
//! it: an item is never created archived). Creation times are spread over the past year.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::api::writes::Writes;

use crate::http_api::client::{Client, uuid_of};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::{ItemBody, ItemEvent, ItemId, ItemStatus, ItemTitle, Tags, UserId, WorkspaceId};
use eventlog::{ExpectedVersion, Metadata, StreamRef};
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

/// Items written per transaction.
pub const ITEMS_PER_TRANSACTION: usize = 1_000;
/// Transactions in flight at once: enough to keep PostgreSQL busy while this process prepares
/// the next batch.
const CONCURRENT_TRANSACTIONS: usize = 3;
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// The actor recorded in the generated events' metadata.
const GENERATOR: &str = "bench-generator";

/// Words of titles and bodies, the most frequent first (they are drawn with a skew towards the
/// front of the list, as in real text).
#[rustfmt::skip]
pub const WORDS: &[&str] = &[
    "the", "for", "and", "with", "to", "of", "on", "in", "from", "by", "review", "update", "report",
    "invoice", "meeting", "budget", "quarterly", "customer", "project", "team", "plan", "draft",
    "final", "new", "client", "sales", "payment", "contract", "schedule", "marketing", "product",
    "release", "roadmap", "notes", "summary", "account", "vendor", "order", "purchase", "approval",
    "request", "policy", "proposal", "analysis", "forecast", "revenue", "expense", "travel",
    "hiring", "onboarding", "training", "support", "ticket", "issue", "launch", "campaign",
    "pricing", "strategy", "audit", "compliance", "security", "migration", "deadline", "milestone",
    "deliverable", "feedback", "agenda", "minutes", "follow", "up", "action", "items", "monthly",
    "weekly", "annual", "office", "supplier", "shipment", "inventory", "warehouse", "logistics",
    "partner", "renewal", "license", "subscription", "refund", "discount", "quote", "estimate",
    "receipt", "ledger", "tax", "payroll", "benefits", "reimbursement", "headcount", "recruiting",
    "interview", "candidate", "offer", "performance", "goals", "objectives", "metrics", "dashboard",
    "kpi", "churn", "retention", "growth", "pipeline", "lead", "prospect", "demo", "webinar",
    "conference", "event", "sponsor", "newsletter", "blog", "website", "design", "mockup",
    "prototype", "feature", "bug", "fix", "test", "deployment", "server", "database", "backup",
    "incident", "outage", "postmortem", "architecture", "integration", "api", "documentation",
    "handbook", "guide", "checklist", "template", "process", "workflow", "board", "investor",
    "funding", "cash", "flow", "balance", "sheet", "statement", "bank", "reconciliation",
    "accounts", "payable", "receivable", "credit", "debit", "loan", "interest", "capital", "equity",
    "shares", "dividend", "risk", "legal", "agreement", "terms", "privacy", "gdpr", "vacation",
    "holiday", "leave", "rent", "lease", "equipment", "laptop", "software", "hardware", "cloud",
    "costs", "savings", "efficiency", "quality", "standard", "inspection", "certificate", "region",
    "europe", "north", "america", "asia", "market", "research", "survey", "results", "insights",
    "trends", "competitor", "benchmark", "baseline", "target", "gap", "mitigation", "owner",
    "status", "open", "closed", "pending", "blocked", "urgent", "priority", "high", "low", "medium",
    "q1", "q2", "q3", "q4", "january", "february", "march", "april", "may", "june", "july",
    "august", "september", "october", "november", "december", "monday", "friday", "next", "last",
    "this", "week", "month", "year", "before", "after", "during", "all", "every", "each", "our",
    "their", "please", "check", "confirm", "send", "share", "prepare", "collect", "compare",
    "match", "flag", "attach", "assign", "approve", "reject", "sign", "submit", "finish", "start",
    "move", "merge", "split", "cancel", "archive", "restore", "publish", "organize", "discuss",
    "decide", "agree", "document", "clarify", "escalate", "track", "measure", "improve", "reduce",
    "increase", "keep", "missing", "late", "early", "overdue", "duplicate", "wrong", "correct",
    "complete", "partial", "shared", "internal", "external", "remote", "onsite", "lunch", "offsite",
    "workshop", "kickoff", "retrospective", "standup", "sprint", "backlog", "story", "epic",
    "scope",
];

/// Tags, the most used first.
#[rustfmt::skip]
pub const TAGS: &[&str] = &[
    "finance", "sales", "marketing", "engineering", "hr", "legal", "operations", "product",
    "design", "support", "urgent", "q1", "q2", "q3", "q4", "2025", "internal", "external",
    "customer", "vendor", "travel", "hiring", "compliance", "security", "infrastructure",
    "research", "planning", "review", "follow-up", "archive-candidate",
];

/// The share of items (per thousand) left `DRAFT`, and archived; the rest are `ACTIVE`.
const DRAFT_PER_MILLE: u64 = 150;
const ARCHIVED_PER_MILLE: u64 = 150;

/// A user signed up through the API, with the workspace they created: the owner of generated
/// items, and a member who may read the workspace's events.
pub struct Owner {
    /// Their access token: it expires (15 minutes by default), so a phase that uses it after
    /// a long one calls [`Owner::log_in`] first.
    pub token: String,
    email: String,
    pub user_id: Uuid,
    /// The workspace's global (GraphQL) id.
    pub workspace: String,
    pub workspace_id: Uuid,
}

impl Owner {
    /// Signs up `name` (a lowercase word: the email is `name@example.com`) on the server at
    /// `address` and creates their workspace, both through GraphQL over HTTP; `pool` (the
    /// server's database) gives the user's id, the workspace's is read from its global id.
    pub async fn sign_up(address: SocketAddr, pool: &PgPool, name: &str) -> anyhow::Result<Owner> {
        let graphql = Client::new(address)?;
        let email = format!("{name}@example.com");
        let input = json!({
            "email": email,
            "password": PASSWORD,
            "displayName": name,
        });
        let data = graphql
            .call(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
                json!({ "input": input }),
            )
            .await?;
        let token = data["signUp"]["accessToken"]
            .as_str()
            .context("signUp returned no access token")?
            .to_string();
        let data = graphql
            .call(
                Some(&token),
                "mutation($name: String!) {
               createWorkspace(input: {name: $name, region: EU}) { workspace { id } } }",
                json!({ "name": format!("{name}'s workspace") }),
            )
            .await?;
        let workspace = data["createWorkspace"]["workspace"]["id"]
            .as_str()
            .context("createWorkspace returned no id")?
            .to_string();
        let user_id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(&email)
            .fetch_one(pool)
            .await
            .context("looking up the new user")?;
        let workspace_id = uuid_of(&workspace)?;
        Ok(Owner {
            token,
            email,
            user_id,
            workspace,
            workspace_id,
        })
    }

    /// Signs in again and keeps the new access token: call it right before a phase that uses
    /// HTTP after a long one (generating millions of items outlasts a token).
    pub async fn log_in(&mut self, address: SocketAddr) -> anyhow::Result<()> {
        let data = Client::new(address)?
            .call(
                None,
                "mutation($email: String!, $password: String!) {
                   logIn(email: $email, password: $password) { accessToken } }",
                json!({ "email": self.email, "password": PASSWORD }),
            )
            .await?;
        self.token = data["logIn"]["accessToken"]
            .as_str()
            .context("logIn returned no access token")?
            .to_string();
        Ok(())
    }
}

/// The password of every [`Owner`].
const PASSWORD: &str = "correct horse battery staple";

/// What [`items`] wrote.
pub struct Generated {
    pub items: usize,
    pub events: usize,
    pub elapsed: Duration,
}

impl Generated {
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }
}

/// Creates items `0..count` (see the module docs) in `workspace_id`, authored by `author` (who
/// should be a member), and reports progress on stderr.
pub async fn items(
    writes: &Writes,
    workspace_id: Uuid,
    author: Uuid,
    count: usize,
) -> anyhow::Result<Generated> {
    let started = Instant::now();
    let now = Utc::now();
    let written = Arc::new(AtomicUsize::new(0));
    let mut batches = (0..count).step_by(ITEMS_PER_TRANSACTION).map(|first| {
        let batch = first..(first + ITEMS_PER_TRANSACTION).min(count);
        let (writes, written) = (writes.clone(), written.clone());
        async move {
            let events = write_batch(&writes, workspace_id, author, batch.clone(), now).await?;
            written.fetch_add(batch.len(), Ordering::Relaxed);
            anyhow::Ok(events)
        }
    });
    let mut running = JoinSet::new();
    let mut events = 0;
    let mut reported = Instant::now();
    loop {
        while running.len() < CONCURRENT_TRANSACTIONS
            && let Some(batch) = batches.next()
        {
            running.spawn(batch);
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        events += done.context("a generator task panicked")??;
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            let items = written.load(Ordering::Relaxed);
            eprintln!(
                "generate: {items}/{count} items ({:.0} items/s)",
                items as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let generated = Generated {
        items: count,
        events,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "generate: {count} items ({events} events) in {:.1} s ({:.0} items/s)",
        generated.elapsed.as_secs_f64(),
        generated.items_per_second()
    );
    Ok(generated)
}

/// How many items [`items`] must create to write at least `events` events.
pub fn items_for_events(events: usize) -> usize {
    let (mut items, mut written) = (0, 0);
    while written < events {
        written += Plan::of(items).events();
        items += 1;
    }
    items
}

/// Writes items `batch` in one transaction; returns the number of events appended.
async fn write_batch(
    writes: &Writes,
    workspace_id: Uuid,
    author: Uuid,
    batch: Range<usize>,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let metadata = Metadata::system(GENERATOR);
    let workspace = WorkspaceId::from_uuid(workspace_id);
    let author = UserId::from_uuid(author);
    let events = writes
        .run(async |conn| {
            let mut events = 0;
            for n in batch {
                let item_id = ItemId::new();
                let stream = StreamRef {
                    stream_type: "item",
                    stream_id: item_id.as_uuid(),
                    workspace_id: Some(workspace_id),
                };
                let item = Plan::of(n).events_for(item_id, workspace, author, now);
                events += item.len();
                writes
                    .append(conn, &stream, ExpectedVersion::NoStream, item, &metadata)
                    .await?;
            }
            Ok(events)
        })
        .await
        .context("writing generated items")?;
    Ok(events)
}

/// The content of one generated item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    title: ItemTitle,
    body: ItemBody,
    tags: Tags,
    /// The status it is created with (`DRAFT` or `ACTIVE`).
    created_as: ItemStatus,
    /// How long before the generator's `now` it was created.
    age: chrono::Duration,
    /// How long after its creation it was archived, if it was.
    archived_after: Option<chrono::Duration>,
}

impl Plan {
    /// Item number `n`.
    fn of(n: usize) -> Plan {
        let mut rng = Rng::seeded(n as u64);
        let title = capitalized(&rng.words(3, 8));
        let sentences = match rng.below(20) {
            0 => 0,
            _ => 1 + rng.below(6),
        };
        let body = (0..sentences)
            .map(|_| format!("{}.", capitalized(&rng.words(6, 16))))
            .collect::<Vec<_>>()
            .join(" ");
        let tag_count = match rng.below(100) {
            0..20 => 0,
            20..55 => 1,
            55..85 => 2,
            _ => 3,
        };
        let tags = (0..tag_count)
            .map(|_| TAGS[rng.skewed(TAGS.len())].to_string())
            .collect();
        let age = chrono::Duration::seconds(rng.below(365 * 24 * 3600) as i64);
        let (created_as, archived_after) = match rng.below(1000) as u64 {
            mix if mix < DRAFT_PER_MILLE => (ItemStatus::Draft, None),
            mix if mix < DRAFT_PER_MILLE + ARCHIVED_PER_MILLE => {
                // Archived within two months of its creation, from a draft now and then.
                let status = match rng.below(5) {
                    0 => ItemStatus::Draft,
                    _ => ItemStatus::Active,
                };
                let after = chrono::Duration::seconds(rng.below(60 * 24 * 3600) as i64);
                (status, Some(after.min(age)))
            }
            _ => (ItemStatus::Active, None),
        };
        Plan {
            title: ItemTitle::parse(&title).expect("generated titles are short"),
            body: ItemBody::parse(&body).expect("generated bodies are short"),
            tags: Tags::parse(tags).expect("generated tags are valid"),
            created_as,
            age,
            archived_after,
        }
    }

    /// How many events the item takes.
    fn events(&self) -> usize {
        1 + usize::from(self.archived_after.is_some())
    }

    /// The item's events, for a generator that started at `now`.
    fn events_for(
        self,
        item_id: ItemId,
        workspace_id: WorkspaceId,
        author: UserId,
        now: DateTime<Utc>,
    ) -> Vec<ItemEvent> {
        let created_at = now - self.age;
        let mut events = vec![ItemEvent::ItemCreated {
            item_id,
            workspace_id,
            title: self.title,
            body: self.body,
            tags: self.tags,
            status: self.created_as,
            author,
            created_at,
        }];
        if let Some(after) = self.archived_after {
            events.push(ItemEvent::ItemArchived {
                from: self.created_as,
                at: created_at + after,
            });
        }
        events
    }
}

/// `words` with its first letter in upper case.
fn capitalized(words: &str) -> String {
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A xorshift64* generator: small, fast, and good enough to pick words.
struct Rng(u64);

impl Rng {
    /// A generator for item `n`, its seed scrambled (splitmix64) so that neighbours differ.
    fn seeded(n: u64) -> Rng {
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// In `0..n`, small values far more often than large ones.
    fn skewed(&mut self, n: usize) -> usize {
        self.below(n).min(self.below(n)).min(self.below(n))
    }

    /// `min..=max` words, space separated.
    fn words(&mut self, min: usize, max: usize) -> String {
        let count = min + self.below(max - min + 1);
        (0..count)
            .map(|_| WORDS[self.skewed(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_the_same_every_time() {
        assert_eq!(Plan::of(7), Plan::of(7));
        assert_ne!(Plan::of(7), Plan::of(8));
    }

    #[test]
    fn statuses_follow_the_intended_mix() {
        let plans: Vec<Plan> = (0..10_000).map(Plan::of).collect();
        let per_mille = |pred: &dyn Fn(&Plan) -> bool| {
            plans.iter().filter(|plan| pred(plan)).count() as u64 / 10
        };
        let archived = per_mille(&|plan| plan.archived_after.is_some());
        let draft = per_mille(&|plan| {
            plan.archived_after.is_none() && plan.created_as == ItemStatus::Draft
        });
        assert!(
            archived.abs_diff(ARCHIVED_PER_MILLE) < 20,
            "{archived}‰ archived"
        );
        assert!(draft.abs_diff(DRAFT_PER_MILLE) < 20, "{draft}‰ drafts");
        assert!(plans.iter().all(|plan| plan.tags.len() <= 3));
        assert!(
            plans
                .iter()
                .any(|plan| plan.body.as_str().contains("invoice"))
        );
    }

    #[test]
    fn items_for_events_counts_archived_items_twice() {
        assert_eq!(items_for_events(0), 0);
        let n = items_for_events(1_000);
        let events: usize = (0..n).map(|i| Plan::of(i).events()).sum();
        assert!(events >= 1_000);
        assert!(events - Plan::of(n - 1).events() < 1_000);
    }
}
