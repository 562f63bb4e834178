//! Keeps a child running: starts it, restarts it with backoff when it exits, stops it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_proto::ErrorObject;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::command::ChildCommand;
use crate::streams::Streams;
use crate::upstream::{Upstream, UpstreamLimits};

/// First wait before a restart; it doubles with each failure in a row.
pub const RESTART_BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait before a restart.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before exiting restarts after the shortest wait again.
const STABLE_RUN: Duration = Duration::from_secs(30);

/// Where the child is.
#[derive(Debug, Clone)]
pub(crate) enum ChildState {
    /// Being started (first time).
    Starting,
    /// Running and initialized.
    Running(Arc<Upstream>),
    /// Exited or failed to start; restarting after a wait.
    Down(Arc<str>),
    /// Stopped for good (gateway shutdown or session end).
    Stopped,
}

/// One child and the task that keeps it running.
#[derive(Debug)]
pub(crate) struct Supervisor {
    state: watch::Receiver<ChildState>,
    stop: CancellationToken,
    restarts: Arc<std::sync::atomic::AtomicU64>,
}

/// What a supervisor starts and how.
#[derive(Debug, Clone)]
pub(crate) struct ChildSpec {
    pub command: ChildCommand,
    pub init_params: Value,
    pub streams: Arc<Streams>,
    pub scope: Option<String>,
    pub limits: UpstreamLimits,
}

impl Supervisor {
    /// Starts the child in a background task that restarts it until [`Supervisor::stop`].
    pub(crate) fn spawn(spec: ChildSpec) -> Self {
        let (tx, rx) = watch::channel(ChildState::Starting);
        let stop = CancellationToken::new();
        let restarts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(keep_running(spec, tx, stop.clone(), Arc::clone(&restarts)));
        Self {
            state: rx,
            stop,
            restarts,
        }
    }

    /// The running child, waiting up to `wait` while it (re)starts; an error naming why it
    /// is down otherwise.
    pub(crate) async fn running(&self, wait: Duration) -> Result<Arc<Upstream>, ErrorObject> {
        let mut state = self.state.clone();
        let ready = state.wait_for(|s| matches!(s, ChildState::Running(_) | ChildState::Stopped));
        let last = match tokio::time::timeout(wait, ready).await {
            Ok(Ok(s)) => s.clone(),
            _ => self.state.borrow().clone(),
        };
        match last {
            ChildState::Running(upstream) => Ok(upstream),
            ChildState::Starting => Err(ErrorObject::internal(
                "the MCP server process is still starting",
            )),
            ChildState::Down(reason) => Err(ErrorObject::internal(format!(
                "the MCP server process is not running ({reason}); it is being restarted"
            ))),
            ChildState::Stopped => Err(ErrorObject::internal("the MCP server process was stopped")),
        }
    }

    /// The child, if it runs now.
    pub(crate) fn current(&self) -> Option<Arc<Upstream>> {
        match &*self.state.borrow() {
            ChildState::Running(upstream) => Some(Arc::clone(upstream)),
            _ => None,
        }
    }

    /// How many times the child was restarted.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the child for good (its stdin closes; it is killed after the grace period).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Stops the child and waits until it is gone.
    pub(crate) async fn stop_and_wait(&self) {
        self.stop();
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| matches!(s, ChildState::Stopped)).await;
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The wait before restart number `failures` (1 for the first).
pub(crate) fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    RESTART_BACKOFF_START
        .saturating_mul(factor)
        .min(RESTART_BACKOFF_MAX)
}

async fn keep_running(
    spec: ChildSpec,
    state: watch::Sender<ChildState>,
    stop: CancellationToken,
    restarts: Arc<std::sync::atomic::AtomicU64>,
) {
    let name = spec.command.name();
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let started = Instant::now();
        let reason = match run_once(&spec, &state, &stop).await {
            RunEnd::Stopped => break,
            RunEnd::Exited(reason) => reason,
        };
        failures = if started.elapsed() >= STABLE_RUN {
            1
        } else {
            failures.saturating_add(1)
        };
        let delay = backoff(failures);
        tracing::warn!(child = %name, %reason, restart_in = ?delay, "MCP server down; restarting");
        state.send_replace(ChildState::Down(Arc::from(reason)));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => break,
        }
        restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    state.send_replace(ChildState::Stopped);
}

enum RunEnd {
    Stopped,
    Exited(String),
}

/// Starts the child once and runs it until it exits or the supervisor stops.
async fn run_once(
    spec: &ChildSpec,
    state: &watch::Sender<ChildState>,
    stop: &CancellationToken,
) -> RunEnd {
    let start = Upstream::start(
        &spec.command,
        spec.init_params.clone(),
        Arc::clone(&spec.streams),
        spec.scope.clone(),
        spec.limits.clone(),
    );
    let upstream = tokio::select! {
        started = start => match started {
            Ok(upstream) => upstream,
            Err(error) => return RunEnd::Exited(mcp_proto::error_chain(&error)),
        },
        () = stop.cancelled() => return RunEnd::Stopped,
    };
    state.send_replace(ChildState::Running(Arc::clone(&upstream)));
    let stopping = tokio::select! {
        () = upstream.closed() => false,
        () = stop.cancelled() => true,
    };
    // New calls wait for the next child instead of reaching this one.
    let down = if stopping { "stopping" } else { "exited" };
    state.send_replace(ChildState::Down(Arc::from(down)));
    let status = upstream.stop().await;
    let reason = if stopping {
        format!("the gateway stopped it ({status})")
    } else {
        format!("the MCP server process exited ({status})")
    };
    upstream.fail_all(&reason);
    if stopping {
        RunEnd::Stopped
    } else {
        RunEnd::Exited(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(8), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }
}
