//! `/graphql` over WebSocket, for subscriptions, with the `graphql-transport-ws` protocol.
//!
//! A connection is authenticated by its `connection_init` message, whose payload carries the
//! access token: `{"authorization": "Bearer <token>"}` (or `{"token": "<token>"}`). The server
//! closes the socket with
//! - 4403 when the token is missing or not valid, and again when it expires: the client
//!   reconnects with a fresh token and resumes each feed from the last position it received;
//! - 4403 when the session ends (log-out, revocation), which it checks every
//!   `Config::session_recheck` (30 s) while the connection lasts;
//! - 4408 when `connection_init` does not arrive within [`INIT_TIMEOUT`];
//! - 4429 when the user already holds `Limits::max_ws_connections_per_user` sockets on this
//!   node;
//! - 1012 (service restart) when the node shuts down: between two messages, so nothing arrives
//!   cut; the client reconnects (a load balancer sends it to another node) and resumes each
//!   feed from the last position it received. A node shutting down answers a new upgrade
//!   with 503 (see [`crate::shutdown`]).
//!
//! At most `Limits::max_ws_operations` operations run at once on one socket: a `subscribe`
//! beyond that is answered with an `error` message for its id (`RATE_LIMITED`) and not run.
//! Queries and mutations sent over the socket obey the same limits and execution timeout as
//! over HTTP, and each operation gets its own request id (see `graphql::operation`).
//!
//! async-graphql's [`WebSocket`] speaks the protocol; this module feeds it the client's
//! frames, writes its answers back, and enforces the deadlines above.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use async_graphql::Data;
use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use chrono::Utc;
use futures::StreamExt;
use futures::channel::mpsc;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{Auth, AuthError, Principal};
use crate::error::Code;
use crate::graphql::ChronicleSchema;
use crate::http::bearer;
use crate::limits::Limits;
use crate::request::{self, RequestContext};
use crate::shutdown::{Draining, SERVICE_RESTART};

/// How long a client may take to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How the WebSocket endpoint behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often an open connection checks that its session has not ended.
    pub session_recheck: Duration,
    /// Set when the node shuts down: connections are closed with [`SERVICE_RESTART`].
    pub draining: Draining,
}
/// The protocol's close code for a refused (or no longer valid) authentication.
const FORBIDDEN: u16 = 4403;
/// The protocol's close code for a missing `connection_init`.
const INIT_TIMED_OUT: u16 = 4408;
/// The close code for a user over their number of sockets.
const TOO_MANY: u16 = 4429;
/// The subprotocol spoken.
const PROTOCOL: &str = "graphql-transport-ws";

/// Where a connection stands with authentication.
#[derive(Debug, Clone, Copy)]
enum Handshake {
    /// `connection_init` has not been answered yet.
    Waiting,
    Authenticated {
        principal: Principal,
    },
    /// The token was missing or not valid.
    Refused,
    /// The user holds too many sockets already.
    TooMany,
    /// The token could not be checked (the database failed).
    Failed,
}

/// How a connection proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum Credentials {
    /// The access token in `connection_init`'s payload (`/graphql`).
    InitPayload,
    /// Already known from the upgrade request: the console's sign-in cookie
    /// (`/console/live`); `connection_init` then carries nothing.
    SignedIn(Principal),
}

/// Upgrades a `GET /graphql` asking for `graphql-transport-ws` to a WebSocket and serves the
/// subscriptions on it.
pub async fn graphql_ws(
    schema: web::Data<ChronicleSchema>,
    auth: web::Data<Auth>,
    limits: web::Data<Limits>,
    settings: web::Data<Settings>,
    sockets: web::Data<Sockets>,
    http: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let endpoint = Endpoint {
        schema,
        auth,
        limits,
        settings,
        sockets,
    };
    upgrade(endpoint, http, body, Credentials::InitPayload).await
}

/// What serving subscriptions over a WebSocket needs, as the app holds it.
pub struct Endpoint {
    pub schema: web::Data<ChronicleSchema>,
    pub auth: web::Data<Auth>,
    pub limits: web::Data<Limits>,
    pub settings: web::Data<Settings>,
    pub sockets: web::Data<Sockets>,
}

/// Upgrades `http` to a `graphql-transport-ws` WebSocket whose caller proves who they are
/// with `credentials`, and serves the subscriptions on it.
pub async fn upgrade(
    endpoint: Endpoint,
    http: HttpRequest,
    body: web::Payload,
    credentials: Credentials,
) -> actix_web::Result<HttpResponse> {
    let Endpoint {
        schema,
        auth,
        limits,
        settings,
        sockets,
    } = endpoint;
    let asks_for_protocol = http
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|protocols| {
            protocols
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case(PROTOCOL))
        });
    if !asks_for_protocol {
        return Err(actix_web::error::ErrorBadRequest(
            "subscriptions speak the graphql-transport-ws subprotocol: ask for it in Sec-WebSocket-Protocol",
        ));
    }
    if settings.draining.is_draining() {
        // Before the upgrade: a load balancer retries the request on another node.
        return Ok(HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .body("this server is shutting down: connect again (to another server)"));
    }
    let (mut response, session, messages) = actix_ws::handle(&http, body)?;
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        header::HeaderValue::from_static(PROTOCOL),
    );
    let messages = messages
        .max_frame_size(limits.max_body_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits.max_body_bytes);
    let request_id = request::request_id(&http);
    let context = RequestContext::new(&http, &request_id, None, Ok(None));
    let span = tracing::info_span!("graphql_ws", request_id = %request_id);
    let connection = serve(
        Connection {
            schema: schema.get_ref().clone(),
            auth: auth.get_ref().clone(),
            settings: settings.get_ref().clone(),
            limits: **limits,
            sockets: sockets.into_inner(),
            credentials,
        },
        context,
        session,
        messages,
    );
    actix_web::rt::spawn(connection.instrument(span));
    Ok(response)
}

/// What serving one connection needs.
struct Connection {
    schema: ChronicleSchema,
    auth: Auth,
    settings: Settings,
    limits: Limits,
    sockets: Arc<Sockets>,
    credentials: Credentials,
}

/// Relays frames between the client and the GraphQL protocol handler until either side
/// closes or a deadline passes, then closes the socket.
async fn serve(
    connection: Connection,
    context: RequestContext,
    mut session: Session,
    mut messages: AggregatedMessageStream,
) {
    let Connection {
        schema,
        auth,
        settings,
        limits,
        sockets,
        credentials,
    } = connection;
    let handshake = Arc::new(watch::channel(Handshake::Waiting).0);
    let mut handshake_changes = handshake.subscribe();
    let (input, frames) = mpsc::unbounded::<Vec<u8>>();
    let init = {
        let (auth, handshake, sockets) = (auth.clone(), handshake.clone(), sockets.clone());
        let max_sockets = limits.max_ws_connections_per_user;
        move |payload| {
            let socket = SocketGrant {
                sockets,
                max: max_sockets,
            };
            connection_init(auth, context, credentials, payload, handshake, socket)
        }
    };
    let recheck = settings.session_recheck;
    let draining = settings.draining;
    let mut session_checks = tokio::time::interval_at(Instant::now() + recheck, recheck);
    let mut graphql =
        WebSocket::new(schema, frames, WebSocketProtocols::GraphQLWS).on_connection_init(init);
    let mut operations = Operations::new(limits.max_ws_operations);
    let opened = Instant::now();
    let close = loop {
        let deadline = deadline(*handshake.borrow(), opened);
        let timer = async move {
            match deadline {
                Some((at, reason)) => {
                    tokio::time::sleep_until(at).await;
                    reason
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = messages.next() => {
                let frame = match incoming {
                    Some(Ok(AggregatedMessage::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(AggregatedMessage::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                        continue;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => continue,
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(err)) => break Some(reason(1002, &err.to_string())),
                };
                match operations.admit(&frame) {
                    Ok(()) => {
                        let _ = input.unbounded_send(frame);
                    }
                    Err(refusal) => {
                        if session.text(refusal).await.is_err() {
                            break None;
                        }
                    }
                }
            },
            outgoing = graphql.next() => match outgoing {
                Some(WsMessage::Text(text)) => {
                    operations.observe(&text);
                    if session.text(text).await.is_err() {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, message)) => {
                    let code = match *handshake.borrow() {
                        Handshake::Refused => FORBIDDEN,
                        Handshake::TooMany => TOO_MANY,
                        Handshake::Failed => 1011,
                        _ => code,
                    };
                    break Some(reason(code, &message));
                }
                None => break Some(reason(1000, "")),
            },
            _ = handshake_changes.changed() => {}
            _ = session_checks.tick() => {
                let Handshake::Authenticated { principal } = *handshake.borrow() else {
                    continue;
                };
                match auth.session_active(&principal).await {
                    Ok(true) => {}
                    Ok(false) => break Some(reason(FORBIDDEN, "the session has ended: sign in again")),
                    Err(err) => tracing::warn!(error = %err, "cannot check a subscriber's session"),
                }
            }
            reason = timer => break Some(reason),
            _ = draining.begun() => break Some(reason(
                SERVICE_RESTART,
                "the server is shutting down: reconnect and resume from the last position received",
            )),
        }
    };
    if let Handshake::Authenticated { principal } = *handshake.borrow() {
        sockets.release(principal.user_id);
    }
    tracing::debug!(?close, "closing the subscription connection");
    let _ = session.close(close).await;
}

/// The WebSockets each user holds open on this node.
#[derive(Debug, Default)]
pub struct Sockets {
    per_user: std::sync::Mutex<HashMap<Uuid, usize>>,
}

impl Sockets {
    /// Counts one more socket for `user`, unless they hold `max` already.
    fn reserve(&self, user: Uuid, max: usize) -> bool {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_user.entry(user).or_default();
        if *held >= max {
            return false;
        }
        *held += 1;
        true
    }

    fn release(&self, user: Uuid) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_user.get_mut(&user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                per_user.remove(&user);
            }
        }
    }
}

/// What `connection_init` needs to count the user's socket.
struct SocketGrant {
    sockets: Arc<Sockets>,
    max: usize,
}

/// The operations running on one socket, counted from the protocol's frames: a client's
/// `subscribe` starts one, its `complete` or the server's `complete` or `error` ends it.
struct Operations {
    running: HashSet<String>,
    max: usize,
}

/// What the counting reads of a frame (the payload is skipped).
#[derive(serde::Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl Operations {
    fn new(max: usize) -> Operations {
        Operations {
            running: HashSet::new(),
            max,
        }
    }

    /// Lets a client frame through, or answers it: a `subscribe` past the limit gets an
    /// `error` message for its id and is not run.
    fn admit(&mut self, frame: &[u8]) -> Result<(), String> {
        let Ok(Frame { kind, id: Some(id) }) = serde_json::from_slice::<Frame>(frame) else {
            return Ok(()); // not ours to judge: the protocol handler answers it
        };
        match kind.as_str() {
            "subscribe" if self.running.contains(&id) => Ok(()), // the handler refuses it
            "subscribe" if self.running.len() >= self.max => {
                let error = serde_json::json!({
                    "id": id,
                    "type": "error",
                    "payload": [{
                        "message": format!(
                            "at most {} operations run at once on one connection",
                            self.max
                        ),
                        "extensions": { "code": Code::RateLimited.as_str() },
                    }],
                });
                Err(error.to_string())
            }
            "subscribe" => {
                self.running.insert(id);
                Ok(())
            }
            "complete" => {
                self.running.remove(&id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Notes a server frame that ends an operation.
    fn observe(&mut self, frame: &str) {
        if let Ok(Frame { kind, id: Some(id) }) = serde_json::from_str::<Frame>(frame)
            && matches!(kind.as_str(), "complete" | "error")
        {
            self.running.remove(&id);
        }
    }
}

/// When the connection must close, and why, at this stage of the handshake.
fn deadline(handshake: Handshake, opened: Instant) -> Option<(Instant, CloseReason)> {
    match handshake {
        Handshake::Waiting => Some((
            opened + INIT_TIMEOUT,
            reason(INIT_TIMED_OUT, "connection initialisation timeout"),
        )),
        Handshake::Authenticated { principal } => {
            let left = (principal.expires_at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            Some((
                Instant::now() + left,
                reason(
                    FORBIDDEN,
                    "the access token expired: reconnect with a fresh one",
                ),
            ))
        }
        Handshake::Refused | Handshake::TooMany | Handshake::Failed => None,
    }
}

fn reason(code: u16, description: &str) -> CloseReason {
    CloseReason {
        code: CloseCode::from(code),
        description: (!description.is_empty()).then(|| description.to_string()),
    }
}

/// Authenticates the connection from `connection_init`'s payload: the subscriptions run with
/// the token's user, as their [`RequestContext`].
async fn connection_init(
    auth: Auth,
    context: RequestContext,
    credentials: Credentials,
    payload: Value,
    handshake: Arc<watch::Sender<Handshake>>,
    socket: SocketGrant,
) -> async_graphql::Result<Data> {
    let authenticated = match credentials {
        Credentials::SignedIn(principal) => Ok(principal),
        Credentials::InitPayload => {
            let token = ["authorization", "Authorization"]
                .iter()
                .find_map(|key| payload.get(key)?.as_str())
                .and_then(bearer)
                .or_else(|| payload.get("token")?.as_str());
            let Some(token) = token else {
                handshake.send_replace(Handshake::Refused);
                return Err(
                    r#"send the access token in connection_init: {"authorization": "Bearer <token>"}"#
                        .into(),
                );
            };
            auth.authenticate(token).await
        }
    };
    match authenticated {
        Ok(principal) if !socket.sockets.reserve(principal.user_id, socket.max) => {
            handshake.send_replace(Handshake::TooMany);
            Err(format!(
                "at most {} connections per user on one server: close one first",
                socket.max
            )
            .into())
        }
        Ok(principal) => {
            handshake.send_replace(Handshake::Authenticated { principal });
            let mut data = Data::default();
            data.insert(RequestContext {
                principal: Some(principal),
                ..context
            });
            Ok(data)
        }
        Err(AuthError::Internal(err)) => {
            tracing::error!(error = ?err, "cannot check an access token");
            handshake.send_replace(Handshake::Failed);
            Err("internal error".into())
        }
        Err(_) => {
            handshake.send_replace(Handshake::Refused);
            Err("the access token is invalid or expired".into())
        }
    }
}
