//! The console at `/console` over real HTTP, as a browser without JavaScript uses it: cookies,
//! forms with CSRF tokens, redirects, and the HTML it gets.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::json;

use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp};

const PASSWORD: &str = "correct horse battery";
const CREATE_ITEM: &str = "mutation($w: ID!, $t: String!) {
    createItem(input: { workspaceId: $w, title: $t }) { item { id version } position } }";
const RETITLE: &str = "mutation($id: ID!, $v: Int!, $t: String!) {
    updateItem(input: { id: $id, expectedVersion: $v, title: $t }) { item { version } position } }";

/// A page as the browser got it.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `<input name="NAME" value="…">` on the page.
    fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }

    /// Every `Set-Cookie` header.
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// A browser: a cookie jar, no automatic redirects.
struct Browser {
    app: TestApp,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            app: app.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self
            .client
            .get(self.app.url(path))
            .header(header::COOKIE, self.cookie_header());
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(self.app.url(path))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        self.send(request).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.unwrap();
        let page = Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        };
        for cookie in page.set_cookies() {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        page
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let token = form.input("form_token");
        self.post(
            "/console/sign-in",
            &[
                ("email", email),
                ("password", password),
                ("form_token", &token),
            ],
        )
        .await
    }

    /// Signs in and expects to land on the workspaces page.
    async fn signed_in(app: &TestApp, name: &str) -> Browser {
        let mut browser = Browser::new(app);
        let page = browser
            .sign_in(&format!("{name}@example.com"), PASSWORD)
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), "/console/workspaces");
        browser
    }
}

async fn grant(app: &TestApp, name: &str, role: domain::StaffRole) {
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, &format!("{name}@example.com"), role, true)
        .await
        .unwrap();
}

async fn create_item(app: &TestApp, who: &Session, ws: &str, title: &str) -> (String, String) {
    let response = who
        .gql(app, CREATE_ITEM, json!({ "w": ws, "t": title }))
        .await;
    let created = &response["data"]["createItem"];
    (
        created["item"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{response}"))
            .to_string(),
        created["position"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_signed_out_browser_is_sent_to_sign_in_and_every_page_is_locked_down() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    for path in [
        "/console",
        "/console/workspaces",
        "/console/workspaces/x/audit",
        "/console/workspaces/x/items/y",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        let expected = if path == "/console" {
            "/console/workspaces"
        } else {
            "/console/sign-in"
        };
        assert_eq!(page.location(), expected, "{path}");
    }
    let page = browser.get("/console/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        !page.body.contains("<script>") && !page.body.contains("style="),
        "no inline script or style: {}",
        page.body
    );
    // The assets come from the binary.
    let css = browser.get("/console/assets/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        browser.get("/console/assets/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_and_signing_out_ends_the_session_on_every_node() {
    let app = TestApp::spawn().await;
    let other_node = TestApp::spawn_on(&app.db).await;
    let owner = app.sign_up("Ana").await;
    create_workspace(&app, &owner, "Acme").await;

    let mut browser = Browser::new(&app);
    let signed_in = browser.sign_in("ana@example.com", PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let cookie = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("chronicle_console="))
        .expect("the sign-in cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let page = browser.get("/console/workspaces").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Acme"), "{}", page.body);

    // The same cookie works on another node.
    let mut elsewhere = Browser::new(&other_node);
    elsewhere.cookies = browser.cookies.clone();
    assert_eq!(
        elsewhere.get("/console/workspaces").await.status,
        StatusCode::OK
    );

    // Signing out is a form: without this sign-in's CSRF token nothing happens.
    let csrf = page.input("csrf");
    let forged = browser
        .post("/console/sign-out", &[("csrf", "not-the-token")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get("/console/workspaces").await.status,
        StatusCode::OK
    );
    let missing = browser.post("/console/sign-out", &[]).await;
    assert!(missing.status.is_client_error(), "{}", missing.status);
    assert_eq!(
        browser.get("/console/workspaces").await.status,
        StatusCode::OK
    );

    let kept = browser.cookies.clone();
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/console/sign-in");
    assert!(!browser.cookies.contains_key("chronicle_console"));
    // The cookie, replayed, no longer signs in: here at once, on the other node once the
    // notice arrives (which the session memory waits for before trusting itself again).
    let mut replay = Browser::new(&app);
    replay.cookies = kept.clone();
    assert_eq!(
        replay.get("/console/workspaces").await.status,
        StatusCode::SEE_OTHER
    );
    let mut replay_elsewhere = Browser::new(&other_node);
    replay_elsewhere.cookies = kept;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = replay_elsewhere.get("/console/workspaces").await;
        if page.status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other node still accepts it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_wrong_password_and_a_forged_sign_in_form_are_refused() {
    let app = TestApp::spawn().await;
    app.sign_up("Ana").await;
    let mut browser = Browser::new(&app);
    let wrong = browser.sign_in("ana@example.com", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("Invalid email or password"),
        "{}",
        wrong.body
    );
    assert!(!browser.cookies.contains_key("chronicle_console"));
    let unknown = browser.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("Invalid email or password"));

    // A form posted from elsewhere has no form cookie to match.
    let mut stranger = Browser::new(&app);
    let forged = stranger
        .post(
            "/console/sign-in",
            &[
                ("email", "ana@example.com"),
                ("password", PASSWORD),
                ("form_token", "guessed"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("chronicle_console"));
}

#[tokio::test]
async fn members_and_viewers_get_no_access_and_another_tenants_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let [owner, member, viewer, other] = ["Ana", "Me", "Vi", "Ot"].map(|n| app.sign_up(n));
    let (owner, member, viewer, other) = (owner.await, member.await, viewer.await, other.await);
    let ws = create_workspace(&app, &owner, "Acme").await;
    add_member(&app, &owner, &ws, &member, domain::Role::Member).await;
    add_member(&app, &owner, &ws, &viewer, domain::Role::Viewer).await;
    let theirs = create_workspace(&app, &other, "Elsewhere").await;
    let (their_item, _) = create_item(&app, &other, &theirs, "secret plan").await;

    for name in ["Me", "Vi"] {
        let mut browser = Browser::signed_in(&app, name).await;
        let page = browser.get("/console/workspaces").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{name}");
        assert!(page.body.contains("No access"), "{}", page.body);
        let timeline = browser
            .get(&format!("/console/workspaces/{ws}/audit"))
            .await;
        assert_eq!(
            timeline.status,
            StatusCode::FORBIDDEN,
            "{name}: {}",
            timeline.body
        );
    }

    let mut browser = Browser::signed_in(&app, "Ana").await;
    for path in [
        format!("/console/workspaces/{theirs}/audit"),
        format!("/console/workspaces/{theirs}/verify"),
        format!("/console/workspaces/{theirs}/items/{their_item}"),
        // Another tenant's item under one's own workspace has no history there.
        format!("/console/workspaces/{ws}/items/{their_item}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        assert!(!page.body.contains("secret plan") && !page.body.contains("Elsewhere"));
    }
    // A malformed id is the API's typed error, shown as such.
    let garbage = browser.get("/console/workspaces/not-an-id/audit").await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(
        garbage.body.contains("is not a valid id"),
        "{}",
        garbage.body
    );
}

#[tokio::test]
async fn what_users_wrote_is_shown_as_text() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &owner, "<script>alert(1)</script>").await;
    let (item, _) = create_item(&app, &owner, &ws, "<img src=x onerror=alert(1)>").await;

    let mut browser = Browser::signed_in(&app, "Ana").await;
    for path in [
        "/console/workspaces".to_string(),
        format!("/console/workspaces/{ws}/audit"),
        format!("/console/workspaces/{ws}/items/{item}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(!page.body.contains("<img src=x"), "{path}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "{path}: {}",
            page.body
        );
    }
    let timeline = browser
        .get(&format!("/console/workspaces/{ws}/audit"))
        .await;
    assert!(
        timeline.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        timeline.body
    );
}

#[tokio::test]
async fn support_finds_a_workspace_by_a_members_email_and_reads_it_after_giving_a_reason() {
    let app = TestApp::spawn().await;
    let [owner, member, support] = ["Ana", "Mo", "Sue"].map(|n| app.sign_up(n));
    let (owner, member, _support) = (owner.await, member.await, support.await);
    let ws = create_workspace(&app, &owner, "Acme Corp").await;
    add_member(&app, &owner, &ws, &member, domain::Role::Member).await;
    create_workspace(&app, &owner, "Other Co").await;
    create_item(&app, &owner, &ws, "Quarterly report").await;
    grant(&app, "Sue", domain::StaffRole::Support).await;

    let mut browser = Browser::signed_in(&app, "Sue").await;
    let found = browser.get("/console/workspaces?q=MO%40example.com").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let link = format!("/console/workspaces/{ws}/audit");
    assert!(found.body.contains(&link), "{}", found.body);
    assert!(
        !found.body.contains("Other Co"),
        "only Mo's workspace: {}",
        found.body
    );
    let by_name = browser.get("/console/workspaces?q=corp").await;
    assert!(by_name.body.contains(&link), "{}", by_name.body);

    // Nothing of the workspace before a reason, and nothing recorded.
    let asked = browser.get(&link).await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("name=\"reason\""), "{}", asked.body);
    assert!(!asked.body.contains("Quarterly report"), "{}", asked.body);
    let looks = staff_looks(&app, &owner, &ws).await;
    assert!(looks.is_empty(), "{looks:?}");

    let read = browser
        .get(&format!("{link}?reason=Ticket+%2342%3A+missing+item"))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert!(read.body.contains("Quarterly report"), "{}", read.body);
    assert!(
        read.body.contains("Ticket #42: missing item"),
        "{}",
        read.body
    );
    // The owner sees who looked and why.
    assert_eq!(
        staff_looks(&app, &owner, &ws).await,
        ["Ticket #42: missing item"]
    );
}

/// The reasons recorded for staff looks at `ws`, as its owner reads them.
async fn staff_looks(app: &TestApp, owner: &Session, ws: &str) -> Vec<String> {
    let response = owner
        .gql(
            app,
            "query($w: ID!) { auditLog(workspaceId: $w, first: 100) {
                edges { node { action staffReason } } } }",
            json!({ "w": ws }),
        )
        .await;
    response["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .filter(|e| e["node"]["action"] == "StaffAccessedAuditLog")
        .map(|e| e["node"]["staffReason"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_timeline_filters_and_pages_with_the_filters_in_the_url() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &owner, "Acme").await;
    for n in 0..60 {
        create_item(&app, &owner, &ws, &format!("item number {n:02}")).await;
    }
    let mut browser = Browser::signed_in(&app, "Ana").await;
    let first = browser
        .get(&format!("/console/workspaces/{ws}/audit?entity=ITEM"))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // Newest first, 50 to a page, items only.
    assert!(first.body.contains("item number 59"));
    assert!(first.body.contains("item number 10"));
    assert!(!first.body.contains("item number 09"));
    assert!(!first.body.contains("WorkspaceCreated"), "{}", first.body);
    let older = next_link(&first.body, "next");
    assert!(
        older.contains("entity=ITEM") && older.contains("after="),
        "{older}"
    );

    let second = browser
        .get(&format!("/console/workspaces/{ws}/audit{older}"))
        .await;
    assert!(second.body.contains("item number 09") && second.body.contains("item number 00"));
    assert!(!second.body.contains("item number 10"), "no overlap");
    let newer = next_link(&second.body, "prev");
    assert!(
        newer.contains("entity=ITEM") && newer.contains("before="),
        "{newer}"
    );
    let back = browser
        .get(&format!("/console/workspaces/{ws}/audit{newer}"))
        .await;
    assert!(back.body.contains("item number 10") && back.body.contains("item number 59"));

    let bad = browser
        .get(&format!("/console/workspaces/{ws}/audit?entity=NOPE"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("not a kind of entity"), "{}", bad.body);
    let bad_time = browser
        .get(&format!("/console/workspaces/{ws}/audit?from=yesterday"))
        .await;
    assert_eq!(bad_time.status, StatusCode::BAD_REQUEST);
}

/// The href of the pager's link with `rel`.
fn next_link(body: &str, rel: &str) -> String {
    let marker = format!("rel=\"{rel}\" href=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {rel} link in {body}"))
        + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn an_items_history_shows_it_as_it_was_and_the_chains_check_out() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &owner, "Acme").await;
    let (item, created_at) = create_item(&app, &owner, &ws, "first title").await;
    for (version, title) in [(1, "second title"), (2, "third title")] {
        let response = owner
            .gql(
                &app,
                RETITLE,
                json!({ "id": item, "v": version, "t": title }),
            )
            .await;
        assert!(response["errors"].is_null(), "{response}");
    }

    let mut browser = Browser::signed_in(&app, "Ana").await;
    let history = browser
        .get(&format!("/console/workspaces/{ws}/items/{item}"))
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    assert!(
        history.body.contains("History of “third title”"),
        "{}",
        history.body
    );
    assert!(history.body.contains("show as it was here"));

    let then = browser
        .get(&format!(
            "/console/workspaces/{ws}/items/{item}?at={created_at}"
        ))
        .await;
    assert_eq!(then.status, StatusCode::OK, "{}", then.body);
    assert!(
        then.body
            .contains("<dd class=\"then-title\">first title</dd>"),
        "{}",
        then.body
    );

    let check = browser
        .get(&format!("/console/workspaces/{ws}/verify"))
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.body);
    assert!(check.body.contains("Intact"), "{}", check.body);
}

#[tokio::test]
async fn failed_jobs_are_listed_and_retried_from_a_form_with_its_csrf_token() {
    use crate::jobs::{SmtpServer, eventually, fast_retry, node_with_workers, team};

    let mut smtp = SmtpServer::on_free_port();
    let db = std::sync::Arc::new(pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await);
    let (_setup, [ana, _max, _sue, _eve], ws) = team(&db).await;
    let one_run = jobs::retry::RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    };
    // The mail server is down: the invite's email job dies after its one run.
    let app = node_with_workers(&db, smtp.settings(), one_run).await;
    let invited = ana
        .gql(
            &app,
            "mutation($w: ID!) { inviteMember(workspaceId: $w, email: \"guest@example.com\", role: MEMBER) { invite { id } } }",
            json!({ "w": ws }),
        )
        .await;
    assert!(invited["errors"].is_null(), "{invited}");

    let mut browser = Browser::signed_in(&app, "ana").await;
    let path = format!("/console/workspaces/{ws}/jobs");
    let mut page = browser.get(&path).await;
    eventually("the job is listed dead", async || {
        page = browser.get(&path).await;
        page.body.contains("<strong>dead</strong>")
    })
    .await;
    assert!(
        page.body.contains("chronicle.invite-email"),
        "{}",
        page.body
    );
    let job = page.input("job");

    // Without the sign-in's token nothing is retried.
    let forged = browser
        .post(
            &format!("{path}/retry"),
            &[("csrf", "forged"), ("job", &job)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let still = browser.get(&path).await;
    assert!(
        still.body.contains("<strong>dead</strong>"),
        "{}",
        still.body
    );

    smtp.start().await;
    let csrf = page.input("csrf");
    let retried = browser
        .post(&format!("{path}/retry"), &[("csrf", &csrf), ("job", &job)])
        .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    assert_eq!(retried.location(), format!("{path}?retried=1"));
    eventually("the email is sent", async || smtp.messages().len() == 1).await;
    let after = browser.get(&path).await;
    assert!(
        after
            .body
            .contains("No background job of this workspace has failed"),
        "{}",
        after.body
    );
}

#[tokio::test]
async fn the_log_is_pseudonymised_for_analysts_and_its_downloads_keep_the_filter() {
    let app = TestApp::spawn().await;
    let [owner, member, analyst] = ["Ana", "Mo", "Al"].map(|n| app.sign_up(n));
    let (owner, member, _analyst) = (owner.await, member.await, analyst.await);
    let ws = create_workspace(&app, &owner, "Acme").await;
    add_member(&app, &owner, &ws, &member, domain::Role::Member).await;
    grant(&app, "Al", domain::StaffRole::Analyst).await;
    let invited = owner
        .gql(
            &app,
            "mutation($w: ID!) { inviteMember(workspaceId: $w, email: \"guest@example.com\", role: MEMBER) { invite { id } } }",
            json!({ "w": ws }),
        )
        .await;
    assert!(invited["errors"].is_null(), "{invited}");
    let query = serde_urlencoded::to_string([("workspace", ws.as_str())]).unwrap();

    let mut ana = Browser::signed_in(&app, "Ana").await;
    let in_clear = ana.get(&format!("/console/log?{query}")).await;
    assert_eq!(in_clear.status, StatusCode::OK, "{}", in_clear.body);
    assert!(
        in_clear.body.contains("guest@example.com"),
        "{}",
        in_clear.body
    );

    let mut al = Browser::signed_in(&app, "Al").await;
    let everything = al.get("/console/log").await;
    assert_eq!(everything.status, StatusCode::OK, "{}", everything.body);
    assert!(
        everything.body.contains("InviteCreated"),
        "{}",
        everything.body
    );
    assert!(
        !everything.body.contains("guest@example.com"),
        "{}",
        everything.body
    );
    assert!(
        !everything.body.contains("Ana@example.com"),
        "{}",
        everything.body
    );

    let filter = format!("{query}&types=InviteCreated");
    let ndjson = al.get(&format!("/console/log.ndjson?{filter}")).await;
    assert_eq!(ndjson.status, StatusCode::OK, "{}", ndjson.body);
    assert!(
        ndjson.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"chronicle-events.ndjson\"")
    );
    let lines: Vec<serde_json::Value> = ndjson
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Mo's invite (add_member invites) and the guest's, then the trailer.
    assert_eq!(
        lines.len(),
        3,
        "two events and the trailer: {}",
        ndjson.body
    );
    assert!(lines[..2].iter().all(|l| l["eventType"] == "InviteCreated"));
    assert!(!ndjson.body.contains("guest@example.com"));
    assert_eq!(lines[2]["end"]["complete"], true);
    assert_eq!(lines[2]["end"]["position"], lines[1]["position"]);

    let csv = al.get(&format!("/console/log.csv?{filter}")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.body.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{}", csv.body);
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(&row[7], "InviteCreated");
        assert_eq!(&row[0], line["position"].as_str().unwrap());
    }
    assert!(!csv.body.contains("guest@example.com"));

    // A member does not read the raw log; nobody reads it signed out.
    let mut mo = Browser::signed_in(&app, "Mo").await;
    assert_eq!(
        mo.get(&format!("/console/log?{query}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        mo.get(&format!("/console/log.ndjson?{query}")).await.status,
        StatusCode::FORBIDDEN
    );
    let mut nobody = Browser::new(&app);
    assert_eq!(
        nobody
            .get(&format!("/console/log.csv?{query}"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_live_tails_socket_is_for_the_consoles_own_signed_in_pages() {
    let app = TestApp::spawn().await;
    app.sign_up("Al").await;
    let al = Browser::signed_in(&app, "Al").await;
    let upgrade = |origin: Option<String>, cookies: bool| {
        let mut request = al
            .client
            .get(app.url("/console/live"))
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::SEC_WEBSOCKET_PROTOCOL, "graphql-transport-ws");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        if cookies {
            request = request.header(header::COOKIE, al.cookie_header());
        }
        request.send()
    };
    let own = format!("http://{}", app.address);
    let status = |r: reqwest::Response| r.status();
    assert_eq!(
        status(upgrade(None, true).await.unwrap()),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(
            upgrade(Some("http://evil.example".into()), true)
                .await
                .unwrap()
        ),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(upgrade(Some(own.clone()), false).await.unwrap()),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(upgrade(Some(own), true).await.unwrap()),
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn a_members_history_shows_their_role_as_it_was_at_each_entry() {
    let app = TestApp::spawn().await;
    let [owner, member] = ["Ana", "Mo"].map(|n| app.sign_up(n));
    let (owner, member) = (owner.await, member.await);
    let ws = create_workspace(&app, &owner, "Acme").await;
    add_member(&app, &owner, &ws, &member, domain::Role::Member).await;
    for role in ["ADMIN", "VIEWER"] {
        let changed = owner
            .gql(
                &app,
                "mutation($w: ID!, $u: ID!, $r: Role!) { changeMemberRole(workspaceId: $w, userId: $u, role: $r) { position } }",
                json!({ "w": ws, "u": member.user_id, "r": role }),
            )
            .await;
        assert!(changed["errors"].is_null(), "{changed}");
    }

    let mut browser = Browser::signed_in(&app, "Ana").await;
    let timeline = browser
        .get(&format!("/console/workspaces/{ws}/audit?entity=MEMBER"))
        .await;
    let path = format!("/console/workspaces/{ws}/members/{}", member.user_id);
    assert!(timeline.body.contains(&path), "{}", timeline.body);

    let history = browser.get(&path).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    assert!(
        history.body.contains("Now: <strong>VIEWER</strong>"),
        "{}",
        history.body
    );
    // Only Mo's entries: joined, then two role changes (not Ana's own membership).
    let positions: Vec<String> = history
        .body
        .match_indices("?at=")
        .map(|(i, _)| {
            let rest = &history.body[i + 4..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    assert_eq!(positions.len(), 3, "{}", history.body);
    for (position, role) in positions.iter().zip(["MEMBER", "ADMIN", "VIEWER"]) {
        let then = browser.get(&format!("{path}?at={position}")).await;
        assert!(
            then.body
                .contains(&format!("<dd class=\"then-role\">{role}</dd>")),
            "{role} at {position}: {}",
            then.body
        );
    }
    // Someone who never was a member here has no history here.
    let stranger = app.sign_up("Eve").await;
    let none = browser
        .get(&format!(
            "/console/workspaces/{ws}/members/{}",
            stranger.user_id
        ))
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}
