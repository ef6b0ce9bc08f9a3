//! The `/graphql` endpoint over HTTP, per GraphQL-over-HTTP: POST with a JSON body, GET with
//! the query in the URL (queries only), responses as `application/json` or, when asked for,
//! `application/graphql-response+json`. Enforces the request-level abuse limits, authenticates
//! the bearer token, and hands every operation its [`RequestContext`].

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::{BatchRequest, Request};
use serde_json::json;
use tracing::Instrument;

use async_graphql::ID;
use eventlog::{EventFilter, EventLog, Position};

use std::sync::Arc;

use crate::auth::{Auth, AuthError};
use crate::authz::{self, Grant};
use crate::cache::{self, Answer, Reads, ResponseCache};
use crate::error::ApiError;
use crate::error::Code;
use crate::graphql::ChronicleSchema;
use crate::graphql::events::{self, Pseudonymizer};
use crate::graphql::ids;
use crate::limits::Limits;
use crate::request::{self, RequestContext};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// The response header saying whether the answer came from the response cache.
const CACHE_OUTCOME: header::HeaderName = header::HeaderName::from_static("x-chronicle-cache");
/// The request header with the newest log position the client has seen.
const MIN_POSITION: header::HeaderName = header::HeaderName::from_static("x-min-position");

/// Serves one GraphQL request (or a batch), in a span carrying the request id.
pub async fn graphql(
    schema: web::Data<ChronicleSchema>,
    auth: web::Data<Auth>,
    limits: web::Data<Limits>,
    cache: web::Data<Option<ResponseCache>>,
    http: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let request_id = request::request_id(&http);
    let span = tracing::info_span!("graphql", request_id = %request_id);
    let served = Served {
        schema: &schema,
        auth: &auth,
        limits: &limits,
        cache: cache.as_ref().as_ref(),
    };
    let mut response = served
        .serve(&http, &body, &request_id)
        .instrument(span)
        .await;
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    response
}

/// What serving a GraphQL request over HTTP needs.
struct Served<'a> {
    schema: &'a ChronicleSchema,
    auth: &'a Auth,
    limits: &'a Limits,
    /// This node's response cache, unless turned off.
    cache: Option<&'a ResponseCache>,
}

impl Served<'_> {
    async fn serve(&self, http: &HttpRequest, body: &[u8], request_id: &str) -> HttpResponse {
        // The caller is known before the body is looked at: the body is parsed (linearly,
        // bounded by the body limit) the same way for everyone, but nothing costlier happens
        // before resolvers, which refuse anonymous callers first.
        let principal = match bearer_token(http) {
            None => Ok(None),
            Some(token) => match self.auth.authenticate(token).await {
                Ok(principal) => Ok(Some(principal)),
                Err(AuthError::Internal(err)) => {
                    tracing::error!(error = ?err, "cannot check an access token");
                    Err(())
                }
                Err(_) => Err(()),
            },
        };
        let batch = match parse(http, body) {
            Ok(batch) => batch,
            Err(message) => {
                return refuse(http, StatusCode::BAD_REQUEST, Code::BadUserInput, &message);
            }
        };
        let operations = batch.iter().count();
        let max_batch = self.limits.max_batch;
        if operations == 0 || operations > max_batch {
            let message = format!("a batch holds 1 to {max_batch} operations, not {operations}");
            return refuse(http, StatusCode::BAD_REQUEST, Code::BadUserInput, &message);
        }
        if http.method() == Method::GET && batch.iter().any(is_mutation) {
            let mut response = refuse(
                http,
                StatusCode::METHOD_NOT_ALLOWED,
                Code::BadUserInput,
                "mutations must be sent with POST",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }

        let attach = |request: Request| {
            let context =
                RequestContext::new(http, request_id, request.operation_name.clone(), principal);
            request.data(context)
        };
        let batch = match (batch, self.cache) {
            // A rejected token is answered with errors, which are never cached; concurrent
            // identical mutations are distinct intents, never run once for both.
            (BatchRequest::Single(request), Some(cache))
                if principal.is_ok() && !cache::may_not_be_a_query(&request.query) =>
            {
                let caller = principal.ok().flatten().map(|p| p.user_id);
                return self
                    .serve_cached(cache, http, attach(request), caller)
                    .await;
            }
            (BatchRequest::Single(request), _) => BatchRequest::Single(attach(request)),
            (BatchRequest::Batch(requests), _) => {
                BatchRequest::Batch(requests.into_iter().map(attach).collect())
            }
        };
        let timeout = self.limits.request_timeout;
        match tokio::time::timeout(timeout, self.schema.execute_batch(batch)).await {
            Ok(response) => respond(http, StatusCode::OK, &response),
            Err(_) => refuse(
                http,
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Internal,
                "the request took too long",
            ),
        }
    }
}

impl Served<'_> {
    /// Serves a single request through the response cache: a fresh entry if there is one,
    /// else the answer of executing it (once for concurrent identical requests), stored when
    /// it may be. With `X-Min-Position`, nothing older than that position is served.
    async fn serve_cached(
        &self,
        cache: &ResponseCache,
        http: &HttpRequest,
        request: Request,
        caller: Option<uuid::Uuid>,
    ) -> HttpResponse {
        let content_type = response_type(http);
        if let Some(min_position) = min_position(http) {
            let reached = match min_position {
                Ok(position) => {
                    cache
                        .freshness()
                        .reaches(position, self.limits.consistency_wait)
                        .await
                }
                Err(message) => {
                    return refuse(http, StatusCode::BAD_REQUEST, Code::BadUserInput, &message);
                }
            };
            if !reached {
                let (code, message) = ApiError::NotYetConsistent.public();
                return refuse(http, StatusCode::OK, code, &message);
            }
        }
        let key = cache.key(caller, &request, content_type);
        if let Some(entry) = cache.fresh(&key).await {
            return cached_response(&entry.body, entry.content_type, CacheOutcome::Hit);
        }
        let reads = Arc::new(Reads::default());
        let request = request.data(reads.clone());
        let (schema, stamper, timeout) = (
            self.schema.clone(),
            cache.clone(),
            self.limits.request_timeout,
        );
        let start = cache.start();
        let answer = cache
            .get_or_compute(key, async move {
                let Ok(response) = tokio::time::timeout(timeout, schema.execute(request)).await
                else {
                    return Answer::TimedOut;
                };
                let body = web::Bytes::from(serde_json::to_vec(&response).unwrap_or_default());
                if response.is_ok() {
                    stamper.stamp(body, content_type, reads.recorded(), caller, start)
                } else {
                    Answer::Uncacheable(body, content_type)
                }
            })
            .await;
        match answer {
            Answer::Cacheable(entry) => {
                cached_response(&entry.body, entry.content_type, CacheOutcome::Miss)
            }
            Answer::Uncacheable(body, content_type) => {
                cached_response(&body, content_type, CacheOutcome::Bypass)
            }
            Answer::TimedOut => refuse(
                http,
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Internal,
                "the request took too long",
            ),
            Answer::Failed(err) => {
                tracing::error!(error = %err, "executing a request failed");
                let (code, message) = ApiError::Internal(anyhow::anyhow!(err)).public();
                refuse(http, StatusCode::INTERNAL_SERVER_ERROR, code, &message)
            }
        }
    }
}

/// Whether an answer came from the response cache, said in the `X-Chronicle-Cache` header.
#[derive(Debug, Clone, Copy)]
enum CacheOutcome {
    /// Served from the cache.
    Hit,
    /// Computed, and stored for the next request.
    Miss,
    /// Computed, not stored (not a cacheable query, an answer with errors, …).
    Bypass,
}

fn cached_response(body: &web::Bytes, content_type: &str, outcome: CacheOutcome) -> HttpResponse {
    let outcome = match outcome {
        CacheOutcome::Hit => "hit",
        CacheOutcome::Miss => "miss",
        CacheOutcome::Bypass => "bypass",
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((CACHE_OUTCOME, outcome))
        .body(body.clone())
}

/// The `X-Min-Position` header, if sent: the client has seen that log position and wants no
/// answer older than it.
fn min_position(http: &HttpRequest) -> Option<Result<Position, String>> {
    let value = http.headers().get(MIN_POSITION)?;
    Some(
        value
            .to_str()
            .map_err(|_| "X-Min-Position must be a log position".to_string())
            .and_then(|text| {
                events::position(text.trim()).map_err(|err| err.public().1.to_string())
            }),
    )
}

fn parse(http: &HttpRequest, body: &[u8]) -> Result<BatchRequest, String> {
    if http.method() == Method::GET {
        return async_graphql::http::parse_query_string(http.query_string())
            .map(BatchRequest::Single)
            .map_err(|err| format!("invalid query string: {err}"));
    }
    let content_type = http
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.starts_with("application/json")
        && !content_type.starts_with(GRAPHQL_RESPONSE_JSON)
    {
        return Err(format!(
            "send the request as application/json, not {content_type}"
        ));
    }
    let not_a_request = |detail: String| format!("the body is not a GraphQL request: {detail}");
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| not_a_request(err.to_string()))?;
    // A request is an object, a batch a non-empty array of objects (serde would also read a
    // request from an array, so the shape is checked first).
    let well_formed = match &json {
        serde_json::Value::Object(_) => true,
        serde_json::Value::Array(items) => {
            !items.is_empty() && items.iter().all(serde_json::Value::is_object)
        }
        _ => false,
    };
    if !well_formed {
        return Err(not_a_request(
            "expected an object or an array of objects".into(),
        ));
    }
    serde_json::from_value(json).map_err(|err| not_a_request(err.to_string()))
}

/// The content type the client asked answers in.
fn response_type(http: &HttpRequest) -> &'static str {
    let accepts_graphql_json = http
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(GRAPHQL_RESPONSE_JSON));
    if accepts_graphql_json {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    }
}

/// A JSON response, typed as the client asked.
fn respond(http: &HttpRequest, status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(response_type(http))
        .body(serde_json::to_vec(body).unwrap_or_default())
}

/// A request refused before execution, as a GraphQL error response.
fn refuse(http: &HttpRequest, status: StatusCode, code: Code, message: &str) -> HttpResponse {
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    respond(http, status, &body)
}

fn bearer_token(http: &HttpRequest) -> Option<&str> {
    bearer(http.headers().get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value of the `Bearer` scheme.
pub(crate) fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether the operation the request selects is a mutation (unparsable: no — the executor
/// reports the syntax error).
fn is_mutation(request: &Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    match &document.operations {
        DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops
                .get(name.as_str())
                .is_some_and(|op| op.node.ty == OperationType::Mutation),
            None => ops.values().any(|op| op.node.ty == OperationType::Mutation),
        },
    }
}

/// `GET /events.ndjson?after=POSITION&workspace=ID`: the log as newline-delimited JSON, one event
/// per line in position order, from `after` (exclusive) to what is visible now. Streamed in
/// batches, so memory stays flat however long the log. Same rights as the `events` query (see
/// [`crate::authz`]): owners and admins their workspace, ANALYST staff any (or all, without
/// `workspace`), pseudonymised. A refusal is 401, 403 or 404 before any line.
///
/// The last line is never an event but a trailer, `{"end": {...}}`, saying whether the stream
/// is complete (`"complete": true`) or stopped by an error (`"complete": false` and an
/// `"error"`), and the `"position"` to resume after (the last event sent, or `after`). A stream
/// without its trailer was cut (for instance by a proxy): resume after its last event.
pub async fn events_ndjson(
    log: web::Data<EventLog>,
    auth: web::Data<Auth>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<NdjsonParams>,
    http: HttpRequest,
) -> HttpResponse {
    let refused = |err: ApiError| {
        let (code, message) = err.public();
        let status = match code {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::BadUserInput => StatusCode::BAD_REQUEST,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        refuse(&http, status, code, &message)
    };
    let user_id = match bearer_token(&http) {
        None => return refused(ApiError::Unauthenticated("send an access token")),
        Some(token) => match auth.authenticate(token).await {
            Ok(principal) => principal.user_id,
            Err(err) => return refused(err.into()),
        },
    };
    let workspace_id = match params
        .workspace
        .as_deref()
        .map(|id| ids::decode(ids::Kind::Workspace, &ID(id.to_string())))
    {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(err)) => return refused(err),
    };
    let after = match params.after.as_deref().map(events::position).transpose() {
        Ok(after) => after.unwrap_or(Position::START),
        Err(err) => return refused(err),
    };
    let grant = match authz::log(log.pool(), user_id, workspace_id).await {
        Ok(grant) => grant,
        Err(err) => return refused(err),
    };
    let filter = EventFilter {
        workspace_id,
        ..Default::default()
    };
    let stream = NdjsonStream {
        log: log.into_inner(),
        pseudonymizer: pseudonymizer.into_inner(),
        filter,
        grant,
    };
    let lines = futures::stream::unfold(Some(after), move |state| {
        let stream = stream.clone();
        async move {
            let after = state?;
            let (bytes, next) = stream.batch(after).await;
            Some((Ok::<_, actix_web::Error>(web::Bytes::from(bytes)), next))
        }
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(lines)
}

/// What `/events.ndjson` streams, batch by batch.
#[derive(Clone)]
struct NdjsonStream {
    log: std::sync::Arc<EventLog>,
    pseudonymizer: std::sync::Arc<Pseudonymizer>,
    filter: EventFilter,
    grant: Grant,
}

impl NdjsonStream {
    const BATCH: usize = 1_000;

    /// The lines of the batch after `after`, and where the next batch starts (`None`: this
    /// batch ended with the trailer).
    async fn batch(&self, after: Position) -> (Vec<u8>, Option<Position>) {
        let batch = match self
            .log
            .read_filtered(&self.filter, Some(after), false, Self::BATCH)
            .await
        {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(error = ?err, "events.ndjson stopped");
                return (trailer(after, Some("internal error")), None);
            }
        };
        let full = batch.len() == Self::BATCH;
        let mut last = after;
        let mut bytes = Vec::with_capacity(batch.len() * 700);
        for event in batch {
            last = event.position;
            let event = self.pseudonymizer.present(event, self.grant);
            if let Err(err) = serde_json::to_writer(&mut bytes, &event) {
                tracing::error!(error = ?err, "events.ndjson cannot encode an event");
                bytes.extend(trailer(last, Some("internal error")));
                return (bytes, None);
            }
            bytes.push(b'\n');
        }
        // A short batch means we reached what is visible: the stream is complete.
        if full {
            (bytes, Some(last))
        } else {
            bytes.extend(trailer(last, None));
            (bytes, None)
        }
    }
}

/// The last line of `/events.ndjson`: complete, or stopped by `error`, resumable after
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

/// Query parameters of `/events.ndjson`.
#[derive(Debug, serde::Deserialize)]
pub struct NdjsonParams {
    /// Resume after this position.
    after: Option<String>,
    /// A workspace's global id.
    workspace: Option<String>,
}
