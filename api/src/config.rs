//! Configuration: a typed struct read once from the environment (`CHRONICLE_*`, `DATABASE_URL`).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::auth::AuthSettings;
use crate::limits::Limits;
use crate::metrics::MetricsSettings;
use crate::request::TrustedProxies;
use crate::shutdown::ShutdownSettings;

/// Development serves GraphiQL and introspection; production does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Everything `chronicle` can be configured with.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`. When unset, a private PostgreSQL cluster is run in `data_dir`.
    pub database_url: Option<String>,
    /// `CHRONICLE_DATA_DIR`: local state (the private cluster). Default `.chronicle`, or
    /// `/var/lib/chronicle` when running as root (PostgreSQL then runs as `postgres`, which
    /// must be able to reach it).
    pub data_dir: PathBuf,
    /// `CHRONICLE_HOST` (default `0.0.0.0`).
    pub host: IpAddr,
    /// `CHRONICLE_PORT` (default 8080; 0 picks a free port).
    pub port: u16,
    /// `CHRONICLE_ENV`: `development` (default) or `production`.
    pub environment: Environment,
    /// Abuse limits (`CHRONICLE_MAX_*`, `CHRONICLE_REQUEST_TIMEOUT_MS`).
    pub limits: Limits,
    /// How far ahead of the system clock this node decides time-bound rules (trial lock,
    /// invite expiry). Zero except in tests; not read from the environment.
    pub clock_offset: chrono::Duration,
    /// How often a subscription connection checks that its session has not ended (30 s; not
    /// read from the environment, shortened by tests).
    pub session_recheck: std::time::Duration,
    /// Tokens and throttling: `CHRONICLE_JWT_SECRET` (default: a secret kept in the database,
    /// shared by every node on it), `CHRONICLE_LOGINS_PER_ADDRESS` (100 per 15 minutes),
    /// `CHRONICLE_SIGNUPS_PER_ADDRESS` (10 per 15 minutes), `CHRONICLE_LOGIN_FREE_FAILURES`
    /// (5 per account and address before delays), `CHRONICLE_HASHING_QUEUE` (32 waiting per
    /// lane).
    pub auth: AuthSettings,
    /// `CHRONICLE_SEARCH_DIR`: this node's search index (default `search` in `data_dir`).
    pub search_dir: PathBuf,
    /// `CHRONICLE_NODE_NAME`: this node's name in `chronicle projections status` (default
    /// the host name and port).
    pub node_name: Option<String>,
    /// `CHRONICLE_CACHE_MB`: the response cache's bound, in MiB of answers (default 64; 0
    /// turns the cache off).
    pub cache_mb: u64,
    /// `CHRONICLE_MAX_PROJECTION_LAG`: `/readyz` says not ready when a projection is more
    /// than this many events behind the log (default 10,000).
    pub max_projection_lag: u64,
    /// `CHRONICLE_MAX_READER_STALL_MS`: `/readyz` says not ready when a transaction (a
    /// prepared one anywhere on the server, a long one) has held log readers back longer than
    /// this (default 30,000).
    pub max_reader_stall: std::time::Duration,
    /// `CHRONICLE_TRUSTED_PROXIES`: the load balancers whose `X-Forwarded-For` / `Forwarded`
    /// name the client (comma-separated addresses and networks; default none: the client is
    /// the TCP peer).
    pub trusted_proxies: TrustedProxies,
    /// What is deleted on a schedule, and how often.
    pub pruning: Pruning,
    /// `CHRONICLE_WORKERS`: `0` keeps `serve` from running the background jobs (run
    /// `chronicle worker` elsewhere); anything else, or unset, runs them.
    pub workers: bool,
    /// `CHRONICLE_SMTP_HOST`, `_PORT` (default 587, or 465 with `tls`), `_USERNAME`,
    /// `_PASSWORD`, `_TLS` (`none`, `starttls` (default), `tls`): where mail goes. Without a
    /// host, development logs the emails it would send and production runs no workers.
    pub smtp: Option<jobs::mail::SmtpSettings>,
    /// `CHRONICLE_SMTP_FROM`: the sender of emails (default `Chronicle <noreply@localhost>`).
    pub smtp_from: String,
    /// `CHRONICLE_PUBLIC_URL`: where users reach the app, for links in emails (default
    /// `http://localhost:8080`).
    pub public_url: String,
    /// `CHRONICLE_JOB_MAX_ATTEMPTS` (default 8) and `CHRONICLE_JOB_BACKOFF_MS` (the first
    /// retry's delay ceiling, doubling after each failure; default 1000): how failing jobs are
    /// retried before they are dead.
    pub job_retry: jobs::retry::RetryPolicy,
    /// How often workers look for due retries (1 s; not read from the environment, shortened
    /// by tests).
    pub job_poll_interval: std::time::Duration,
    /// `CHRONICLE_MAX_REFERRAL_REWARDS`: the most referral rewards one referrer earns
    /// (default 10).
    pub max_referral_rewards: u32,
    /// How often each worker node checks whether a week's summaries are due (60 s; not read
    /// from the environment, shortened by tests).
    pub weekly_summary_interval: std::time::Duration,
    /// `CHRONICLE_SHUTDOWN_GRACE_MS` (default 5,000 in production, 0 in development) and
    /// `CHRONICLE_SHUTDOWN_TIMEOUT_MS` (default 30,000): how the node stops on SIGTERM.
    pub shutdown: ShutdownSettings,
    /// `CHRONICLE_APQ_MB`: the memory persisted queries may take on this node (default 32 MiB).
    pub apq_max_bytes: u64,
    /// Who may read `/metrics`: `CHRONICLE_METRICS_TOKEN` (a bearer token, at least 16 bytes),
    /// `CHRONICLE_METRICS_PORT` (a separate listener serving only `/metrics`) on
    /// `CHRONICLE_METRICS_HOST` (default `127.0.0.1`). See [`crate::metrics`].
    pub metrics: MetricsSettings,
    /// `CHRONICLE_JOB_HEARTBEAT_SECS` (default 10): how often a worker says it is alive. A job
    /// held by a worker silent for 3 heartbeats (a process killed) goes back to the queue.
    pub job_heartbeat_interval: std::time::Duration,
}

/// Scheduled deletion of what is no longer needed: refresh tokens and sessions, throttle
/// counters, idempotency keys.
#[derive(Debug, Clone, Copy)]
pub struct Pruning {
    /// `CHRONICLE_PRUNE_INTERVAL_SECS`: time between two passes (default 600; 0 turns pruning
    /// off).
    pub interval: std::time::Duration,
    /// `CHRONICLE_SESSION_RETENTION_DAYS`: refresh tokens are kept this long after they expire,
    /// sessions this long after they end (default 7).
    pub session_retention: chrono::Duration,
    /// `CHRONICLE_IDEMPOTENCY_RETENTION_HOURS`: how long a mutation's idempotency key is
    /// remembered (default 24): a retry later than that runs the mutation again.
    pub idempotency_retention: chrono::Duration,
    /// Rows per delete statement (1,000), so no statement holds a long transaction.
    pub batch: u32,
}

impl Default for Pruning {
    fn default() -> Pruning {
        Pruning {
            interval: std::time::Duration::from_secs(600),
            session_retention: chrono::Duration::days(7),
            idempotency_retention: chrono::Duration::hours(24),
            batch: 1_000,
        }
    }
}

/// A setting that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    name: &'static str,
    message: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the configuration from `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        fn parse<T: std::str::FromStr>(
            name: &'static str,
            value: Option<String>,
            default: T,
        ) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            match value {
                None => Ok(default),
                Some(text) => text.parse().map_err(|err: T::Err| ConfigError {
                    name,
                    message: err.to_string(),
                }),
            }
        }
        let environment = match lookup("CHRONICLE_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError {
                    name: "CHRONICLE_ENV",
                    message: format!("`{other}` is neither `development` nor `production`"),
                });
            }
        };
        if environment == Environment::Production && lookup("CHRONICLE_JWT_SECRET").is_none() {
            // The generated key in the database would do, but then whoever can read that
            // database can mint tokens, and the key can never be rotated.
            return Err(ConfigError {
                name: "CHRONICLE_JWT_SECRET",
                message: "required in production (CHRONICLE_ENV=production): set it to a random \
                          string of at least 32 bytes, the same on every node"
                    .into(),
            });
        }
        if lookup("CHRONICLE_JWT_PREVIOUS_SECRET").is_some()
            && lookup("CHRONICLE_JWT_SECRET").is_none()
        {
            return Err(ConfigError {
                name: "CHRONICLE_JWT_PREVIOUS_SECRET",
                message: "only means something beside CHRONICLE_JWT_SECRET (the new key)".into(),
            });
        }
        let smtp = match lookup("CHRONICLE_SMTP_HOST") {
            None => None,
            Some(host) => {
                let tls: jobs::mail::TlsMode = parse(
                    "CHRONICLE_SMTP_TLS",
                    lookup("CHRONICLE_SMTP_TLS"),
                    jobs::mail::TlsMode::StartTls,
                )?;
                let default_port = if tls == jobs::mail::TlsMode::Tls {
                    465
                } else {
                    587
                };
                Some(jobs::mail::SmtpSettings {
                    host,
                    port: parse(
                        "CHRONICLE_SMTP_PORT",
                        lookup("CHRONICLE_SMTP_PORT"),
                        default_port,
                    )?,
                    username: lookup("CHRONICLE_SMTP_USERNAME"),
                    password: lookup("CHRONICLE_SMTP_PASSWORD"),
                    tls,
                })
            }
        };
        let job_retry = {
            let d = jobs::retry::RetryPolicy::default();
            let max_attempts: u32 = parse(
                "CHRONICLE_JOB_MAX_ATTEMPTS",
                lookup("CHRONICLE_JOB_MAX_ATTEMPTS"),
                d.max_attempts,
            )?;
            if max_attempts == 0 {
                return Err(ConfigError {
                    name: "CHRONICLE_JOB_MAX_ATTEMPTS",
                    message: "must be at least 1".into(),
                });
            }
            jobs::retry::RetryPolicy {
                max_attempts,
                base: std::time::Duration::from_millis(parse(
                    "CHRONICLE_JOB_BACKOFF_MS",
                    lookup("CHRONICLE_JOB_BACKOFF_MS"),
                    d.base.as_millis() as u64,
                )?),
                max: d.max,
            }
        };
        let shutdown = {
            let d = ShutdownSettings::default_for(environment);
            ShutdownSettings {
                grace: std::time::Duration::from_millis(parse(
                    "CHRONICLE_SHUTDOWN_GRACE_MS",
                    lookup("CHRONICLE_SHUTDOWN_GRACE_MS"),
                    d.grace.as_millis() as u64,
                )?),
                timeout: std::time::Duration::from_millis(parse(
                    "CHRONICLE_SHUTDOWN_TIMEOUT_MS",
                    lookup("CHRONICLE_SHUTDOWN_TIMEOUT_MS"),
                    d.timeout.as_millis() as u64,
                )?),
            }
        };
        let metrics = {
            let token = lookup("CHRONICLE_METRICS_TOKEN");
            if token
                .as_ref()
                .is_some_and(|t| t.len() < crate::metrics::MIN_TOKEN_LEN)
            {
                return Err(ConfigError {
                    name: "CHRONICLE_METRICS_TOKEN",
                    message: format!(
                        "at least {} bytes: a random string",
                        crate::metrics::MIN_TOKEN_LEN
                    ),
                });
            }
            let host: IpAddr = parse(
                "CHRONICLE_METRICS_HOST",
                lookup("CHRONICLE_METRICS_HOST"),
                IpAddr::from([127, 0, 0, 1]),
            )?;
            let port: Option<u16> = lookup("CHRONICLE_METRICS_PORT")
                .map(|port| parse("CHRONICLE_METRICS_PORT", Some(port), 0))
                .transpose()?;
            MetricsSettings {
                token,
                listen: port.map(|port| std::net::SocketAddr::new(host, port)),
            }
        };
        let data_dir = lookup("CHRONICLE_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        Ok(Config {
            database_url: lookup("DATABASE_URL"),
            search_dir: lookup("CHRONICLE_SEARCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("search")),
            data_dir,
            node_name: lookup("CHRONICLE_NODE_NAME"),
            cache_mb: parse("CHRONICLE_CACHE_MB", lookup("CHRONICLE_CACHE_MB"), 64)?,
            max_projection_lag: parse(
                "CHRONICLE_MAX_PROJECTION_LAG",
                lookup("CHRONICLE_MAX_PROJECTION_LAG"),
                10_000,
            )?,
            max_reader_stall: std::time::Duration::from_millis(parse(
                "CHRONICLE_MAX_READER_STALL_MS",
                lookup("CHRONICLE_MAX_READER_STALL_MS"),
                30_000,
            )?),
            host: parse(
                "CHRONICLE_HOST",
                lookup("CHRONICLE_HOST"),
                IpAddr::from([0, 0, 0, 0]),
            )?,
            port: parse("CHRONICLE_PORT", lookup("CHRONICLE_PORT"), 8080)?,
            trusted_proxies: parse(
                "CHRONICLE_TRUSTED_PROXIES",
                lookup("CHRONICLE_TRUSTED_PROXIES"),
                TrustedProxies::default(),
            )?,
            environment,
            limits: {
                let d = Limits::default();
                Limits {
                    max_depth: parse(
                        "CHRONICLE_MAX_DEPTH",
                        lookup("CHRONICLE_MAX_DEPTH"),
                        d.max_depth,
                    )?,
                    max_complexity: parse(
                        "CHRONICLE_MAX_COMPLEXITY",
                        lookup("CHRONICLE_MAX_COMPLEXITY"),
                        d.max_complexity,
                    )?,
                    max_aliases: parse(
                        "CHRONICLE_MAX_ALIASES",
                        lookup("CHRONICLE_MAX_ALIASES"),
                        d.max_aliases,
                    )?,
                    max_batch: parse(
                        "CHRONICLE_MAX_BATCH",
                        lookup("CHRONICLE_MAX_BATCH"),
                        d.max_batch,
                    )?,
                    max_body_bytes: parse(
                        "CHRONICLE_MAX_BODY_BYTES",
                        lookup("CHRONICLE_MAX_BODY_BYTES"),
                        d.max_body_bytes,
                    )?,
                    request_timeout: std::time::Duration::from_millis(parse(
                        "CHRONICLE_REQUEST_TIMEOUT_MS",
                        lookup("CHRONICLE_REQUEST_TIMEOUT_MS"),
                        d.request_timeout.as_millis() as u64,
                    )?),
                    consistency_wait: std::time::Duration::from_millis(parse(
                        "CHRONICLE_CONSISTENCY_WAIT_MS",
                        lookup("CHRONICLE_CONSISTENCY_WAIT_MS"),
                        d.consistency_wait.as_millis() as u64,
                    )?),
                    max_consistency_waits: parse(
                        "CHRONICLE_MAX_CONSISTENCY_WAITS",
                        lookup("CHRONICLE_MAX_CONSISTENCY_WAITS"),
                        d.max_consistency_waits,
                    )?,
                    max_ws_operations: parse(
                        "CHRONICLE_MAX_WS_OPERATIONS",
                        lookup("CHRONICLE_MAX_WS_OPERATIONS"),
                        d.max_ws_operations,
                    )?,
                    max_ws_connections_per_user: parse(
                        "CHRONICLE_MAX_WS_CONNECTIONS_PER_USER",
                        lookup("CHRONICLE_MAX_WS_CONNECTIONS_PER_USER"),
                        d.max_ws_connections_per_user,
                    )?,
                }
            },
            pruning: {
                let d = Pruning::default();
                Pruning {
                    interval: std::time::Duration::from_secs(parse(
                        "CHRONICLE_PRUNE_INTERVAL_SECS",
                        lookup("CHRONICLE_PRUNE_INTERVAL_SECS"),
                        d.interval.as_secs(),
                    )?),
                    session_retention: chrono::Duration::days(i64::from(parse::<u16>(
                        "CHRONICLE_SESSION_RETENTION_DAYS",
                        lookup("CHRONICLE_SESSION_RETENTION_DAYS"),
                        7,
                    )?)),
                    idempotency_retention: chrono::Duration::hours(i64::from(parse::<u32>(
                        "CHRONICLE_IDEMPOTENCY_RETENTION_HOURS",
                        lookup("CHRONICLE_IDEMPOTENCY_RETENTION_HOURS"),
                        24,
                    )?)),
                    ..d
                }
            },
            workers: lookup("CHRONICLE_WORKERS").as_deref() != Some("0"),
            smtp,
            smtp_from: lookup("CHRONICLE_SMTP_FROM")
                .unwrap_or_else(|| "Chronicle <noreply@localhost>".into()),
            public_url: lookup("CHRONICLE_PUBLIC_URL")
                .unwrap_or_else(|| "http://localhost:8080".into())
                .trim_end_matches('/')
                .to_string(),
            job_retry,
            job_poll_interval: std::time::Duration::from_secs(1),
            max_referral_rewards: parse(
                "CHRONICLE_MAX_REFERRAL_REWARDS",
                lookup("CHRONICLE_MAX_REFERRAL_REWARDS"),
                domain::referral::DEFAULT_MAX_REWARDS,
            )?,
            weekly_summary_interval: std::time::Duration::from_secs(60),
            shutdown,
            apq_max_bytes: parse::<u64>("CHRONICLE_APQ_MB", lookup("CHRONICLE_APQ_MB"), 32)?
                .saturating_mul(1024 * 1024),
            metrics,
            job_heartbeat_interval: {
                let secs: u64 = parse(
                    "CHRONICLE_JOB_HEARTBEAT_SECS",
                    lookup("CHRONICLE_JOB_HEARTBEAT_SECS"),
                    10,
                )?;
                if secs == 0 {
                    return Err(ConfigError {
                        name: "CHRONICLE_JOB_HEARTBEAT_SECS",
                        message: "must be at least 1".into(),
                    });
                }
                std::time::Duration::from_secs(secs)
            },
            clock_offset: chrono::Duration::zero(),
            session_recheck: std::time::Duration::from_secs(30),
            auth: {
                let d = AuthSettings::default();
                AuthSettings {
                    jwt_secret: lookup("CHRONICLE_JWT_SECRET"),
                    jwt_previous_secret: lookup("CHRONICLE_JWT_PREVIOUS_SECRET"),
                    logins_per_address: parse(
                        "CHRONICLE_LOGINS_PER_ADDRESS",
                        lookup("CHRONICLE_LOGINS_PER_ADDRESS"),
                        d.logins_per_address,
                    )?,
                    signups_per_address: parse(
                        "CHRONICLE_SIGNUPS_PER_ADDRESS",
                        lookup("CHRONICLE_SIGNUPS_PER_ADDRESS"),
                        d.signups_per_address,
                    )?,
                    free_failures: parse(
                        "CHRONICLE_LOGIN_FREE_FAILURES",
                        lookup("CHRONICLE_LOGIN_FREE_FAILURES"),
                        d.free_failures,
                    )?,
                    hashing_queue: parse(
                        "CHRONICLE_HASHING_QUEUE",
                        lookup("CHRONICLE_HASHING_QUEUE"),
                        d.hashing_queue,
                    )?,
                    ..d
                }
            },
        })
    }
}

fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/lib/chronicle")
    } else {
        PathBuf::from(".chronicle")
    }
}

/// Secrets stay out of logs: the database URL's password is masked.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(mask_password),
            )
            .field("data_dir", &self.data_dir)
            .field("search_dir", &self.search_dir)
            .field("node_name", &self.node_name)
            .field("cache_mb", &self.cache_mb)
            .field("max_projection_lag", &self.max_projection_lag)
            .field("max_reader_stall", &self.max_reader_stall)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("pruning", &self.pruning)
            .field("environment", &self.environment)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("workers", &self.workers)
            .field("smtp", &self.smtp)
            .field("smtp_from", &self.smtp_from)
            .field("public_url", &self.public_url)
            .field("job_retry", &self.job_retry)
            .field("max_referral_rewards", &self.max_referral_rewards)
            .field("shutdown", &self.shutdown)
            .field("apq_max_bytes", &self.apq_max_bytes)
            .field("metrics", &self.metrics)
            .field("job_heartbeat_interval", &self.job_heartbeat_interval)
            .finish()
    }
}

fn mask_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// The setting named and the message of the error `vars` are refused with.
    fn refused(vars: &[(&str, &str)]) -> (&'static str, String) {
        let err = config(vars).expect_err("refused");
        (err.name, err.message)
    }

    #[test]
    fn defaults_serve_on_8080_in_development() {
        let config = config(&[]).unwrap();
        assert_eq!(
            (config.port, config.environment, config.database_url),
            (8080, Environment::Development, None)
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = config(&[("CHRONICLE_PORT", "eighty")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CHRONICLE_PORT: invalid digit found in string"
        );
        assert_eq!(
            refused(&[("CHRONICLE_ENV", "staging")]),
            (
                "CHRONICLE_ENV",
                "`staging` is neither `development` nor `production`".into()
            )
        );
        assert_eq!(
            refused(&[("CHRONICLE_JOB_MAX_ATTEMPTS", "0")]),
            ("CHRONICLE_JOB_MAX_ATTEMPTS", "must be at least 1".into())
        );
    }

    #[test]
    fn production_requires_a_jwt_secret() {
        let (name, message) = refused(&[("CHRONICLE_ENV", "production")]);
        assert_eq!(name, "CHRONICLE_JWT_SECRET");
        assert!(
            message.starts_with("required in production (CHRONICLE_ENV=production)"),
            "{message}"
        );
        let secret = "a production key of at least thirty-two bytes";
        let config = config(&[
            ("CHRONICLE_ENV", "production"),
            ("CHRONICLE_JWT_SECRET", secret),
        ])
        .unwrap();
        assert_eq!(config.environment, Environment::Production);
        // Development still works without one (a key kept in the database).
        assert!(super::Config::from_lookup(|_| None).is_ok());
    }

    #[test]
    fn a_previous_jwt_secret_needs_a_current_one_and_neither_is_logged() {
        assert_eq!(
            refused(&[(
                "CHRONICLE_JWT_PREVIOUS_SECRET",
                "old key, long enough, really yes",
            )]),
            (
                "CHRONICLE_JWT_PREVIOUS_SECRET",
                "only means something beside CHRONICLE_JWT_SECRET (the new key)".into()
            )
        );
        let config = config(&[
            (
                "CHRONICLE_JWT_SECRET",
                "new-key-new-key-new-key-new-key-new",
            ),
            (
                "CHRONICLE_JWT_PREVIOUS_SECRET",
                "old-key-old-key-old-key-old-key-old",
            ),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("new-key") && !shown.contains("old-key"),
            "{shown}"
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_and_networks() {
        let trusted = config(&[(
            "CHRONICLE_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.0.2.7, fd00::/8",
        )])
        .unwrap()
        .trusted_proxies;
        assert!(trusted.trusts("10.2.3.4".parse().unwrap()));
        assert!(trusted.trusts("fd00::1".parse().unwrap()));
        assert!(config(&[]).unwrap().trusted_proxies.is_empty());
        let (name, message) = refused(&[("CHRONICLE_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal")]);
        assert_eq!(name, "CHRONICLE_TRUSTED_PROXIES");
        assert!(
            message.starts_with("`lb.internal` is not an IP address or a network"),
            "{message}"
        );
    }

    #[test]
    fn production_drains_for_a_grace_by_default_and_both_bounds_are_settable() {
        let development = config(&[]).unwrap().shutdown;
        assert_eq!(development.grace, std::time::Duration::ZERO);
        assert_eq!(development.timeout, std::time::Duration::from_secs(30));
        let secret = (
            "CHRONICLE_JWT_SECRET",
            "a production key of at least thirty-two bytes",
        );
        let production = config(&[("CHRONICLE_ENV", "production"), secret])
            .unwrap()
            .shutdown;
        assert_eq!(production.grace, std::time::Duration::from_secs(5));
        let set = config(&[
            ("CHRONICLE_ENV", "production"),
            secret,
            ("CHRONICLE_SHUTDOWN_GRACE_MS", "0"),
            ("CHRONICLE_SHUTDOWN_TIMEOUT_MS", "1500"),
        ])
        .unwrap()
        .shutdown;
        assert_eq!(
            (set.grace, set.timeout),
            (
                std::time::Duration::ZERO,
                std::time::Duration::from_millis(1500)
            )
        );
        assert_eq!(
            refused(&[("CHRONICLE_SHUTDOWN_GRACE_MS", "soon")]),
            (
                "CHRONICLE_SHUTDOWN_GRACE_MS",
                "invalid digit found in string".into()
            )
        );
    }

    #[test]
    fn the_database_password_never_reaches_the_logs() {
        let config =
            config(&[("DATABASE_URL", "postgres://app:s3cret@db:5432/chronicle")]).unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("app:***@db"),
            "{shown}"
        );
    }

    #[test]
    fn metrics_settings_are_checked_and_the_token_never_logged() {
        assert_eq!(
            refused(&[("CHRONICLE_METRICS_TOKEN", "short")]),
            (
                "CHRONICLE_METRICS_TOKEN",
                "at least 16 bytes: a random string".into()
            )
        );
        let config = config(&[
            ("CHRONICLE_METRICS_TOKEN", "a-long-enough-metrics-token"),
            ("CHRONICLE_METRICS_PORT", "9464"),
        ])
        .unwrap();
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert!(!format!("{config:?}").contains("long-enough"));
        assert!(
            super::Config::from_lookup(|_| None)
                .unwrap()
                .metrics
                .listen
                .is_none()
        );
    }

    #[test]
    fn the_smtp_password_never_reaches_the_logs() {
        let config = config(&[
            ("CHRONICLE_SMTP_HOST", "mail.example.com"),
            ("CHRONICLE_SMTP_USERNAME", "mailer"),
            ("CHRONICLE_SMTP_PASSWORD", "hunter2"),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("mail.example.com"),
            "{shown}"
        );
    }

    #[test]
    fn smtp_settings_have_defaults_by_tls_mode() {
        let smtp = |vars: &[(&str, &str)]| config(vars).unwrap().smtp.unwrap();
        let starttls = smtp(&[("CHRONICLE_SMTP_HOST", "mail")]);
        assert_eq!(
            (starttls.port, starttls.tls),
            (587, jobs::mail::TlsMode::StartTls)
        );
        let tls = smtp(&[
            ("CHRONICLE_SMTP_HOST", "mail"),
            ("CHRONICLE_SMTP_TLS", "tls"),
        ]);
        assert_eq!(tls.port, 465);
        assert_eq!(
            refused(&[
                ("CHRONICLE_SMTP_HOST", "mail"),
                ("CHRONICLE_SMTP_TLS", "ssl")
            ]),
            (
                "CHRONICLE_SMTP_TLS",
                "`ssl` is none of `none`, `starttls`, `tls`".into()
            )
        );
        assert!(config(&[]).unwrap().smtp.is_none());
        assert!(config(&[]).unwrap().workers);
        assert!(!config(&[("CHRONICLE_WORKERS", "0")]).unwrap().workers);
    }
}
