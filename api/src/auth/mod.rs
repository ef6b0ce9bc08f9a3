//! Authentication: passwords, sessions and tokens (SPEC §8). Passwords are hashed with argon2id;
//! log-ins are throttled per account and per client address; a session is a family of rotating,
//! single-use refresh tokens (stored only as sha256 hashes) plus short-lived HS256 access tokens
//! that name the session, so revoking the family ends both. All state lives in PostgreSQL (the
//! signing key too, unless one is configured), so a token issued by one node is accepted by every
//! node. Errors never reveal whether an email address has an account, and passwords are never
//! logged.

mod console;
mod password;
mod prune;
mod refresh;
mod sessions;
mod throttle;
mod tokens;

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use eventlog::EventLog;
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use console::ConsoleSignIn;
pub use password::{MAX_CHARS as PASSWORD_MAX_CHARS, MIN_CHARS as PASSWORD_MIN_CHARS};
pub use prune::Pruned;

use password::{Lane, Passwords};
use throttle::Throttle;
use tokens::AccessTokens;

/// How authentication behaves.
#[derive(Clone)]
pub struct AuthSettings {
    /// The HS256 signing key (at least 32 bytes). `None`: a random key generated once and kept in
    /// the database's `server_secrets` table, shared by every node on that database.
    pub jwt_secret: Option<String>,
    /// The key tokens were signed with before `jwt_secret` replaced it: still accepted, for
    /// verification only, while set (a token names its key in its `kid` header). Needs
    /// `jwt_secret`.
    pub jwt_previous_secret: Option<String>,
    /// The access tokens' `iss`.
    pub issuer: String,
    /// The access tokens' `aud`.
    pub audience: String,
    /// How long an access token is valid.
    pub access_ttl: chrono::Duration,
    /// How long a refresh token is valid (each rotation starts a new period).
    pub refresh_ttl: chrono::Duration,
    /// Log-in attempts (successful or not) allowed per client address in one `address_window`.
    pub logins_per_address: u32,
    /// Sign-ups allowed per client address in one `address_window`.
    pub signups_per_address: u32,
    /// The per-address window, starting at its first attempt.
    pub address_window: chrono::Duration,
    /// Failed log-ins for one account from one address before delays start.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub backoff_base: chrono::Duration,
    /// The longest delay.
    pub backoff_max: chrono::Duration,
    /// Failures of an (account, address) pair are forgotten this long after the last one.
    pub backoff_reset: chrono::Duration,
    /// Password hashes allowed to wait for a worker, per lane (sign-ups, log-ins); more are
    /// refused with `RATE_LIMITED`.
    pub hashing_queue: usize,
}

impl Default for AuthSettings {
    fn default() -> AuthSettings {
        AuthSettings {
            jwt_secret: None,
            jwt_previous_secret: None,
            issuer: "chronicle".into(),
            audience: "chronicle-api".into(),
            access_ttl: chrono::Duration::minutes(15),
            refresh_ttl: chrono::Duration::days(30),
            logins_per_address: 100,
            signups_per_address: 10,
            address_window: chrono::Duration::minutes(15),
            free_failures: 5,
            backoff_base: chrono::Duration::seconds(1),
            backoff_max: chrono::Duration::minutes(15),
            backoff_reset: chrono::Duration::days(1),
            hashing_queue: 32,
        }
    }
}

/// The signing key stays out of logs.
impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field(
                "jwt_previous_secret",
                &self.jwt_previous_secret.as_ref().map(|_| "***"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("logins_per_address", &self.logins_per_address)
            .field("signups_per_address", &self.signups_per_address)
            .field("address_window", &self.address_window)
            .field("free_failures", &self.free_failures)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("backoff_reset", &self.backoff_reset)
            .field("hashing_queue", &self.hashing_queue)
            .finish()
    }
}

/// A signed-in session's tokens.
pub struct Session {
    pub user_id: Uuid,
    /// Bearer token for requests.
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    /// Single-use token to get the next [`Session`] from [`Auth::refresh`].
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// The tokens stay out of logs.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("access_token", &"***")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &"***")
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

/// Who a request is made by: a user, in one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    /// The session (refresh-token family) the access token belongs to.
    pub session_id: Uuid,
    /// When the access token stops being accepted: long-lived connections (subscriptions)
    /// close then.
    pub expires_at: DateTime<Utc>,
}

/// Why authentication failed. Messages are safe to show to the client, except `Internal`'s
/// source, which is for the logs only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or wrong password: deliberately the same.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Throttled (see [`throttle`]), or the password hashing queue is full.
    #[error("{reason}; try again in {retry_after_secs} s")]
    RateLimited {
        reason: &'static str,
        retry_after_secs: u64,
    },
    /// A token that is malformed, tampered with, expired, unknown or revoked.
    #[error("invalid or expired token")]
    InvalidToken,
    /// A refresh token was presented a second time: it leaked, so its session was ended.
    #[error("this refresh token was already used; the session has been ended, please log in again")]
    TokenReused,
    #[error("{0}")]
    WeakPassword(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthError {
    fn from(err: sqlx::Error) -> AuthError {
        AuthError::Internal(anyhow::Error::new(err).context("auth database query failed"))
    }
}

impl From<eventlog::Error> for AuthError {
    fn from(err: eventlog::Error) -> AuthError {
        AuthError::Internal(anyhow::Error::new(err).context("telling other nodes failed"))
    }
}

/// The authentication service; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    settings: AuthSettings,
    tokens: AccessTokens,
    passwords: Passwords,
    /// Verified against when an email has no account, so that unknown emails cost as much time
    /// as wrong passwords.
    dummy_hash: String,
    /// Sessions known to be going, when this node follows the log's notices (see
    /// [`Auth::remember_sessions`]); without it every check reads the database.
    known_sessions: Option<sessions::KnownSessions>,
}

impl Auth {
    /// Loads (or creates, once per database) the signing key and prepares hashing.
    #[tracing::instrument(name = "auth_new", skip_all)]
    pub async fn new(pool: PgPool, settings: AuthSettings) -> anyhow::Result<Auth> {
        let secret = tokens::signing_secret(&pool, settings.jwt_secret.as_deref()).await?;
        let previous = tokens::previous_secret(&settings)?;
        let tokens = AccessTokens::new(&secret, previous.as_deref(), &settings);
        let passwords = Passwords::new(settings.hashing_queue);
        let dummy_hash = passwords
            .hash(&refresh::NewToken::generate().token, Lane::SignUp)
            .await
            .map_err(anyhow::Error::new)
            .context("cannot prepare the dummy password hash")?;
        Ok(Auth {
            inner: Arc::new(Inner {
                pool,
                settings,
                tokens,
                passwords,
                dummy_hash,
                known_sessions: None,
            }),
        })
    }

    /// Checks sessions from memory while `log`'s notification connection tells this node of
    /// every session that ends (see [`sessions`]), instead of reading the database for every
    /// request. Call before cloning.
    pub fn remember_sessions(mut self, log: &EventLog) -> Auth {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.known_sessions = Some(sessions::follow(log));
        }
        self
    }

    /// Validates (8..=256 chars, else [`AuthError::WeakPassword`]) and hashes with argon2id, in
    /// the sign-up lane ([`AuthError::RateLimited`] when its queue is full).
    pub async fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        password::check_strength(password)?;
        self.inner.passwords.hash(password, Lane::SignUp).await
    }

    /// Counts a sign-up against its client address (when known): [`AuthError::RateLimited`] past
    /// `signups_per_address` in one window. Call it before any other work of the sign-up.
    #[tracing::instrument(skip(self))]
    pub async fn admit_sign_up(&self, client_ip: Option<IpAddr>) -> Result<(), AuthError> {
        let ip = client_ip.map(throttle::ip_subject);
        self.throttle().reserve_sign_up(ip.as_deref()).await
    }

    /// Stores a user's password hash inside the caller's transaction (the sign-up transaction).
    #[tracing::instrument(skip(conn, password_hash))]
    pub async fn store_credentials(
        conn: &mut PgConnection,
        user_id: Uuid,
        password_hash: &str,
    ) -> Result<(), AuthError> {
        sqlx::query!(
            r#"INSERT INTO user_credentials (user_id, password_hash) VALUES ($1, $2)"#,
            user_id,
            password_hash
        )
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Starts a session for a user: a new refresh-token family and a first access token.
    #[tracing::instrument(skip(self))]
    pub async fn issue_session(&self, user_id: Uuid) -> Result<Session, AuthError> {
        let issued =
            refresh::start_family(&self.inner.pool, user_id, self.inner.settings.refresh_ttl)
                .await?;
        self.session(issued)
    }

    /// Logs in with an email and password (see [`Auth::check_credentials`]) and starts a
    /// session.
    #[tracing::instrument(skip(self, email, password))]
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Session, AuthError> {
        let user_id = self.check_credentials(email, password, client_ip).await?;
        self.issue_session(user_id).await
    }

    /// Signs in to the console: a log-in like [`Auth::log_in`] (same throttling, same errors)
    /// whose session the browser holds as a cookie's token, valid for `ttl` at most.
    #[tracing::instrument(skip(self, email, password))]
    pub async fn console_sign_in(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
        ttl: chrono::Duration,
    ) -> Result<ConsoleSignIn, AuthError> {
        let user_id = self.check_credentials(email, password, client_ip).await?;
        let issued =
            refresh::start_family(&self.inner.pool, user_id, self.inner.settings.refresh_ttl)
                .await?;
        console::start(&self.inner.pool, user_id, issued.family_id, ttl).await
    }

    /// Who a console cookie's token signs in: [`AuthError::InvalidToken`] when it is unknown,
    /// expired, or its session has ended.
    #[tracing::instrument(skip_all)]
    pub async fn console_principal(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = console::find(&self.inner.pool, token)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if !self
            .session_going(principal.session_id, principal.user_id)
            .await?
        {
            return Err(AuthError::InvalidToken);
        }
        Ok(principal)
    }

    /// Ends `principal`'s session (the console's sign-out): every node stops accepting it.
    #[tracing::instrument(skip(self))]
    pub async fn end_session(&self, principal: &Principal) -> Result<(), AuthError> {
        refresh::end_session(&self.inner.pool, principal.session_id).await?;
        self.session_ended();
        tracing::info!(family_id = %principal.session_id, "signed out");
        Ok(())
    }

    /// The user an email and password belong to. Throttling (per client address when known,
    /// and per normalized email and address) is applied before the password is looked at; an
    /// unknown email costs one argon2 verification like a known one, and fails with the same
    /// error.
    async fn check_credentials(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Uuid, AuthError> {
        let account = email.trim().to_lowercase();
        let ip = client_ip.map(throttle::ip_subject);
        // A busy server refuses before counting anything against the client.
        let admitted = self.inner.passwords.admit(Lane::LogIn)?;
        let throttle = self.throttle();
        throttle.reserve_log_in(&account, ip.as_deref()).await?;

        let found = sqlx::query!(
            r#"
            SELECT c.user_id, c.password_hash
              FROM users u JOIN user_credentials c ON c.user_id = u.id
             WHERE u.email_normalized = $1
            "#,
            account
        )
        .fetch_optional(&self.inner.pool)
        .await?;
        let (user_id, hash) = match found {
            Some(row) => (Some(row.user_id), row.password_hash),
            None => (None, self.inner.dummy_hash.clone()),
        };
        let matches = admitted.verify(password, hash).await?;
        let Some(user_id) = user_id.filter(|_| matches) else {
            tracing::info!("log-in failed");
            return Err(AuthError::InvalidCredentials);
        };

        throttle.succeeded(&account, ip.as_deref()).await?;
        Ok(user_id)
    }

    /// Rotates: the presented refresh token is marked used and its successor in the same family
    /// is issued with a new access token. A used token presented again revokes the family
    /// ([`AuthError::TokenReused`]); unknown, expired or revoked tokens are
    /// [`AuthError::InvalidToken`]. Of two concurrent refreshes of one token, one wins and the
    /// other is reuse.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, AuthError> {
        let issued = refresh::rotate(
            &self.inner.pool,
            refresh_token,
            self.inner.settings.refresh_ttl,
        )
        .await
        .inspect_err(|err| {
            if matches!(err, AuthError::TokenReused) {
                self.session_ended();
            }
        })?;
        self.session(issued)
    }

    /// Ends the session of this refresh token: it, its successors and every access token of the
    /// session stop working.
    #[tracing::instrument(skip_all)]
    pub async fn log_out(&self, refresh_token: &str) -> Result<(), AuthError> {
        let family_id = refresh::end_family(&self.inner.pool, refresh_token).await?;
        self.session_ended();
        tracing::info!(%family_id, "logged out");
        Ok(())
    }

    /// This node ended a session: it forgets what it remembered at once, without waiting for
    /// its own notice to come back.
    fn session_ended(&self) {
        if let Some(known) = &self.inner.known_sessions {
            known.forget_all();
        }
    }

    /// Whether `principal`'s session is still going (not logged out or revoked): long-lived
    /// connections ask this again and again after authenticating once.
    pub async fn session_active(&self, principal: &Principal) -> Result<bool, AuthError> {
        self.session_going(principal.session_id, principal.user_id)
            .await
    }

    /// Whether session `session_id` of `user_id` is going: from memory when this node knows,
    /// else from the database.
    async fn session_going(&self, session_id: Uuid, user_id: Uuid) -> Result<bool, AuthError> {
        let pool = &self.inner.pool;
        let Some(known) = &self.inner.known_sessions else {
            return refresh::is_active(pool, session_id, user_id).await;
        };
        let read = async {
            let going = refresh::is_active(pool, session_id, user_id).await?;
            Ok::<_, AuthError>(going.then_some(()))
        };
        Ok(known
            .get_or_read((session_id, user_id), read)
            .await?
            .is_some())
    }

    /// Verifies a bearer access token: HS256 only, `exp`, `iss`, `aud` and `sub` required and
    /// checked, and its session (`sid`) not revoked.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let claims = self.inner.tokens.verify(access_token)?;
        if !self.session_going(claims.sid, claims.sub).await? {
            return Err(AuthError::InvalidToken);
        }
        Ok(Principal {
            user_id: claims.sub,
            session_id: claims.sid,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(DateTime::<Utc>::MIN_UTC),
        })
    }

    /// Deletes refresh tokens expired, and sessions ended, more than `retention` ago, and
    /// throttle rows whose window or delay is over, in statements of at most `batch` rows.
    #[tracing::instrument(skip(self))]
    pub async fn prune(
        &self,
        retention: chrono::Duration,
        batch: u32,
    ) -> Result<Pruned, AuthError> {
        prune::prune(&self.inner.pool, &self.inner.settings, retention, batch).await
    }

    fn throttle(&self) -> Throttle<'_> {
        Throttle {
            pool: &self.inner.pool,
            settings: &self.inner.settings,
        }
    }

    fn session(&self, issued: refresh::Issued) -> Result<Session, AuthError> {
        let (access_token, access_expires_at) =
            self.inner.tokens.issue(issued.user_id, issued.family_id)?;
        Ok(Session {
            user_id: issued.user_id,
            access_token,
            access_expires_at,
            refresh_token: issued.token,
            refresh_expires_at: issued.expires_at,
        })
    }
}

/// A duration as a PostgreSQL interval (to the microsecond), for times computed by the database
/// clock, which every node shares.
fn pg_interval(duration: chrono::Duration) -> Result<PgInterval, AuthError> {
    let microseconds = duration
        .num_microseconds()
        .context("duration out of range for an interval")?;
    Ok(PgInterval {
        months: 0,
        days: 0,
        microseconds,
    })
}
