//! The `chronicle` command line.

use clap::{Parser, Subcommand};

use eventlog::EventLog;

use crate::background;
use crate::config::Config;
use crate::database::Database;
use crate::operator;
use crate::startup::{Application, host_name};
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
    /// Run the job dispatcher and the background job workers only, without serving the API
    /// (to scale them apart from `serve`; migrates first).
    Worker,
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
    /// Background jobs, for operators: their state, and running a failed one again.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The read side: where each asynchronous projection stands, and rebuilding them.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Each queue's jobs by state (pending, running, retrying, dead, done), then the dead
    /// jobs with their ids, causing events and last errors.
    Status,
    /// Run a failed (retrying or dead) job again now, with a fresh allowance of runs.
    Retry {
        /// The job's id, as `jobs status` and the logs show it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Every projection's position and how many events it is behind the log.
    Status,
    /// Rebuild a projection from position 0 beside the live copy, then switch to it; readers
    /// keep the live copy until the switch. `search` rebuilds this machine's index (in
    /// CHRONICLE_SEARCH_DIR; run it on each node), `activity` the shared activity table,
    /// `inline` the read models written with each append (writers wait only for the final
    /// switch; log readers never wait).
    Rebuild { name: operator::ProjectionName },
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
                let progress = operator::ProgressLine::start();
                let (written, last) = operator::export_events(
                    &log,
                    &mut sink,
                    format,
                    after,
                    workspace,
                    |done, total| progress.show(done, total),
                )
                .await?;
                let resume =
                    last.map_or_else(|| "(nothing written)".to_string(), |p| p.to_string());
                eprintln!("\nexported {written} events; resume with --after {resume}");
                Ok(())
            }
            Command::Jobs(JobsCommand::Status) => {
                print!("{}", operator::jobs_status(&database.pool).await?);
                Ok(())
            }
            Command::Jobs(JobsCommand::Retry { id }) => {
                let writes = Writes::new(EventLog::new(database.pool.clone()));
                operator::retry_job(&writes, &id, config.job_retry).await?;
                println!("job {id} will run again");
                Ok(())
            }
            Command::Projections(ProjectionsCommand::Status) => {
                let log = EventLog::new(database.pool.clone());
                print!("{}", operator::projection_status(&log).await?);
                Ok(())
            }
            Command::Projections(ProjectionsCommand::Rebuild { name }) => {
                let log = EventLog::new(database.pool.clone());
                let applied = operator::rebuild(&log, name, &config.search_dir).await?;
                eprintln!("\nrebuilt {name}: {applied} events replayed");
                Ok(())
            }
            Command::Worker => {
                let log = EventLog::new(database.pool.clone());
                let node = config
                    .node_name
                    .clone()
                    .unwrap_or_else(|| format!("{}-worker-{}", host_name(), std::process::id()));
                background::work_until_stopped(&config, &log, &node).await?;
                database.close().await;
                tracing::info!("stopped");
                Ok(())
            }
            Command::Serve => {
                let app = Application::build(&config, database.pool.clone()).await?;
                tracing::info!(address = %app.address(), private_database = database.is_private(), "serving");
                app.run_until_stopped().await?;
                database.close().await;
                tracing::info!("stopped");
                Ok(())
            }
        }
    }
}
