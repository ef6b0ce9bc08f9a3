use clap::Parser;
use tracing_subscriber::EnvFilter;

use api::cli::Cli;
use api::config::{Config, Environment};

/// mimalloc rather than glibc's malloc: under load the HTTP workers spent about a fifth of
/// their time in glibc's allocator (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`), which
/// serves GraphQL's many small short-lived allocations poorly (BENCHMARKS.md, issue 12).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout is for commands' output (e.g. `audit verify`).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.environment {
        Environment::Production => logs.json().init(),
        Environment::Development => logs.init(),
    }
    cli.run(config).await
}
