//! The `chronicle` command line.

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::database::Database;
use crate::startup::Application;

/// Chronicle: a GraphQL backend whose every change is an audited event.
#[derive(Debug, Parser)]
#[command(name = "chronicle", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database and serve the API (runs a private PostgreSQL when DATABASE_URL is
    /// not set).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

impl Cli {
    /// Runs the chosen command to completion.
    pub async fn run(self, config: Config) -> anyhow::Result<()> {
        tracing::info!(?config, "starting");
        let database = Database::open(&config).await?;
        database.migrate().await?;
        match self.command {
            Command::Migrate => {
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Serve => {
                let app = Application::build(&config, database.pool.clone()).await?;
                tracing::info!(address = %app.address(), private_database = database.is_private(), "serving");
                app.run_until_stopped().await?;
                tracing::info!("stopped");
                Ok(())
            }
        }
    }
}
