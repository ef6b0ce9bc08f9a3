//! The console in a real browser: Debian's headless Chromium, driven over WebDriver
//! (`chromedriver`) by fantoccini. These tests need `chromium` and `chromium-driver` installed
//! (`.ci/run` installs them when missing); without them they fail and say so.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp};

const PASSWORD: &str = "correct horse battery";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to appear.
const PATIENCE: Duration = Duration::from_secs(20);

/// A headless Chromium and its chromedriver, stopped when dropped.
struct Chromium {
    driver: Child,
    client: Client,
    profile: tempfile::TempDir,
}

impl Chromium {
    async fn start() -> Chromium {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver packages"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // Root (CI) needs --no-sandbox; /dev/shm is small in containers.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connected = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match connected {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("cannot start a Chromium session: {err}"),
            }
        };
        Chromium {
            driver,
            client,
            profile,
        }
    }

    async fn goto(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.unwrap();
    }

    /// The current page's path and query.
    async fn location(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The visible text of the page's `<main>`.
    async fn main_text(&self) -> String {
        self.client
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn fill(&self, selector: &str, text: &str) {
        let field = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(selector))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, selector: Locator<'_>) {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(selector)
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn sign_in(&self, app: &TestApp, name: &str) {
        self.goto(app, "/console/sign-in").await;
        self.fill("input[name=email]", &format!("{name}@example.com"))
            .await;
        self.fill("input[name=password]", PASSWORD).await;
        self.click(Locator::Css("form.stack button[type=submit]"))
            .await;
        self.wait_for_path("/console/workspaces").await;
    }

    /// Waits until the browser shows a page whose path is `path`.
    async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.client.current_url().await.unwrap();
            if now.path() == path {
                return;
            }
            assert!(Instant::now() < deadline, "still at {now}, not {path}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// On an item's history of `entries` entries: shows the item as it was at the first one
    /// and returns its title then.
    async fn as_it_was_at_the_first_of(&self, entries: usize) -> String {
        let links = self
            .client
            .find_all(Locator::LinkText("show as it was here"))
            .await
            .unwrap();
        assert_eq!(links.len(), entries, "{}", self.main_text().await);
        links[0].click().await.unwrap();
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css("dd.then-title"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// From a workspace's timeline: runs the hash-chain check and returns its verdict.
    async fn check_the_hash_chains(&self) -> String {
        self.click(Locator::LinkText("Check the hash chains")).await;
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css("p.ok, p.error"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Asserts no JavaScript dialog is open.
    async fn no_dialog(&self) {
        match self.client.get_alert_text().await {
            Err(err) if err.is_no_such_alert() => {}
            Ok(text) => panic!("a dialog opened: {text}"),
            Err(err) => panic!("cannot tell whether a dialog is open: {err}"),
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A test that failed never closed its session: the browser chromedriver started would
        // outlive it. Its processes are the ones named with this test's own profile.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.path())
            .status();
    }
}

async fn grant(app: &TestApp, name: &str, role: domain::StaffRole) {
    let writes = api::writes::Writes::new(eventlog::EventLog::new(app.db.pool().clone()));
    api::operator::set_staff_role(&writes, &format!("{name}@example.com"), role, true)
        .await
        .unwrap();
}

async fn create_item(app: &TestApp, who: &Session, ws: &str, title: &str) -> String {
    let response = who
        .gql(
            app,
            "mutation($w: ID!, $t: String!) { createItem(input: { workspaceId: $w, title: $t }) { item { id } } }",
            json!({ "w": ws, "t": title }),
        )
        .await;
    response["data"]["createItem"]["item"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .to_string()
}

async fn retitle(app: &TestApp, who: &Session, item: &str, version: i64, title: &str) {
    let response = who
        .gql(
            app,
            "mutation($id: ID!, $v: Int!, $t: String!) { updateItem(input: { id: $id, expectedVersion: $v, title: $t }) { item { version } } }",
            json!({ "id": item, "v": version, "t": title }),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
}

#[tokio::test]
async fn support_signs_in_finds_a_workspace_by_email_gives_a_reason_and_filters_the_timeline() {
    let app = TestApp::spawn().await;
    let [owner, member, support] = ["Ana", "Mo", "Sue"].map(|n| app.sign_up(n));
    let (owner, member, _support) = (owner.await, member.await, support.await);
    let ws = create_workspace(&app, &owner, "Acme Corp").await;
    add_member(&app, &owner, &ws, &member, domain::Role::Member).await;
    let item = create_item(&app, &owner, &ws, "Quarterly report").await;
    for (version, title) in [(1, "Quarterly report v2"), (2, "Quarterly report v3")] {
        retitle(&app, &owner, &item, version, title).await;
    }
    grant(&app, "Sue", domain::StaffRole::Support).await;

    let browser = Chromium::start().await;
    // Signed out: sent to sign in.
    browser.goto(&app, "/console/workspaces").await;
    browser.wait_for_path("/console/sign-in").await;
    browser.sign_in(&app, "Sue").await;

    browser.fill("input[name=q]", "mo@example.com").await;
    browser.click(Locator::Css("form.filters button")).await;
    browser.click(Locator::LinkText("Acme Corp")).await;
    browser
        .wait_for_path(&format!("/console/workspaces/{ws}/audit"))
        .await;
    let asked = browser.main_text().await;
    assert!(asked.contains("saying why"), "{asked}");
    assert!(!asked.contains("Quarterly report"), "{asked}");

    browser.fill("input[name=reason]", "Ticket 42").await;
    browser.click(Locator::Css("form.stack button")).await;
    browser
        .client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("table"))
        .await
        .unwrap();
    let timeline = browser.main_text().await;
    assert!(timeline.contains("Quarterly report"), "{timeline}");
    assert!(timeline.contains("Ticket 42"), "{timeline}");
    assert!(timeline.contains("created workspace"), "{timeline}");

    // Filter to items: the URL keeps the filter and the reason.
    browser
        .client
        .find(Locator::Css("select[name=entity]"))
        .await
        .unwrap()
        .select_by_value("ITEM")
        .await
        .unwrap();
    browser
        .click(Locator::Css("form.filters button[type=submit]"))
        .await;
    let deadline = Instant::now() + PATIENCE;
    while !browser.location().await.contains("entity=ITEM") {
        assert!(Instant::now() < deadline, "{}", browser.location().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let location = browser.location().await;
    assert!(location.contains("reason=Ticket"), "{location}");
    let filtered = browser.main_text().await;
    assert!(filtered.contains("Quarterly report"), "{filtered}");
    assert!(!filtered.contains("created workspace"), "{filtered}");

    // The item's history, read under the same reason, and the item two changes ago.
    browser.click(Locator::LinkText("item history")).await;
    browser
        .wait_for_path(&format!("/console/workspaces/{ws}/items/{item}"))
        .await;
    let history = browser.main_text().await;
    assert!(history.contains("Ticket 42"), "{history}");
    assert_eq!(
        browser.as_it_was_at_the_first_of(3).await,
        "Quarterly report"
    );

    // Back to the workspace (the reason kept), and its hash chains, which SUPPORT may check.
    browser
        .click(Locator::LinkText("The workspace's audit history"))
        .await;
    let check = browser.check_the_hash_chains().await;
    assert!(check.starts_with("Intact"), "{check}");
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn an_owner_sees_only_their_workspaces_and_travels_back_two_changes() {
    let app = TestApp::spawn().await;
    let [owner, other] = ["Ana", "Ot"].map(|n| app.sign_up(n));
    let (owner, other) = (owner.await, other.await);
    let ws = create_workspace(&app, &owner, "Acme").await;
    create_workspace(&app, &other, "Not Ana's").await;
    let item = create_item(&app, &owner, &ws, "first title").await;
    for (version, title) in [(1, "second title"), (2, "third title")] {
        retitle(&app, &owner, &item, version, title).await;
    }

    let browser = Chromium::start().await;
    browser.sign_in(&app, "Ana").await;
    let list = browser.main_text().await;
    assert!(list.contains("Acme"), "{list}");
    assert!(!list.contains("Not Ana's"), "{list}");

    browser.click(Locator::LinkText("Acme")).await;
    browser.click(Locator::LinkText("item history")).await;
    browser
        .wait_for_path(&format!("/console/workspaces/{ws}/items/{item}"))
        .await;
    // Oldest first: the first entry is the creation, two changes ago.
    assert_eq!(browser.as_it_was_at_the_first_of(3).await, "first title");

    browser
        .goto(&app, &format!("/console/workspaces/{ws}/audit"))
        .await;
    let check = browser.check_the_hash_chains().await;
    assert!(check.starts_with("Intact"), "{check}");
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_title_with_markup_stays_text_in_the_browser() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &owner, "Acme").await;
    let title = "<img src=x onerror=alert(1)>";
    create_item(&app, &owner, &ws, title).await;

    let browser = Chromium::start().await;
    browser.sign_in(&app, "Ana").await;
    browser
        .goto(&app, &format!("/console/workspaces/{ws}/audit"))
        .await;
    let text = browser.main_text().await;
    assert!(text.contains(title), "{text}");
    browser.no_dialog().await;
    let images = browser
        .client
        .execute("return document.querySelectorAll('img').length;", vec![])
        .await
        .unwrap();
    assert_eq!(images, json!(0));
    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn an_analyst_watches_new_events_arrive_in_order_without_reloading() {
    let app = TestApp::spawn().await;
    let [owner, analyst] = ["Ana", "Al"].map(|n| app.sign_up(n));
    let (owner, _analyst) = (owner.await, analyst.await);
    let ws = create_workspace(&app, &owner, "Acme").await;
    create_item(&app, &owner, &ws, "before the page").await;
    grant(&app, "Al", domain::StaffRole::Analyst).await;

    let browser = Chromium::start().await;
    browser.sign_in(&app, "Al").await;
    let query = serde_urlencoded::to_string([("workspace", ws.as_str())]).unwrap();
    browser.goto(&app, &format!("/console/log?{query}")).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = browser
            .client
            .find(Locator::Id("live-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if status.starts_with("Live") {
            break;
        }
        assert!(Instant::now() < deadline, "not live: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shown_before = browser
        .client
        .find_all(Locator::Css("#log-rows tr"))
        .await
        .unwrap()
        .len();

    // Another client writes; the page shows each new event once, in log order (titles are
    // pseudonymised for an analyst: the rows name the items' streams).
    let mut written = Vec::new();
    for n in 0..3 {
        let item = create_item(&app, &owner, &ws, &format!("written live {n}")).await;
        written.push(uuid_of(&item));
    }
    let deadline = Instant::now() + PATIENCE;
    let live = loop {
        let live = browser
            .client
            .find_all(Locator::Css("#log-rows tr.live"))
            .await
            .unwrap();
        if live.len() >= 3 {
            break live;
        }
        assert!(Instant::now() < deadline, "{} live rows", live.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(live.len(), 3, "each event once");
    let mut positions = Vec::new();
    for (n, row) in live.iter().enumerate() {
        let text = row.text().await.unwrap();
        assert!(text.contains("ItemCreated"), "{text}");
        assert!(text.contains(&written[n]), "{text}");
        assert!(!text.contains("written live"), "pseudonymised: {text}");
        positions.push(text.split_whitespace().next().unwrap().to_string());
    }
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "in log order");
    // Nothing shown before was shown again.
    let all = browser
        .client
        .find_all(Locator::Css("#log-rows tr"))
        .await
        .unwrap();
    assert_eq!(all.len(), shown_before + 3);
    browser.client.clone().close().await.unwrap();
}

/// The UUID inside a global id (`base64url("Kind:uuid")`).
fn uuid_of(global_id: &str) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(global_id)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    text.split_once(':').unwrap().1.to_string()
}

#[tokio::test]
async fn graphiql_loads_from_the_binary_alone() {
    let app = TestApp::spawn().await;
    // Every script and stylesheet the page names is ours, and is there.
    let page = app
        .client
        .get(app.url("/graphiql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let assets: Vec<&str> = page
        .split(['"'])
        .filter(|part| part.ends_with(".js") || part.ends_with(".css"))
        .collect();
    assert_eq!(assets.len(), 6, "{page}");
    for asset in assets {
        assert!(asset.starts_with("/graphiql/assets/"), "{asset}");
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }

    // In a browser (which, like this machine, may have no internet access), the editor
    // appears and runs a query.
    let browser = Chromium::start().await;
    browser.goto(&app, "/graphiql").await;
    browser
        .client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(".graphiql-container"))
        .await
        .expect("GraphiQL rendered");
    let text = browser
        .client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("Loading GraphiQL"), "{text}");
    browser.client.clone().close().await.unwrap();
}
