//! The `chronicle` command line.

use clap::{Parser, Subcommand};

use eventlog::EventLog;

use crate::config::Config;
use crate::database::Database;
use crate::operator;
use crate::startup::Application;
use crate::writes::Writes;

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
    /// Audit trail checks.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Global staff roles (SUPPORT, ANALYST), granted only by operators.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// The event log, for analysts and operators.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Write events in log order (all data, unpseudonymised: an operator's tool), with a
    /// progress line on stderr; resume with the last position it prints.
    Export {
        /// Start after this log position.
        #[arg(long)]
        after: Option<eventlog::Position>,
        /// ndjson or csv.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: operator::ExportFormat,
        /// Only this workspace's events (its UUID).
        #[arg(long)]
        workspace: Option<uuid::Uuid>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the events' hash chains and report the first broken link (exit status 1).
    Verify {
        /// Only the streams of this workspace (its UUID).
        #[arg(long)]
        workspace: Option<uuid::Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Give a user a staff role.
    Grant {
        email: String,
        role: domain::StaffRole,
    },
    /// Take a staff role away.
    Revoke {
        email: String,
        role: domain::StaffRole,
    },
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
            Command::Audit(AuditCommand::Verify { workspace }) => {
                let log = EventLog::new(database.pool.clone());
                let report = log.verify(workspace).await?;
                println!("{}", operator::describe(&report));
                if report.first_broken.is_some() {
                    std::process::exit(1);
                }
                Ok(())
            }
            Command::Staff(command) => {
                let (email, role, grant) = match command {
                    StaffCommand::Grant { email, role } => (email, role, true),
                    StaffCommand::Revoke { email, role } => (email, role, false),
                };
                let writes = Writes::new(EventLog::new(database.pool.clone()));
                let changed = operator::set_staff_role(&writes, &email, role, grant).await?;
                let verb = if grant { "granted to" } else { "revoked from" };
                match changed {
                    true => println!("{role} {verb} {email}"),
                    false => println!(
                        "nothing to do: {email} already {} {role}",
                        if grant { "has" } else { "lacks" }
                    ),
                }
                Ok(())
            }
            Command::Events(EventsCommand::Export {
                after,
                format,
                workspace,
                out,
            }) => {
                let log = EventLog::new(database.pool.clone());
                let mut sink: Box<dyn std::io::Write> = match out {
                    Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                    None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                };
                let started = std::time::Instant::now();
                let progress = |done: u64, total: u64| {
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    let eta = (total - done) as f64 / rate.max(1.0);
                    eprint!("\r{done}/{total} events, {rate:.0}/s, ETA {eta:.0} s   ");
                };
                let (written, last) =
                    operator::export_events(&log, &mut sink, format, after, workspace, progress)
                        .await?;
                let resume =
                    last.map_or_else(|| "(nothing written)".to_string(), |p| p.to_string());
                eprintln!("\nexported {written} events; resume with --after {resume}");
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
