//! The log in bulk over HTTP, for analysts and tools: `GET /events.ndjson` and
//! `GET /events.csv` (bearer token), and the console's downloads of the same (its cookie).
//!
//! `?after=POSITION&workspace=ID&types=A,B`: the events after `after` (exclusive), of one
//! workspace (or, for ANALYST staff, of all), of the given types (at most 50), in position
//! order up to what is visible now. Streamed in batches, so memory stays flat however long
//! the log. Same rights as the `events` query (see [`crate::authz`]): owners and admins their
//! workspace, ANALYST staff any (or all), pseudonymised. A refusal is 401, 403 or 404 before
//! any line.
//!
//! NDJSON: one event per line; the last line is never an event but a trailer,
//! `{"end": {...}}`, saying whether the stream is complete (`"complete": true`) or stopped by an
//! error (`"complete": false` and an `"error"`), and the `"position"` to resume after (the last
//! event sent, or `after`). A stream without its trailer was cut (for instance by a proxy):
//! resume after its last event.
//!
//! CSV (RFC 4180): a header row, then one row per event ([`Event::CSV_HEADER`]); payload and
//! metadata are JSON in their cells. It has no trailer: a stream stopped by an error ends
//! without its final chunk, which an HTTP client reports as an incomplete body.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::ID;
use eventlog::{EventFilter, EventLog, Position};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Auth;
use crate::authz::{self, Grant};
use crate::error::ApiError;
use crate::graphql::events::{self, Event, Pseudonymizer};
use crate::graphql::ids;
use crate::http::{bearer_token, refusal};

/// The most event types one request names.
const MAX_TYPES: usize = 50;

/// Query parameters of the bulk endpoints.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct LogParams {
    /// Resume after this position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A workspace's global id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Event types, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<String>,
}

/// How the events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// `GET /events.ndjson`, for the holder of a bearer token.
pub async fn events_ndjson(
    log: web::Data<EventLog>,
    auth: web::Data<Auth>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<LogParams>,
    http: HttpRequest,
) -> HttpResponse {
    with_bearer(log, auth, pseudonymizer, params, http, Format::Ndjson).await
}

/// `GET /events.csv`, for the holder of a bearer token.
pub async fn events_csv(
    log: web::Data<EventLog>,
    auth: web::Data<Auth>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<LogParams>,
    http: HttpRequest,
) -> HttpResponse {
    with_bearer(log, auth, pseudonymizer, params, http, Format::Csv).await
}

async fn with_bearer(
    log: web::Data<EventLog>,
    auth: web::Data<Auth>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<LogParams>,
    http: HttpRequest,
    format: Format,
) -> HttpResponse {
    let user_id = match bearer_token(&http) {
        None => {
            return refusal(&http, ApiError::Unauthenticated("send an access token"));
        }
        Some(token) => match auth.authenticate(token).await {
            Ok(principal) => principal.user_id,
            Err(err) => return refusal(&http, err.into()),
        },
    };
    let stream = LogStream {
        log: log.into_inner(),
        pseudonymizer: pseudonymizer.into_inner(),
    };
    stream.serve(&http, user_id, &params, format, false).await
}

/// The log, streamed for one reader.
pub struct LogStream {
    pub log: Arc<EventLog>,
    pub pseudonymizer: Arc<Pseudonymizer>,
}

impl LogStream {
    const BATCH: usize = 1_000;

    /// Decides `user_id`'s read of the log `params` ask for, then streams it as `format`
    /// (`attachment`: with a file name, for a browser to save).
    pub async fn serve(
        self,
        http: &HttpRequest,
        user_id: Uuid,
        params: &LogParams,
        format: Format,
        attachment: bool,
    ) -> HttpResponse {
        let refused = |err: ApiError| refusal(http, err);
        let workspace_id = match params
            .workspace
            .as_deref()
            .filter(|w| !w.is_empty())
            .map(|id| ids::decode(ids::Kind::Workspace, &ID(id.to_string())))
        {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(err)) => return refused(err),
        };
        let after = match params
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(events::position)
            .transpose()
        {
            Ok(after) => after.unwrap_or(Position::START),
            Err(err) => return refused(err),
        };
        let event_types = match event_types(params.types.as_deref()) {
            Ok(types) => types,
            Err(err) => return refused(err),
        };
        // A bulk read is rare: its rights are read from the database, never remembered.
        let rights = authz::Rights::new(self.log.pool().clone());
        let grant = match authz::log(&rights, user_id, workspace_id).await {
            Ok(grant) => grant,
            Err(err) => return refused(err),
        };
        let batches = Arc::new(Batches {
            log: self.log,
            pseudonymizer: self.pseudonymizer,
            filter: EventFilter {
                workspace_id,
                event_types,
                ..Default::default()
            },
            grant,
            format,
        });
        let header_row = match format {
            Format::Csv => Some(web::Bytes::from(format!("{}\r\n", Event::CSV_HEADER))),
            Format::Ndjson => None,
        };
        let rows = futures::stream::unfold(Some(after), move |state| {
            let batches = batches.clone();
            async move {
                let after = state?;
                match batches.batch(after).await {
                    Ok((bytes, next)) => Some((Ok(web::Bytes::from(bytes)), next)),
                    Err(err) => Some((Err(err), None)),
                }
            }
        });
        let body = futures::StreamExt::chain(
            futures::stream::iter(header_row.map(Ok::<_, actix_web::Error>)),
            rows,
        );
        let mut response = HttpResponse::Ok();
        response.content_type(format.content_type());
        if attachment {
            response.insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"chronicle-events.{}\"",
                    format.extension()
                ),
            ));
        }
        response.streaming(body)
    }
}

/// `types=A,B` as a filter's event types: at most [`MAX_TYPES`], looked at only that far.
fn event_types(types: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(types) = types.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let types: Vec<String> = types
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .take(MAX_TYPES + 1)
        .map(str::to_string)
        .collect();
    if types.len() > MAX_TYPES {
        return Err(ApiError::BadInput(format!(
            "`types` names at most {MAX_TYPES} event types"
        )));
    }
    Ok(Some(types))
}

/// What one streamed read writes, batch by batch.
struct Batches {
    log: Arc<EventLog>,
    pseudonymizer: Arc<Pseudonymizer>,
    filter: EventFilter,
    grant: Grant,
    format: Format,
}

impl Batches {
    /// The lines of the batch after `after`, and where the next batch starts (`None`: this
    /// batch ended the stream). An error ends an NDJSON stream with its trailer, and cuts a
    /// CSV one.
    async fn batch(
        &self,
        after: Position,
    ) -> Result<(Vec<u8>, Option<Position>), actix_web::Error> {
        let batch = match self
            .log
            .read_filtered(&self.filter, Some(after), false, LogStream::BATCH)
            .await
        {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(error = ?err, "a bulk read of the log stopped");
                return self.stopped(Vec::new(), after);
            }
        };
        let full = batch.len() == LogStream::BATCH;
        let mut last = after;
        let mut bytes = Vec::with_capacity(batch.len() * 700);
        for event in batch {
            last = event.position;
            let event = self.pseudonymizer.present(event, self.grant);
            match self.format {
                Format::Ndjson => {
                    if let Err(err) = serde_json::to_writer(&mut bytes, &event) {
                        tracing::error!(error = ?err, "cannot encode an event");
                        return self.stopped(bytes, last);
                    }
                    bytes.push(b'\n');
                }
                Format::Csv => {
                    bytes.extend(event.csv_row().as_bytes());
                    bytes.extend(b"\r\n");
                }
            }
        }
        // A short batch means we reached what is visible: the stream is complete.
        if full {
            Ok((bytes, Some(last)))
        } else {
            if self.format == Format::Ndjson {
                bytes.extend(trailer(last, None));
            }
            Ok((bytes, None))
        }
    }

    fn stopped(
        &self,
        mut bytes: Vec<u8>,
        last: Position,
    ) -> Result<(Vec<u8>, Option<Position>), actix_web::Error> {
        match self.format {
            Format::Ndjson => {
                bytes.extend(trailer(last, Some("internal error")));
                Ok((bytes, None))
            }
            Format::Csv => Err(actix_web::error::ErrorInternalServerError(
                "the log could not be read to the end",
            )),
        }
    }
}

/// The last line of an NDJSON stream: complete, or stopped by `error`, resumable after
/// `position`.
fn trailer(position: Position, error: Option<&str>) -> Vec<u8> {
    let end = match error {
        None => json!({ "end": { "complete": true, "position": position.to_string() } }),
        Some(error) => json!({
            "end": { "complete": false, "position": position.to_string(), "error": error }
        }),
    };
    let mut line = end.to_string().into_bytes();
    line.push(b'\n');
    line
}
