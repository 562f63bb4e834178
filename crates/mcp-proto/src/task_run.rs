//! Running a tool call as a task: the link between a handler and its task record, the
//! handler's questions as the task's `inputRequests`, and the background run that records
//! how the call ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use serde_json::{Value, json};

use crate::cancel::CancellationSignal;
use crate::input::{InputError, InputRequest};
use crate::jsonrpc::{ErrorObject, code};
use crate::service::BoxFuture;
use crate::task::{TaskError, TaskEvent, TaskHost, TaskRecord, now_ms};
use crate::tool::{CallFailure, HandlerFuture, ToolOutput};
use crate::types::{CallToolResult, ClientCapabilities};
use crate::version::ProtocolVersion;

/// What a task call's handler holds: the signal that starts the task, and once started the
/// way its questions reach the task record.
#[derive(Debug, Default)]
pub(crate) struct TaskLink {
    start: CancellationSignal,
    input: OnceLock<TaskInput>,
}

impl TaskLink {
    /// The task's input side, once the task exists.
    pub(crate) fn input(&self) -> Option<&TaskInput> {
        self.input.get()
    }

    /// Whether the call asked to become a task.
    pub(crate) fn start_requested(&self) -> &CancellationSignal {
        &self.start
    }

    /// Asks the server to make this call a task when it next looks.
    pub(crate) fn request_start(&self) {
        self.start.cancel();
    }

    /// Asks the server to make this call a task; returns once the handler runs as one.
    pub(crate) async fn start(&self) {
        if self.input.get().is_some() || self.start.is_cancelled() {
            return;
        }
        self.request_start();
        // Give the server the turn: it sees the request between two polls, answers with the
        // task, and goes on polling this future in the background.
        YieldOnce(false).await;
    }

    /// Records the task this call runs as.
    pub(crate) fn started(&self, input: TaskInput) {
        let _ = self.input.set(input);
    }
}

/// Pending once, then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A task's questions: each becomes an `inputRequests` entry, answered by `tasks/update`.
#[derive(Debug)]
pub(crate) struct TaskInput {
    host: TaskHost,
    task_id: String,
    subject: Option<String>,
    asked: AtomicUsize,
    /// Put before every key: empty on the first run, the run's own on a restart, so that no
    /// key of an earlier run is used again (keys are unique over a task's life).
    key_prefix: String,
}

impl TaskInput {
    pub(crate) fn new(host: TaskHost, task_id: String, subject: Option<String>) -> Self {
        Self {
            host,
            task_id,
            subject,
            asked: AtomicUsize::new(0),
            key_prefix: String::new(),
        }
    }

    /// Prefixes every key of this run's questions with `prefix`.
    pub(crate) fn with_key_prefix(mut self, prefix: String) -> Self {
        self.key_prefix = prefix;
        self
    }

    pub(crate) fn task_id(&self) -> &str {
        &self.task_id
    }

    /// Parks the task in `input_required` with the question under its key (or
    /// `input_<k>`), and waits for the answer `tasks/update` brings.
    pub(crate) async fn ask(
        &self,
        key: Option<String>,
        request: InputRequest,
        caps: &ClientCapabilities,
    ) -> Result<Value, InputError> {
        if let Some(cap) = request.missing_capability(caps) {
            return Err(InputError::Unsupported(cap));
        }
        let key =
            key.unwrap_or_else(|| format!("input_{}", self.asked.fetch_add(1, Ordering::SeqCst)));
        let key = format!("{}{key}", self.key_prefix);
        let entry = json!({"method": request.method(), "params": request.params()});
        let max = self.host.limits.max_input_requests;
        let store = &self.host.store;
        store
            .update(&self.task_id, &|r: &mut TaskRecord| {
                if r.input_requests.len() >= max && !r.input_requests.contains_key(&key) {
                    return Err(TaskError::TooManyInputRequests { limit: max });
                }
                r.apply(
                    TaskEvent::AskInput {
                        key: key.clone(),
                        request: entry.clone(),
                    },
                    now_ms(),
                )
            })
            .await
            .map_err(|e| InputError::Unreachable(Box::new(e)))?;
        let answer = self.wait_for_answer(&key).await?;
        request
            .check_answer(&answer)
            .map_err(|detail| InputError::Malformed(serde::de::Error::custom(detail)))?;
        Ok(answer)
    }

    async fn wait_for_answer(&self, key: &str) -> Result<Value, InputError> {
        let store = &self.host.store;
        let unreachable = |e: TaskError| InputError::Unreachable(Box::new(e));
        loop {
            let changed = store.watch(&self.task_id);
            let record = store
                .get(&self.task_id, self.subject.as_deref())
                .await
                .map_err(unreachable)?
                .ok_or_else(|| unreachable(TaskError::NotFound(self.task_id.clone())))?;
            if let Some(answer) = record.input_responses.get(key).cloned() {
                store
                    .update(&self.task_id, &|r: &mut TaskRecord| {
                        r.take_answer(key);
                        Ok(())
                    })
                    .await
                    .map_err(unreachable)?;
                return Ok(answer);
            }
            if record.status.is_terminal() {
                return Err(InputError::Unreachable(
                    format!("task {} is {}", self.task_id, record.status.as_str()).into(),
                ));
            }
            changed.await;
        }
    }
}

/// How a task's run ended.
enum Ended<T> {
    Finished(T),
    Cancelled,
    TimedOut,
}

/// Runs a task's handler to its end and records how it ended: until it finishes, the
/// client cancels it (here or, through the store, on another replica) or it runs out of
/// time.
pub(crate) async fn run_task(
    host: TaskHost,
    record: TaskRecord,
    call: HandlerFuture,
    cancellation: CancellationSignal,
    version: ProtocolVersion,
    tool: String,
) {
    let id = record.task_id.clone();
    let deadline = host.runtime.sleep(host.limits.max_duration);
    let ended_elsewhere = Box::pin(ended_in_store(host.clone(), record.clone()));
    let ended = race(call, &cancellation, deadline, ended_elsewhere).await;
    let event = match ended {
        Ended::Finished(outcome) => finished(outcome, version, &tool, &host),
        Ended::Cancelled => TaskEvent::Cancel,
        Ended::TimedOut => TaskEvent::Fail(ErrorObject::new(
            code::REQUEST_TIMEOUT,
            format!(
                "the task ran longer than its limit of {} s",
                host.limits.max_duration.as_secs()
            ),
        )),
    };
    cancellation.cancel();
    match host
        .store
        .update(&id, &|r: &mut TaskRecord| r.apply(event.clone(), now_ms()))
        .await
    {
        Ok(r) => tracing::debug!(task = %id, status = r.status.as_str(), "task ended"),
        Err(e) => tracing::debug!(task = %id, error = %e, "task end not recorded"),
    }
    host.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// The event that records a finished handler.
fn finished(
    outcome: Result<ToolOutput, CallFailure>,
    version: ProtocolVersion,
    tool: &str,
    host: &TaskHost,
) -> TaskEvent {
    let result = match outcome {
        Ok(output) => output.into_call_result().into_version(version),
        Err(CallFailure::Tool(e)) => CallToolResult::error_text(e.message()).for_version(version),
        Err(CallFailure::InvalidArguments(detail)) => {
            CallToolResult::error_text(format!("Invalid arguments for tool '{tool}': {detail}"))
                .for_version(version)
        }
        Err(CallFailure::Panicked) => {
            return TaskEvent::Fail(ErrorObject::internal(format!(
                "tool '{tool}' failed unexpectedly"
            )));
        }
    };
    let value = serde_json::to_value(result).unwrap_or_default();
    let bytes = value.to_string().len();
    let limit = host.limits.max_result_bytes;
    if bytes > limit {
        return TaskEvent::Fail(TaskError::ResultTooLarge { bytes, limit }.to_error_object());
    }
    TaskEvent::Complete(value)
}

/// Resolves when the stored task ended without this run (cancelled through another replica).
async fn ended_in_store(host: TaskHost, record: TaskRecord) {
    loop {
        let changed = host.store.watch(&record.task_id);
        match host
            .store
            .get(&record.task_id, record.subject.as_deref())
            .await
        {
            Ok(Some(r)) if !r.status.is_terminal() => {}
            Ok(_) => return,
            Err(e) => tracing::debug!(task = %record.task_id, error = %e, "cannot read task"),
        }
        changed.await;
    }
}

/// Polls the call until it finishes, the signal fires, the deadline passes or the task
/// ended in the store.
async fn race<T>(
    mut call: BoxFuture<'static, T>,
    cancellation: &CancellationSignal,
    mut deadline: BoxFuture<'static, ()>,
    mut ended_elsewhere: BoxFuture<'static, ()>,
) -> Ended<T> {
    let mut cancelled = std::pin::pin!(cancellation.cancelled());
    std::future::poll_fn(move |cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ended::Cancelled);
        }
        if let Poll::Ready(out) = call.as_mut().poll(cx) {
            return Poll::Ready(Ended::Finished(out));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ended::TimedOut);
        }
        if ended_elsewhere.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ended::Cancelled);
        }
        Poll::Pending
    })
    .await
}
