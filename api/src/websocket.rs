//! `/graphql` over WebSocket, for subscriptions, with the `graphql-transport-ws` protocol.
//!
//! A connection is authenticated by its `connection_init` message, whose payload carries the
//! access token: `{"authorization": "Bearer <token>"}` (or `{"token": "<token>"}`). The server
//! closes the socket with
//! - 4403 when the token is missing or not valid, and again when it expires: the client
//!   reconnects with a fresh token and resumes each feed from the last position it received;
//! - 4403 when the session ends (log-out, revocation), which it checks every
//!   `Config::session_recheck` (30 s) while the connection lasts;
//! - 4408 when `connection_init` does not arrive within [`INIT_TIMEOUT`].
//!
//! async-graphql's [`WebSocket`] speaks the protocol; this module feeds it the client's
//! frames, writes its answers back, and enforces the deadlines above.

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

use crate::auth::{Auth, AuthError, Principal};
use crate::graphql::ChronicleSchema;
use crate::http::bearer;
use crate::limits::Limits;
use crate::request::{self, RequestContext};

/// How long a client may take to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How the WebSocket endpoint behaves.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often an open connection checks that its session has not ended.
    pub session_recheck: Duration,
}
/// The protocol's close code for a refused (or no longer valid) authentication.
const FORBIDDEN: u16 = 4403;
/// The protocol's close code for a missing `connection_init`.
const INIT_TIMED_OUT: u16 = 4408;
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
    /// The token could not be checked (the database failed).
    Failed,
}

/// Upgrades a `GET /graphql` asking for `graphql-transport-ws` to a WebSocket and serves the
/// subscriptions on it.
pub async fn graphql_ws(
    schema: web::Data<ChronicleSchema>,
    auth: web::Data<Auth>,
    limits: web::Data<Limits>,
    settings: web::Data<Settings>,
    http: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
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
        schema.get_ref().clone(),
        auth.get_ref().clone(),
        **settings,
        context,
        session,
        messages,
    );
    actix_web::rt::spawn(connection.instrument(span));
    Ok(response)
}

/// Relays frames between the client and the GraphQL protocol handler until either side
/// closes or a deadline passes, then closes the socket.
async fn serve(
    schema: ChronicleSchema,
    auth: Auth,
    settings: Settings,
    context: RequestContext,
    mut session: Session,
    mut messages: AggregatedMessageStream,
) {
    let handshake = Arc::new(watch::channel(Handshake::Waiting).0);
    let mut handshake_changes = handshake.subscribe();
    let (input, frames) = mpsc::unbounded::<Vec<u8>>();
    let init = {
        let (auth, handshake) = (auth.clone(), handshake.clone());
        move |payload| connection_init(auth, context, payload, handshake)
    };
    let recheck = settings.session_recheck;
    let mut session_checks = tokio::time::interval_at(Instant::now() + recheck, recheck);
    let mut graphql =
        WebSocket::new(schema, frames, WebSocketProtocols::GraphQLWS).on_connection_init(init);
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
            incoming = messages.next() => match incoming {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    let _ = input.unbounded_send(text.as_bytes().to_vec());
                }
                Some(Ok(AggregatedMessage::Binary(bytes))) => {
                    let _ = input.unbounded_send(bytes.to_vec());
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                Some(Err(err)) => break Some(reason(1002, &err.to_string())),
            },
            outgoing = graphql.next() => match outgoing {
                Some(WsMessage::Text(text)) => {
                    if session.text(text).await.is_err() {
                        return;
                    }
                }
                Some(WsMessage::Close(code, message)) => {
                    let code = match *handshake.borrow() {
                        Handshake::Refused => FORBIDDEN,
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
        }
    };
    tracing::debug!(?close, "closing the subscription connection");
    let _ = session.close(close).await;
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
        Handshake::Refused | Handshake::Failed => None,
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
    payload: Value,
    handshake: Arc<watch::Sender<Handshake>>,
) -> async_graphql::Result<Data> {
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
    match auth.authenticate(token).await {
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
