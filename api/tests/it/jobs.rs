//! Background jobs end to end: an invite leads to exactly one email on a real SMTP server
//! (aiosmtpd on loopback, writing a maildir), whose token works, and one `InviteEmailSent`;
//! a mail server that is down is retried with backoff until it is back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jobs::mail::{SmtpSettings, TlsMode};
use jobs::retry::RetryPolicy;
use pgcluster::TestDatabase;
use serde_json::json;
use sqlx::PgPool;

use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp};

const INVITE: &str = "mutation($w: ID!, $email: String!, $role: Role!) {
    inviteMember(workspaceId: $w, email: $email, role: $role) { invite { id } token } }";
const ACCEPT: &str =
    "mutation($t: String!) { acceptInvite(token: $t) { workspace { name viewerRole } } }";
/// How long a condition may take to come true before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A real SMTP server on loopback: aiosmtpd writing each message into a maildir. Killed when
/// dropped.
pub struct SmtpServer {
    port: u16,
    maildir: tempfile::TempDir,
    process: Option<tokio::process::Child>,
}

impl SmtpServer {
    /// A server on a free port, not started.
    pub fn on_free_port() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        SmtpServer {
            port,
            maildir: tempfile::tempdir().unwrap(),
            process: None,
        }
    }

    /// Starts it and waits until it accepts connections.
    pub async fn start(&mut self) {
        let process = tokio::process::Command::new("aiosmtpd")
            .args(["-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // A directory that does not exist yet: aiosmtpd makes it a maildir.
            .arg(self.maildir.path().join("mail"))
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd (Debian's python3-aiosmtpd) runs");
        self.process = Some(process);
        let port = self.port;
        eventually("the SMTP server listens", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    pub fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            username: None,
            password: None,
            tls: TlsMode::None,
        }
    }

    /// The messages received so far, as text.
    pub fn messages(&self) -> Vec<String> {
        messages_in(&self.maildir.path().join("mail").join("new"))
    }
}

fn messages_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Waits until `condition` holds, checking it again and again; fails after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node running the job workers against `smtp`, retrying fast.
pub async fn node_with_workers(
    db: &Arc<TestDatabase>,
    smtp: SmtpSettings,
    retry: RetryPolicy,
) -> TestApp {
    jobs::setup(db.pool()).await.unwrap();
    TestApp::spawn_configured(db, |config| {
        config.workers = true;
        config.smtp = Some(smtp);
        config.smtp_from = "Chronicle <noreply@chronicle.test>".into();
        config.public_url = "https://chronicle.test".into();
        config.job_retry = retry;
        config.job_poll_interval = Duration::from_millis(50);
    })
    .await
}

/// (event type, actor, causation id) of every event of `event_type`.
pub async fn events_of(
    pool: &PgPool,
    event_type: &str,
) -> Vec<(String, serde_json::Value, Option<String>, uuid::Uuid)> {
    sqlx::query_as::<_, (String, serde_json::Value, Option<String>, uuid::Uuid)>(
        "SELECT event_type, metadata->'actor', metadata->>'causation_id', event_id
         FROM events WHERE event_type = $1",
    )
    .bind(event_type)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The (status, attempts) of the jobs of `queue`, oldest first.
pub async fn queue_jobs(pool: &PgPool, queue: &str) -> Vec<(String, i32)> {
    sqlx::query_as::<_, (String, i32)>(
        "SELECT status, attempts FROM apalis.jobs WHERE job_type = $1 ORDER BY id",
    )
    .bind(queue)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The invite-email jobs' (status, attempts).
async fn invite_jobs(pool: &PgPool) -> Vec<(String, i32)> {
    queue_jobs(pool, jobs::invite_email::QUEUE).await
}

/// A received email: its headers, and its text and HTML parts decoded.
pub struct Received {
    pub to: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

pub fn parse(raw: &str) -> Received {
    let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let header = |name: &str| {
        mailparse::MailHeaderMap::get_first_value(&mail.headers[..], name).unwrap_or_default()
    };
    let part = |mime: &str| {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .unwrap_or_else(|| panic!("no {mime} part in {raw}"))
            .get_body()
            .unwrap()
    };
    Received {
        to: header("To"),
        message_id: header("Message-ID"),
        text: part("text/plain"),
        html: part("text/html"),
    }
}

/// The token in an invite email's accept link.
fn token_in(text: &str) -> String {
    let start = text.find("token=").expect("the email has an accept link") + "token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Retries within a test's patience: up to 50 runs, 20–200 ms apart.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 50,
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn an_invite_email_arrives_once_with_a_token_that_works() {
    let mut smtp = SmtpServer::on_free_port();
    smtp.start().await;
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node_with_workers(&db, smtp.settings(), fast_retry()).await;
    let (ana, guest) = (app.sign_up("ana").await, app.sign_up("guest").await);
    let ws = create_workspace(&app, &ana, "Acme & Sons").await;

    let invited = ana
        .gql(
            &app,
            INVITE,
            json!({ "w": ws, "email": "guest@example.com", "role": "ADMIN" }),
        )
        .await;
    assert!(
        invited["data"]["inviteMember"]["token"].is_string(),
        "{invited}"
    );

    eventually("the job is done", async || {
        invite_jobs(db.pool()).await == [("Done".to_string(), 1)]
    })
    .await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = parse(&messages[0]);
    assert_eq!(mail.to, "guest@example.com");
    assert!(mail.text.contains("\"Acme & Sons\""), "{}", mail.text);
    assert!(
        mail.html.contains("<strong>Acme &amp; Sons</strong>"),
        "{}",
        mail.html
    );
    assert!(
        mail.text
            .contains("https://chronicle.test/invites/accept?token="),
        "{}",
        mail.text
    );
    assert!(
        mail.html
            .contains("https://chronicle.test/invites/accept?token="),
        "{}",
        mail.html
    );

    let created = events_of(db.pool(), "InviteCreated").await;
    let sent = events_of(db.pool(), "InviteEmailSent").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].1,
        json!({ "kind": "system", "name": "invite-email-job" })
    );
    assert_eq!(
        sent[0].2,
        Some(created[0].3.to_string()),
        "caused by the invite"
    );
    assert_eq!(
        mail.message_id,
        format!("<invite-{}@chronicle.test>", created[0].3)
    );

    let accepted = guest
        .gql(&app, ACCEPT, json!({ "t": token_in(&mail.text) }))
        .await;
    assert_eq!(
        accepted["data"]["acceptInvite"]["workspace"]["viewerRole"], "ADMIN",
        "{accepted}"
    );
}

#[tokio::test]
async fn a_mail_server_that_is_down_is_retried_until_it_is_back() {
    let mut smtp = SmtpServer::on_free_port();
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let app = node_with_workers(&db, smtp.settings(), fast_retry()).await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    ana.gql(
        &app,
        INVITE,
        json!({ "w": ws, "email": "guest@example.com", "role": "MEMBER" }),
    )
    .await;

    // Backoff: a failed run moves the next one to after it (apalis alone would fetch the job
    // again at once: its `run_at` would stay at the enqueue time, before the last run's lock).
    let mut backed_off = None;
    eventually("the job fails twice", async || {
        backed_off = sqlx::query_scalar::<_, bool>(
            "SELECT run_at > lock_at FROM apalis.jobs
             WHERE job_type = $1 AND status = 'Failed' AND attempts >= 2",
        )
        .bind(jobs::invite_email::QUEUE)
        .fetch_optional(db.pool())
        .await
        .unwrap();
        backed_off.is_some()
    })
    .await;
    assert_eq!(
        backed_off,
        Some(true),
        "the failed job waits before its next run"
    );
    let last_error: Option<String> =
        sqlx::query_scalar("SELECT last_result::text FROM apalis.jobs WHERE job_type = $1")
            .bind(jobs::invite_email::QUEUE)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(
        last_error.is_some_and(|e| e.contains("mail")),
        "the failure is recorded"
    );
    assert!(events_of(db.pool(), "InviteEmailSent").await.is_empty());

    smtp.start().await;
    eventually("the job succeeds once the server is back", async || {
        matches!(invite_jobs(db.pool()).await.as_slice(), [(status, _)] if status == "Done")
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(events_of(db.pool(), "InviteEmailSent").await.len(), 1);
}

const FAILED: &str = "query($w: ID!) { failedJobs(workspaceId: $w, first: 10) { edges { node {
    id kind workspaceId causedByEventId attempts maxAttempts dead lastError failedAt } } } }";
const RETRY: &str = "mutation($id: ID!) { retryJob(id: $id) { job { id dead } position } }";

/// A team on `db`, set up on a node without workers (the member's own invite, accepted at
/// once, is then dispatched and found no longer pending: no mail, no failure): ana owns the
/// workspace returned, max is a MEMBER of it, sue is SUPPORT staff, eve a stranger.
pub async fn team(db: &Arc<TestDatabase>) -> (TestApp, [Session; 4], String) {
    let setup = TestApp::spawn_on(db).await;
    let team = [
        setup.sign_up("ana").await,
        setup.sign_up("max").await,
        setup.sign_up("sue").await,
        setup.sign_up("eve").await,
    ];
    let ws = create_workspace(&setup, &team[0], "Acme").await;
    add_member(&setup, &team[0], &ws, &team[1], domain::Role::Member).await;
    let writes = api::writes::Writes::new(eventlog::EventLog::new(db.pool().clone()));
    api::operator::set_staff_role(&writes, "sue@example.com", domain::StaffRole::Support, true)
        .await
        .unwrap();
    (setup, team, ws)
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_dead_visible_and_retried_by_hand() {
    use crate::error_codes;

    let mut smtp = SmtpServer::on_free_port();
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let (_setup, [ana, max, sue, eve], ws) = team(&db).await;

    let two_runs = RetryPolicy {
        max_attempts: 2,
        ..fast_retry()
    };
    let app = node_with_workers(&db, smtp.settings(), two_runs).await;
    ana.gql(
        &app,
        INVITE,
        json!({ "w": ws, "email": "guest@example.com", "role": "MEMBER" }),
    )
    .await;

    let mut failed = serde_json::Value::Null;
    eventually("the job is dead", async || {
        failed = ana.gql(&app, FAILED, json!({ "w": ws })).await;
        failed["data"]["failedJobs"]["edges"][0]["node"]["dead"] == json!(true)
    })
    .await;
    let edges = failed["data"]["failedJobs"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{failed}");
    let job = &edges[0]["node"];
    let invite_event = events_of(db.pool(), "InviteCreated")
        .await
        .last()
        .unwrap()
        .3;
    let event_id = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Event:{invite_event}"))
    };
    assert_eq!(job["kind"], "chronicle.invite-email");
    assert_eq!(job["workspaceId"], json!(ws));
    assert_eq!(job["causedByEventId"], json!(event_id), "{job}");
    assert_eq!(
        (job["attempts"].clone(), job["maxAttempts"].clone()),
        (json!(2), json!(2))
    );
    assert!(
        job["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("mail")),
        "{job}"
    );
    assert!(job["failedAt"].is_string(), "{job}");
    // Dead means dead: it is not run a third time.
    assert_eq!(
        invite_jobs(db.pool())
            .await
            .iter()
            .filter(|(s, _)| s == "Failed")
            .count(),
        1
    );
    // The death is in the log once, by the system, caused by the invite.
    let died = events_of(db.pool(), "JobDied").await;
    assert_eq!(died.len(), 1, "{died:?}");
    assert_eq!(died[0].1, json!({ "kind": "system", "name": "job-worker" }));
    assert_eq!(died[0].2, Some(invite_event.to_string()));

    // Who sees it: owners and admins, and SUPPORT staff; not members; not strangers.
    let seen_by_support = sue.gql(&app, FAILED, json!({ "w": ws })).await;
    assert_eq!(
        seen_by_support["data"]["failedJobs"]["edges"][0]["node"]["id"],
        job["id"]
    );
    assert_eq!(
        error_codes(&max.gql(&app, FAILED, json!({ "w": ws })).await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        error_codes(&eve.gql(&app, FAILED, json!({ "w": ws })).await),
        ["NOT_FOUND"]
    );
    let id = job["id"].clone();
    assert_eq!(
        error_codes(&max.gql(&app, RETRY, json!({ "id": id })).await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        error_codes(&eve.gql(&app, RETRY, json!({ "id": id })).await),
        ["NOT_FOUND"]
    );

    smtp.start().await;
    let retried = ana.gql(&app, RETRY, json!({ "id": id })).await;
    assert_eq!(retried["data"]["retryJob"]["job"]["id"], id, "{retried}");
    assert!(
        retried["data"]["retryJob"]["position"].is_string(),
        "{retried}"
    );
    let retries = events_of(db.pool(), "JobRetried").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(
        retries[0].1["kind"], "user",
        "the owner retried it: {retries:?}"
    );
    eventually("the retried job is delivered", async || {
        smtp.messages().len() == 1
    })
    .await;
    eventually("InviteEmailSent is recorded", async || {
        events_of(db.pool(), "InviteEmailSent").await.len() == 1
    })
    .await;
    let failed = ana.gql(&app, FAILED, json!({ "w": ws })).await;
    assert_eq!(failed["data"]["failedJobs"]["edges"], json!([]), "{failed}");
    // A job that is no longer failed is not retried again.
    assert_eq!(
        error_codes(&ana.gql(&app, RETRY, json!({ "id": id })).await),
        ["NOT_FOUND"]
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn operators_see_dead_jobs_and_retry_them_from_the_command_line() {
    use crate::binary::chronicle;

    let mut smtp = SmtpServer::on_free_port();
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    let one_run = RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    };
    let app = node_with_workers(&db, smtp.settings(), one_run).await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    ana.gql(
        &app,
        INVITE,
        json!({ "w": ws, "email": "guest@example.com", "role": "MEMBER" }),
    )
    .await;
    eventually("the job is dead", async || {
        invite_jobs(db.pool()).await == [("Failed".to_string(), 1)]
    })
    .await;
    let id: String = sqlx::query_scalar("SELECT id FROM apalis.jobs")
        .fetch_one(db.pool())
        .await
        .unwrap();

    let status = chronicle(&db.url(), &["jobs", "status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let counts: Vec<&str> = out
        .lines()
        .find(|line| line.starts_with(jobs::invite_email::QUEUE))
        .unwrap_or_else(|| panic!("{out}"))
        .split_whitespace()
        .skip(1)
        .collect();
    // pending, running, retrying, dead, done
    assert_eq!(counts, ["0", "0", "0", "1", "0"], "{out}");
    let dead_line = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(dead_line.contains(jobs::invite_email::QUEUE), "{out}");

    smtp.start().await;
    let retried = chronicle(&db.url(), &["jobs", "retry", &id]);
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    let retries = events_of(db.pool(), "JobRetried").await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(
        retries[0].1,
        json!({ "kind": "system", "name": "chronicle jobs retry" })
    );
    eventually("the retried job is delivered", async || {
        invite_jobs(db.pool()).await == [("Done".to_string(), 2)]
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    let again = chronicle(&db.url(), &["jobs", "retry", &id]);
    assert!(!again.status.success(), "a job that is done is not retried");
    let garbage = chronicle(&db.url(), &["jobs", "retry", "not-a-job"]);
    assert!(!garbage.status.success());
}

#[tokio::test]
async fn a_stopped_worker_puts_back_the_job_it_could_not_finish_and_exits_0() {
    // A mail server that accepts connections and never answers: the job hangs in it.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    jobs::setup(db.pool()).await.unwrap();
    let app = TestApp::spawn_on(&db).await;
    let ana = app.sign_up("ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;

    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_chronicle"))
        .arg("worker")
        .env("DATABASE_URL", db.url())
        .env("CHRONICLE_SMTP_HOST", "127.0.0.1")
        .env("CHRONICLE_SMTP_PORT", stalled_port.to_string())
        .env("CHRONICLE_SMTP_TLS", "none")
        .env("CHRONICLE_SHUTDOWN_TIMEOUT_MS", "500")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let invited = ana
        .gql(
            &app,
            INVITE,
            json!({ "w": ws, "email": "guest@example.com", "role": "MEMBER" }),
        )
        .await;
    assert!(invited["data"]["inviteMember"].is_object(), "{invited}");
    // The worker took the job: it is connected to the mail server, waiting for its greeting.
    let (_held, _) = tokio::time::timeout(PATIENCE, stalled.accept())
        .await
        .expect("the worker connects to the mail server")
        .unwrap();
    let locked = || async {
        sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT status, lock_by FROM apalis.jobs WHERE job_type = $1",
        )
        .bind(jobs::invite_email::QUEUE)
        .fetch_all(db.pool())
        .await
        .unwrap()
    };
    let status_is = async |wanted: &str| {
        invite_jobs(db.pool())
            .await
            .iter()
            .any(|(status, _)| status == wanted)
    };
    eventually("the job runs", async || status_is("Running").await).await;

    // SAFETY: kill with the worker's pid and a valid signal.
    unsafe { libc::kill(worker.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(PATIENCE, worker.wait())
        .await
        .expect("the worker stops")
        .unwrap();
    assert!(status.success(), "{status}");
    // Not left locked until its heartbeats are missed: pending again at once.
    assert_eq!(locked().await, [("Pending".to_string(), None)]);

    // Another worker, with a mail server that answers, sends it: once.
    let mut smtp = SmtpServer::on_free_port();
    smtp.start().await;
    let _node = node_with_workers(&db, smtp.settings(), fast_retry()).await;
    eventually("the job is done", async || status_is("Done").await).await;
    assert_eq!(smtp.messages().len(), 1);
}
