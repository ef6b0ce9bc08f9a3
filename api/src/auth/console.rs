//! The console's sign-ins (`/console`): a browser holds a random token in an HttpOnly cookie
//! instead of bearer tokens. Signing in is a log-in like any other (same throttling, same
//! error for a wrong email and a wrong password) that starts a session (a refresh-token family
//! whose tokens the browser never sees); the cookie's token names that session, so ending it
//! (signing out, a log-out or revocation elsewhere) ends the console's sign-in on every node
//! as it ends access tokens.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::refresh::{NewToken, digest};
use super::{AuthError, Principal, pg_interval};

/// A console sign-in just made: the cookie's token and when it stops working.
pub struct ConsoleSignIn {
    pub user_id: Uuid,
    /// The cookie's value (32 random bytes, base64url); only its sha256 is stored.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The token stays out of logs.
impl std::fmt::Debug for ConsoleSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSignIn")
            .field("user_id", &self.user_id)
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Stores a console sign-in for session `family_id` of `user_id`, valid for `ttl`.
pub(super) async fn start(
    pool: &PgPool,
    user_id: Uuid,
    family_id: Uuid,
    ttl: chrono::Duration,
) -> Result<ConsoleSignIn, AuthError> {
    let new = NewToken::generate();
    let expires_at = sqlx::query_scalar!(
        r#"
        INSERT INTO console_sessions (token_hash, family_id, user_id, expires_at)
        VALUES ($1, $2, $3, now() + $4::interval)
        RETURNING expires_at
        "#,
        &new.hash[..],
        family_id,
        user_id,
        pg_interval(ttl)?,
    )
    .fetch_one(pool)
    .await?;
    Ok(ConsoleSignIn {
        user_id,
        token: new.token,
        expires_at,
    })
}

/// The signed-in user and session a cookie's token names, if it is known and unexpired (whether
/// the session is still going is the caller's check).
pub(super) async fn find(pool: &PgPool, token: &str) -> Result<Option<Principal>, AuthError> {
    let hash = digest(token);
    let found = sqlx::query!(
        r#"
        SELECT family_id, user_id, expires_at FROM console_sessions
         WHERE token_hash = $1 AND expires_at > now()
        "#,
        &hash[..]
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.map(|row| Principal {
        user_id: row.user_id,
        session_id: row.family_id,
        expires_at: row.expires_at,
    }))
}
