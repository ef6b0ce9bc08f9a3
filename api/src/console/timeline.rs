//! Audit history pages: a workspace's timeline (filters and pages kept in the URL, so a link
//! can go into a support ticket), an item's history with "as it was here" on every entry, and
//! the check of a workspace's hash chains.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Visit;
use super::graphql::Refusal;
use super::layout::{self, page, respond};

/// Entries per page.
const PAGE: i32 = 50;
/// The most event types one filter names.
const MAX_TYPES: usize = 20;
/// The longest reason kept (the API bounds it too).
const MAX_REASON: usize = 500;

/// What every entry shows.
const ENTRY: &str = "position at action entity entityId summary requestId clientIp \
    staffReason actor { displayName email role system } changes { field before after }";

/// The kinds of entity the timeline filters by (the API's `AuditEntity`).
const ENTITIES: [(&str, &str); 6] = [
    ("WORKSPACE", "Workspace"),
    ("MEMBER", "Member"),
    ("INVITE", "Invite"),
    ("EXPORT", "Export"),
    ("ITEM", "Item"),
    ("USER", "User"),
];

/// The timeline's URL: its filters, its page and (for SUPPORT readers) the reason given.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct TimelineQuery {
    #[serde(skip_serializing_if = "is_blank")]
    actor: Option<String>,
    #[serde(skip_serializing_if = "is_blank")]
    entity: Option<String>,
    /// Event types, comma-separated.
    #[serde(skip_serializing_if = "is_blank")]
    types: Option<String>,
    /// From this time (UTC, `YYYY-MM-DDTHH:MM`).
    #[serde(skip_serializing_if = "is_blank")]
    from: Option<String>,
    /// Until this time (UTC, `YYYY-MM-DDTHH:MM`).
    #[serde(skip_serializing_if = "is_blank")]
    to: Option<String>,
    #[serde(skip_serializing_if = "is_blank")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "is_blank")]
    after: Option<String>,
    #[serde(skip_serializing_if = "is_blank")]
    before: Option<String>,
}

fn is_blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|v| v.trim().is_empty())
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl TimelineQuery {
    /// The API's `AuditFilter` for these filters, or why they are not valid.
    fn filter(&self) -> Result<serde_json::Value, String> {
        let mut filter = serde_json::Map::new();
        if let Some(actor) = given(&self.actor) {
            filter.insert("actorId".into(), json!(actor));
        }
        if let Some(entity) = given(&self.entity) {
            if !ENTITIES.iter().any(|(code, _)| *code == entity) {
                return Err(format!("`{entity}` is not a kind of entity"));
            }
            filter.insert("entity".into(), json!(entity));
        }
        if let Some(types) = given(&self.types) {
            let types: Vec<&str> = types
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .take(MAX_TYPES + 1)
                .collect();
            if types.len() > MAX_TYPES {
                return Err(format!("name at most {MAX_TYPES} event types"));
            }
            filter.insert("eventTypes".into(), json!(types));
        }
        for (field, value) in [("from", &self.from), ("to", &self.to)] {
            if let Some(value) = given(value) {
                filter.insert(field.into(), json!(parse_time(value)?.to_rfc3339()));
            }
        }
        Ok(serde_json::Value::Object(filter))
    }

    /// This URL with another page (`after` or `before`), or none.
    fn with_page(&self, after: Option<&str>, before: Option<&str>) -> String {
        let query = TimelineQuery {
            after: after.map(str::to_string),
            before: before.map(str::to_string),
            ..self.clone()
        };
        serde_urlencoded::to_string(&query).unwrap_or_default()
    }
}

/// A time given in a filter: `YYYY-MM-DDTHH:MM` (what a `datetime-local` field sends, taken
/// as UTC), with seconds, or RFC 3339.
fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|at| at.and_utc())
        .ok_or_else(|| format!("`{value}` is not a time (YYYY-MM-DDTHH:MM, UTC)"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    position: String,
    at: DateTime<Utc>,
    action: String,
    entity: String,
    entity_id: String,
    summary: String,
    request_id: Option<String>,
    client_ip: Option<String>,
    staff_reason: Option<String>,
    actor: Actor,
    changes: Vec<Change>,
    /// Asked for on an item's page only.
    #[serde(default)]
    item_after: Option<ItemState>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor {
    display_name: String,
    email: Option<String>,
    role: Option<String>,
    system: bool,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    before: Option<String>,
    after: Option<String>,
}

#[derive(Deserialize)]
struct Entries {
    edges: Vec<EntryEdge>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct EntryEdge {
    node: Entry,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

/// `GET /console/workspaces/{id}/audit`: newest first.
pub async fn workspace_timeline(
    visit: Visit,
    id: web::Path<String>,
    query: web::Query<TimelineQuery>,
) -> HttpResponse {
    let id = id.into_inner();
    let name = match workspace_name(&visit, &id).await {
        Ok(name) => name,
        Err(refusal) => return visit.refusal(refusal),
    };
    let title = format!("Audit history of {name}");
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(why) => {
            let body = html! { p.error role="alert" { (why) } (filters(&id, &query)) };
            return respond(
                StatusCode::BAD_REQUEST,
                page(&title, Some(&visit.header()), body),
            );
        }
    };
    let reason = given(&query.reason).map(|r| r.chars().take(MAX_REASON).collect::<String>());
    let (first, last) = match given(&query.before) {
        Some(_) => (None, Some(PAGE)),
        None => (Some(PAGE), None),
    };
    let document = format!(
        "query ConsoleTimeline($workspaceId: ID!, $filter: AuditFilter, $reason: String, \
         $first: Int, $after: String, $last: Int, $before: String) {{ \
         auditLog(workspaceId: $workspaceId, filter: $filter, reason: $reason, first: $first, \
         after: $after, last: $last, before: $before) {{ edges {{ node {{ {ENTRY} }} }} \
         pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
    );
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        audit_log: Entries,
    }
    let variables = json!({
        "workspaceId": id,
        "filter": filter,
        "reason": reason,
        "first": first,
        "after": given(&query.after),
        "last": last,
        "before": given(&query.before),
    });
    let entries = match visit.run::<Data>(&document, variables).await {
        Ok(data) => data.audit_log,
        // A SUPPORT reader who is not an owner or admin here must say why first.
        Err(Refusal::Forbidden(_)) if visit.me.is_support() && reason.is_none() => {
            let kept = [
                ("entity", &query.entity),
                ("types", &query.types),
                ("actor", &query.actor),
                ("from", &query.from),
                ("to", &query.to),
            ];
            let body = reason_form(&format!("/console/workspaces/{id}/audit"), &kept);
            return respond(StatusCode::OK, page(&title, Some(&visit.header()), body));
        }
        Err(refusal) => return visit.refusal(refusal),
    };
    let page_info = &entries.page_info;
    let body = html! {
        p {
            a href={ "/console/workspaces/" (id) "/verify" } { "Check the hash chains" }
            " · "
            a href={ "/console/workspaces/" (id) "/jobs" } { "Failed background jobs" }
            " · "
            a href={ "/console/log?" (serde_urlencoded::to_string([("workspace", id.as_str())]).unwrap_or_default()) } { "Its log" }
        }
        @if let Some(reason) = &reason {
            p.notice {
                "You are reading as support staff. Your reason, recorded in this workspace's \
                 history: " q { (reason) }
            }
        }
        (filters(&id, &query))
        (entry_table(
            &entries.edges.iter().map(|e| &e.node).collect::<Vec<_>>(),
            &Links::Timeline { workspace: &id, reason: reason.as_deref() },
        ))
        nav.pager aria-label="Pages" {
            @if page_info.has_previous_page {
                @if let Some(cursor) = &page_info.start_cursor {
                    a rel="prev" href={ "?" (query.with_page(None, Some(cursor))) } { "← Newer" }
                }
            }
            @if page_info.has_next_page {
                @if let Some(cursor) = &page_info.end_cursor {
                    a rel="next" href={ "?" (query.with_page(Some(cursor), None)) } { "Older →" }
                }
            }
        }
    };
    respond(StatusCode::OK, page(&title, Some(&visit.header()), body))
}

/// The workspace's name: from the reader's own workspaces, or from the staff directory.
async fn workspace_name(visit: &Visit, id: &str) -> Result<String, Refusal> {
    if visit.me.is_staff() {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            workspace_directory: Listing,
        }
        #[derive(Deserialize)]
        struct Listing {
            edges: Vec<ListingEdge>,
        }
        #[derive(Deserialize)]
        struct ListingEdge {
            node: Named,
        }
        let data: Data = visit
            .run(
                "query ConsoleWorkspaceName($id: String!) { workspaceDirectory(search: $id, first: 1) { edges { node { id name } } } }",
                json!({ "id": id }),
            )
            .await?;
        if let Some(edge) = data
            .workspace_directory
            .edges
            .into_iter()
            .find(|e| e.node.id == id)
        {
            return Ok(edge.node.name);
        }
    }
    #[derive(Deserialize)]
    struct Data {
        workspace: Named,
    }
    let data: Data = visit
        .run(
            "query ConsoleWorkspace($id: ID!) { workspace(id: $id) { id name } }",
            json!({ "id": id }),
        )
        .await?;
    Ok(data.workspace.name)
}

#[derive(Deserialize)]
struct Named {
    id: String,
    name: String,
}

/// The filters form (GET, so the URL keeps them).
fn filters(id: &str, query: &TimelineQuery) -> Markup {
    let value = |v: &Option<String>| given(v).map(str::to_string);
    html! {
        form.filters method="get" action={ "/console/workspaces/" (id) "/audit" } {
            @if let Some(reason) = given(&query.reason) {
                input type="hidden" name="reason" value=(reason);
            }
            label {
                "Entity"
                select name="entity" {
                    option value="" { "Any" }
                    @for (code, label) in ENTITIES {
                        option value=(code) selected[given(&query.entity) == Some(code)] { (label) }
                    }
                }
            }
            label {
                "Event types (comma-separated)"
                input type="text" name="types" value=[value(&query.types)]
                    placeholder="ItemRetitled, MemberAdded" maxlength="1000";
            }
            label {
                "Actor (user id)"
                input type="text" name="actor" value=[value(&query.actor)] maxlength="160";
            }
            label {
                "From (UTC)"
                input type="datetime-local" name="from" value=[value(&query.from)];
            }
            label {
                "To (UTC)"
                input type="datetime-local" name="to" value=[value(&query.to)];
            }
            button type="submit" { "Filter" }
            a href={ "/console/workspaces/" (id) "/audit" @if let Some(reason) = given(&query.reason) { "?" (serde_urlencoded::to_string([("reason", reason)]).unwrap_or_default()) } } { "Clear" }
        }
    }
}

/// The form a SUPPORT reader fills in before seeing a workspace that is not theirs: it sends
/// the reader back to `action` with `kept` and the reason.
fn reason_form(action: &str, kept: &[(&str, &Option<String>)]) -> Markup {
    html! {
        p.notice {
            "You are not an owner or admin of this workspace. As support staff you may read its \
             history after saying why; your reason is recorded in the workspace's own history, \
             where its owners see it."
        }
        form.stack method="get" action=(action) {
            @for (name, value) in kept {
                @if let Some(value) = given(value) {
                    input type="hidden" name=(name) value=(value);
                }
            }
            label {
                "Reason (for example a ticket number)"
                input type="text" name="reason" required maxlength=(MAX_REASON) autofocus;
            }
            button type="submit" { "Read the history" }
        }
    }
}

/// Where a table's entries link to.
enum Links<'a> {
    /// A workspace's timeline: an item's entries link to its history (keeping the reason).
    Timeline {
        workspace: &'a str,
        reason: Option<&'a str>,
    },
    /// An item's history: each entry links to the item as it was just after it.
    Item { page: &'a str },
}

impl Links<'_> {
    /// `?reason=…&` (or `?`): the start of a link's query that keeps a SUPPORT reason.
    fn query(reason: Option<&str>) -> String {
        match reason {
            Some(reason) => format!(
                "?{}&",
                serde_urlencoded::to_string([("reason", reason)]).unwrap_or_default()
            ),
            None => "?".to_string(),
        }
    }
}

/// Entries as a table, linked as `links` says.
fn entry_table(entries: &[&Entry], links: &Links<'_>) -> Markup {
    html! {
        @if entries.is_empty() {
            p.muted { "No entries." }
        } @else {
            table {
                thead {
                    tr { th { "When" } th { "Who" } th { "What" } th { "Where from" } }
                }
                tbody {
                    @for entry in entries {
                        tr {
                            td { (layout::time(entry.at)) br; span.muted { "#" (entry.position) } }
                            td {
                                (entry.actor.display_name)
                                @if entry.actor.system { " " span.muted { "(system)" } }
                                @if let Some(role) = &entry.actor.role { " " span.muted { "as " (role) } }
                                @if let Some(email) = &entry.actor.email { br; span.muted { (email) } }
                            }
                            td {
                                (entry.summary)
                                br;
                                span.muted {
                                    (entry.action)
                                    @match links {
                                        Links::Timeline { workspace, reason } => {
                                            @if entry.entity == "ITEM" {
                                                " · " a href={ "/console/workspaces/" (workspace) "/items/" (entry.entity_id) (Links::query(*reason).trim_end_matches(['?', '&'])) } { "item history" }
                                            }
                                            @if entry.entity == "MEMBER" {
                                                " · " a href={ "/console/workspaces/" (workspace) "/members/" (entry.entity_id) (Links::query(*reason).trim_end_matches(['?', '&'])) } { "member history" }
                                            }
                                        }
                                        Links::Item { page } => {
                                            " · " a href={ (page) "at=" (entry.position) } { "show as it was here" }
                                        }
                                    }
                                }
                                @if let Some(reason) = &entry.staff_reason {
                                    br; span.muted { "Reason: " q { (reason) } }
                                }
                                @if !entry.changes.is_empty() {
                                    ul.diff {
                                        @for change in &entry.changes {
                                            li {
                                                strong { (change.field) } ": "
                                                @if let Some(before) = &change.before { del { (before) } } @else { span.muted { "(none)" } }
                                                " → "
                                                @if let Some(after) = &change.after { ins { (after) } } @else { span.muted { "(none)" } }
                                            }
                                        }
                                    }
                                }
                            }
                            td {
                                @if let Some(ip) = &entry.client_ip { (ip) }
                                @if let Some(request) = &entry.request_id { br; span.muted { "request " (request) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/workspaces/{id}/verify`: recomputes the workspace's hash chains.
pub async fn verify(visit: Visit, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        verify_audit_trail: Verification,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Verification {
        events_checked: i64,
        streams_checked: i64,
        intact: bool,
        first_broken: Option<Broken>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Broken {
        position: String,
        event_id: String,
        stream_version: i64,
        reason: String,
    }
    let data: Data = match visit
        .run(
            "query ConsoleVerify($id: ID!) { verifyAuditTrail(workspaceId: $id) { eventsChecked streamsChecked intact firstBroken { position eventId streamVersion reason } } }",
            json!({ "id": id }),
        )
        .await
    {
        Ok(data) => data,
        Err(refusal) => return visit.refusal(refusal),
    };
    let result = data.verify_audit_trail;
    let body = html! {
        @if result.intact {
            p.ok role="status" {
                "Intact: every link holds. " (result.events_checked) " events in "
                (result.streams_checked) " streams were checked."
            }
        } @else {
            p.error role="alert" {
                "Broken: the history was changed outside Chronicle. "
                (result.events_checked) " events in " (result.streams_checked) " streams were checked."
            }
            @if let Some(broken) = &result.first_broken {
                div.card {
                    "First broken link: position " strong { (broken.position) }
                    ", event " code { (broken.event_id) } ", version " (broken.stream_version)
                    ": " (broken.reason)
                }
            }
        }
        p { a href={ "/console/workspaces/" (id) "/audit" } { "Back to the audit history" } }
    };
    respond(
        StatusCode::OK,
        page("Hash-chain check", Some(&visit.header()), body),
    )
}

/// An item page's URL: an entry to show the item at, and (for SUPPORT readers) the reason.
#[derive(Deserialize)]
pub struct ItemQuery {
    at: Option<String>,
    reason: Option<String>,
}

/// `GET /console/workspaces/{id}/items/{item}[?at=POSITION]`: the item's history, oldest first,
/// and the item as it was just after an entry. Read through the workspace's audit log (its
/// rights: owners, admins, and SUPPORT staff with a recorded reason).
pub async fn item_history(
    visit: Visit,
    path: web::Path<(String, String)>,
    query: web::Query<ItemQuery>,
) -> HttpResponse {
    let (workspace, item) = path.into_inner();
    let at = given(&query.at);
    let reason = given(&query.reason).map(|r| r.chars().take(MAX_REASON).collect::<String>());
    let document = format!(
        "query ConsoleItemHistory($workspaceId: ID!, $itemId: ID!, $reason: String) {{ \
         auditLog(workspaceId: $workspaceId, filter: {{ itemId: $itemId, oldestFirst: true }}, \
         reason: $reason, first: 100) {{ edges {{ node {{ {ENTRY} \
         itemAfter {{ title body tags status deleted version }} }} }} \
         pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
    );
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        audit_log: Entries,
    }
    let variables = json!({ "workspaceId": workspace, "itemId": item, "reason": reason });
    let history = match visit.run::<Data>(&document, variables).await {
        Ok(data) => data.audit_log,
        Err(Refusal::Forbidden(_)) if visit.me.is_support() && reason.is_none() => {
            let action = format!("/console/workspaces/{workspace}/items/{item}");
            let body = reason_form(&action, &[("at", &query.at)]);
            return respond(
                StatusCode::OK,
                page("An item's history", Some(&visit.header()), body),
            );
        }
        Err(refusal) => return visit.refusal(refusal),
    };
    let entries: Vec<&Entry> = history.edges.iter().map(|e| &e.node).collect();
    // An id that names no item of this workspace has no history here.
    let Some(now) = entries.iter().rev().find_map(|e| e.item_after.as_ref()) else {
        return visit.refusal(Refusal::NotFound);
    };
    let then = at.and_then(|at| {
        entries
            .iter()
            .find(|e| e.position == at)
            .and_then(|e| e.item_after.as_ref())
    });
    let page_url = format!(
        "/console/workspaces/{workspace}/items/{item}{}",
        Links::query(reason.as_deref())
    );
    let title = format!("History of “{}”", now.title);
    let body = html! {
        p {
            a href={ "/console/workspaces/" (workspace) "/audit" (Links::query(reason.as_deref()).trim_end_matches(['?', '&'])) } { "The workspace's audit history" }
            @if now.deleted { " · " strong { "deleted" } }
        }
        @if let Some(reason) = &reason {
            p.notice { "You are reading as support staff. Your reason, recorded in this workspace's history: " q { (reason) } }
        }
        @if let (Some(then), Some(at)) = (then, at) {
            section.card aria-labelledby="then" {
                h2 #then { "As it was at #" (at) }
                (item_state(then))
                p { a href=(page_url.trim_end_matches(['?', '&'])) { "Hide" } }
            }
        }
        (entry_table(&entries, &Links::Item { page: &page_url }))
        @if history.page_info.has_next_page {
            p.muted { "Only the first 100 entries are shown." }
        }
    };
    respond(StatusCode::OK, page(&title, Some(&visit.header()), body))
}

/// The most pages of a workspace's membership entries a member's page reads (100 each).
const MEMBER_PAGES: usize = 20;

/// `GET /console/workspaces/{id}/members/{user}[?at=POSITION]`: a member's history in the
/// workspace, oldest first (joined, role changes, removal), with their membership as it was just
/// after an entry, and a link to what they did. Read through the workspace's audit log (its
/// rights; SUPPORT staff with a reason): its membership entries, at most
/// [`MEMBER_PAGES`] × 100 of them.
pub async fn member_history(
    visit: Visit,
    path: web::Path<(String, String)>,
    query: web::Query<ItemQuery>,
) -> HttpResponse {
    let (workspace, member) = path.into_inner();
    let at = given(&query.at);
    let reason = given(&query.reason).map(|r| r.chars().take(MAX_REASON).collect::<String>());
    let document = format!(
        "query ConsoleMembership($workspaceId: ID!, $reason: String, $after: String) {{ \
         auditLog(workspaceId: $workspaceId, filter: {{ entity: MEMBER, oldestFirst: true }}, \
         reason: $reason, first: 100, after: $after) {{ edges {{ node {{ {ENTRY} }} }} \
         pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
    );
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        audit_log: Entries,
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut after: Option<String> = None;
    let mut complete = false;
    for _ in 0..MEMBER_PAGES {
        let variables = json!({ "workspaceId": workspace, "reason": reason, "after": after });
        let page = match visit.run::<Data>(&document, variables).await {
            Ok(data) => data.audit_log,
            Err(Refusal::Forbidden(_)) if visit.me.is_support() && reason.is_none() => {
                let action = format!("/console/workspaces/{workspace}/members/{member}");
                let body = reason_form(&action, &[("at", &query.at)]);
                return respond(
                    StatusCode::OK,
                    page("A member's history", Some(&visit.header()), body),
                );
            }
            Err(refusal) => return visit.refusal(refusal),
        };
        entries.extend(
            page.edges
                .into_iter()
                .map(|e| e.node)
                .filter(|e| e.entity_id == member),
        );
        if !page.page_info.has_next_page {
            complete = true;
            break;
        }
        after = page.page_info.end_cursor;
    }
    if entries.is_empty() {
        return visit.refusal(Refusal::NotFound);
    }
    // The membership just after each entry: the role its change left (none once removed).
    let mut role: Option<&str> = None;
    let mut then = None;
    for entry in &entries {
        if let Some(change) = entry.changes.iter().find(|c| c.field == "role") {
            role = change.after.as_deref();
        }
        if Some(entry.position.as_str()) == at {
            then = Some(role);
        }
    }
    let links = Links::query(reason.as_deref());
    let page_url = format!("/console/workspaces/{workspace}/members/{member}{links}");
    let actions = format!(
        "/console/workspaces/{workspace}/audit{links}{}",
        serde_urlencoded::to_string([("actor", member.as_str())]).unwrap_or_default()
    );
    let shown: Vec<&Entry> = entries.iter().collect();
    let body = html! {
        p {
            a href={ "/console/workspaces/" (workspace) "/audit" (links.trim_end_matches(['?', '&'])) } { "The workspace's audit history" }
            " · "
            a href=(actions) { "What this member did" }
            " · "
            @match role {
                Some(role) => { "Now: " strong { (role) } }
                None => { strong { "no longer a member" } }
            }
        }
        @if let Some(reason) = &reason {
            p.notice { "You are reading as support staff. Your reason, recorded in this workspace's history: " q { (reason) } }
        }
        @if let (Some(then), Some(at)) = (then, at) {
            section.card aria-labelledby="then" {
                h2 #then { "As it was at #" (at) }
                dl {
                    dt { "Role" }
                    dd.then-role { (then.unwrap_or("not a member")) }
                }
                p { a href=(page_url.trim_end_matches(['?', '&'])) { "Hide" } }
            }
        }
        (entry_table(&shown, &Links::Item { page: &page_url }))
        @if !complete {
            p.muted { "Only the workspace's first " (MEMBER_PAGES * 100) " membership entries were read." }
        }
    };
    respond(
        StatusCode::OK,
        page("A member's history", Some(&visit.header()), body),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemState {
    title: String,
    body: String,
    tags: Vec<String>,
    status: String,
    deleted: bool,
    version: i64,
}

fn item_state(item: &ItemState) -> Markup {
    html! {
        dl {
            dt { "Title" } dd.then-title { (item.title) }
            dt { "Status" } dd { (item.status) @if item.deleted { " (deleted)" } }
            dt { "Tags" } dd { (item.tags.join(", ")) }
            dt { "Version" } dd { (item.version) }
            dt { "Body" } dd { pre { (item.body) } }
        }
    }
}
