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
use eventlog::{EventFilter, EventLog};

use crate::auth::{Auth, AuthError};
use crate::error::ApiError;
use crate::error::Code;
use crate::graphql::ChronicleSchema;
use crate::graphql::events::{self, Pseudonymizer};
use crate::graphql::ids;
use crate::limits::Limits;
use crate::request::{self, RequestContext};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Serves one GraphQL request (or a batch), in a span carrying the request id.
pub async fn graphql(
    schema: web::Data<ChronicleSchema>,
    auth: web::Data<Auth>,
    limits: web::Data<Limits>,
    http: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let request_id = request::request_id(&http);
    let span = tracing::info_span!("graphql", request_id = %request_id);
    let mut response = serve(&schema, &auth, &limits, &http, &body, &request_id)
        .instrument(span)
        .await;
    if let Ok(value) = header::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    response
}

async fn serve(
    schema: &ChronicleSchema,
    auth: &Auth,
    limits: &Limits,
    http: &HttpRequest,
    body: &[u8],
    request_id: &str,
) -> HttpResponse {
    let batch = match parse(http, body) {
        Ok(batch) => batch,
        Err(message) => {
            return refuse(http, StatusCode::BAD_REQUEST, Code::BadUserInput, &message);
        }
    };
    let operations = batch.iter().count();
    if operations == 0 || operations > limits.max_batch {
        let message = format!(
            "a batch holds 1 to {} operations, not {operations}",
            limits.max_batch
        );
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

    let principal = match bearer_token(http) {
        None => Ok(None),
        Some(token) => match auth.authenticate(token).await {
            Ok(principal) => Ok(Some(principal)),
            Err(AuthError::Internal(err)) => {
                tracing::error!(error = ?err, "cannot check an access token");
                Err(())
            }
            Err(_) => Err(()),
        },
    };
    let attach = |request: Request| {
        let context =
            RequestContext::new(http, request_id, request.operation_name.clone(), principal);
        request.data(context)
    };
    let batch = match batch {
        BatchRequest::Single(request) => BatchRequest::Single(attach(request)),
        BatchRequest::Batch(requests) => {
            BatchRequest::Batch(requests.into_iter().map(attach).collect())
        }
    };
    match tokio::time::timeout(limits.request_timeout, schema.execute_batch(batch)).await {
        Ok(response) => respond(http, StatusCode::OK, &response),
        Err(_) => refuse(
            http,
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal,
            "the request took too long",
        ),
    }
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

/// A JSON response, typed as the client asked.
fn respond(http: &HttpRequest, status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    let accepts_graphql_json = http
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(GRAPHQL_RESPONSE_JSON));
    let content_type = if accepts_graphql_json {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    };
    HttpResponse::build(status)
        .content_type(content_type)
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
/// per line in position order, from `after` (exclusive) to what is visible now; resume with the
/// last line's position. Streamed in batches, so memory stays flat however long the log. Same
/// rights as the `events` query: members their workspace, ANALYST staff any (or all, without
/// `workspace`), pseudonymised.
pub async fn events_ndjson(
    log: web::Data<EventLog>,
    auth: web::Data<Auth>,
    pseudonymizer: web::Data<Pseudonymizer>,
    params: web::Query<NdjsonParams>,
    http: HttpRequest,
) -> HttpResponse {
    const BATCH: usize = 1_000;
    let refused = |err: ApiError| {
        let (code, message) = err.public();
        let status = match code {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::BadUserInput => StatusCode::BAD_REQUEST,
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
        Ok(after) => after,
        Err(err) => return refused(err),
    };
    let pseudonymise = match events::access(log.pool(), user_id, workspace_id).await {
        Ok(pseudonymise) => pseudonymise,
        Err(err) => return refused(err),
    };
    let filter = EventFilter {
        workspace_id,
        ..Default::default()
    };
    let log = log.into_inner();
    let pseudonymizer = pseudonymizer.into_inner();
    let lines = futures::stream::try_unfold(Some(after), move |state| {
        let (log, filter, pseudonymizer) = (log.clone(), filter.clone(), pseudonymizer.clone());
        async move {
            let Some(after) = state else { return Ok(None) };
            let batch = log
                .read_filtered(&filter, after, false, BATCH)
                .await
                .map_err(|err| {
                    tracing::error!(error = ?err, "events.ndjson stopped");
                    actix_web::error::ErrorInternalServerError("internal error")
                })?;
            let Some(last) = batch.last().map(|event| event.position) else {
                return Ok(None);
            };
            let full = batch.len() == BATCH;
            let mut bytes = Vec::with_capacity(batch.len() * 700);
            for event in batch {
                let event = pseudonymizer.present(event, pseudonymise);
                serde_json::to_writer(&mut bytes, &event)
                    .map_err(actix_web::error::ErrorInternalServerError)?;
                bytes.push(b'\n');
            }
            // A short batch means we reached what is visible: stop after it.
            let next = full.then_some(Some(last));
            Ok::<_, actix_web::Error>(Some((web::Bytes::from(bytes), next)))
        }
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(lines)
}

/// Query parameters of `/events.ndjson`.
#[derive(Debug, serde::Deserialize)]
pub struct NdjsonParams {
    /// Resume after this position.
    after: Option<String>,
    /// A workspace's global id.
    workspace: Option<String>,
}
