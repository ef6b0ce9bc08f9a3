//! Login throttling in fixed windows, per account and per client address, counted in the
//! database so that every node shares the counters.
//!
//! An attempt is *reserved* (counted) atomically before the password is verified, so a burst of
//! concurrent attempts cannot slip past the limit between a check and a later increment. The
//! reservation is given back when the attempt turns out not to be a failure: a successful log-in
//! resets the account counter and returns its unit to the address counter, and an attempt refused
//! by the account limit is not held against the address.

use std::net::IpAddr;

use sqlx::PgPool;

use super::{AuthError, AuthSettings, pg_interval};

/// What a counter is kept for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// A normalized email address, whether or not an account has it.
    Account,
    /// A client address: an IPv4 address, or the /64 network of an IPv6 address (one subscriber
    /// usually holds a whole /64).
    Ip,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Ip => "ip",
        }
    }
}

/// The counter key of a client address.
pub(super) fn ip_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The login counters of one database.
pub(super) struct Throttle<'a> {
    pub pool: &'a PgPool,
    pub settings: &'a AuthSettings,
}

impl Throttle<'_> {
    /// Counts one attempt for the account (and the address, when known), or refuses it when
    /// either has used up its window.
    pub async fn reserve(&self, account: &str, ip: Option<&str>) -> Result<(), AuthError> {
        if let Some(ip) = ip {
            self.reserve_one(Kind::Ip, ip, self.settings.max_failures_per_ip)
                .await?;
        }
        let account_limit = self.settings.max_failures_per_account;
        if let Err(err) = self
            .reserve_one(Kind::Account, account, account_limit)
            .await
        {
            if let Some(ip) = ip {
                self.give_back(Kind::Ip, ip).await?;
            }
            return Err(err);
        }
        Ok(())
    }

    /// A successful log-in: the account starts afresh, and the address gets its unit back.
    pub async fn succeeded(&self, account: &str, ip: Option<&str>) -> Result<(), AuthError> {
        sqlx::query!(
            r#"DELETE FROM login_throttle WHERE kind = 'account' AND subject = $1"#,
            account
        )
        .execute(self.pool)
        .await?;
        if let Some(ip) = ip {
            self.give_back(Kind::Ip, ip).await?;
        }
        Ok(())
    }

    async fn reserve_one(&self, kind: Kind, subject: &str, limit: u32) -> Result<(), AuthError> {
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
            pg_interval(self.settings.failure_window)?,
            limit,
        )
        .fetch_one(self.pool)
        .await?;
        if counted.failures > limit {
            tracing::info!(kind = kind.as_str(), "login throttled");
            return Err(AuthError::RateLimited {
                retry_after_secs: u64::try_from(counted.retry_after_secs).unwrap_or(1),
            });
        }
        Ok(())
    }

    async fn give_back(&self, kind: Kind, subject: &str) -> Result<(), AuthError> {
        sqlx::query!(
            r#"UPDATE login_throttle SET failures = GREATEST(failures - 1, 0)
               WHERE kind = $1 AND subject = $2"#,
            kind.as_str(),
            subject
        )
        .execute(self.pool)
        .await?;
        Ok(())
    }
}
