//! Long-running tool calls as tasks: the `io.modelcontextprotocol/tasks` extension
//! (SEP-2663) of 2026-07-28, with no I/O.
//!
//! A tool declares whether it may run as a task ([`TaskSupport`], listed as
//! `execution.taskSupport`). When a request's `clientCapabilities.extensions` names
//! [`EXTENSION`] and the tool supports tasks, `tools/call` answers at once with a flat
//! `CreateTaskResult` (`resultType: "task"`) and the handler runs on in the background; the
//! client reads its state with `tasks/get`, answers its questions with `tasks/update` and
//! stops it with `tasks/cancel`. Without the extension a task-optional tool runs as a plain
//! call, and a task-required tool is refused with `-32021`.
//!
//! This module holds what every replica shares: the [`TaskRecord`] and its state machine
//! ([`TaskRecord::apply`]: `working` ⇄ `input_required` → `completed` | `failed` |
//! `cancelled`), the wire shapes, the [`TaskLimits`], the [`TaskStore`] seam behind which
//! records live (in memory by default, [`MemoryTaskStore`]; Redis for replicas) and the
//! [`TaskRuntime`] through which a transport runs tasks in the background. Transports put a
//! [`TaskHost`] in each request's extensions; without one, no tool runs as a task.
//!
//! The same records serve the experimental tasks of 2025-11-25 on `initialize` sessions
//! ([`TaskRecord::experimental`], `tasks/result`, `tasks/list`); a `subscriptions/listen`
//! stream may follow tasks (`notifications.taskIds`, pushed as `notifications/tasks`); and a
//! restartable tool's task ([`TaskRestart`]) is taken over by another replica when its own
//! dies ([`TaskEvent::Restart`], [`TaskStore::orphans`]).
//!
//! ```
//! use mcp_proto::task::{TaskEvent, TaskRecord, TaskStatus};
//! use serde_json::json;
//!
//! let mut task = TaskRecord::new("t1", None, 1_000, 60_000, 500);
//! task.apply(TaskEvent::AskInput { key: "name".into(), request: json!({"method": "elicitation/create"}) }, 1_100)?;
//! assert_eq!(task.status, TaskStatus::InputRequired);
//! task.apply(TaskEvent::Answer([("name".to_owned(), json!({"action": "accept"}))].into_iter().collect()), 1_200)?;
//! assert_eq!(task.status, TaskStatus::Working);
//! task.apply(TaskEvent::Complete(json!({"content": []})), 1_300)?;
//! assert!(task.status.is_terminal());
//! assert_eq!(task.detailed()["result"], json!({"content": []}));
//! # Ok::<(), mcp_proto::task::TaskError>(())
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_channel::oneshot;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::jsonrpc::{ErrorObject, code};
use crate::service::BoxFuture;

/// The extension's identifier, under `capabilities.extensions`.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// `tasks/get`: a task's state, with its result or error once it ended.
pub const TASKS_GET: &str = "tasks/get";
/// `tasks/update`: answers to a task's input requests.
pub const TASKS_UPDATE: &str = "tasks/update";
/// `tasks/cancel`: stops a task.
pub const TASKS_CANCEL: &str = "tasks/cancel";
/// The `resultType` of a `CreateTaskResult`.
pub const RESULT_TASK: &str = "task";
/// 2025-11-25 (experimental tasks): the result of a task, once it ended (blocks until then).
pub const TASKS_RESULT: &str = "tasks/result";
/// 2025-11-25 (experimental tasks): the tasks of the caller's session.
pub const TASKS_LIST: &str = "tasks/list";
/// 2025-11-25 (experimental tasks): a task's new status, on the session's stream.
pub const TASK_STATUS_NOTIFICATION: &str = "notifications/tasks/status";
/// 2025-11-25 (experimental tasks): the `_meta` key tying a message to its task.
pub const META_RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// Whether a tool may run as a task (`execution.taskSupport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TaskSupport {
    /// Never a task (the default).
    #[default]
    Forbidden,
    /// A task when the client negotiated the extension, else a plain call.
    Optional,
    /// Only as a task: a client without the extension gets `-32021`.
    Required,
}

/// A tool's `execution` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolExecution {
    /// Whether the tool may run as a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_support: Option<TaskSupport>,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskStatus {
    /// Running.
    Working,
    /// Waiting for answers (`inputRequests`).
    InputRequired,
    /// Ended with a result (a tool error is a completed task with `isError: true`).
    Completed,
    /// Ended with a protocol-level error.
    Failed,
    /// Stopped by `tasks/cancel`.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Working => "working",
            TaskStatus::InputRequired => "input_required",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// What can go wrong with a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// No such task for this subject (or it expired).
    #[error("unknown task: {0}")]
    NotFound(String),
    /// The task ended; it takes no more changes.
    #[error("task {id} is {} and takes no more changes", .status.as_str())]
    Ended {
        /// The task.
        id: String,
        /// Its final status.
        status: TaskStatus,
    },
    /// The subject has as many unfinished tasks as it may.
    #[error("too many unfinished tasks for this subject (at most {limit})")]
    TooManyTasks {
        /// The limit.
        limit: usize,
    },
    /// The result is larger than the limit (the task fails with this error).
    #[error("the task's result is {bytes} bytes, over the limit of {limit}")]
    ResultTooLarge {
        /// The result's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The task has as many open input requests as it may.
    #[error("too many open input requests (at most {limit})")]
    TooManyInputRequests {
        /// The limit.
        limit: usize,
    },
    /// The store cannot be reached.
    #[error("task store unavailable: {0}")]
    Unavailable(String),
    /// A restart was refused: the task is not (or no longer) the dead replica's to take over.
    #[error("task {id} cannot be restarted: {reason}")]
    NotRestartable {
        /// The task.
        id: String,
        /// Why (another replica took it over, it ended, it may not be restarted).
        reason: String,
    },
}

impl TaskError {
    /// The JSON-RPC error a client gets for it (the one place tasks map errors).
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            TaskError::NotFound(_) | TaskError::Ended { .. } => {
                ErrorObject::invalid_params(self.to_string())
            }
            TaskError::TooManyTasks { .. }
            | TaskError::ResultTooLarge { .. }
            | TaskError::TooManyInputRequests { .. }
            | TaskError::Unavailable(_)
            | TaskError::NotRestartable { .. } => {
                ErrorObject::new(code::INTERNAL_ERROR, self.to_string())
            }
        }
    }
}

/// A change to a task (see [`TaskRecord::apply`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskEvent {
    /// The handler asks a question (`{method, params}`) under `key`.
    AskInput {
        /// The key of the `inputRequests` entry.
        key: String,
        /// The request.
        request: Value,
    },
    /// The client answers (`tasks/update`); keys not asked are ignored.
    Answer(Map<String, Value>),
    /// The handler ended with a result.
    Complete(Value),
    /// The call failed at the protocol level.
    Fail(ErrorObject),
    /// The client cancels; a task that ended stays as it is.
    Cancel,
    /// Replica `to` takes over the unfinished task of replica `from`, which died, to run it
    /// again from its arguments: refused unless the task may be restarted, has restarts
    /// left, and is still `from`'s (so that two replicas never both take it over).
    Restart {
        /// The dead replica.
        from: String,
        /// The replica taking over.
        to: String,
    },
}

/// How a task whose tool may be restarted is run again from scratch on another replica
/// when its replica dies (see `ToolDef::restartable`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRestart {
    /// The tool.
    pub tool: String,
    /// Its (validated) arguments.
    pub arguments: Value,
    /// The protocol version of the call.
    pub protocol_version: crate::ProtocolVersion,
    /// What the client could answer (for questions the tool asks while it runs).
    pub client_capabilities: crate::types::ClientCapabilities,
    /// How many more times it may be restarted.
    pub restarts_left: u32,
}

/// A task as stored: what `tasks/get` reports, plus the answers on their way to the handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The task's id.
    pub task_id: String,
    /// The authenticated subject that created it (another subject does not see it).
    pub subject: Option<String>,
    /// Where it is.
    pub status: TaskStatus,
    /// A human-readable word on the status (e.g. why it failed).
    pub status_message: Option<String>,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it last changed (ms since the Unix epoch).
    pub last_updated_at_ms: u64,
    /// How long it is kept after its last change.
    pub ttl_ms: u64,
    /// How often a client should poll.
    pub poll_interval_ms: u64,
    /// The tool's result, once completed.
    pub result: Option<Value>,
    /// The error, once failed.
    pub error: Option<ErrorObject>,
    /// Questions waiting for answers, by key.
    pub input_requests: Map<String, Value>,
    /// Answers not yet taken by the handler, by key.
    pub input_responses: Map<String, Value>,
    /// The replica running it, where replicas share a store.
    pub owner: Option<String>,
    /// Longest it may run; an unfinished task is kept at least this long after its creation
    /// (plus its TTL), whether or not it changes meanwhile.
    #[serde(default)]
    pub run_limit_ms: u64,
    /// How to run it again when its replica dies, if its tool may be restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<TaskRestart>,
    /// The session that created it (2025-11-25 `tasks/list` lists a session's tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl TaskRecord {
    /// A new working task.
    pub fn new(
        task_id: impl Into<String>,
        subject: Option<String>,
        now_ms: u64,
        ttl_ms: u64,
        poll_interval_ms: u64,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            subject,
            status: TaskStatus::Working,
            status_message: None,
            created_at_ms: now_ms,
            last_updated_at_ms: now_ms,
            ttl_ms,
            poll_interval_ms,
            result: None,
            error: None,
            input_requests: Map::new(),
            input_responses: Map::new(),
            owner: None,
            run_limit_ms: 0,
            restart: None,
            session_id: None,
        }
    }

    /// When the store may forget it: `ttlMs` after its last change, never earlier; an
    /// unfinished task no earlier than `ttlMs` after the end of its run limit.
    pub fn expires_at_ms(&self) -> u64 {
        let after_change = self.last_updated_at_ms.saturating_add(self.ttl_ms);
        if self.status.is_terminal() {
            return after_change;
        }
        let after_run = self
            .created_at_ms
            .saturating_add(self.run_limit_ms)
            .saturating_add(self.ttl_ms);
        after_change.max(after_run)
    }

    /// Applies one event. A task that ended refuses every event but [`TaskEvent::Cancel`],
    /// which leaves it as it is (cancelling is idempotent).
    pub fn apply(&mut self, event: TaskEvent, now_ms: u64) -> Result<(), TaskError> {
        if self.status.is_terminal() {
            return match event {
                TaskEvent::Cancel => Ok(()),
                _ => Err(TaskError::Ended {
                    id: self.task_id.clone(),
                    status: self.status,
                }),
            };
        }
        match event {
            TaskEvent::AskInput { key, request } => {
                self.input_requests.insert(key, request);
                self.status = TaskStatus::InputRequired;
            }
            TaskEvent::Answer(answers) => {
                for (key, answer) in answers {
                    if self.input_requests.remove(&key).is_some() {
                        self.input_responses.insert(key, answer);
                    }
                }
                if self.input_requests.is_empty() {
                    self.status = TaskStatus::Working;
                }
            }
            TaskEvent::Complete(result) => {
                self.end(TaskStatus::Completed);
                self.result = Some(result);
            }
            TaskEvent::Fail(error) => {
                self.end(TaskStatus::Failed);
                self.status_message = Some(error.message.clone());
                self.error = Some(error);
            }
            TaskEvent::Cancel => {
                self.end(TaskStatus::Cancelled);
                self.status_message = Some("cancelled by the client".into());
            }
            TaskEvent::Restart { from, to } => self.restart(&from, to)?,
        }
        self.last_updated_at_ms = now_ms.max(self.last_updated_at_ms);
        Ok(())
    }

    /// Hands the task of dead replica `from` to replica `to`, back to `working` with no
    /// questions open: it runs again from its arguments.
    fn restart(&mut self, from: &str, to: String) -> Result<(), TaskError> {
        let refuse = |reason: String| TaskError::NotRestartable {
            id: self.task_id.clone(),
            reason,
        };
        if self.owner.as_deref() != Some(from) {
            let owner = self.owner.as_deref().unwrap_or("nobody");
            return Err(refuse(format!("it runs on {owner}, not on {from}")));
        }
        let Some(restart) = self.restart.as_mut() else {
            return Err(refuse(format!(
                "tool of task {} may not be restarted",
                self.task_id
            )));
        };
        if restart.restarts_left == 0 {
            return Err(refuse("it was restarted as often as it may be".into()));
        }
        restart.restarts_left -= 1;
        self.status = TaskStatus::Working;
        self.input_requests.clear();
        self.input_responses.clear();
        self.status_message = Some(format!(
            "restarted on {to}: the replica running it ({from}) stopped"
        ));
        self.owner = Some(to);
        Ok(())
    }

    /// Whether its replica's death should restart it elsewhere rather than fail it.
    pub fn restarts_on_replica_loss(&self) -> bool {
        !self.status.is_terminal() && self.restart.as_ref().is_some_and(|r| r.restarts_left > 0)
    }

    fn end(&mut self, status: TaskStatus) {
        self.status = status;
        self.input_requests.clear();
        self.input_responses.clear();
    }

    /// Takes the answer under `key`, if it arrived.
    pub fn take_answer(&mut self, key: &str) -> Option<Value> {
        self.input_responses.remove(key)
    }

    /// The fields every task shape shares.
    fn envelope(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("taskId".into(), json!(self.task_id));
        m.insert("status".into(), json!(self.status.as_str()));
        if let Some(msg) = &self.status_message {
            m.insert("statusMessage".into(), json!(msg));
        }
        m.insert("createdAt".into(), json!(iso8601(self.created_at_ms)));
        m.insert(
            "lastUpdatedAt".into(),
            json!(iso8601(self.last_updated_at_ms)),
        );
        m.insert("ttlMs".into(), json!(self.ttl_ms));
        m.insert("pollIntervalMs".into(), json!(self.poll_interval_ms));
        m
    }

    /// The 2025-11-25 `Task`: `ttl` and `pollInterval` in milliseconds, no result inlined; a
    /// tool result with `isError: true` is a `failed` task, as that revision says.
    pub fn experimental(&self) -> Value {
        let tool_error = self.status == TaskStatus::Completed
            && self
                .result
                .as_ref()
                .and_then(|r| r.get("isError"))
                .and_then(Value::as_bool)
                == Some(true);
        let status = if tool_error {
            TaskStatus::Failed
        } else {
            self.status
        };
        let mut m = Map::new();
        m.insert("taskId".into(), json!(self.task_id));
        m.insert("status".into(), json!(status.as_str()));
        let message = match (&self.status_message, tool_error) {
            (Some(msg), _) => Some(msg.as_str()),
            (None, true) => Some("the tool reported an error (see tasks/result)"),
            (None, false) => None,
        };
        if let Some(msg) = message {
            m.insert("statusMessage".into(), json!(msg));
        }
        m.insert("createdAt".into(), json!(iso8601(self.created_at_ms)));
        m.insert(
            "lastUpdatedAt".into(),
            json!(iso8601(self.last_updated_at_ms)),
        );
        m.insert("ttl".into(), json!(self.ttl_ms));
        m.insert("pollInterval".into(), json!(self.poll_interval_ms));
        Value::Object(m)
    }

    /// The flat `CreateTaskResult` a task-augmented `tools/call` answers with.
    pub fn create_result(&self) -> Value {
        let mut m = self.envelope();
        m.insert("resultType".into(), json!(RESULT_TASK));
        Value::Object(m)
    }

    /// The `DetailedTask` of `tasks/get`: the result inlined once completed, the error once
    /// failed, the open questions while input is required.
    pub fn detailed(&self) -> Value {
        let mut m = self.envelope();
        match self.status {
            TaskStatus::Completed => {
                if let Some(r) = &self.result {
                    m.insert("result".into(), r.clone());
                }
            }
            TaskStatus::Failed => {
                if let Some(e) = &self.error {
                    m.insert("error".into(), serde_json::to_value(e).unwrap_or_default());
                }
            }
            TaskStatus::InputRequired => {
                m.insert(
                    "inputRequests".into(),
                    Value::Object(self.input_requests.clone()),
                );
            }
            TaskStatus::Working | TaskStatus::Cancelled => {}
        }
        Value::Object(m)
    }
}

/// A task as a client reads it: a `CreateTaskResult` or a `tasks/get` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailedTask {
    /// The task's id.
    pub task_id: String,
    /// Where it is.
    pub status: TaskStatus,
    /// A word on the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When it was created (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When it last changed (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
    /// How long the server keeps it after its last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// How often to poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    /// The tool's result, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, once failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// Questions waiting for answers, while input is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_requests: Option<Map<String, Value>>,
}

/// Bounds on tasks (set by the transport, e.g. `mcp-sse`'s `ServerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Most unfinished tasks one subject (or all anonymous callers together) may have.
    pub max_tasks_per_subject: usize,
    /// Largest serialized result kept; a larger one fails the task.
    pub max_result_bytes: usize,
    /// How long a task is kept after its last change.
    pub ttl: Duration,
    /// How often clients are told to poll.
    pub poll_interval: Duration,
    /// Longest a task may run (input waits included) before it fails.
    pub max_duration: Duration,
    /// Most questions one task may have open at once.
    pub max_input_requests: usize,
    /// Most times a task of a restartable tool is run again after its replica died.
    pub max_restarts: u32,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            max_tasks_per_subject: 64,
            max_result_bytes: 1024 * 1024,
            ttl: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_millis(500),
            max_duration: Duration::from_secs(60 * 60),
            max_input_requests: 16,
            max_restarts: 3,
        }
    }
}

/// A change to a stored task, applied atomically by the store (a store may run it more than
/// once, on fresh copies, until its write wins).
pub type TaskChange<'a> = &'a (dyn Fn(&mut TaskRecord) -> Result<(), TaskError> + Send + Sync);

/// Where task records live, so that any replica answers for any task.
///
/// Records expire [`TaskRecord::expires_at_ms`] after their last change.
pub trait TaskStore: Send + Sync + std::fmt::Debug {
    /// Stores a new task, unless its subject already has `max_active` unfinished tasks.
    fn create(&self, record: TaskRecord, max_active: usize)
    -> BoxFuture<'_, Result<(), TaskError>>;

    /// The task `id` if it exists for `subject`.
    fn get<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, TaskError>>;

    /// Applies `change` to the task `id` atomically and returns the new record.
    fn update<'a>(
        &'a self,
        id: &'a str,
        change: TaskChange<'a>,
    ) -> BoxFuture<'a, Result<TaskRecord, TaskError>>;

    /// A future that resolves after the task `id` changes (a store that cannot tell may
    /// resolve after a poll interval). Registered when called, so a change between this call
    /// and a read that follows it is not missed.
    fn watch(&self, id: &str) -> BoxFuture<'static, ()>;

    /// At most `max` unfinished tasks that may be restarted ([`TaskRecord::restarts_on_replica_loss`])
    /// whose replica died (its heartbeat lease ran out): candidates for a take-over with
    /// [`TaskEvent::Restart`]. A store of one process has none (the default).
    fn orphans(&self, max: usize) -> BoxFuture<'_, Result<Vec<TaskRecord>, TaskError>> {
        let _ = max;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// At most `max` tasks of `subject` created in session `session` (2025-11-25
    /// `tasks/list`), in no particular order. The default cannot list.
    fn list<'a>(
        &'a self,
        subject: Option<&'a str>,
        session: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<TaskRecord>, TaskError>> {
        let _ = (subject, session, max);
        Box::pin(async {
            Err(TaskError::Unavailable(
                "this task store cannot list tasks".into(),
            ))
        })
    }
}

/// How a transport runs tasks: spawns their futures and times their deadlines.
pub trait TaskRuntime: Send + Sync + std::fmt::Debug {
    /// Runs `task` in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// A future that resolves after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// What a server needs to run tasks, put in each request's extensions by the transport.
#[derive(Debug, Clone)]
pub struct TaskHost {
    /// Where records live.
    pub store: Arc<dyn TaskStore>,
    /// Where tasks run.
    pub runtime: Arc<dyn TaskRuntime>,
    /// The bounds.
    pub limits: TaskLimits,
    /// This process's name in records (`owner`).
    pub replica: Option<String>,
    pub(crate) running: Arc<Mutex<HashMap<String, crate::cancel::CancellationSignal>>>,
}

impl TaskHost {
    /// A host over a store and a runtime.
    pub fn new(
        store: Arc<dyn TaskStore>,
        runtime: Arc<dyn TaskRuntime>,
        limits: TaskLimits,
    ) -> Self {
        Self {
            store,
            runtime,
            limits,
            replica: None,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Names this process in the records it runs.
    pub fn with_replica(mut self, replica: impl Into<String>) -> Self {
        self.replica = Some(replica.into());
        self
    }

    /// How many tasks run in this process.
    pub fn running(&self) -> usize {
        lock(&self.running).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh task id: 128 random bits in hex.
pub fn new_task_id() -> String {
    let bits: u128 = rand::random();
    format!("task-{bits:032x}")
}

/// `ms` since the epoch as ISO-8601 UTC with milliseconds (`2026-07-28T12:00:00.000Z`).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Task records in this process: the default store (one replica).
#[derive(Debug)]
pub struct MemoryTaskStore {
    records: Mutex<HashMap<String, TaskRecord>>,
    watchers: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    max_records: usize,
}

/// Most task records a [`MemoryTaskStore`] keeps by default (ended ones included).
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

impl MemoryTaskStore {
    /// An empty store keeping at most [`DEFAULT_MAX_RECORDS`] records.
    pub fn new() -> Self {
        Self::with_max_records(DEFAULT_MAX_RECORDS)
    }

    /// An empty store keeping at most `max_records` records.
    pub fn with_max_records(max_records: usize) -> Self {
        Self {
            records: Mutex::default(),
            watchers: Mutex::default(),
            max_records,
        }
    }

    /// How many records it holds (expired ones until the next sweep).
    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn create_now(&self, record: TaskRecord, max_active: usize) -> Result<(), TaskError> {
        let now = now_ms();
        let mut records = lock(&self.records);
        records.retain(|_, r| r.expires_at_ms() > now);
        let active = records
            .values()
            .filter(|r| r.subject == record.subject && !r.status.is_terminal())
            .count();
        if active >= max_active {
            return Err(TaskError::TooManyTasks { limit: max_active });
        }
        if records.len() >= self.max_records {
            return Err(TaskError::Unavailable(format!(
                "the task store is full ({} records)",
                self.max_records
            )));
        }
        records.insert(record.task_id.clone(), record);
        Ok(())
    }

    fn get_now(&self, id: &str, subject: Option<&str>) -> Option<TaskRecord> {
        let records = lock(&self.records);
        records
            .get(id)
            .filter(|r| r.subject.as_deref() == subject && r.expires_at_ms() > now_ms())
            .cloned()
    }

    fn update_now(&self, id: &str, change: TaskChange<'_>) -> Result<TaskRecord, TaskError> {
        let updated = {
            let mut records = lock(&self.records);
            let record = records
                .get_mut(id)
                .filter(|r| r.expires_at_ms() > now_ms())
                .ok_or_else(|| TaskError::NotFound(id.to_owned()))?;
            let mut copy = record.clone();
            change(&mut copy)?;
            *record = copy.clone();
            copy
        };
        for w in lock(&self.watchers).remove(id).unwrap_or_default() {
            let _ = w.send(());
        }
        Ok(updated)
    }
}

impl Default for MemoryTaskStore {
    /// [`MemoryTaskStore::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl TaskStore for MemoryTaskStore {
    fn create(
        &self,
        record: TaskRecord,
        max_active: usize,
    ) -> BoxFuture<'_, Result<(), TaskError>> {
        let out = self.create_now(record, max_active);
        Box::pin(async move { out })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, TaskError>> {
        let out = self.get_now(id, subject);
        Box::pin(async move { Ok(out) })
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: TaskChange<'a>,
    ) -> BoxFuture<'a, Result<TaskRecord, TaskError>> {
        let out = self.update_now(id, change);
        Box::pin(async move { out })
    }

    fn list<'a>(
        &'a self,
        subject: Option<&'a str>,
        session: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<TaskRecord>, TaskError>> {
        let now = now_ms();
        let found = lock(&self.records)
            .values()
            .filter(|r| {
                r.subject.as_deref() == subject
                    && r.session_id.as_deref() == Some(session)
                    && r.expires_at_ms() > now
            })
            .take(max)
            .cloned()
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn watch(&self, id: &str) -> BoxFuture<'static, ()> {
        let (tx, rx) = oneshot::channel();
        let mut watchers = lock(&self.watchers);
        // Drop watchers whose futures are gone, so a long-waiting task cannot grow the list.
        let list = watchers.entry(id.to_owned()).or_default();
        list.retain(|w| !w.is_canceled());
        list.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    fn working() -> TaskRecord {
        TaskRecord::new("t", Some("alice".into()), 1_000, 10_000, 250)
    }

    fn answers(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn ask(key: &str) -> TaskEvent {
        TaskEvent::AskInput {
            key: key.into(),
            request: json!({"method": "elicitation/create", "params": {"message": key}}),
        }
    }

    #[test]
    fn working_to_input_required_and_back_when_every_question_is_answered() {
        let mut t = working();
        t.apply(ask("a"), 1_100).unwrap();
        t.apply(ask("b"), 1_100).unwrap();
        assert_eq!(t.status, TaskStatus::InputRequired);
        // One answer and one unknown key: the other question stays open.
        t.apply(
            TaskEvent::Answer(answers(&[("a", json!(1)), ("zzz", json!(2))])),
            1_200,
        )
        .unwrap();
        assert_eq!(t.status, TaskStatus::InputRequired);
        assert_eq!(t.input_requests.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(t.detailed()["inputRequests"]["b"]["params"]["message"], "b");
        assert!(t.detailed()["inputRequests"].get("a").is_none());
        t.apply(TaskEvent::Answer(answers(&[("b", json!(3))])), 1_300)
            .unwrap();
        assert_eq!(t.status, TaskStatus::Working);
        assert_eq!(t.take_answer("a"), Some(json!(1)));
        assert_eq!(t.take_answer("a"), None);
        assert_eq!(t.take_answer("b"), Some(json!(3)));
        assert_eq!(t.last_updated_at_ms, 1_300);
        assert!(t.detailed().get("inputRequests").is_none());
    }

    #[test]
    fn completion_inlines_the_result_and_nothing_else() {
        let mut t = working();
        t.apply(ask("a"), 1_100).unwrap();
        t.apply(
            TaskEvent::Complete(json!({"content": [], "isError": true})),
            2_000,
        )
        .unwrap();
        let d = t.detailed();
        assert_eq!(d["status"], "completed");
        assert_eq!(d["result"]["isError"], true);
        assert!(d.get("error").is_none() && d.get("inputRequests").is_none());
        assert!(t.input_requests.is_empty());
    }

    #[test]
    fn failure_inlines_the_error_and_no_result() {
        let mut t = working();
        t.apply(TaskEvent::Fail(ErrorObject::internal("boom")), 2_000)
            .unwrap();
        let d = t.detailed();
        assert_eq!(d["status"], "failed");
        assert_eq!(
            d["error"],
            json!({"code": -32603, "message": "Internal error: boom"})
        );
        assert_eq!(d["statusMessage"], "Internal error: boom");
        assert!(d.get("result").is_none());
    }

    #[test]
    fn cancel_ends_a_running_task_and_is_idempotent_on_an_ended_one() {
        let mut t = working();
        t.apply(ask("a"), 1_100).unwrap();
        t.apply(TaskEvent::Cancel, 1_200).unwrap();
        assert_eq!(t.status, TaskStatus::Cancelled);
        assert!(t.input_requests.is_empty());
        t.apply(TaskEvent::Cancel, 1_300).unwrap();
        assert_eq!(t.status, TaskStatus::Cancelled);
        assert_eq!(t.last_updated_at_ms, 1_200);
        let mut done = working();
        done.apply(TaskEvent::Complete(json!({"content": []})), 1_100)
            .unwrap();
        done.apply(TaskEvent::Cancel, 1_200).unwrap();
        assert_eq!(done.status, TaskStatus::Completed);
    }

    #[test]
    fn an_ended_task_refuses_every_other_event() {
        for end in [
            TaskEvent::Complete(json!({})),
            TaskEvent::Fail(ErrorObject::internal("x")),
            TaskEvent::Cancel,
        ] {
            let mut t = working();
            t.apply(end, 1_100).unwrap();
            let status = t.status;
            for event in [
                ask("a"),
                TaskEvent::Answer(answers(&[("a", json!(1))])),
                TaskEvent::Complete(json!({})),
                TaskEvent::Fail(ErrorObject::internal("y")),
            ] {
                let e = t.apply(event, 1_200).unwrap_err();
                assert_eq!(
                    e,
                    TaskError::Ended {
                        id: "t".into(),
                        status
                    }
                );
                assert_eq!(e.to_error_object().code, code::INVALID_PARAMS);
            }
            assert_eq!(t.status, status);
        }
    }

    fn restartable(owner: &str, restarts_left: u32) -> TaskRecord {
        let mut t = working();
        t.owner = Some(owner.into());
        t.restart = Some(TaskRestart {
            tool: "roll".into(),
            arguments: json!({"n": 3}),
            protocol_version: crate::ProtocolVersion::V2026_07_28,
            client_capabilities: Default::default(),
            restarts_left,
        });
        t
    }

    fn restart(from: &str, to: &str) -> TaskEvent {
        TaskEvent::Restart {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn a_restart_hands_the_dead_replicas_task_to_one_replica_back_to_working() {
        let mut t = restartable("a", 2);
        t.apply(ask("k"), 1_100).unwrap();
        t.apply(TaskEvent::Answer(answers(&[])), 1_150).unwrap();
        assert!(t.restarts_on_replica_loss());
        t.apply(restart("a", "b"), 1_200).unwrap();
        assert_eq!(t.status, TaskStatus::Working);
        assert_eq!(t.owner.as_deref(), Some("b"));
        assert!(t.input_requests.is_empty() && t.input_responses.is_empty());
        assert_eq!(t.restart.as_ref().unwrap().restarts_left, 1);
        assert_eq!(t.last_updated_at_ms, 1_200);
        assert_eq!(
            t.detailed()["statusMessage"],
            "restarted on b: the replica running it (a) stopped"
        );
        // A second replica that saw the same dead owner is refused: b has it now.
        let e = t.apply(restart("a", "c"), 1_300).unwrap_err();
        assert_eq!(
            e,
            TaskError::NotRestartable {
                id: "t".into(),
                reason: "it runs on b, not on a".into()
            }
        );
        assert_eq!(e.to_error_object().code, code::INTERNAL_ERROR);
        assert_eq!(t.owner.as_deref(), Some("b"));
    }

    #[test]
    fn a_restart_is_refused_without_a_spec_without_restarts_left_and_once_ended() {
        let mut plain = working();
        plain.owner = Some("a".into());
        assert!(!plain.restarts_on_replica_loss());
        assert_eq!(
            plain
                .apply(restart("a", "b"), 1_100)
                .unwrap_err()
                .to_string(),
            "task t cannot be restarted: tool of task t may not be restarted"
        );
        let mut spent = restartable("a", 0);
        assert!(!spent.restarts_on_replica_loss());
        assert_eq!(
            spent
                .apply(restart("a", "b"), 1_100)
                .unwrap_err()
                .to_string(),
            "task t cannot be restarted: it was restarted as often as it may be"
        );
        assert_eq!(spent.owner.as_deref(), Some("a"));
        let mut done = restartable("a", 2);
        done.apply(TaskEvent::Complete(json!({})), 1_100).unwrap();
        assert!(!done.restarts_on_replica_loss());
        assert_eq!(
            done.apply(restart("a", "b"), 1_200),
            Err(TaskError::Ended {
                id: "t".into(),
                status: TaskStatus::Completed
            })
        );
        // The spec survives the store's JSON.
        let back: TaskRecord =
            serde_json::from_str(&serde_json::to_string(&restartable("a", 1)).unwrap()).unwrap();
        assert_eq!(back, restartable("a", 1));
    }

    #[test]
    fn errors_map_to_their_json_rpc_codes() {
        let cases = [
            (
                TaskError::NotFound("x".into()),
                -32602,
                "Invalid params: unknown task: x",
            ),
            (
                TaskError::TooManyTasks { limit: 2 },
                -32603,
                "too many unfinished tasks for this subject (at most 2)",
            ),
            (
                TaskError::ResultTooLarge {
                    bytes: 10,
                    limit: 5,
                },
                -32603,
                "the task's result is 10 bytes, over the limit of 5",
            ),
        ];
        for (e, code, message) in cases {
            let o = e.to_error_object();
            assert_eq!(o.code, code);
            assert_eq!(o.message, message);
        }
    }

    #[test]
    fn create_result_is_flat_with_integer_milliseconds_and_iso_dates() {
        let t = TaskRecord::new("t1", None, 1_785_240_000_123, 60_000, 500);
        assert_eq!(
            t.create_result(),
            json!({"resultType": "task", "taskId": "t1", "status": "working",
                "createdAt": "2026-07-28T12:00:00.123Z", "lastUpdatedAt": "2026-07-28T12:00:00.123Z",
                "ttlMs": 60_000, "pollIntervalMs": 500})
        );
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn memory_store_binds_subjects_limits_unfinished_tasks_and_keeps_ttl() {
        let store = MemoryTaskStore::new();
        let now = now_ms();
        let rec =
            |id: &str, subject: &str| TaskRecord::new(id, Some(subject.into()), now, 60_000, 100);
        block(store.create(rec("a1", "alice"), 2)).unwrap();
        block(store.create(rec("a2", "alice"), 2)).unwrap();
        assert_eq!(
            block(store.create(rec("a3", "alice"), 2)),
            Err(TaskError::TooManyTasks { limit: 2 })
        );
        block(store.create(rec("b1", "bob"), 2)).unwrap();
        assert!(block(store.get("a1", Some("bob"))).unwrap().is_none());
        assert!(block(store.get("a1", Some("alice"))).unwrap().is_some());
        // An ended task no longer counts against the limit, but is still readable.
        block(store.update("a1", &|r| r.apply(TaskEvent::Cancel, now_ms()))).unwrap();
        block(store.create(rec("a3", "alice"), 2)).unwrap();
        let a1 = block(store.get("a1", Some("alice"))).unwrap().unwrap();
        assert_eq!(a1.status, TaskStatus::Cancelled);
        // An unfinished record lasts through its run limit even without changes...
        let mut running = TaskRecord::new("running", None, now - 10_000, 5_000, 100);
        running.run_limit_ms = 60_000;
        block(store.create(running, 2)).unwrap();
        assert!(block(store.get("running", None)).unwrap().is_some());
        // ...and an ended one expires its TTL after its last change.
        let mut old = TaskRecord::new("old", None, now - 10_000, 5_000, 100);
        old.run_limit_ms = 60_000;
        old.apply(TaskEvent::Cancel, now - 10_000).unwrap();
        block(store.create(old, 2)).unwrap();
        assert!(block(store.get("old", None)).unwrap().is_none());
        assert_eq!(
            block(store.update("old", &|_| Ok(()))),
            Err(TaskError::NotFound("old".into()))
        );
    }

    #[test]
    fn memory_store_wakes_watchers_on_change() {
        let store = MemoryTaskStore::new();
        block(store.create(TaskRecord::new("w", None, now_ms(), 60_000, 100), 8)).unwrap();
        let watch = store.watch("w");
        block(store.update("w", &|r| r.apply(ask("k"), now_ms()))).unwrap();
        block(watch);
        let full = MemoryTaskStore::with_max_records(1);
        block(full.create(TaskRecord::new("1", None, now_ms(), 60_000, 100), 8)).unwrap();
        let e = block(full.create(TaskRecord::new("2", None, now_ms(), 60_000, 100), 8));
        assert_eq!(
            e,
            Err(TaskError::Unavailable(
                "the task store is full (1 records)".into()
            ))
        );
    }
}
