//! Graceful shutdown of a node (SPEC §9), on SIGTERM or SIGINT:
//!
//! 1. At once, the node is *draining*: `/readyz` answers 503 (reason: shutting down), every
//!    subscription socket is closed with 1012 (service restart: reconnect, to another node,
//!    and resume from the last position received) between two messages, and a new WebSocket
//!    upgrade is refused with 503 (a load balancer passes it to another node).
//! 2. For the grace ([`ShutdownSettings::grace`]) the node still accepts connections and serves
//!    requests, so that a load balancer's health checks see it not ready and stop sending.
//! 3. Then it stops listening (new connections are refused) and lets in-flight requests finish,
//!    for at most [`ShutdownSettings::timeout`]; idle keep-alive connections are closed.
//! 4. The background work stops: projections between two batches, job workers after their
//!    running job (or, past the timeout, with it put back to pending).
//!
//! A second signal during the grace ends it at once. The caller then closes the database (and
//! the private cluster, when the node runs one) and the process exits 0.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The close code telling a WebSocket client that the server is restarting and that it should
/// reconnect (RFC 6455 §7.4, IANA registry: 1012 "Service Restart").
pub const SERVICE_RESTART: u16 = 1012;

/// How a node shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// `CHRONICLE_SHUTDOWN_GRACE_MS`: how long a node still accepts connections, while not
    /// ready, after the signal (default 5,000 in production, 0 in development).
    pub grace: Duration,
    /// `CHRONICLE_SHUTDOWN_TIMEOUT_MS`: the longest in-flight requests and running jobs may
    /// take to finish once the node stops listening (default 30,000); what is still running
    /// then is cut.
    pub timeout: Duration,
}

impl ShutdownSettings {
    /// The defaults for `environment`.
    pub fn default_for(environment: crate::config::Environment) -> ShutdownSettings {
        ShutdownSettings {
            grace: match environment {
                crate::config::Environment::Production => Duration::from_secs(5),
                crate::config::Environment::Development => Duration::ZERO,
            },
            timeout: Duration::from_secs(30),
        }
    }
}

/// Whether this node is shutting down; cloned into whatever must react to it.
#[derive(Debug, Clone, Default)]
pub struct Draining {
    token: CancellationToken,
}

impl Draining {
    /// Starts draining (idempotent).
    pub fn begin(&self) {
        self.token.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once draining has begun.
    pub async fn begun(&self) {
        self.token.cancelled().await
    }

    /// A token cancelled when draining begins (for tasks that stop with it, like job workers).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

/// The process's stop signals (SIGTERM, SIGINT), listened to from the moment this is created.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn listen() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and names it.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Room beyond the shutdown timeout for stopped workers to put back the jobs they held.
const HAND_BACK_MARGIN: Duration = Duration::from_secs(5);

/// The tasks a node runs beside serving (projections, the job dispatcher and workers,
/// pruning), and the token that tells them to stop.
#[derive(Debug, Default)]
pub struct Tasks {
    stop: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Spawns the task `start` makes from the stop token; it must return soon after the token
    /// is cancelled.
    pub fn spawn<F>(&mut self, start: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handles.push(tokio::spawn(start(self.stop.clone())));
    }

    /// Tells every task to stop and waits for them, up to `timeout` (and a margin for workers
    /// to put back their jobs); the ones still running then are aborted.
    pub async fn stop(self, timeout: Duration) {
        self.stop.cancel();
        let mut handles = self.handles;
        let all = futures::future::join_all(handles.iter_mut());
        if tokio::time::timeout(timeout + HAND_BACK_MARGIN, all)
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time: aborted");
            for handle in &handles {
                handle.abort();
            }
        }
    }
}
