//! What the API knows about the HTTP request a resolver runs for: who asks (if anyone), from
//! where, and how to tie what they cause back to the request in logs and events.

use std::net::IpAddr;

use actix_web::HttpRequest;
use eventlog::{Actor, Metadata};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// Per-request facts, put into every GraphQL request's data.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// See [`request_id`].
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub operation_name: Option<String>,
    /// Shared by every event this request causes.
    pub correlation_id: Uuid,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The authenticated caller, if a valid access token came with the request.
    pub principal: Option<Principal>,
    /// A token came with the request but is not valid (expired, tampered, revoked…).
    pub token_rejected: bool,
}

/// The request's id: `X-Request-Id` when the client (or a proxy) sent a sane one, else a fresh
/// UUID. It is in every log line of the request, in its events' metadata and in the response.
pub fn request_id(request: &HttpRequest) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 100 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_string)
}

impl RequestContext {
    /// Reads the request's headers; `principal` is the outcome of checking its bearer token
    /// (`Err(())`: a token was presented and rejected).
    pub fn new(
        request: &HttpRequest,
        request_id: &str,
        operation_name: Option<String>,
        principal: Result<Option<Principal>, ()>,
    ) -> RequestContext {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        RequestContext {
            request_id: request_id.to_string(),
            client_ip: request.peer_addr().map(|addr| addr.ip()),
            user_agent: header("user-agent").map(|ua| ua.chars().take(512).collect()),
            operation_name,
            correlation_id: Uuid::now_v7(),
            idempotency_key: header("idempotency-key").map(str::to_string),
            token_rejected: principal.is_err(),
            principal: principal.ok().flatten(),
        }
    }

    /// The signed-in user, or `UNAUTHENTICATED`.
    pub fn user(&self) -> Result<Principal, ApiError> {
        match (self.principal, self.token_rejected) {
            (Some(principal), _) => Ok(principal),
            (None, true) => Err(ApiError::Unauthenticated(
                "the access token is invalid or expired",
            )),
            (None, false) => Err(ApiError::Unauthenticated("sign in first")),
        }
    }

    /// The idempotency key, validated.
    pub fn idempotency_key(&self) -> Result<Option<&str>, ApiError> {
        match self.idempotency_key.as_deref() {
            Some(key)
                if key.len() > MAX_IDEMPOTENCY_KEY
                    || !key.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Err(ApiError::BadInput(format!(
                    "Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                )))
            }
            key => Ok(key),
        }
    }

    /// Event metadata for an action by `actor` acting in `role`.
    pub fn metadata(&self, actor: Option<Uuid>, role: Option<&str>) -> Metadata {
        let actor = match actor {
            Some(id) => Actor::User {
                id,
                role: role.map(str::to_string),
            },
            None => Actor::System {
                name: "anonymous".into(),
            },
        };
        Metadata {
            request_id: Some(self.request_id.clone()),
            correlation_id: Some(self.correlation_id),
            client_ip: self.client_ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
            operation_name: self.operation_name.clone(),
            ..Metadata::for_actor(actor)
        }
    }
}
