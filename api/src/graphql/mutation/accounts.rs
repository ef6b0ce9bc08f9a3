//! Account mutations: sign-up, log-in, token refresh, log-out.

use async_graphql::{Context, InputObject, Object};
use domain::{Aggregate, DisplayName, Email, ReferralCode, UserCommand, UserId};
use eventlog::{ExpectedVersion, StreamRef};
use projections::queries;
use rand::Rng;
use serde::Serialize;

use super::{Written, handles};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::graphql::types::{AuthPayload, lane};

/// A new account.
#[derive(InputObject, Serialize)]
pub struct SignUpInput {
    /// Unique, compared case-insensitively.
    pub email: String,
    /// 8–256 characters.
    #[graphql(secret)]
    // Never hashed into the idempotency record: a fast hash of a password is a leak. A retry
    // gets its session by logging in with the password it sent, so it must be the right one.
    #[serde(skip_serializing)]
    pub password: String,
    /// 1–100 characters.
    pub display_name: String,
    /// Another user's referral code, if they sent you.
    pub referral_code: Option<String>,
}

/// Account mutations.
#[derive(Default)]
pub struct AccountMutations;

#[Object]
impl AccountMutations {
    /// Creates an account and signs it in. Sign-ups are limited per client address
    /// (`RATE_LIMITED`, with the seconds to wait in the message).
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        input: SignUpInput,
    ) -> async_graphql::Result<AuthPayload> {
        let h = handles(ctx)?;
        let auth = ctx.data::<Auth>()?;
        // First, before any work: every attempt counts, well-formed or not.
        auth.admit_sign_up(h.req.client_ip)
            .await
            .map_err(ApiError::from)?;
        let email = Email::parse(&input.email)
            .map_err(domain::DomainError::from)
            .map_err(ApiError::from)?;
        let display_name = DisplayName::parse(&input.display_name)
            .map_err(domain::DomainError::from)
            .map_err(ApiError::from)?;
        let referred_by = match input
            .referral_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            None => None,
            Some(code) => {
                let code = ReferralCode::parse(code)
                    .map_err(domain::DomainError::from)
                    .map_err(ApiError::from)?;
                let referrer = queries::user_by_referral_code(lane(ctx)?, code.as_str())
                    .await
                    .map_err(ApiError::from)?;
                let referrer =
                    referrer.ok_or_else(|| ApiError::BadInput("unknown referral code".into()))?;
                Some(UserId::from_uuid(referrer.id))
            }
        };
        let password_hash = auth
            .hash_password(&input.password)
            .await
            .map_err(ApiError::from)?;
        let user_id = UserId::new();
        let written = h
            .writes
            .once(h.req, "signUp", &input, async |conn| {
                let command = UserCommand::SignUp {
                    user_id,
                    email,
                    display_name,
                    referral_code: new_referral_code()?,
                    referred_by,
                };
                let ctx = domain::Context::user(h.writes.now(), user_id);
                let events = domain::User::default().decide(command, &ctx)?;
                let stream = StreamRef {
                    stream_type: domain::User::STREAM_TYPE,
                    stream_id: user_id.as_uuid(),
                    workspace_id: None,
                };
                let metadata = h.req.metadata(Some(user_id.as_uuid()), None);
                let position = h
                    .writes
                    .append(conn, &stream, ExpectedVersion::NoStream, events, &metadata)
                    .await?;
                Auth::store_credentials(conn, user_id.as_uuid(), &password_hash).await?;
                Ok(Written {
                    id: user_id.as_uuid(),
                    position: position.map(|a| a.position().to_string()),
                })
            })
            .await?;
        let session = auth
            .log_in(&input.email, &input.password, h.req.client_ip)
            .await
            .map_err(ApiError::from)?;
        debug_assert_eq!(session.user_id, written.id);
        Ok(session.into())
    }

    /// Signs in with email and password. Attempts are limited per client address, and after a
    /// few failures for one account from one address each further attempt from there waits a
    /// growing delay (`RATE_LIMITED`, with the seconds to wait in the message); other addresses
    /// are not held back.
    async fn log_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        #[graphql(secret)] password: String,
    ) -> async_graphql::Result<AuthPayload> {
        let h = handles(ctx)?;
        let session = ctx
            .data::<Auth>()?
            .log_in(&email, &password, h.req.client_ip)
            .await
            .map_err(ApiError::from)?;
        Ok(session.into())
    }

    /// Exchanges a refresh token for new tokens. Each refresh token works once: presenting a
    /// used one again signs the whole session out.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let session = ctx
            .data::<Auth>()?
            .refresh(&refresh_token)
            .await
            .map_err(ApiError::from)?;
        Ok(session.into())
    }

    /// Ends the session of this refresh token: it and the session's access tokens stop working.
    async fn log_out(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> async_graphql::Result<bool> {
        ctx.data::<Auth>()?
            .log_out(&refresh_token)
            .await
            .map_err(ApiError::from)?;
        Ok(true)
    }
}

/// A fresh referral code: 10 characters without look-alikes (a collision is a retryable
/// conflict caught by the read model's unique key).
fn new_referral_code() -> Result<ReferralCode, ApiError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let code: String = (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    ReferralCode::parse(&code).map_err(|err| ApiError::Domain(err.into()))
}
