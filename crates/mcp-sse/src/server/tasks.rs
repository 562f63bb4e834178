//! Tool calls run as tasks (2026-07-28 `io.modelcontextprotocol/tasks`) on Tokio: each task
//! runs as a Tokio task until it ends or the server shuts down, and its record lives in the
//! server's task store.

use std::sync::Arc;
use std::time::Duration;

use mcp_proto::BoxFuture;
use mcp_proto::task::{TaskHost, TaskRuntime, TaskStore};
use tokio_util::sync::CancellationToken;

use super::config::ServerConfig;

/// Runs tasks on the current Tokio runtime; they stop when the server shuts down.
#[derive(Debug)]
struct TokioTasks {
    shutdown: CancellationToken,
}

impl TaskRuntime for TokioTasks {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let shutdown = self.shutdown.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("tasks need a Tokio runtime; this one is dropped");
            return;
        };
        runtime.spawn(async move {
            tokio::select! {
                () = task => {}
                () = shutdown.cancelled() => tracing::debug!("task stopped: the server is shutting down"),
            }
        });
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The task host of a server: `store`, Tokio, and the config's limits.
pub(crate) fn host(
    store: Arc<dyn TaskStore>,
    config: &ServerConfig,
    shutdown: CancellationToken,
) -> TaskHost {
    TaskHost::new(store, Arc::new(TokioTasks { shutdown }), config.tasks)
}
