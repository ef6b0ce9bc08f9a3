//! What the API knows about the HTTP request a resolver runs for: who asks (if anyone), from
//! where, and how to tie what they cause back to the request in logs and events.
//!
//! [`resolve_origin`] runs first for every request: it names the request (a fresh id, never
//! the client's) and finds the client's address (through trusted proxies only, see
//! [`client_address`]); everything later reads that [`Origin`].

pub mod client_address;

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use eventlog::{Actor, Metadata};
use uuid::Uuid;

pub use client_address::TrustedProxies;

use crate::auth::Principal;
use crate::error::ApiError;

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;
/// The longest client request id kept; a longer one is dropped.
pub const MAX_CLIENT_REQUEST_ID: usize = 100;
/// The longest operation name accepted, in bytes: a longer one is refused before the
/// operation runs (`graphql::operation`), so what is logged and recorded is bounded.
pub const MAX_OPERATION_NAME: usize = 100;

/// The response header echoing the client's own request id.
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-client-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Per-request facts, put into every GraphQL request's data.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// See [`Origin::request_id`].
    pub request_id: String,
    /// See [`Origin::client_request_id`].
    pub client_request_id: Option<String>,
    /// See [`Origin::client_ip`].
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// At most [`MAX_OPERATION_NAME`] bytes (longer names are refused).
    pub operation_name: Option<String>,
    /// Shared by every event this request causes.
    pub correlation_id: Uuid,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The `X-Min-Position` header, if any: every read waits for it as for a `minPosition`
    /// argument (which takes precedence).
    pub min_position: Option<String>,
    /// The authenticated caller, if a valid access token came with the request.
    pub principal: Option<Principal>,
    /// A token came with the request but is not valid (expired, tampered, revoked…).
    pub token_rejected: bool,
}

/// Where a request comes from and what it is called, resolved once by [`resolve_origin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// A fresh UUID chosen by this server: in every log line of the request, in its events'
    /// metadata and in the response's `X-Request-Id`.
    pub request_id: String,
    /// The `X-Request-Id` the client (or a proxy) sent, when it is 1–100 visible ASCII
    /// characters: kept beside ours (event metadata, logs) and echoed in the response's
    /// `X-Client-Request-Id`, never used as ours.
    pub client_request_id: Option<String>,
    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the address
    /// its forwarding headers name ([`TrustedProxies::client`]).
    pub client_ip: Option<IpAddr>,
}

impl Origin {
    /// The origin of a request from `peer` with `headers`, believing `trusted` proxies.
    pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> Origin {
        let client_request_id = headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= MAX_CLIENT_REQUEST_ID
                    && id.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(str::to_string);
        Origin {
            request_id: Uuid::now_v7().to_string(),
            client_request_id,
            client_ip: peer.map(|peer| trusted.client(peer, headers)),
        }
    }
}

/// Middleware: resolves the request's [`Origin`] (with the app's [`TrustedProxies`], none if
/// not configured) for the handlers, and names the request in the response headers.
pub async fn resolve_origin(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let none = TrustedProxies::default();
    let trusted = request
        .app_data::<web::Data<TrustedProxies>>()
        .map_or(&none, |data| data.get_ref());
    let peer = request.peer_addr().map(|addr| addr.ip());
    let origin = Origin::resolve(peer, request.headers(), trusted);
    request.extensions_mut().insert(origin.clone());
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&origin.request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Some(value) = origin
        .client_request_id
        .and_then(|id| HeaderValue::from_str(&id).ok())
    {
        headers.insert(CLIENT_REQUEST_ID, value);
    }
    Ok(response)
}

/// The request's [`Origin`] as [`resolve_origin`] found it (resolved on the spot, trusting no
/// proxy, if the middleware did not run).
pub fn origin(request: &HttpRequest) -> Origin {
    if let Some(origin) = request.extensions().get::<Origin>() {
        return origin.clone();
    }
    let peer = request.peer_addr().map(|addr| addr.ip());
    Origin::resolve(peer, request.headers(), &TrustedProxies::default())
}

/// The request's id: see [`Origin::request_id`].
pub fn request_id(request: &HttpRequest) -> String {
    origin(request).request_id
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
        let origin = origin(request);
        RequestContext {
            request_id: request_id.to_string(),
            client_request_id: origin.client_request_id,
            client_ip: origin.client_ip,
            user_agent: header("user-agent").map(|ua| ua.chars().take(512).collect()),
            operation_name,
            correlation_id: Uuid::now_v7(),
            idempotency_key: header("idempotency-key").map(str::to_string),
            min_position: header("x-min-position").map(str::to_string),
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
            client_request_id: self.client_request_id.clone(),
            correlation_id: Some(self.correlation_id),
            client_ip: self.client_ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
            operation_name: self.operation_name.clone(),
            ..Metadata::for_actor(actor)
        }
    }
}
