//! Building the HTTP application: routes, shared state, and the listening socket. Tests start
//! the real server through [`Application::build`] on port 0. How it stops: [`crate::shutdown`].

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, guard, middleware, web};
use eventlog::EventLog;
use sqlx::PgPool;

use crate::auth::Auth;
use crate::authz::Rights;
use crate::background::{self, invite_tokens};
use crate::bulk;
use crate::cache::{Freshness, ResponseCache};
use crate::config::{Config, Environment};
use crate::console;
use crate::graphiql;
use crate::graphql::build_schema;
use crate::graphql::events::Pseudonymizer;
use crate::graphql::jobs::JobSettings;
use crate::metrics::Metrics;
use crate::persisted::PersistedQueries;
use crate::read_side::ReadSide;
use crate::secrets::shared_secret;
use crate::shutdown::{Draining, ShutdownSettings, Signals, Tasks};
use crate::writes::{Clock, Writes};
use crate::{downloads, health, http, metrics, pruning, request, websocket};

/// A bound, not yet running, HTTP server.
pub struct Application {
    address: SocketAddr,
    /// Where the separate `/metrics` listener is, if one is configured.
    metrics_address: Option<SocketAddr>,
    server: Server,
    /// Set when the node starts shutting down.
    draining: Draining,
    /// The projections, pruning and (unless `CHRONICLE_WORKERS=0`) the job dispatcher and
    /// workers.
    tasks: Tasks,
    shutdown: ShutdownSettings,
    /// The clock time-bound rules are decided by.
    clock: Clock,
    /// The response cache, unless turned off.
    cache: Option<ResponseCache>,
}

impl Application {
    /// Binds `config.host:config.port` and prepares the server on `pool` (already migrated).
    pub async fn build(config: &Config, pool: PgPool) -> anyhow::Result<Application> {
        let listener = TcpListener::bind((config.host, config.port)).map_err(|err| {
            anyhow::anyhow!("cannot listen on {}:{}: {err}", config.host, config.port)
        })?;
        let address = listener.local_addr()?;
        eventlog::ensure_positions_increase(&pool).await?;
        let log = EventLog::new(pool.clone());
        let auth = Auth::new(pool.clone(), config.auth.clone())
            .await?
            .remember_sessions(&log);
        let draining = Draining::default();
        let mut tasks = Tasks::default();
        if !config.pruning.interval.is_zero() {
            let (auth, pool, pruning) = (auth.clone(), pool.clone(), config.pruning);
            tasks.spawn(|stop| pruning::prune_periodically(auth, pool, pruning, stop));
        }
        let pseudonymizer = Pseudonymizer::new(shared_secret(&pool, "pseudonyms").await?);
        let node = config
            .node_name
            .clone()
            .unwrap_or_else(|| format!("{}:{}", host_name(), address.port()));
        let read_side = ReadSide::start(&log, &config.search_dir, node.clone(), &mut tasks)?;
        let clock = Clock::with_offset(config.clock_offset);
        if config.workers {
            background::start(config, &log, clock.clone(), &node, &draining, &mut tasks).await?;
        }
        let metrics = Metrics::new();
        let rights = Rights::new(pool.clone()).remembering_roles(&log);
        let writes = Writes::with_clock(log.clone(), clock.clone())
            .counting_appends(metrics.appended_events())
            .forgetting_roles(rights.clone());
        let schema = build_schema(
            writes.clone(),
            rights,
            auth.clone(),
            pseudonymizer.clone(),
            read_side.clone(),
            JobSettings {
                invite_tokens: invite_tokens(&pool).await?,
                retry: config.job_retry,
            },
            config.environment,
            &config.limits,
        );
        let cache = match config.cache_mb {
            0 => None,
            mb => Some(ResponseCache::new(
                mb * 1024 * 1024,
                Freshness::start(&log).await?,
                read_side.clone(),
                clock.clone(),
                &schema.sdl(),
            )),
        };
        let response_cache = cache.clone();
        let (metrics_endpoint, metrics_address) =
            metrics::endpoints(config, &metrics, &log, cache.as_ref())?;
        let metrics_endpoint = web::Data::new(metrics_endpoint);
        let cache = web::Data::new(cache);
        let schema = web::Data::new(schema);
        let (log, auth, limits) = (
            web::Data::new(log),
            web::Data::new(auth),
            web::Data::new(config.limits),
        );
        let pseudonymizer = web::Data::new(pseudonymizer);
        let persisted = web::Data::new(PersistedQueries::new(config.apq_max_bytes));
        let metrics = web::Data::new(metrics);
        let writes = web::Data::new(writes);
        let readiness = web::Data::new(health::Readiness {
            draining: draining.clone(),
            read_side,
            max_projection_lag: config.max_projection_lag,
            max_reader_stall: config.max_reader_stall,
        });
        let websocket_settings = web::Data::new(websocket::Settings {
            session_recheck: config.session_recheck,
            draining: draining.clone(),
        });
        let sockets = web::Data::new(websocket::Sockets::default());
        let trusted_proxies = web::Data::new(config.trusted_proxies.clone());
        let environment = config.environment;
        let console_settings = console::Settings::for_public_url(&config.public_url);
        let server = HttpServer::new(move || {
            let app = App::new()
                .app_data(log.clone())
                .app_data(auth.clone())
                .app_data(pseudonymizer.clone())
                .app_data(writes.clone())
                .app_data(schema.clone())
                .app_data(cache.clone())
                .app_data(limits.clone())
                .app_data(readiness.clone())
                .app_data(websocket_settings.clone())
                .app_data(sockets.clone())
                .app_data(trusted_proxies.clone())
                .app_data(persisted.clone())
                .app_data(metrics.clone())
                .app_data(metrics_endpoint.clone())
                .app_data(web::PayloadConfig::new(limits.max_body_bytes))
                .wrap(middleware::from_fn(request::resolve_origin))
                .service(health::healthz)
                .service(health::readyz)
                .route("/events.ndjson", web::get().to(bulk::events_ndjson))
                .route("/events.csv", web::get().to(bulk::events_csv))
                .route("/metrics", web::get().to(metrics::metrics))
                .route("/exports/{id}", web::get().to(downloads::export))
                .service(console::scope(console_settings.clone()))
                .service(
                    web::resource("/graphql")
                        .route(
                            web::get()
                                .guard(guard::fn_guard(asks_for_websocket))
                                .to(websocket::graphql_ws),
                        )
                        .route(
                            web::route()
                                .guard(guard::Any(guard::Post()).or(guard::Get()))
                                .to(http::graphql),
                        ),
                );
            match environment {
                Environment::Development => app
                    .route("/graphiql", web::get().to(graphiql::page))
                    .route("/graphiql/assets/{name}", web::get().to(graphiql::asset)),
                Environment::Production => app,
            }
        })
        // Signals are ours (see `run_until_stopped`); actix's own bound on draining is a
        // backstop behind ours, which has millisecond precision.
        .disable_signals()
        .shutdown_timeout(config.shutdown.timeout.as_secs() + 1)
        .listen(listener)?
        .run();
        Ok(Application {
            address,
            metrics_address,
            server,
            draining,
            tasks,
            shutdown: config.shutdown,
            clock,
            cache: response_cache,
        })
    }

    /// This node's response cache, unless `CHRONICLE_CACHE_MB=0` turned it off.
    pub fn response_cache(&self) -> Option<&ResponseCache> {
        self.cache.as_ref()
    }

    /// The clock this node decides time-bound rules by (tests move it on).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address of the separate `/metrics` listener (`CHRONICLE_METRICS_PORT`), if any.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Serves until the process gets SIGTERM or SIGINT, then shuts down gracefully (see
    /// [`crate::shutdown`]) and stops the background tasks.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut signals = Signals::listen()?;
        let Application {
            mut server,
            draining,
            tasks,
            shutdown,
            ..
        } = self;
        let served = serve(&mut server, &mut signals, &draining, shutdown).await;
        draining.begin();
        tasks.stop(shutdown.timeout).await;
        Ok(served?)
    }
}

/// Serves until a signal, then drains: not ready at once, still accepting connections for the
/// grace (which a second signal ends), then no longer listening while in-flight requests
/// finish, for at most the timeout.
async fn serve(
    server: &mut Server,
    signals: &mut Signals,
    draining: &Draining,
    shutdown: ShutdownSettings,
) -> std::io::Result<()> {
    let handle = server.handle();
    tokio::select! {
        served = &mut *server => return served,
        signal = signals.next() => tracing::info!(
            signal,
            grace_ms = shutdown.grace.as_millis() as u64,
            timeout_ms = shutdown.timeout.as_millis() as u64,
            "shutting down: not ready from now on"
        ),
    }
    draining.begin();
    let signalled = Instant::now();
    tokio::select! {
        served = &mut *server => return served,
        _ = tokio::time::sleep(shutdown.grace) => {}
        signal = signals.next() => tracing::info!(signal, "second signal: the grace ends now"),
    }
    tracing::info!("no longer accepting connections; finishing in-flight requests");
    let stop = handle.stop(true);
    let drained = async { tokio::join!(stop, &mut *server).1 };
    let served = match tokio::time::timeout(shutdown.timeout, drained).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(
                timeout_ms = shutdown.timeout.as_millis() as u64,
                "in-flight requests cut short: the shutdown timeout passed"
            );
            Ok(())
        }
    };
    tracing::info!(
        elapsed_ms = signalled.elapsed().as_millis() as u64,
        "stopped serving"
    );
    served
}

/// The machine's name, for naming this node.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// An upgrade to WebSocket (subscriptions) rather than a GraphQL-over-HTTP request.
fn asks_for_websocket(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
