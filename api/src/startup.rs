//! Building the HTTP application: routes, shared state, and the listening socket. Tests start
//! the real server through [`Application::build`] on port 0.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, guard, web};
use async_graphql::http::GraphiQLSource;
use async_graphql_actix_web::GraphQL;
use eventlog::EventLog;
use sqlx::PgPool;

use crate::config::{Config, Environment};
use crate::graphql::build_schema;
use crate::health;

/// A bound, not yet running, HTTP server.
pub struct Application {
    address: SocketAddr,
    server: Server,
}

impl Application {
    /// Binds `config.host:config.port` and prepares the server on `pool` (already migrated).
    pub fn build(config: &Config, pool: PgPool) -> anyhow::Result<Application> {
        let listener = TcpListener::bind((config.host, config.port)).map_err(|err| {
            anyhow::anyhow!("cannot listen on {}:{}: {err}", config.host, config.port)
        })?;
        let address = listener.local_addr()?;
        let log = EventLog::with_upcaster(pool, domain::upcast::upcast);
        let schema = build_schema(log.clone(), config.environment);
        let environment = config.environment;
        let server = HttpServer::new(move || {
            let app = App::new()
                .app_data(web::Data::new(log.clone()))
                .service(health::healthz)
                .service(health::readyz)
                .service(
                    web::resource("/graphql")
                        .guard(guard::Any(guard::Post()).or(guard::Get()))
                        .to(GraphQL::new(schema.clone())),
                );
            match environment {
                Environment::Development => app.route("/graphiql", web::get().to(graphiql)),
                Environment::Production => app,
            }
        })
        .listen(listener)?
        .run();
        Ok(Application { address, server })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the process is asked to stop (SIGINT/SIGTERM), then drains in-flight
    /// requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(GraphiQLSource::build().endpoint("/graphql").finish())
}
