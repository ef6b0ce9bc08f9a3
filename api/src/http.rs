//! The `/graphql` endpoint over HTTP, per GraphQL-over-HTTP: POST with a JSON body, GET with
//! the query in the URL (queries only), responses as `application/json` or, when the client
//! prefers it, `application/graphql-response+json`. Enforces the request-level abuse limits,
//! resolves persisted queries ([`crate::persisted`]) before anything parses the document (so
//! the response cache keys on the resolved text), authenticates the bearer token, answers
//! from the response cache ([`crate::cache`]) when it can, hands every operation its
//! [`RequestContext`], and counts what it serves ([`Metrics`]).
//!
//! Status codes: a request that cannot be read (not JSON, not a GraphQL request, no query, a
//! malformed persisted query) is 400 whatever the client accepts. A request whose document
//! does not parse or validate, whose variables do not coerce or whose operation cannot be
//! chosen never executes: its answer has no `data` entry, and it is 400 for a client that
//! prefers `application/graphql-response+json`, 200 for one that takes `application/json`
//! (which cannot tell a GraphQL error from a proxy's otherwise). An executed operation is 200,
//! errors or not. (The spec's draft of April 2026 moves validation and variable failures to
//! 422 and partial answers to 294; this follows the issue and the draft clients implement.)
//!
//! HTTP caches (GET only; a POST is never cached): every GET answer varies by `Accept` and
//! `Authorization`; with errors it is `no-store`, to a request with credentials
//! `private, no-cache`, else `no-cache`. Nothing gets a `max-age`: every field with data needs
//! a signed-in caller, and a stale private copy would break read-your-writes. A persisted
//! query's GET URL (hash and variables, no document) is short and stable, so a field that one
//! day may be shared is cacheable by URL.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::{BatchRequest, BatchResponse, Executor, Request, Response};
use serde_json::json;
use tracing::Instrument;

use eventlog::Position;

use crate::auth::{Auth, AuthError};
use crate::cache::{self, Answer, Reads, ResponseCache};
use crate::error::ApiError;
use crate::error::Code;
use crate::graphql::ChronicleSchema;
use crate::graphql::events;
use crate::graphql::execution::Execution;
use crate::limits::{self, Limits};
use crate::metrics::{Metrics, Outcome};
use crate::persisted::{Lookup, PersistedQueries, PersistedQueryError};
use crate::request::{self, RequestContext};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// The response header saying whether the answer came from the response cache.
const CACHE_OUTCOME: header::HeaderName = header::HeaderName::from_static("x-chronicle-cache");
/// The request header with the newest log position the client has seen.
const MIN_POSITION: header::HeaderName = header::HeaderName::from_static("x-min-position");

/// Serves one GraphQL request (or a batch), in a span carrying the request id.
#[allow(clippy::too_many_arguments)]
pub async fn graphql(
    schema: web::Data<ChronicleSchema>,
    auth: web::Data<Auth>,
    limits: web::Data<Limits>,
    cache: web::Data<Option<ResponseCache>>,
    persisted: web::Data<PersistedQueries>,
    metrics: web::Data<Metrics>,
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
        persisted: &persisted,
        metrics: &metrics,
        started: Instant::now(),
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
    persisted: &'a PersistedQueries,
    metrics: &'a Metrics,
    started: Instant,
}

/// One operation of the request, as the handler follows it: the name the client sent (what
/// metrics count it under: a cache hit never looks at the document), and whether it executed.
struct Followed {
    operation_name: Option<String>,
    execution: Arc<Execution>,
}

impl Followed {
    fn name(&self) -> Option<&str> {
        self.operation_name.as_deref()
    }
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
            Err(message) => return self.refuse(http, ApiError::BadInput(message)),
        };
        let operations = batch.iter().count();
        let max_batch = self.limits.max_batch;
        if operations == 0 || operations > max_batch {
            let message = format!("a batch holds 1 to {max_batch} operations, not {operations}");
            return self.refuse(http, ApiError::BadInput(message));
        }
        let mut batch = match self.resolve_persisted(batch) {
            Ok(batch) => batch,
            Err(err) => return self.refuse(http, err.into()),
        };
        if batch.iter().any(|request| request.query.is_empty()) {
            let message = "a GraphQL request needs a query (or a known persisted query's hash)";
            return self.refuse(http, ApiError::BadInput(message.into()));
        }
        // Only a document that names the keyword is parsed here (and kept parsed for its
        // execution): a GET served from the response cache is never parsed.
        let is_mutation = |request: &mut Request| {
            cache::may_not_be_a_query(&request.query) && is_mutation(request)
        };
        if http.method() == Method::GET && batch.iter_mut().any(is_mutation) {
            let mut response = self.refuse(
                http,
                ApiError::BadInput("mutations must be sent with POST".into()),
            );
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }

        let authenticated = !matches!(principal, Ok(None));
        let attach = |request: Request| {
            let context =
                RequestContext::new(http, request_id, request.operation_name.clone(), principal);
            let followed = Followed {
                operation_name: request.operation_name.clone(),
                execution: Execution::new(),
            };
            let request = request.data(context).data(followed.execution.clone());
            (request, followed)
        };
        let (batch, followed) = match (batch, self.cache) {
            // A rejected token is answered with errors, which are never cached; concurrent
            // identical mutations are distinct intents, never run once for both.
            (BatchRequest::Single(request), Some(cache))
                if principal.is_ok() && !cache::may_not_be_a_query(&request.query) =>
            {
                let caller = principal.ok().flatten().map(|p| p.user_id);
                let (request, followed) = attach(request);
                let mut response = self
                    .serve_cached(cache, http, request, &followed, caller)
                    .await;
                mark_http_caching(http, authenticated, &mut response);
                return response;
            }
            (BatchRequest::Single(request), _) => {
                let (request, followed) = attach(request);
                (BatchRequest::Single(request), vec![followed])
            }
            (BatchRequest::Batch(requests), _) => {
                let (requests, followed) = requests.into_iter().map(attach).unzip();
                (BatchRequest::Batch(requests), followed)
            }
        };
        // The schema bounds each request's execution (`limits::within`); a batch's requests
        // run at once, each within the limit, and a batch answers each one's timeout in place.
        let mut response = match self.schema.execute_batch(batch).await {
            BatchResponse::Single(response) if limits::timed_out(&response) => {
                self.observe(followed[0].name(), Outcome::Timeout);
                self.timed_out(http)
            }
            response => self.answer(http, &followed, response),
        };
        mark_http_caching(http, authenticated, &mut response);
        response
    }

    /// Puts each persisted query's document in its request (see [`crate::persisted`]).
    fn resolve_persisted(&self, batch: BatchRequest) -> Result<BatchRequest, PersistedQueryError> {
        let resolve = |mut request: Request| {
            let lookup = self.persisted.resolve(&mut request);
            match lookup {
                Ok(Lookup::Hit) => self.metrics.apq_hit(),
                Ok(Lookup::Registered) => self.metrics.apq_registered(),
                Err(PersistedQueryError::NotFound) => self.metrics.apq_miss(),
                Ok(Lookup::NotPersisted) | Err(_) => {}
            }
            lookup.map(|_| request)
        };
        Ok(match batch {
            BatchRequest::Single(request) => BatchRequest::Single(resolve(request)?),
            BatchRequest::Batch(requests) => BatchRequest::Batch(
                requests
                    .into_iter()
                    .map(resolve)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The HTTP answer to an executed (or attempted) batch, not through the response cache.
    fn answer(
        &self,
        http: &HttpRequest,
        followed: &[Followed],
        response: BatchResponse,
    ) -> HttpResponse {
        let responses: Vec<&Response> = match &response {
            BatchResponse::Single(response) => vec![response],
            BatchResponse::Batch(responses) => responses.iter().collect(),
        };
        let sent: Vec<Sent> = responses
            .iter()
            .zip(followed)
            .map(|(response, operation)| {
                let sent = Sent::of(response, &operation.execution);
                self.observe(operation.name(), sent.outcome());
                self.count_errors(response);
                sent
            })
            .collect();
        let mut reply = match &response {
            BatchResponse::Single(_) => respond(http, sent[0].status(http), &sent[0]),
            BatchResponse::Batch(_) => respond(http, StatusCode::OK, &sent),
        };
        if !response.is_ok() {
            no_store(&mut reply);
        }
        reply
    }

    /// Serves a single request through the response cache: a fresh entry if there is one,
    /// else the answer of executing it (once for concurrent identical requests), stored when
    /// it may be. With `X-Min-Position`, nothing older than that position is served.
    async fn serve_cached(
        &self,
        cache: &ResponseCache,
        http: &HttpRequest,
        request: Request,
        followed: &Followed,
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
                Err(message) => return self.refuse(http, ApiError::BadInput(message)),
            };
            if !reached {
                self.observe(followed.name(), Outcome::Error);
                self.metrics.error(Code::NotYetConsistent);
                let (code, message) = ApiError::NotYetConsistent.public();
                let mut response = refuse(http, StatusCode::OK, code, &message);
                no_store(&mut response);
                return response;
            }
        }
        let key = cache.key(caller, &request, content_type);
        if let Some(entry) = cache.fresh(&key).await {
            self.observe(followed.name(), Outcome::Ok);
            return cached_response(&entry.body, entry.content_type, CacheOutcome::Hit);
        }
        let reads = Arc::new(Reads::default());
        let request = request.data(reads.clone());
        let (schema, stamper) = (self.schema.clone(), cache.clone());
        let (execution, metrics) = (followed.execution.clone(), self.metrics.clone());
        let start = cache.start();
        let answer = cache
            .get_or_compute(key, async move {
                let response = schema.execute(request).await;
                if limits::timed_out(&response) {
                    return Answer::TimedOut;
                }
                // Counted once, by the request that executed (also for those that waited).
                metrics.count_errors(&response);
                let sent = Sent::of(&response, &execution);
                let body = web::Bytes::from(serde_json::to_vec(&sent).unwrap_or_default());
                match sent.outcome() {
                    Outcome::Ok => {
                        stamper.stamp(body, content_type, reads.recorded(), caller, start)
                    }
                    Outcome::Rejected => Answer::Rejected(body, content_type),
                    Outcome::Error | Outcome::Timeout => Answer::Errors(body, content_type),
                }
            })
            .await;
        let name = followed.name();
        match answer {
            Answer::Cacheable(entry) => {
                self.observe(name, Outcome::Ok);
                cached_response(&entry.body, entry.content_type, CacheOutcome::Miss)
            }
            Answer::Uncacheable(body, content_type) => {
                self.observe(name, Outcome::Ok);
                cached_response(&body, content_type, CacheOutcome::Bypass)
            }
            Answer::Errors(body, content_type) => {
                self.observe(name, Outcome::Error);
                let mut response = cached_response(&body, content_type, CacheOutcome::Bypass);
                no_store(&mut response);
                response
            }
            Answer::Rejected(body, content_type) => {
                self.observe(name, Outcome::Rejected);
                let mut response = cached_response(&body, content_type, CacheOutcome::Bypass);
                *response.status_mut() = rejected_status(http);
                no_store(&mut response);
                response
            }
            Answer::TimedOut => {
                self.observe(name, Outcome::Timeout);
                self.timed_out(http)
            }
            Answer::Failed(err) => {
                tracing::error!(error = %err, "executing a request failed");
                self.observe(name, Outcome::Error);
                self.metrics.error(Code::Internal);
                let (code, message) = ApiError::Internal(anyhow::anyhow!(err)).public();
                let mut response = refuse(http, StatusCode::INTERNAL_SERVER_ERROR, code, &message);
                no_store(&mut response);
                response
            }
        }
    }

    fn observe(&self, operation: Option<&str>, outcome: Outcome) {
        self.metrics
            .observe(operation, outcome, self.started.elapsed());
    }

    fn count_errors(&self, response: &Response) {
        self.metrics.count_errors(response);
    }

    /// The answer when execution ran out of time: 504, not 503, because a load balancer takes
    /// 503 for a node that cannot serve (nginx, as `deploy/nginx.conf` sets it up, would stop
    /// sending this node anything for a while because of one slow request).
    fn timed_out(&self, http: &HttpRequest) -> HttpResponse {
        self.metrics.error(Code::Internal);
        let mut response = refuse(
            http,
            StatusCode::GATEWAY_TIMEOUT,
            Code::Internal,
            "the request took too long",
        );
        no_store(&mut response);
        response
    }

    /// Refuses the request before execution with `err`'s code and message (and counts it).
    fn refuse(&self, http: &HttpRequest, err: ApiError) -> HttpResponse {
        let (code, message) = err.public();
        self.metrics.error(code);
        self.observe(None, Outcome::Rejected);
        let status = match code {
            // Apollo's clients read this one from a 200 answer and then send the query; a
            // client that prefers graphql-response+json is told 404 (an answer without data).
            Code::PersistedQueryNotFound if prefers_graphql_response_json(http) => {
                StatusCode::NOT_FOUND
            }
            Code::PersistedQueryNotFound => StatusCode::OK,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = refuse(http, status, code, &message);
        no_store(&mut response);
        response
    }
}

/// One GraphQL response as sent: without `data` when the request never executed.
#[derive(serde::Serialize)]
struct Sent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

impl<'a> Sent<'a> {
    fn of(response: &'a Response, execution: &Execution) -> Sent<'a> {
        Sent {
            data: execution.reached(response).then_some(&response.data),
            errors: &response.errors,
            extensions: &response.extensions,
        }
    }

    fn outcome(&self) -> Outcome {
        match (self.data, self.errors.is_empty()) {
            (None, _) => Outcome::Rejected,
            (Some(_), true) => Outcome::Ok,
            (Some(_), false) => Outcome::Error,
        }
    }

    fn status(&self, http: &HttpRequest) -> StatusCode {
        match self.data {
            None => rejected_status(http),
            Some(_) => StatusCode::OK,
        }
    }
}

/// The status of an answer to a request that never executed (see the module docs).
fn rejected_status(http: &HttpRequest) -> StatusCode {
    if prefers_graphql_response_json(http) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// Tells HTTP caches what they may do with a GET answer (see the module docs): an answer
/// with errors was marked `no-store` already; `authenticated`: the request came with
/// credentials.
fn mark_http_caching(http: &HttpRequest, authenticated: bool, response: &mut HttpResponse) {
    if http.method() != Method::GET {
        return;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        header::HeaderValue::from_static("Accept, Authorization"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        let cache_control = if authenticated {
            "private, no-cache"
        } else {
            "no-cache"
        };
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(cache_control),
        );
    }
}

/// An answer no cache may keep: every answer with errors (refusals, failures: the next try
/// may well succeed), so marked where the errors are known.
fn no_store(response: &mut HttpResponse) {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
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

/// The parameters of a GET request: `query`, `operationName`, and `variables` and
/// `extensions` as JSON text.
#[derive(serde::Deserialize)]
struct GetParams {
    #[serde(default)]
    query: String,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

fn parse(http: &HttpRequest, body: &[u8]) -> Result<BatchRequest, String> {
    if http.method() == Method::GET {
        return parse_get(http.query_string()).map(BatchRequest::Single);
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

/// A GET request's GraphQL request, from its URL's query string (async-graphql's own parser
/// looks for `operation_name`, not the spec's `operationName`).
fn parse_get(query_string: &str) -> Result<Request, String> {
    let invalid = |detail: String| format!("invalid query string: {detail}");
    let params = web::Query::<GetParams>::from_query(query_string)
        .map_err(|err| invalid(err.to_string()))?
        .into_inner();
    let mut request = Request::new(params.query);
    request.operation_name = params.operation_name;
    if let Some(variables) = params.variables {
        request.variables =
            serde_json::from_str(&variables).map_err(|err| invalid(format!("variables: {err}")))?;
    }
    if let Some(extensions) = params.extensions {
        request.extensions = serde_json::from_str(&extensions)
            .map_err(|err| invalid(format!("extensions: {err}")))?;
    }
    Ok(request)
}

/// Whether the client prefers `application/graphql-response+json` to `application/json`:
/// it lists it with a quality above zero and at least that of `application/json` (wildcards
/// count for `application/json`, the answer to clients that say nothing).
fn prefers_graphql_response_json(http: &HttpRequest) -> bool {
    let Some(accept) = http
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (mut graphql, mut json) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|param| param.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            GRAPHQL_RESPONSE_JSON => graphql = graphql.max(quality),
            "application/json" | "application/*" | "*/*" => json = json.max(quality),
            _ => {}
        }
    }
    graphql > 0.0 && graphql >= json
}

/// The content type the client asked answers in.
fn response_type(http: &HttpRequest) -> &'static str {
    if prefers_graphql_response_json(http) {
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
pub(crate) fn refuse(
    http: &HttpRequest,
    status: StatusCode,
    code: Code,
    message: &str,
) -> HttpResponse {
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    respond(http, status, &body)
}

/// A route outside GraphQL refusing a request with `err`: the HTTP status its code stands
/// for, and the error as a GraphQL error response (with its `extensions.code`).
pub(crate) fn refusal(http: &HttpRequest, err: ApiError) -> HttpResponse {
    let (code, message) = err.public();
    let status = match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::BadUserInput => StatusCode::BAD_REQUEST,
        Code::Conflict => StatusCode::CONFLICT,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refuse(http, status, code, &message)
}

pub(crate) fn bearer_token(http: &HttpRequest) -> Option<&str> {
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
/// reports the syntax error). The parsed document stays in the request for execution.
fn is_mutation(request: &mut Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    match &document.operations {
        DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(ops) => match &operation_name {
            Some(name) => ops
                .get(name.as_str())
                .is_some_and(|op| op.node.ty == OperationType::Mutation),
            None => ops.values().any(|op| op.node.ty == OperationType::Mutation),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefers(accept: Option<&str>) -> bool {
        let mut request = actix_web::test::TestRequest::default();
        if let Some(accept) = accept {
            request = request.insert_header((header::ACCEPT, accept));
        }
        prefers_graphql_response_json(&request.to_http_request())
    }

    #[test]
    fn the_accept_header_decides_by_quality() {
        assert!(!prefers(None));
        assert!(!prefers(Some("application/json")));
        assert!(!prefers(Some("*/*")));
        assert!(prefers(Some("application/graphql-response+json")));
        assert!(prefers(Some(
            "application/graphql-response+json, application/json;q=0.9"
        )));
        assert!(prefers(Some(
            "application/json, application/graphql-response+json"
        )));
        assert!(!prefers(Some(
            "application/json, application/graphql-response+json;q=0.5"
        )));
        assert!(!prefers(Some("application/graphql-response+json;q=0")));
        assert!(prefers(Some(
            "Application/GraphQL-Response+JSON ; q=0.8, */*;q=0.1"
        )));
    }
}
