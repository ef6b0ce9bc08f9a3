//! The API's error type and its mapping to GraphQL `extensions.code` — the one place where
//! errors of every crate become the codes of SPEC §8.

use async_graphql::{Response, ServerError};

/// Every error code a client can see: those documented in SPEC §8, and the one the persisted
/// query protocol needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    FeatureLocked,
    RateLimited,
    NotYetConsistent,
    Internal,
    /// A persisted query's hash came alone and this node does not know it (Apollo's code,
    /// which clients answer by sending the query with the hash).
    PersistedQueryNotFound,
}

impl Code {
    /// Every code.
    pub const ALL: [Code; 10] = [
        Code::Unauthenticated,
        Code::Forbidden,
        Code::NotFound,
        Code::BadUserInput,
        Code::Conflict,
        Code::FeatureLocked,
        Code::RateLimited,
        Code::NotYetConsistent,
        Code::Internal,
        Code::PersistedQueryNotFound,
    ];

    /// The code as it appears in `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Conflict => "CONFLICT",
            Code::FeatureLocked => "FEATURE_LOCKED",
            Code::RateLimited => "RATE_LIMITED",
            Code::NotYetConsistent => "NOT_YET_CONSISTENT",
            Code::Internal => "INTERNAL",
            Code::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
        }
    }
}

/// What a resolver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid credentials for something that needs them.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Input the domain never sees (ids, cursors, keys) is malformed.
    #[error("{0}")]
    BadInput(String),
    /// The thing does not exist or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// What the query reads does not reflect the requested position yet.
    #[error("not yet consistent with the requested position; retry shortly")]
    NotYetConsistent,
    /// The same idempotency key was used with different input.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    ReadModel(#[from] projections::Error),
    #[error(transparent)]
    Domain(#[from] domain::DomainError),
    #[error(transparent)]
    Log(#[from] eventlog::Error),
    #[error(transparent)]
    Search(#[from] search::Error),
    #[error(transparent)]
    PersistedQuery(#[from] crate::persisted::PersistedQueryError),
    /// Something unexpected; the client sees only `INTERNAL`.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The code and the message a client may see.
    pub fn public(&self) -> (Code, String) {
        use crate::auth::AuthError as A;
        use domain::DomainError as D;
        match self {
            ApiError::Unauthenticated(message) => (Code::Unauthenticated, (*message).into()),
            ApiError::BadInput(message) => (Code::BadUserInput, message.clone()),
            ApiError::NotFound(_) => (Code::NotFound, self.to_string()),
            ApiError::NotYetConsistent => (Code::NotYetConsistent, self.to_string()),
            ApiError::IdempotencyMismatch => (Code::BadUserInput, self.to_string()),
            ApiError::Auth(err) => match err {
                A::InvalidCredentials | A::InvalidToken | A::TokenReused => {
                    (Code::Unauthenticated, err.to_string())
                }
                A::RateLimited { .. } => (Code::RateLimited, err.to_string()),
                A::WeakPassword(message) => (Code::BadUserInput, message.clone()),
                A::Internal(_) => (Code::Internal, "internal error".into()),
            },
            ApiError::Domain(err) => {
                let code = match err {
                    D::Validation(_) => Code::BadUserInput,
                    D::NotFound { .. } => Code::NotFound,
                    D::Forbidden { .. } => Code::Forbidden,
                    D::Conflict { .. } | D::LastOwner | D::InvalidTransition { .. } => {
                        Code::Conflict
                    }
                    D::FeatureLocked { .. } => Code::FeatureLocked,
                    D::InviteExpired => Code::BadUserInput,
                };
                (code, err.to_string())
            }
            ApiError::Log(eventlog::Error::Conflict { .. }) => (
                Code::Conflict,
                "someone else changed this first; reload and try again".into(),
            ),
            ApiError::Search(
                err @ (search::Error::InvalidCursor(_) | search::Error::InvalidInput(_)),
            ) => (Code::BadUserInput, err.to_string()),
            ApiError::PersistedQuery(err) => match err {
                crate::persisted::PersistedQueryError::NotFound => {
                    (Code::PersistedQueryNotFound, err.to_string())
                }
                _ => (Code::BadUserInput, err.to_string()),
            },
            ApiError::Log(_)
            | ApiError::ReadModel(_)
            | ApiError::Search(_)
            | ApiError::Internal(_) => (Code::Internal, "internal error".into()),
        }
    }
}

/// The one place where errors become codes: every error in every response gets an
/// `extensions.code`. Resolvers simply return [`ApiError`] (or anything else, through `?`):
/// - an [`ApiError`] gets its code and its public message;
/// - an error the GraphQL engine raised before running resolvers (syntax, validation, variable
///   types, limits) or while coercing a resolver's arguments (types, validators such as list
///   lengths) is the client's: `BAD_USER_INPUT`;
/// - anything else is unexpected: logged in full, shown as `INTERNAL` with nothing more.
///
/// [`crate::graphql::ChronicleSchema`] applies it to every response.
pub(crate) fn assign_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        assign_code(error);
    }
    response
}

/// How async-graphql begins the message of an argument that does not coerce to its type or
/// fails its validator (a list too long, a string too long); such an error carries the
/// field's path, unlike the other errors raised before resolvers run.
const INPUT_COERCION: &str = "Failed to parse \"";

fn assign_code(error: &mut ServerError) {
    let preset = error
        .extensions
        .as_ref()
        .and_then(|ext| ext.get("code"))
        .is_some();
    let (code, message) = if let Some(api) = error.source::<ApiError>() {
        if api.public().0 == Code::Internal {
            tracing::error!(error = ?api, path = ?error.path, "internal error");
        }
        api.public()
    } else if preset {
        return;
    } else if error.source.is_none()
        && (error.path.is_empty() || error.message.starts_with(INPUT_COERCION))
    {
        (Code::BadUserInput, error.message.clone())
    } else {
        tracing::error!(message = %error.message, path = ?error.path, "unexpected error");
        (Code::Internal, "internal error".into())
    };
    error.message = message;
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
}
