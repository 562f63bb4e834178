//! Tasks followed on a `subscriptions/listen` stream (2026-07-28, `notifications.taskIds`) and
//! on a 2025-11-25 session's stream: each change of a followed task goes out as a notification.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use serde_json::json;

use super::tasks::extension_required;
use super::{Call, Era, McpServer};
use crate::cancel::CancellationSignal;
use crate::jsonrpc::{ErrorObject, Message};
use crate::listen::{MAX_LISTEN_TASKS, META_SUBSCRIPTION_ID, TASKS_NOTIFICATION};
use crate::service::{AuthSubject, BoxFuture, Outbound, SendError, SessionStream};
use crate::task::{self, TaskHost, TaskRecord, TaskStatus};

impl McpServer {
    /// The tasks a `subscriptions/listen` stream asked to follow (`notifications.taskIds`)
    /// and may: those of the caller's subject that exist. Asking without the extension is
    /// `-32021`; on a transport that runs no tasks, nothing is followed.
    pub(super) async fn tasks_to_follow(
        &self,
        call: &Call<'_>,
        asked: Option<Vec<String>>,
    ) -> Result<Option<TaskFollow>, ErrorObject> {
        let Some(mut ids) = asked else {
            return Ok(None);
        };
        let negotiated = match &call.era {
            Era::Stateless(meta) => meta.client_capabilities.has_extension(task::EXTENSION),
            Era::Stateful => false,
        };
        if !negotiated {
            return Err(extension_required("notifications.taskIds"));
        }
        if ids.len() > MAX_LISTEN_TASKS {
            return Err(ErrorObject::invalid_params(format!(
                "notifications.taskIds lists {} tasks; a stream follows at most {MAX_LISTEN_TASKS}",
                ids.len()
            )));
        }
        let Some(host) = call.extensions.get::<TaskHost>() else {
            return Ok(None);
        };
        let subject = AuthSubject::of(&call.extensions).map(|s| s.to_string());
        ids.sort();
        ids.dedup();
        let mut known = Vec::with_capacity(ids.len());
        for id in ids {
            let found = host.store.get(&id, subject.as_deref()).await;
            if found.map_err(|e| e.to_error_object())?.is_some() {
                known.push(id);
            }
        }
        Ok(Some(TaskFollow {
            host: host.clone(),
            ids: known,
            subject,
        }))
    }
}

/// The tasks one `subscriptions/listen` stream follows.
pub(super) struct TaskFollow {
    host: TaskHost,
    ids: Vec<String>,
    subject: Option<String>,
}

impl TaskFollow {
    /// The tasks followed.
    pub(super) fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Sends each task's state now and at each change (`notifications/tasks`, tagged with
    /// the subscription), until every task ended (`Ok`) or the stream is gone (`Err`).
    pub(super) async fn run(
        self,
        subscription_id: String,
        outbound: Arc<dyn Outbound>,
    ) -> Result<(), SendError> {
        let follows: Vec<BoxFuture<'static, Result<(), SendError>>> = self
            .ids
            .into_iter()
            .map(|id| {
                let follow = FollowOne {
                    host: self.host.clone(),
                    id,
                    subject: self.subject.clone(),
                    shape: NoteShape::Listen(subscription_id.clone()),
                    outbound: Arc::clone(&outbound),
                };
                Box::pin(follow.run(None)) as BoxFuture<'static, _>
            })
            .collect();
        all_ok(follows).await
    }
}

/// Sends the changes of `record` after its present state to a 2025-11-25 session's stream
/// (`notifications/tasks/status`), in the background until the task ends.
pub(super) fn notify_session(host: &TaskHost, record: &TaskRecord, stream: SessionStream) {
    let follow = FollowOne {
        host: host.clone(),
        id: record.task_id.clone(),
        subject: record.subject.clone(),
        shape: NoteShape::SessionStatus,
        outbound: stream.0,
    };
    let first = FollowOne::seen(record);
    host.runtime.spawn(Box::pin(async move {
        let _ = follow.run(Some(first)).await;
    }));
}

/// The notification a followed task's state goes out as.
enum NoteShape {
    /// 2026-07-28 `notifications/tasks` on the `subscriptions/listen` stream with this id.
    Listen(String),
    /// 2025-11-25 `notifications/tasks/status` on the task's session stream.
    SessionStatus,
}

/// What tells two states of a task apart for its followers.
type Seen = (TaskStatus, u64, usize);

/// One task followed on one stream.
struct FollowOne {
    host: TaskHost,
    id: String,
    subject: Option<String>,
    shape: NoteShape,
    outbound: Arc<dyn Outbound>,
}

impl FollowOne {
    fn seen(record: &TaskRecord) -> Seen {
        (
            record.status,
            record.last_updated_at_ms,
            record.input_requests.len(),
        )
    }

    fn note(&self, record: &TaskRecord) -> Message {
        match &self.shape {
            NoteShape::Listen(subscription_id) => {
                let mut params = record.detailed();
                params["_meta"] = json!({ META_SUBSCRIPTION_ID: subscription_id });
                Message::notification(TASKS_NOTIFICATION, Some(params))
            }
            NoteShape::SessionStatus => {
                Message::notification(task::TASK_STATUS_NOTIFICATION, Some(record.experimental()))
            }
        }
    }

    /// Sends the task's state whenever it differs from the last one sent (`sent` at first),
    /// until it ends or is gone (expired).
    async fn run(self, mut sent: Option<Seen>) -> Result<(), SendError> {
        let store = &self.host.store;
        loop {
            let changed = store.watch(&self.id);
            let record = match store.get(&self.id, self.subject.as_deref()).await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::debug!(task = %self.id, error = %e, "cannot read a followed task");
                    changed.await;
                    continue;
                }
            };
            let seen = Self::seen(&record);
            if sent != Some(seen) {
                sent = Some(seen);
                self.outbound.send(self.note(&record)).await?;
            }
            if record.status.is_terminal() {
                return Ok(());
            }
            changed.await;
        }
    }
}

/// Runs every future to its end; the first error ends them all.
async fn all_ok(
    mut futures: Vec<BoxFuture<'static, Result<(), SendError>>>,
) -> Result<(), SendError> {
    std::future::poll_fn(move |cx| {
        let mut i = 0;
        while i < futures.len() {
            match futures[i].as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    drop(futures.swap_remove(i));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => i += 1,
            }
        }
        if futures.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Waits for `cancellation`, running `tasks` meanwhile; returns early when they fail (the
/// stream is gone).
pub(super) async fn until_cancelled(
    cancellation: &CancellationSignal,
    tasks: Option<impl Future<Output = Result<(), SendError>>>,
) {
    let mut cancelled = std::pin::pin!(cancellation.cancelled());
    let Some(tasks) = tasks else {
        return cancelled.await;
    };
    let mut tasks = std::pin::pin!(tasks);
    let mut tasks_done = false;
    std::future::poll_fn(move |cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !tasks_done && let Poll::Ready(outcome) = tasks.as_mut().poll(cx) {
            if outcome.is_err() {
                return Poll::Ready(());
            }
            tasks_done = true;
        }
        Poll::Pending
    })
    .await
}
