//! How Chronicle is served: the `chronicle` binary's commands, configuration, the database
//! connection (or a private PostgreSQL cluster), the actix-web application with its health
//! endpoints, and the async-graphql schema at `/graphql`. Business rules live in `domain`,
//! storage in `eventlog`; this crate wires them to HTTP.

pub mod auth;
pub mod authz;
pub mod background;
pub mod bulk;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod database;
pub mod downloads;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod operator;
pub mod persisted;
pub mod pruning;
pub mod read_side;
pub mod remembered;
pub mod request;
pub mod secrets;
pub mod shutdown;
pub mod startup;
pub mod websocket;
pub mod writes;
