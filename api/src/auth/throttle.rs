//! Throttling of log-ins and sign-ups, counted in the database so that every node shares the
//! counters. Two mechanisms:
//!
//! - **Per client address, fixed windows**: every log-in attempt (successful or not) and every
//!   sign-up counts against its address; past the limit the address waits for the window's end.
//! - **Per (account, address), growing delays**: after [`AuthSettings::free_failures`] failed
//!   log-ins for one account from one address, each further attempt from there must wait
//!   `backoff_base × 2^(failures − free)`, capped at `backoff_max`. A success (or a day without
//!   failures) starts afresh. Nothing is counted per account alone, so an attacker failing from
//!   their addresses never locks the owner out of theirs.
//!
//! An attempt is *reserved* (counted as a failure) atomically before the password is verified,
//! so a burst of concurrent attempts cannot slip past a limit between a check and a later
//! increment; a success clears the (account, address) row.

use std::net::IpAddr;

use sqlx::PgPool;

use super::{AuthError, AuthSettings, pg_interval};

/// What a fixed-window counter of one client address counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Log-in attempts.
    LogIn,
    /// Sign-ups.
    SignUp,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::LogIn => "ip",
            Kind::SignUp => "signup",
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Kind::LogIn => "too many log-in attempts from this address",
            Kind::SignUp => "too many sign-ups from this address",
        }
    }
}

/// The counter key of a client address: an IPv4 address, or the /64 network of an IPv6 address
/// (one subscriber usually holds a whole /64).
pub(super) fn ip_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The throttling counters of one database.
pub(super) struct Throttle<'a> {
    pub pool: &'a PgPool,
    pub settings: &'a AuthSettings,
}

impl Throttle<'_> {
    /// Counts a log-in attempt for `account` from `address` (when known), or refuses it when the
    /// address has used up its window or the pair is still waiting out its delay.
    pub async fn reserve_log_in(
        &self,
        account: &str,
        address: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(address) = address {
            self.count(Kind::LogIn, address, self.settings.logins_per_address)
                .await?;
        }
        self.reserve_backoff(account, address.unwrap_or("")).await
    }

    /// Counts a sign-up from `address` (when known), or refuses it past the address's limit.
    pub async fn reserve_sign_up(&self, address: Option<&str>) -> Result<(), AuthError> {
        match address {
            Some(address) => {
                self.count(Kind::SignUp, address, self.settings.signups_per_address)
                    .await
            }
            None => Ok(()),
        }
    }

    /// A successful log-in: the pair's failures are forgotten.
    pub async fn succeeded(&self, account: &str, address: Option<&str>) -> Result<(), AuthError> {
        sqlx::query!(
            r#"DELETE FROM login_backoff WHERE account = $1 AND address = $2"#,
            account,
            address.unwrap_or("")
        )
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// One more in the address's fixed window of `kind`.
    async fn count(&self, kind: Kind, subject: &str, limit: u32) -> Result<(), AuthError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX - 1);
        // The counter stops at limit + 1: enough to refuse, and it cannot overflow.
        let counted = sqlx::query!(
            r#"
            INSERT INTO login_throttle AS l (kind, subject, failures, window_start)
            VALUES ($1, $2, 1, now())
            ON CONFLICT (kind, subject) DO UPDATE SET
                failures = CASE WHEN l.window_start <= now() - $3::interval THEN 1
                                ELSE LEAST(l.failures, $4) + 1 END,
                window_start = CASE WHEN l.window_start <= now() - $3::interval THEN now()
                                    ELSE l.window_start END
            RETURNING failures,
                      GREATEST(1, CEIL(EXTRACT(EPOCH FROM
                          window_start + $3::interval - now())))::bigint AS "retry_after_secs!"
            "#,
            kind.as_str(),
            subject,
            pg_interval(self.settings.address_window)?,
            limit,
        )
        .fetch_one(self.pool)
        .await?;
        if counted.failures > limit {
            tracing::info!(kind = kind.as_str(), "throttled");
            return Err(AuthError::RateLimited {
                reason: kind.refusal(),
                retry_after_secs: u64::try_from(counted.retry_after_secs).unwrap_or(1),
            });
        }
        Ok(())
    }

    /// Counts a (presumed) failure for the pair if its delay has passed, else refuses.
    async fn reserve_backoff(&self, account: &str, address: &str) -> Result<(), AuthError> {
        let s = self.settings;
        sqlx::query!(
            r#"
            INSERT INTO login_backoff (account, address, failures, last_failure_at, next_attempt_at)
            VALUES ($1, $2, 0, '-infinity', '-infinity')
            ON CONFLICT (account, address) DO NOTHING
            "#,
            account,
            address
        )
        .execute(self.pool)
        .await?;
        // The row is locked by the UPDATE, so concurrent attempts of one pair are counted one
        // after the other, each seeing the delay the previous one set.
        let counted = sqlx::query_scalar!(
            r#"
            UPDATE login_backoff b
               SET (failures, last_failure_at, next_attempt_at) = (
                   SELECT n, now(),
                          now() + CASE WHEN n < $3 THEN interval '0'
                                       ELSE LEAST($4::interval * power(2, LEAST(n - $3, 30)),
                                                  $5::interval) END
                     FROM (SELECT CASE WHEN b.last_failure_at <= now() - $6::interval THEN 1
                                       ELSE LEAST(b.failures, 1000000) + 1 END AS n) counted)
             WHERE account = $1 AND address = $2 AND next_attempt_at <= now()
            RETURNING failures
            "#,
            account,
            address,
            i32::try_from(s.free_failures).unwrap_or(i32::MAX),
            pg_interval(s.backoff_base)?,
            pg_interval(s.backoff_max)?,
            pg_interval(s.backoff_reset)?,
        )
        .fetch_optional(self.pool)
        .await?;
        if counted.is_some() {
            return Ok(());
        }
        let retry_after_secs = sqlx::query_scalar!(
            r#"
            SELECT GREATEST(1, CEIL(EXTRACT(EPOCH FROM next_attempt_at - now())))::bigint AS "s!"
              FROM login_backoff WHERE account = $1 AND address = $2
            "#,
            account,
            address
        )
        .fetch_optional(self.pool)
        .await?
        .unwrap_or(1);
        tracing::info!("log-in delayed after repeated failures");
        Err(AuthError::RateLimited {
            reason: "too many failed log-ins for this account from this address",
            retry_after_secs: u64::try_from(retry_after_secs).unwrap_or(1),
        })
    }
}
