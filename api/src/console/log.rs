//! `/console/log`: the raw log for analysts (and for owners and admins, their workspace's),
//! pseudonymised exactly as the API pseudonymises it for ANALYST staff, with downloads of the
//! current filter as NDJSON and CSV and a live tail that appends events as they commit.
//!
//! The live tail is the `events` subscription over a WebSocket at `/console/live`, signed in by
//! the console's cookie (sent only to the console's own origin: the upgrade's `Origin` must
//! be this host); the page's script resumes from the last position it showed after any
//! reconnect.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Visit;
use super::layout::{self, page, respond};
use super::session;
use crate::auth::Auth;
use crate::bulk::{Format, LogParams, LogStream};
use crate::graphql::ChronicleSchema;
use crate::graphql::events::Pseudonymizer;
use crate::limits::Limits;
use crate::websocket::{self, Credentials, Endpoint};

/// Events shown when the page opens (the newest).
const PAGE: i32 = 50;
/// The most characters of a payload shown in a row.
const PAYLOAD_CHARS: usize = 300;

const EVENTS: &str = r#"query ConsoleLog($filter: EventsFilter, $last: Int, $before: String) {
  events(filter: $filter, last: $last, before: $before) {
    edges { node { position eventType streamType streamId workspaceId recordedAt payload } }
    pageInfo { hasPreviousPage startCursor }
  }
  logPosition
}"#;

/// The page's URL: which workspace (none: all, for ANALYST staff), which event types, and an
/// older page.
#[derive(Deserialize, serde::Serialize, Default)]
pub struct LogQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    types: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<String>,
}

impl LogQuery {
    fn workspace(&self) -> Option<&str> {
        self.workspace
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty())
    }

    fn types(&self) -> Vec<&str> {
        self.types
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// The API's `EventsFilter`.
    fn filter(&self) -> Value {
        let types = self.types();
        json!({
            "workspaceId": self.workspace(),
            "eventTypes": (!types.is_empty()).then_some(types),
        })
    }

    /// The bulk endpoints' parameters for the same filter.
    fn download(&self) -> String {
        let params = LogParams {
            after: None,
            workspace: self.workspace().map(str::to_string),
            types: self.types.clone().filter(|t| !t.trim().is_empty()),
        };
        serde_urlencoded::to_string(&params).unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    position: String,
    event_type: String,
    stream_type: String,
    stream_id: String,
    workspace_id: Option<String>,
    recorded_at: DateTime<Utc>,
    payload: Value,
}

/// `GET /console/log`.
pub async fn log(visit: Visit, query: web::Query<LogQuery>) -> HttpResponse {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        events: Events,
        log_position: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Events {
        edges: Vec<Edge>,
        page_info: PageInfo,
    }
    #[derive(Deserialize)]
    struct Edge {
        node: Row,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PageInfo {
        has_previous_page: bool,
        start_cursor: Option<String>,
    }
    if query.workspace().is_none() && !visit.me.is_analyst() {
        let body = html! {
            p.notice { "Open a workspace's log from its audit history: only ANALYST staff read the log across workspaces." }
        };
        return respond(StatusCode::OK, page("The log", Some(&visit.header()), body));
    }
    let variables = json!({
        "filter": query.filter(),
        "last": PAGE,
        "before": query.before.as_deref().filter(|b| !b.is_empty()),
    });
    let data: Data = match visit.run(EVENTS, variables).await {
        Ok(data) => data,
        Err(refusal) => return visit.refusal(refusal),
    };
    let rows: Vec<&Row> = data.events.edges.iter().map(|e| &e.node).collect();
    // The tail starts after the newest event shown, or at the head when none is; an older
    // page does not follow the log.
    let live = query.before.is_none();
    let tail_from = rows
        .last()
        .map_or(data.log_position.clone(), |r| r.position.clone());
    let types = query.types().join(",");
    let downloads = query.download();
    let body = html! {
        form.filters method="get" action="/console/log" {
            label {
                "Workspace id" @if visit.me.is_staff() { " (empty: all)" }
                input type="text" name="workspace" value=[query.workspace()] maxlength="160";
            }
            label {
                "Event types (comma-separated)"
                input type="text" name="types" value=(types) maxlength="1000"
                    placeholder="ItemCreated, MemberAdded";
            }
            button type="submit" { "Show" }
        }
        p {
            "Download this filter: "
            a href={ "/console/log.ndjson?" (downloads) } download { "NDJSON" }
            " · "
            a href={ "/console/log.csv?" (downloads) } download { "CSV" }
        }
        @if live {
            p.muted #live-status role="status" aria-live="polite" {
                "New events appear below as they are recorded (with JavaScript)."
            }
        }
        table {
            thead {
                tr { th { "Position" } th { "When" } th { "Event" } th { "Stream" } th { "Payload" } }
            }
            tbody #log-rows
                data-live=(live)
                data-from=(tail_from)
                data-workspace=[query.workspace()]
                data-types=(types) {
                @for row in &rows {
                    tr {
                        td { code { (row.position) } }
                        td { (layout::time(row.recorded_at)) }
                        td { (row.event_type) }
                        td {
                            (row.stream_type) " " code { (row.stream_id) }
                            @if let Some(workspace) = &row.workspace_id { br; span.muted { "workspace " code { (workspace) } } }
                        }
                        td { code { (abbreviated(&row.payload)) } }
                    }
                }
            }
        }
        @if rows.is_empty() {
            p.muted { "No events match yet." }
        }
        @if data.events.page_info.has_previous_page {
            @if let Some(cursor) = &data.events.page_info.start_cursor {
                nav.pager aria-label="Pages" {
                    @let older = LogQuery {
                        workspace: query.workspace().map(str::to_string),
                        types: Some(types.clone()).filter(|t| !t.is_empty()),
                        before: Some(cursor.clone()),
                    };
                    a rel="prev" href={ "/console/log?" (serde_urlencoded::to_string(&older).unwrap_or_default()) } { "← Older" }
                }
            }
        }
    };
    respond(StatusCode::OK, page("The log", Some(&visit.header()), body))
}

/// A payload as compact JSON, cut to [`PAYLOAD_CHARS`].
fn abbreviated(payload: &Value) -> String {
    let text = payload.to_string();
    if text.chars().count() <= PAYLOAD_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(PAYLOAD_CHARS).collect();
    cut.push('…');
    cut
}

/// `GET /console/log.ndjson`: the current filter as an NDJSON file.
pub async fn download_ndjson(
    http: HttpRequest,
    auth: web::Data<Auth>,
    log: web::Data<eventlog::EventLog>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<LogParams>,
) -> HttpResponse {
    download(http, auth, log, pseudonymizer, params, Format::Ndjson).await
}

/// `GET /console/log.csv`: the current filter as a CSV file.
pub async fn download_csv(
    http: HttpRequest,
    auth: web::Data<Auth>,
    log: web::Data<eventlog::EventLog>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<LogParams>,
) -> HttpResponse {
    download(http, auth, log, pseudonymizer, params, Format::Csv).await
}

async fn download(
    http: HttpRequest,
    auth: web::Data<Auth>,
    log: web::Data<eventlog::EventLog>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<LogParams>,
    format: Format,
) -> HttpResponse {
    let Some(viewer) = session::viewer(&http, &auth).await else {
        return layout::to_sign_in();
    };
    let stream = LogStream {
        log: log.into_inner(),
        pseudonymizer: pseudonymizer.into_inner(),
    };
    stream
        .serve(&http, viewer.principal.user_id, &params, format, true)
        .await
}

/// `GET /console/live`: the live tail's WebSocket, signed in by the console's cookie.
#[allow(clippy::too_many_arguments)]
pub async fn live(
    http: HttpRequest,
    body: web::Payload,
    schema: web::Data<ChronicleSchema>,
    auth: web::Data<Auth>,
    limits: web::Data<Limits>,
    settings: web::Data<websocket::Settings>,
    sockets: web::Data<websocket::Sockets>,
) -> actix_web::Result<HttpResponse> {
    if !same_origin(&http) {
        return Ok(HttpResponse::Forbidden().body("the console's WebSocket is for its own pages"));
    }
    let Some(viewer) = session::viewer(&http, &auth).await else {
        return Ok(HttpResponse::Unauthorized().body("sign in to the console first"));
    };
    let endpoint = Endpoint {
        schema,
        auth,
        limits,
        settings,
        sockets,
    };
    websocket::upgrade(
        endpoint,
        http,
        body,
        Credentials::SignedIn(viewer.principal),
    )
    .await
}

/// Whether the upgrade comes from a page of this host: browsers send `Origin` with every
/// WebSocket handshake, and a page elsewhere cannot forge it.
fn same_origin(http: &HttpRequest) -> bool {
    let header = |name| http.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(host)) = (header(header::ORIGIN), header(header::HOST)) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}
