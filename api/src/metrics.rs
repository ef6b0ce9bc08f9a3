//! `/metrics`: what a node does, in Prometheus' text format (SPEC §8).
//!
//! [`Metrics`] is this node's registry (one per [`crate::startup::Application`], so tests on
//! one process do not mix their counts). Requests feed it as they are served
//! ([`Metrics::observe`], errors, the APQ counters); the response cache's own counters and
//! what lives in the database — projection lag, jobs, the read horizon — are read when
//! Prometheus scrapes, the latter with the queries `chronicle projections status` and
//! `chronicle jobs status` use.
//!
//! Who may read it ([`MetricsAccess`]): with `CHRONICLE_METRICS_TOKEN`, whoever sends it as a
//! bearer token (compared in constant time); with `CHRONICLE_METRICS_PORT`, whoever reaches
//! that listener (bound to `CHRONICLE_METRICS_HOST`, loopback by default); with neither, anyone
//! in development and no one in production. The request's peer address is never the test:
//! behind a proxy on the same machine every client comes from loopback.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use eventlog::EventLog;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cache::ResponseCache;
use crate::config::{Config, Environment};
use crate::error::Code;

/// Operation names get their own label value up to this many; later ones count as `other`
/// (names are chosen by clients, and each value is a time series).
pub const MAX_OPERATION_LABELS: usize = 64;
/// Projection lag is counted up to this many events (the count is a scan of the log).
const LAG_CAP: u64 = 1_000_000;
/// How long a scrape waits for the database.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest metrics token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// How a GraphQL operation ended, as the `outcome` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered without errors.
    Ok,
    /// Executed, with errors (field errors, refusals by resolvers).
    Error,
    /// Refused before execution: the request, the document or its variables were invalid.
    Rejected,
    /// Not answered within the request time limit.
    Timeout,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
        }
    }
}

/// This node's metrics. Cheap to clone (clones share the registry).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    errors: IntCounterVec,
    apq: IntCounterVec,
    cache_lookups: IntCounterVec,
    cache_evictions: IntCounter,
    cache_bytes: IntGauge,
    cache_entries: IntGauge,
    appended_events: IntCounter,
    projection_lag: IntGaugeVec,
    jobs: IntGaugeVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    reader_stall: Gauge,
    database_up: IntGauge,
    operations: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("chronicle".into()), None).expect("a constant, valid prefix");
        fn register<C: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            collector: C,
        ) -> C {
            registry
                .register(Box::new(collector.clone()))
                .expect("each metric is registered once, under its own name");
            collector
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let inner = Inner {
            requests: counter_vec(
                "graphql_requests_total",
                "GraphQL operations served over HTTP, by operation name and outcome",
                &["operation", "outcome"],
            ),
            latency: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "graphql_request_duration_seconds",
                        "Time to answer a GraphQL request over HTTP, by operation name and outcome",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ]),
                    &["operation", "outcome"],
                )
                .expect("valid metric"),
            ),
            errors: counter_vec(
                "graphql_errors_total",
                "Errors in GraphQL answers, by extensions.code",
                &["code"],
            ),
            apq: counter_vec(
                "apq_requests_total",
                "Automatic persisted query requests: hit (hash found), miss (hash not found), \
                 registered (query stored with its hash)",
                &["result"],
            ),
            cache_lookups: counter_vec(
                "response_cache_lookups_total",
                "Response cache lookups: hit (a fresh entry served) or miss (executed)",
                &["result"],
            ),
            cache_evictions: register(
                &registry,
                IntCounter::new(
                    "response_cache_evictions_total",
                    "Entries the response cache evicted to stay within CHRONICLE_CACHE_MB",
                )
                .expect("valid metric"),
            ),
            cache_bytes: register(
                &registry,
                IntGauge::new(
                    "response_cache_bytes",
                    "Bytes the response cache holds (as weighed for its bound)",
                )
                .expect("valid metric"),
            ),
            cache_entries: register(
                &registry,
                IntGauge::new("response_cache_entries", "Entries in the response cache")
                    .expect("valid metric"),
            ),
            appended_events: register(
                &registry,
                IntCounter::new(
                    "log_appended_events_total",
                    "Events this node appended to the log and committed (rate() gives appends \
                     per second)",
                )
                .expect("valid metric"),
            ),
            projection_lag: gauge_vec(
                "projection_lag_events",
                "Events in the log after a projection's checkpoint (per node for node-local \
                 projections; counted up to 1000000)",
                &["projection", "node"],
            ),
            jobs: gauge_vec(
                "jobs",
                "Background jobs by queue and state (pending is the queue's depth; dead jobs \
                 wait for a retry by hand)",
                &["queue", "state"],
            ),
            pool_connections: gauge_vec(
                "db_pool_connections",
                "This node's database connections: in_use, idle, kept (by the lane between one \
                 statement and the next; in_use + kept at db_pool_max means requests wait for a \
                 connection)",
                &["state"],
            ),
            pool_max: register(
                &registry,
                IntGauge::new("db_pool_max", "The most connections the pool opens")
                    .expect("valid metric"),
            ),
            reader_stall: register(
                &registry,
                Gauge::new(
                    "log_reader_stall_seconds",
                    "How long the oldest transaction that can write the log has held log \
                     readers back (the read horizon's age; 0 when nothing does)",
                )
                .expect("valid metric"),
            ),
            database_up: register(
                &registry,
                IntGauge::new(
                    "database_up",
                    "1 when the last scrape could read the database, 0 when it could not (the \
                     database-derived metrics are then absent)",
                )
                .expect("valid metric"),
            ),
            operations: Mutex::new(HashSet::new()),
            registry,
        };
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// Records one GraphQL operation answered over HTTP: `operation` is the `operationName`
    /// the request sent (`None`: `anonymous`), `elapsed` the time to answer it. A rejected
    /// operation counts under its name only if that name is already a label (its document may
    /// be garbage), else under `other`.
    pub fn observe(&self, operation: Option<&str>, outcome: Outcome, elapsed: Duration) {
        let operation = match outcome {
            Outcome::Rejected => self.operation_label(operation.or(Some("other")), false),
            _ => self.operation_label(operation, true),
        };
        let labels = [operation.as_str(), outcome.as_str()];
        self.inner.requests.with_label_values(&labels).inc();
        self.inner
            .latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records an error with `code` in an answer.
    pub fn error(&self, code: Code) {
        self.inner.errors.with_label_values(&[code.as_str()]).inc();
    }

    /// Records the errors of an answer by their `extensions.code` (anything not in the
    /// documented set counts as `OTHER`).
    pub fn count_errors(&self, response: &async_graphql::Response) {
        for error in &response.errors {
            let code = match error.extensions.as_ref().and_then(|ext| ext.get("code")) {
                Some(async_graphql::Value::String(code)) => {
                    Code::ALL.into_iter().find(|c| c.as_str() == code)
                }
                _ => None,
            };
            let code = code.map_or("OTHER", Code::as_str);
            self.inner.errors.with_label_values(&[code]).inc();
        }
    }

    /// A persisted query's hash was found.
    pub fn apq_hit(&self) {
        self.inner.apq.with_label_values(&["hit"]).inc();
    }

    /// A persisted query's hash came alone and was not found.
    pub fn apq_miss(&self) {
        self.inner.apq.with_label_values(&["miss"]).inc();
    }

    /// A persisted query came with its query and was stored.
    pub fn apq_registered(&self) {
        self.inner.apq.with_label_values(&["registered"]).inc();
    }

    /// Brings the response-cache series up to the cache's own counters.
    fn read_cache(&self, cache: &ResponseCache) {
        let stats = cache.stats();
        let catch_up = |counter: &IntCounter, total: &AtomicU64| {
            counter.inc_by(total.load(Ordering::Relaxed).saturating_sub(counter.get()));
        };
        let lookups = &self.inner.cache_lookups;
        catch_up(&lookups.with_label_values(&["hit"]), &stats.hits);
        catch_up(&lookups.with_label_values(&["miss"]), &stats.misses);
        catch_up(&self.inner.cache_evictions, &stats.evictions);
        let (bytes, entries) = cache.size();
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.inner.cache_bytes.set(gauge(bytes));
        self.inner.cache_entries.set(gauge(entries));
    }

    /// The counter of committed appends, for the write path to count into.
    pub fn appended_events(&self) -> IntCounter {
        self.inner.appended_events.clone()
    }

    /// The label for `name`: itself if it is known or there is room for it (and `may_add`),
    /// else `other`; `anonymous` for an operation without a name.
    fn operation_label(&self, name: Option<&str>, may_add: bool) -> String {
        let Some(name) = name else {
            return "anonymous".into();
        };
        let mut known = self
            .inner
            .operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(name) {
            return name.to_string();
        }
        if may_add && known.len() < MAX_OPERATION_LABELS {
            known.insert(name.to_string());
            return name.to_string();
        }
        "other".into()
    }

    /// Reads what lives in the database and the response cache (if any) into the gauges, then
    /// renders every metric.
    pub async fn render(&self, log: &EventLog, cache: Option<&ResponseCache>) -> String {
        if let Some(cache) = cache {
            self.read_cache(cache);
        }
        let read = tokio::time::timeout(SCRAPE_TIMEOUT, self.read_database(log)).await;
        let up = match read {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "metrics: cannot read the database");
                false
            }
            Err(_) => {
                tracing::warn!("metrics: the database did not answer in time");
                false
            }
        };
        self.inner.database_up.set(i64::from(up));
        let pool = log.pool();
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        let size = i64::from(pool.size());
        let kept = i64::try_from(log.lane().kept()).unwrap_or(i64::MAX);
        let connections = &self.inner.pool_connections;
        connections.with_label_values(&["idle"]).set(idle);
        connections.with_label_values(&["kept"]).set(kept);
        connections
            .with_label_values(&["in_use"])
            .set((size - idle - kept).max(0));
        self.inner
            .pool_max
            .set(i64::from(pool.options().get_max_connections()));
        let mut text = String::new();
        if let Err(err) = TextEncoder::new().encode_utf8(&self.inner.registry.gather(), &mut text) {
            tracing::error!(error = %err, "metrics: cannot encode");
        }
        text
    }

    /// Projection lag, jobs and the read horizon's age, as `chronicle projections status` and
    /// `chronicle jobs status` read them. On failure the gauges are left empty.
    async fn read_database(&self, log: &EventLog) -> anyhow::Result<()> {
        let lag = &self.inner.projection_lag;
        let jobs = &self.inner.jobs;
        lag.reset();
        jobs.reset();
        for standing in projections::runner::standings_capped(log, LAG_CAP).await? {
            lag.with_label_values(&[standing.name.as_str(), standing.node.as_str()])
                .set(i64::try_from(standing.lag).unwrap_or(i64::MAX));
        }
        for queue in jobs::failed::counts(log.pool()).await? {
            for (state, count) in [
                ("pending", queue.pending),
                ("running", queue.running),
                ("retrying", queue.retrying),
                ("dead", queue.dead),
                ("done", queue.done),
            ] {
                jobs.with_label_values(&[queue.queue.as_str(), state])
                    .set(count);
            }
        }
        let stall = log.reader_stall().await?;
        self.inner
            .reader_stall
            .set(stall.map_or(0.0, |stall| stall.age.as_secs_f64()));
        Ok(())
    }
}

/// Who may read `/metrics` (see the module docs), from `CHRONICLE_METRICS_TOKEN`,
/// `CHRONICLE_METRICS_PORT` and `CHRONICLE_METRICS_HOST`.
#[derive(Clone, Default)]
pub struct MetricsSettings {
    /// The bearer token `/metrics` asks for (at least [`MIN_TOKEN_LEN`] bytes).
    pub token: Option<String>,
    /// Where a separate listener serves only `/metrics`.
    pub listen: Option<SocketAddr>,
}

impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("listen", &self.listen)
            .finish()
    }
}

/// How one listener answers `/metrics`.
#[derive(Clone)]
pub enum MetricsAccess {
    /// To everyone who reaches the listener.
    Open,
    /// To holders of the token (its SHA-256, compared in constant time).
    Token([u8; 32]),
    /// To no one (404).
    Closed,
}

impl MetricsAccess {
    /// The access on the main listener.
    pub fn main(settings: &MetricsSettings, environment: Environment) -> MetricsAccess {
        match (&settings.token, settings.listen, environment) {
            (Some(token), _, _) => MetricsAccess::token(token),
            (None, Some(_), _) | (None, None, Environment::Production) => MetricsAccess::Closed,
            (None, None, Environment::Development) => MetricsAccess::Open,
        }
    }

    /// The access on the separate metrics listener.
    pub fn separate(settings: &MetricsSettings) -> MetricsAccess {
        settings
            .token
            .as_deref()
            .map_or(MetricsAccess::Open, MetricsAccess::token)
    }

    fn token(token: &str) -> MetricsAccess {
        MetricsAccess::Token(Sha256::digest(token.as_bytes()).into())
    }

    /// The answer to `request` if it may not read the metrics.
    fn refusal(&self, request: &HttpRequest) -> Option<HttpResponse> {
        match self {
            MetricsAccess::Open => None,
            MetricsAccess::Closed => Some(HttpResponse::NotFound().finish()),
            MetricsAccess::Token(expected) => {
                let presented = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::http::bearer)
                    .map(|token| <[u8; 32]>::from(Sha256::digest(token.as_bytes())));
                match presented {
                    Some(presented) if bool::from(presented.ct_eq(expected)) => None,
                    _ => Some(
                        HttpResponse::Unauthorized()
                            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
                            .finish(),
                    ),
                }
            }
        }
    }
}

/// What a listener's `/metrics` route needs.
pub struct MetricsEndpoint {
    pub metrics: Metrics,
    pub log: EventLog,
    /// The response cache, unless turned off.
    pub cache: Option<ResponseCache>,
    pub access: MetricsAccess,
}

/// The `/metrics` endpoint of the main listener, after starting the separate listener if
/// one is configured (its address is returned).
pub fn endpoints(
    config: &Config,
    metrics: &Metrics,
    log: &EventLog,
    cache: Option<&ResponseCache>,
) -> anyhow::Result<(MetricsEndpoint, Option<SocketAddr>)> {
    let endpoint = |access| MetricsEndpoint {
        metrics: metrics.clone(),
        log: log.clone(),
        cache: cache.cloned(),
        access,
    };
    let separate = match config.metrics.listen {
        None => None,
        Some(at) => {
            let listener = std::net::TcpListener::bind(at)
                .map_err(|err| anyhow::anyhow!("cannot serve metrics on {at}: {err}"))?;
            let bound = listener.local_addr()?;
            serve_separately(listener, endpoint(MetricsAccess::separate(&config.metrics)))?;
            Some(bound)
        }
    };
    let access = MetricsAccess::main(&config.metrics, config.environment);
    if matches!(access, MetricsAccess::Closed) && separate.is_none() {
        tracing::warn!(
            "/metrics is off: set CHRONICLE_METRICS_TOKEN or CHRONICLE_METRICS_PORT to serve it"
        );
    }
    Ok((endpoint(access), separate))
}

/// `GET /metrics`.
pub async fn metrics(endpoint: web::Data<MetricsEndpoint>, request: HttpRequest) -> HttpResponse {
    if let Some(refused) = endpoint.access.refusal(&request) {
        return refused;
    }
    let text = endpoint
        .metrics
        .render(&endpoint.log, endpoint.cache.as_ref())
        .await;
    HttpResponse::Ok()
        .content_type(TextEncoder::new().format_type())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text)
}

/// Serves `/metrics` alone on `listener` (the separate metrics port), until the process ends.
fn serve_separately(
    listener: std::net::TcpListener,
    endpoint: MetricsEndpoint,
) -> std::io::Result<()> {
    let endpoint = web::Data::new(endpoint);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(endpoint.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_beyond_the_cap_fold_into_other() {
        let metrics = Metrics::new();
        for i in 0..MAX_OPERATION_LABELS {
            assert_eq!(
                metrics.operation_label(Some(&format!("Op{i}")), true),
                format!("Op{i}")
            );
        }
        assert_eq!(metrics.operation_label(Some("OneTooMany"), true), "other");
        assert_eq!(metrics.operation_label(Some("Op3"), false), "Op3");
        assert_eq!(metrics.operation_label(None, true), "anonymous");
    }

    #[test]
    fn rejected_operations_do_not_take_a_label() {
        let metrics = Metrics::new();
        assert_eq!(metrics.operation_label(Some("Junk"), false), "other");
        assert!(metrics.inner.operations.lock().unwrap().is_empty());
    }

    #[test]
    fn the_main_listener_serves_metrics_openly_only_in_development_without_settings() {
        let none = MetricsSettings::default();
        let dev = Environment::Development;
        let prod = Environment::Production;
        assert!(matches!(
            MetricsAccess::main(&none, dev),
            MetricsAccess::Open
        ));
        assert!(matches!(
            MetricsAccess::main(&none, prod),
            MetricsAccess::Closed
        ));
        let port = MetricsSettings {
            token: None,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        };
        assert!(matches!(
            MetricsAccess::main(&port, dev),
            MetricsAccess::Closed
        ));
        assert!(matches!(
            MetricsAccess::separate(&port),
            MetricsAccess::Open
        ));
        let token = MetricsSettings {
            token: Some("a-metrics-token-of-some-length".into()),
            listen: None,
        };
        assert!(matches!(
            MetricsAccess::main(&token, prod),
            MetricsAccess::Token(_)
        ));
    }
}
