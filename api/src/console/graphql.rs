//! The console reads (and acts) by running GraphQL documents against the API's own schema as
//! the signed-in user: the same resolvers, the same authorization module, the same audit
//! metadata (request id, client address) as any other client, so a page can show nothing the
//! API would refuse that user.

use actix_web::HttpRequest;
use async_graphql::{Executor, Request, Variables};
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::error::Code;
use crate::graphql::ChronicleSchema;
use crate::request::{self, RequestContext};

/// Why a document gave no data, as a page tells it.
#[derive(Debug)]
pub enum Refusal {
    /// Unknown, or not the caller's to know of (`NOT_FOUND`).
    NotFound,
    /// Known, but the caller's role does not allow it (`FORBIDDEN`), with the API's reason.
    Forbidden(String),
    /// The input was refused (`BAD_USER_INPUT`, `CONFLICT`, `FEATURE_LOCKED`…), with why.
    Refused(String),
    /// The sign-in ended while the page was built (`UNAUTHENTICATED`).
    SignedOut,
    /// Anything else: logged with the request id, shown as an internal error.
    Internal,
}

/// Runs `document` (one operation) with `variables` as `principal`, for the request `http`, and
/// decodes its data as `T`.
pub async fn run<T: DeserializeOwned>(
    schema: &ChronicleSchema,
    http: &HttpRequest,
    principal: Principal,
    document: &str,
    variables: serde_json::Value,
) -> Result<T, Refusal> {
    let request_id = request::request_id(http);
    let context = RequestContext::new(http, &request_id, None, Ok(Some(principal)));
    let request = Request::new(document)
        .variables(Variables::from_json(variables))
        .data(context);
    let response = schema.execute(request).await;
    if let Some(error) = response.errors.first() {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|v| match v {
                async_graphql::Value::String(s) => Some(s.as_str()),
                _ => None,
            });
        return Err(match code {
            Some(c) if c == Code::NotFound.as_str() => Refusal::NotFound,
            Some(c) if c == Code::Forbidden.as_str() => Refusal::Forbidden(error.message.clone()),
            Some(c) if c == Code::Unauthenticated.as_str() => Refusal::SignedOut,
            Some(c) if c != Code::Internal.as_str() => Refusal::Refused(error.message.clone()),
            _ => {
                tracing::error!(%request_id, error = ?error, "a console document failed");
                Refusal::Internal
            }
        });
    }
    let data = response.data.into_json().map_err(|err| {
        tracing::error!(%request_id, error = %err, "a console answer is not JSON");
        Refusal::Internal
    })?;
    serde_json::from_value(data).map_err(|err| {
        tracing::error!(%request_id, error = %err, "a console answer has an unexpected shape");
        Refusal::Internal
    })
}
