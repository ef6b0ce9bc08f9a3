//! Relay connections over HTTP, both ways: `workspaces`, `Workspace.members`, `invites`,
//! `exports`, `failedJobs` and `search` page forward (`first`/`after`) and backward
//! (`last`/`before`) with a truthful `pageInfo`, count their whole list in `totalCount`, and
//! refuse mixed directions, bad sizes and bad cursors with `BAD_USER_INPUT`.

use std::sync::Arc;

use jobs::retry::RetryPolicy;
use pgcluster::TestDatabase;
use serde_json::{Value, json};

use crate::jobs::{SmtpServer, events_of, eventually, fast_retry, node_with_workers, team};
use crate::workspaces::{add_member, create_workspace};
use crate::{Session, TestApp, error_codes};

/// What every connection query selects.
const SELECTION: &str = "edges { cursor node { id } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor } totalCount";

/// The paging variables every connection query declares.
const PAGING: &str = "$first: Int, $after: String, $last: Int, $before: String";

/// The paging arguments, passed on.
const ARGS: &str = "first: $first, after: $after, last: $last, before: $before";

/// A connection query: its text and where the connection is in the answer.
struct Listing<'a> {
    app: &'a TestApp,
    caller: &'a Session,
    query: String,
    /// JSON pointer to the connection in `data`.
    at: String,
    /// Variables besides the paging ones.
    variables: Value,
}

/// One page as a client sees it.
#[derive(Debug)]
struct Page {
    ids: Vec<String>,
    has_previous: bool,
    has_next: bool,
    start: Value,
    end: Value,
    total: i64,
}

impl<'a> Listing<'a> {
    /// The root field `field(workspaceId: …)` over `workspace`.
    fn of_workspace(
        app: &'a TestApp,
        caller: &'a Session,
        field: &str,
        workspace: &str,
    ) -> Listing<'a> {
        Listing {
            app,
            caller,
            query: format!(
                "query($w: ID!, {PAGING}) {{ {field}(workspaceId: $w, {ARGS}) {{ {SELECTION} }} }}"
            ),
            at: format!("/{field}"),
            variables: json!({ "w": workspace }),
        }
    }

    /// The whole answer to the query with paging arguments `paging`.
    async fn answer(&self, paging: Value) -> Value {
        let mut variables = self.variables.clone();
        for (name, value) in paging.as_object().unwrap() {
            variables[name] = value.clone();
        }
        self.caller.gql(self.app, &self.query, variables).await
    }

    async fn page(&self, paging: Value) -> Page {
        let answer = self.answer(paging.clone()).await;
        let connection = answer
            .pointer(&format!("/data{}", self.at))
            .filter(|c| c.is_object())
            .unwrap_or_else(|| panic!("{paging}: {answer}"));
        let info = &connection["pageInfo"];
        Page {
            ids: connection["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_string())
                .collect(),
            has_previous: info["hasPreviousPage"].as_bool().unwrap(),
            has_next: info["hasNextPage"].as_bool().unwrap(),
            start: info["startCursor"].clone(),
            end: info["endCursor"].clone(),
            total: connection["totalCount"].as_i64().unwrap(),
        }
    }

    /// Checks the connection against the whole list `expected`, in order: every page size
    /// from 1 to one past the list, forward from the start and backward from the end, with
    /// the page info of each page; the total; and the refusals.
    async fn check(&self, expected: &[String]) {
        let n = expected.len();
        for size in 1..=n + 1 {
            // Forward.
            let (mut seen, mut after) = (Vec::new(), Value::Null);
            loop {
                let page = self.page(json!({ "first": size, "after": after })).await;
                assert_eq!(page.total, n as i64, "{}", self.at);
                let from = seen.len();
                seen.extend(page.ids.iter().cloned());
                let context = format!("{} forward by {size} from {from}: {page:?}", self.at);
                assert_eq!(
                    page.ids,
                    expected[from.min(n)..(from + size).min(n)],
                    "{context}"
                );
                assert_eq!(page.has_previous, from > 0, "{context}");
                assert_eq!(page.has_next, from + size < n, "{context}");
                if !page.has_next {
                    break;
                }
                after = page.end;
            }
            assert_eq!(seen, expected, "{} forward by {size}", self.at);
            // Backward.
            let (mut seen, mut before) = (Vec::<String>::new(), Value::Null);
            loop {
                let page = self.page(json!({ "last": size, "before": before })).await;
                let until = n - seen.len();
                seen.splice(0..0, page.ids.iter().cloned());
                let context = format!("{} backward by {size} to {until}: {page:?}", self.at);
                assert_eq!(
                    page.ids,
                    expected[until.saturating_sub(size)..until],
                    "{context}"
                );
                assert_eq!(page.has_previous, until > size, "{context}");
                assert_eq!(page.has_next, until < n, "{context}");
                if !page.has_previous {
                    break;
                }
                before = page.start;
            }
            assert_eq!(seen, expected, "{} backward by {size}", self.at);
        }
        // A backward page before a cursor taken from a forward page (the third element).
        if n >= 3 {
            let forward = self.page(json!({ "first": 3 })).await;
            let page = self.page(json!({ "last": 1, "before": forward.end })).await;
            assert_eq!(page.ids, expected[1..2], "{}", self.at);
            assert!(page.has_previous && page.has_next, "{page:?}");
        }
        for refused in [
            json!({ "first": 1, "last": 1 }),
            json!({ "first": 1, "before": "x" }),
            json!({ "after": "garbage" }),
            json!({ "last": 1, "before": "garbage" }),
            json!({ "first": 0 }),
            json!({ "last": 101 }),
        ] {
            let answer = self.answer(refused.clone()).await;
            assert_eq!(
                error_codes(&answer),
                ["BAD_USER_INPUT"],
                "{} {refused}: {answer}",
                self.at
            );
        }
    }
}

#[tokio::test]
async fn workspaces_members_invites_and_exports_page_both_ways_and_count() {
    let app = TestApp::spawn().await;
    let (ana, bo, cy, di) = (
        app.sign_up("Ana").await,
        app.sign_up("Bo").await,
        app.sign_up("Cy").await,
        app.sign_up("Di").await,
    );
    let workspaces = Listing {
        app: &app,
        caller: &ana,
        query: format!("query({PAGING}) {{ workspaces({ARGS}) {{ {SELECTION} }} }}"),
        at: "/workspaces".into(),
        variables: json!({}),
    };
    // Nobody's workspaces yet.
    workspaces.check(&[]).await;
    let mut by_name = Vec::new();
    for name in ["delta", "alpha", "echo", "bravo", "charlie"] {
        by_name.push((name, create_workspace(&app, &ana, name).await));
    }
    by_name.sort();
    let ids: Vec<String> = by_name.into_iter().map(|(_, id)| id).collect();
    workspaces.check(&ids).await;
    // Another user's list is theirs alone.
    Listing {
        caller: &bo,
        ..workspaces
    }
    .check(&[])
    .await;

    // Members, oldest first: the owner, then each as they joined.
    let ws = ids[0].clone();
    let mut members = vec![ana.user_id.clone()];
    for (user, role) in [
        (&bo, domain::Role::Member),
        (&cy, domain::Role::Admin),
        (&di, domain::Role::Viewer),
    ] {
        add_member(&app, &ana, &ws, user, role).await;
        members.push(user.user_id.clone());
    }
    let member_ids = {
        let answer = ana
            .gql(
                &app,
                "query($w: ID!) { workspace(id: $w) { members(first: 100) { edges { node { id user { id } } } } } }",
                json!({ "w": ws }),
            )
            .await;
        let edges = answer["data"]["workspace"]["members"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .clone();
        let users: Vec<&str> = edges
            .iter()
            .map(|e| e["node"]["user"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(users, members, "{answer}");
        edges
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Any member pages through them, a viewer too.
    Listing {
        app: &app,
        caller: &di,
        query: format!(
            "query($w: ID!, {PAGING}) {{ workspace(id: $w) {{ members({ARGS}) {{ {SELECTION} }} }} }}"
        ),
        at: "/workspace/members".into(),
        variables: json!({ "w": ws }),
    }
    .check(&member_ids)
    .await;

    // Invites, oldest first, in a workspace of their own.
    let other = ids[1].clone();
    let invites = Listing::of_workspace(&app, &ana, "invites", &other);
    invites.check(&[]).await;
    let mut sent = Vec::new();
    for n in 0..4 {
        let answer = ana
            .gql(
                &app,
                "mutation($w: ID!, $e: String!) { inviteMember(workspaceId: $w, email: $e, role: MEMBER) { invite { id } } }",
                json!({ "w": other, "e": format!("guest{n}@example.com") }),
            )
            .await;
        let id = answer["data"]["inviteMember"]["invite"]["id"].as_str();
        sent.push(id.unwrap_or_else(|| panic!("{answer}")).to_string());
    }
    invites.check(&sent).await;

    // Exports, oldest first (pending: no workers here).
    let exports = Listing::of_workspace(&app, &ana, "exports", &other);
    exports.check(&[]).await;
    let mut requested = Vec::new();
    for format in ["CSV", "PDF", "CSV", "CSV"] {
        let answer = ana
            .gql(
                &app,
                "mutation($w: ID!, $f: ExportFormat!) { requestExport(workspaceId: $w, format: $f) { export { id } } }",
                json!({ "w": other, "f": format }),
            )
            .await;
        let id = answer["data"]["requestExport"]["export"]["id"].as_str();
        requested.push(id.unwrap_or_else(|| panic!("{answer}")).to_string());
    }
    exports.check(&requested).await;
}

#[tokio::test]
async fn search_pages_both_ways_in_every_order() {
    let app = TestApp::spawn().await;
    let ana = app.sign_up("Ana").await;
    let ws = create_workspace(&app, &ana, "Acme").await;
    let mut position = Value::Null;
    // Scores differ (repeats, title or body) and tie (the last two): ties go by id.
    for (title, body) in [
        ("report report", ""),
        ("report", "notes"),
        ("notes", "report"),
        ("report draft", "draft"),
        ("report draft", "draft"),
    ] {
        let answer = ana
            .gql(
                &app,
                "mutation($w: ID!, $t: String!, $b: String!) {
                    createItem(input: { workspaceId: $w, title: $t, body: $b }) { position } }",
                json!({ "w": ws, "t": title, "b": body }),
            )
            .await;
        position = answer["data"]["createItem"]["position"].clone();
        assert!(position.is_string(), "{answer}");
    }
    for order in ["RELEVANCE", "CREATED_ASC", "UPDATED_DESC"] {
        let listing = Listing {
            app: &app,
            caller: &ana,
            query: format!(
                "query($w: ID!, $q: String!, $o: SearchOrder, $min: String, {PAGING}) {{
                    search(workspaceId: $w, query: $q, orderBy: $o, minPosition: $min, {ARGS}) {{ {SELECTION} }} }}"
            ),
            at: "/search".into(),
            variables: json!({ "w": ws, "q": "report", "o": order, "min": position }),
        };
        let whole = listing.page(json!({ "first": 100 })).await;
        assert_eq!(whole.ids.len(), 5, "{order}: {whole:?}");
        listing.check(&whole.ids).await;
        // Nothing matches: empty both ways.
        Listing {
            variables: json!({ "w": ws, "q": "zebra", "o": order, "min": position }),
            ..listing
        }
        .check(&[])
        .await;
    }
}

/// A failed job's global id, decoded to see it names a job.
fn names_a_job(id: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|text| String::from_utf8(text).ok())
        .is_some_and(|text| text.starts_with("Job:"))
}

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id ... on FailedJob { kind dead workspaceId } } }";
const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";

#[tokio::test]
async fn failed_jobs_page_both_ways_and_are_nodes_for_who_may_see_them() {
    let smtp = SmtpServer::on_free_port();
    let db = Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    // The job queue's tables (`chronicle migrate` creates them; test nodes don't).
    jobs::setup(db.pool()).await.unwrap();
    // The team is set up on a node without workers, so that only the invites below fail.
    let (setup, [ana, max, sue, eve], ws) = team(&db).await;
    let eves = create_workspace(&setup, &eve, "Eve's").await;
    let listing = Listing::of_workspace(&setup, &ana, "failedJobs", &ws);
    listing.check(&[]).await;

    // Invites sent before the workers start (so that no write races the jobs' own events),
    // whose emails then fail: the mail server never answers, and each job has one run.
    for (inviter, workspace, n) in [(&ana, &ws, 4), (&eve, &eves, 1)] {
        for i in 0..n {
            let answer = inviter
                .gql(
                    &setup,
                    "mutation($w: ID!, $e: String!) { inviteMember(workspaceId: $w, email: $e, role: MEMBER) { invite { id } } }",
                    json!({ "w": workspace, "e": format!("guest{i}@example.com") }),
                )
                .await;
            assert!(answer["errors"].is_null(), "{answer}");
        }
    }
    let one_run = RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    };
    let app = node_with_workers(&db, smtp.settings(), one_run).await;
    let all =
        "query($w: ID!) { failedJobs(workspaceId: $w, first: 100) { edges { node { id dead } } } }";
    let mut failed = Vec::new();
    eventually("five jobs are dead", async || {
        let mut dead = Vec::new();
        for (owner, workspace) in [(&ana, &ws), (&eve, &eves)] {
            let answer = owner.gql(&app, all, json!({ "w": workspace })).await;
            let edges = answer["data"]["failedJobs"]["edges"].as_array().cloned();
            dead.extend(edges.unwrap_or_default().into_iter().filter_map(|e| {
                (e["node"]["dead"] == json!(true))
                    .then(|| e["node"]["id"].as_str().unwrap().to_string())
            }));
        }
        failed = dead;
        // Each death is also in the log (then nothing writes to the workspaces any more).
        failed.len() == 5 && events_of(db.pool(), "JobDied").await.len() == 5
    })
    .await;
    let (ours, theirs) = (failed[..4].to_vec(), failed[4].clone());
    assert!(ours.iter().all(|id| names_a_job(id)), "{ours:?}");
    listing.check(&ours).await;
    // SUPPORT staff page through them too.
    Listing {
        caller: &sue,
        ..listing
    }
    .check(&ours)
    .await;

    // As nodes: the owner and SUPPORT staff get them back, by `node` and by `nodes`.
    for caller in [&ana, &sue] {
        let node = caller.gql(&app, NODE, json!({ "id": ours[0] })).await;
        assert_eq!(node["data"]["node"]["__typename"], "FailedJob", "{node}");
        assert_eq!(node["data"]["node"]["id"], json!(ours[0]), "{node}");
        assert_eq!(node["data"]["node"]["workspaceId"], json!(ws), "{node}");
        assert_eq!(node["data"]["node"]["dead"], json!(true), "{node}");
        let nodes = caller.gql(&app, NODES, json!({ "ids": ours })).await;
        let ids: Vec<&str> = nodes["data"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{nodes}"))
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ours, "{nodes}");
    }
    // A member without the right, a stranger, another tenant's job, a malformed id and an
    // unknown one: all alike, NOT_FOUND in `node`, null in `nodes`.
    let unknown = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("Job:{}", uuid::Uuid::now_v7()))
    };
    let mut refusals = Vec::new();
    for (caller, id) in [
        (&max, ours[0].clone()),
        (&eve, ours[0].clone()),
        (&ana, theirs.clone()),
        (&ana, "garbage".to_string()),
        (&ana, unknown.clone()),
    ] {
        let refused = caller.gql(&app, NODE, json!({ "id": id })).await;
        assert_eq!(error_codes(&refused), ["NOT_FOUND"], "{id}: {refused}");
        assert!(refused["data"].is_null(), "{refused}");
        refusals.push(refused["errors"][0]["message"].clone());
        let nodes = caller.gql(&app, NODES, json!({ "ids": [id] })).await;
        assert_eq!(nodes["data"]["nodes"], json!([null]), "{nodes}");
        assert!(nodes["errors"].is_null(), "{nodes}");
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:?}");
    // Eve sees her own job as a node.
    let own = eve.gql(&app, NODE, json!({ "id": theirs })).await;
    assert_eq!(own["data"]["node"]["__typename"], "FailedJob", "{own}");

    // `retryJob` takes the id `node` gives.
    let retried = ana
        .gql(
            &app,
            "mutation($id: ID!) { retryJob(id: $id) { job { id } } }",
            json!({ "id": ours[0] }),
        )
        .await;
    assert_eq!(
        retried["data"]["retryJob"]["job"]["id"],
        json!(ours[0]),
        "{retried}"
    );
}
