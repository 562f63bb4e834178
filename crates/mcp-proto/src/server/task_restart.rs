//! Restart on another replica: the tasks of restartable tools (`ToolDef::restartable`) whose
//! replica died are taken over by one surviving replica and run again from their arguments.

use std::sync::Arc;

use super::McpServer;
use crate::cancel::CancellationSignal;
use crate::jsonrpc::ErrorObject;
use crate::service::{AuthSubject, Outbound};
use crate::task::{TaskEvent, TaskHost, TaskRecord, TaskRestart, now_ms};
use crate::task_run::{TaskInput, TaskLink, run_task};
use crate::tool::{RegisteredTool, ToolContext};

/// Most orphaned tasks one replica looks at per [`McpServer::resume_orphaned_tasks`].
const ORPHANS_PER_PASS: usize = 16;

impl McpServer {
    /// Takes over the tasks of restartable tools whose replica died (see
    /// `ToolDef::restartable`) and runs them again here, from their arguments; fails those
    /// whose tool this server cannot restart. A task is taken over by one replica only: the
    /// take-over changes the task's owner from the dead replica to this one, a change the
    /// store applies atomically. Returns how many were restarted here. Transports call this
    /// periodically (the keep-alive tick); `host` must name this replica.
    pub async fn resume_orphaned_tasks(&self, host: &TaskHost) -> usize {
        let Some(me) = host.replica.clone() else {
            return 0;
        };
        let orphans = match host.store.orphans(ORPHANS_PER_PASS).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for tasks of dead replicas");
                return 0;
            }
        };
        let mut restarted = 0;
        for orphan in orphans {
            if self.take_over(host, orphan, &me).await {
                restarted += 1;
            }
        }
        restarted
    }

    /// Claims one orphaned task for replica `me` and runs it again; `false` when another
    /// replica claimed it first or it cannot run here (then it is failed).
    async fn take_over(&self, host: &TaskHost, orphan: TaskRecord, me: &str) -> bool {
        let id = orphan.task_id.clone();
        let (Some(spec), Some(from)) = (orphan.restart.clone(), orphan.owner.clone()) else {
            return false;
        };
        let tool = self
            .inner
            .index
            .get(&spec.tool)
            .map(|&i| &self.inner.tools[i])
            .filter(|t| t.restartable);
        let Some(tool) = tool else {
            let why = ErrorObject::internal(format!(
                "the replica running this task ({from}) stopped, and tool '{}' cannot be restarted on {me}",
                spec.tool
            ));
            let fail = |r: &mut TaskRecord| {
                if r.owner.as_deref() != Some(from.as_str()) || r.status.is_terminal() {
                    return Ok(());
                }
                r.apply(TaskEvent::Fail(why.clone()), now_ms())
            };
            if let Err(e) = host.store.update(&id, &fail).await {
                tracing::debug!(task = %id, error = %e, "cannot fail an orphaned task");
            }
            return false;
        };
        let event = TaskEvent::Restart {
            from: from.clone(),
            to: me.to_owned(),
        };
        let claimed = host
            .store
            .update(&id, &|r: &mut TaskRecord| r.apply(event.clone(), now_ms()))
            .await;
        let record = match claimed {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(task = %id, error = %e, "task not taken over");
                return false;
            }
        };
        tracing::info!(task = %id, tool = %spec.tool, dead = %from, "task restarted on this replica");
        self.rerun(host, record, tool, spec);
        true
    }

    /// Runs a taken-over task again, in the background, as its first run did but with no
    /// request behind it: its questions go to the task (`tasks/update`).
    fn rerun(&self, host: &TaskHost, record: TaskRecord, tool: &RegisteredTool, spec: TaskRestart) {
        let signal = CancellationSignal::new();
        let link = Arc::new(TaskLink::default());
        link.request_start();
        // Keys of this run's questions differ from every earlier run's.
        let run = spec.restarts_left;
        link.started(
            TaskInput::new(host.clone(), record.task_id.clone(), record.subject.clone())
                .with_key_prefix(format!("restart{run}-")),
        );
        let session = Arc::new(crate::service::Session::stateless(spec.protocol_version));
        let mut extensions = http::Extensions::new();
        extensions.insert(host.clone());
        if let Some(subject) = &record.subject {
            extensions.insert(AuthSubject::new(subject.as_str()));
        }
        let outbound: Arc<dyn Outbound> = Arc::new(crate::service::NoOutbound);
        let ctx = ToolContext {
            request_id: crate::RequestId::from(record.task_id.clone()),
            session: Arc::clone(&session),
            version: spec.protocol_version,
            progress_token: None,
            last_progress: None,
            outbound: Arc::clone(&outbound),
            cancellation: signal.clone(),
            extensions: Arc::new(extensions),
            meta: None,
            client_capabilities: Arc::new(spec.client_capabilities),
            input: crate::input::InputChannel::Stream { session, outbound },
            request_log_level: None,
            listeners: Arc::clone(&self.inner.listeners),
            task: Some(link),
        };
        let handler = Box::pin(tool.invoke(ctx, spec.arguments));
        host.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.task_id.clone(), signal.clone());
        host.runtime.spawn(Box::pin(run_task(
            host.clone(),
            record,
            handler,
            signal,
            spec.protocol_version,
            spec.tool,
        )));
    }
}
