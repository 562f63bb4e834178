//! Tool calls as tasks from the client (2026-07-28 `io.modelcontextprotocol/tasks`): start a
//! call as a task, read its state, answer its questions, wait for its result, cancel it.
//! Each of these requests declares the extension in its own `clientCapabilities`, so a
//! client that never asks for a task never gets one: [`McpClient::call_tool`] stays a plain
//! call that blocks until the result.

use std::time::Duration;

use futures::StreamExt;
use mcp_proto::Message;
use mcp_proto::listen::{SUBSCRIPTIONS_ACKNOWLEDGED, SUBSCRIPTIONS_LISTEN, TASKS_NOTIFICATION};
use mcp_proto::stateless::META_CLIENT_CAPABILITIES;
use mcp_proto::task::{
    DetailedTask, EXTENSION, RESULT_TASK, TASKS_CANCEL, TASKS_GET, TASKS_UPDATE, TaskStatus,
};
use mcp_proto::types::{JsonObject, method};
use mcp_proto::{CallToolResult, parse_result};
use serde_json::{Value, json};

use super::McpClient;
use super::connect_error;
use super::sse_parser::SseParser;
use super::stateless::StatelessClient;
use crate::Error;

/// How a call started as a task came back.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ToolCallStart {
    /// The server runs it as a task: poll it, or wait for it.
    Task(DetailedTask),
    /// The server answered at once (the tool does not run as a task, or was quick).
    Done(CallToolResult),
}

/// Shortest and longest pause between two polls of a task.
const MIN_POLL: Duration = Duration::from_millis(50);
const MAX_POLL: Duration = Duration::from_secs(5);

impl McpClient {
    fn tasks_era(&self) -> Result<&StatelessClient, Error> {
        self.stateless.as_deref().ok_or_else(|| {
            Error::Transport(
                "tool calls run as tasks need protocol 2026-07-28 (a stateless client)".into(),
            )
        })
    }

    /// Sends a request that declares the tasks extension in its `_meta`.
    async fn task_request(&self, method: &str, mut params: Value) -> Result<Value, Error> {
        let modern = self.tasks_era()?;
        let mut caps = serde_json::to_value(&modern.capabilities).unwrap_or_else(|_| json!({}));
        caps["extensions"][EXTENSION] = json!({});
        params["_meta"] = json!({ META_CLIENT_CAPABILITIES: caps });
        modern.request(method, Some(params), None).await
    }

    /// Calls a tool as a task: a tool that supports tasks answers at once with the task,
    /// which runs on in the server; any other tool answers with its result. Input rounds
    /// before the task starts are answered through the input handler, as for any call.
    pub async fn start_tool_task(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<ToolCallStart, Error> {
        let params = match arguments {
            Value::Null => json!({ "name": name }),
            Value::Object(_) => json!({ "name": name, "arguments": arguments }),
            other => return Err(Error::InvalidArguments(other.to_string())),
        };
        let value = self.task_request(method::TOOLS_CALL, params).await?;
        if value.get("resultType").and_then(Value::as_str) == Some(RESULT_TASK) {
            let task = serde_json::from_value(value)
                .map_err(|e| Error::Transport(format!("malformed CreateTaskResult: {e}")))?;
            return Ok(ToolCallStart::Task(task));
        }
        Ok(ToolCallStart::Done(parse_result(Ok(value))?))
    }

    /// A task's state (`tasks/get`): its result once completed, its error once failed, its
    /// questions while it waits for input.
    pub async fn get_task(&self, task_id: &str) -> Result<DetailedTask, Error> {
        let value = self
            .task_request(TASKS_GET, json!({ "taskId": task_id }))
            .await?;
        serde_json::from_value(value)
            .map_err(|e| Error::Transport(format!("malformed tasks/get answer: {e}")))
    }

    /// Answers some of a task's questions (`tasks/update`), by their keys.
    pub async fn update_task(&self, task_id: &str, responses: JsonObject) -> Result<(), Error> {
        self.task_request(
            TASKS_UPDATE,
            json!({ "taskId": task_id, "inputResponses": responses }),
        )
        .await
        .map(drop)
    }

    /// Cancels a task (`tasks/cancel`); cancelling a task that ended changes nothing.
    pub async fn cancel_task(&self, task_id: &str) -> Result<(), Error> {
        self.task_request(TASKS_CANCEL, json!({ "taskId": task_id }))
            .await
            .map(drop)
    }

    /// Follows tasks as the server pushes their states (`subscriptions/listen` with
    /// `notifications.taskIds`): each followed task's state now, then at each change, until
    /// the stream is dropped. [`TaskStates::following`] says which of the tasks the server
    /// agreed to follow (those it knows for this caller).
    pub async fn listen_tasks(&self, task_ids: &[&str]) -> Result<TaskStates, Error> {
        let modern = self.tasks_era()?;
        let mut caps = serde_json::to_value(&modern.capabilities).unwrap_or_else(|_| json!({}));
        caps["extensions"][EXTENSION] = json!({});
        let params = json!({
            "notifications": { "taskIds": task_ids },
            "_meta": { META_CLIENT_CAPABILITIES: caps },
        });
        let Value::Object(params) = params else {
            return Err(Error::Transport(
                "listen parameters are not an object".into(),
            ));
        };
        let response = modern.open_stream(SUBSCRIPTIONS_LISTEN, &params).await?;
        let mut states = TaskStates {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::new(modern.max_message_bytes()),
            url: modern.url().clone(),
            limit: modern.max_message_bytes(),
            following: Vec::new(),
        };
        let ack = states.next_message(SUBSCRIPTIONS_ACKNOWLEDGED).await?;
        states.following = ack
            .and_then(|params| params.pointer("/notifications/taskIds").cloned())
            .and_then(|ids| serde_json::from_value(ids).ok())
            .unwrap_or_default();
        Ok(states)
    }

    /// Waits until a task ends, answering its questions through the input handler, and
    /// returns its result: woken by the states the server pushes ([`McpClient::listen_tasks`]),
    /// or, where the server does not push them (or the stream breaks), by polling at the
    /// interval the task asks for. A failed task is `Error::Protocol(mcp_proto::Error::Rpc(..))`
    /// with the task's error; a cancelled one [`Error::TaskCancelled`]; after `max_wait`,
    /// [`Error::Timeout`] (the task runs on).
    pub async fn wait_task(
        &self,
        task_id: &str,
        max_wait: Duration,
    ) -> Result<CallToolResult, Error> {
        self.tasks_era()?;
        let wait = async {
            if let Some(done) = self.wait_pushed(task_id).await {
                return done;
            }
            self.wait_polling(task_id).await
        };
        tokio::time::timeout(max_wait, wait)
            .await
            .map_err(|_| Error::Timeout(max_wait, "the task to end"))?
    }

    /// Waits on pushed states; `None` when the server does not push them for this task or
    /// the stream ended early (the caller polls instead).
    async fn wait_pushed(&self, task_id: &str) -> Option<Result<CallToolResult, Error>> {
        let mut states = match self.listen_tasks(&[task_id]).await {
            Ok(s) if s.following().iter().any(|id| id == task_id) => s,
            Ok(_) => return None,
            Err(e) => {
                tracing::debug!(task = task_id, error = %e, "no pushed task states; polling");
                return None;
            }
        };
        loop {
            match states.next().await {
                Ok(Some(task)) if task.task_id == task_id => {
                    if let Some(done) = self.settle(task).await.transpose() {
                        return Some(done);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    tracing::debug!(task = task_id, "the task stream ended; polling");
                    return None;
                }
            }
        }
    }

    async fn wait_polling(&self, task_id: &str) -> Result<CallToolResult, Error> {
        loop {
            let task = self.get_task(task_id).await?;
            let interval = Duration::from_millis(task.poll_interval_ms.unwrap_or(500));
            let answered = task.status == TaskStatus::InputRequired;
            if let Some(done) = self.settle(task).await? {
                return Ok(done);
            }
            if !answered {
                tokio::time::sleep(interval.clamp(MIN_POLL, MAX_POLL)).await;
            }
        }
    }

    /// What a task's state means for a waiter: its result once it ended, `None` while it
    /// runs (questions are answered here).
    async fn settle(&self, task: DetailedTask) -> Result<Option<CallToolResult>, Error> {
        match task.status {
            TaskStatus::Completed => Ok(Some(parse_result(Ok(task.result.unwrap_or_default()))?)),
            TaskStatus::Failed => {
                let error = task.error.unwrap_or_else(|| {
                    mcp_proto::ErrorObject::internal("the task failed without an error")
                });
                Err(Error::Protocol(mcp_proto::Error::Rpc(error)))
            }
            TaskStatus::Cancelled => Err(Error::TaskCancelled(task.task_id)),
            TaskStatus::InputRequired => {
                let questions = json!({ "inputRequests": task.input_requests });
                let answers = self.tasks_era()?.answer_inputs(&questions).await?;
                self.update_task(&task.task_id, answers).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Calls a tool as a task and waits (at most `max_wait`) for its result: for calls longer
    /// than any proxy's timeout, each request short.
    pub async fn call_tool_as_task(
        &self,
        name: &str,
        arguments: Value,
        max_wait: Duration,
    ) -> Result<CallToolResult, Error> {
        match self.start_tool_task(name, arguments).await? {
            ToolCallStart::Done(result) => Ok(result),
            ToolCallStart::Task(task) => self.wait_task(&task.task_id, max_wait).await,
        }
    }
}

/// Task states a server pushes on a `subscriptions/listen` stream (see
/// [`McpClient::listen_tasks`]).
pub struct TaskStates {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    url: reqwest::Url,
    limit: usize,
    following: Vec<String>,
}

impl std::fmt::Debug for TaskStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskStates")
            .field("following", &self.following)
            .finish_non_exhaustive()
    }
}

impl TaskStates {
    /// The tasks the server agreed to follow.
    pub fn following(&self) -> &[String] {
        &self.following
    }

    /// The next state pushed (`notifications/tasks`); `None` when the server ended the
    /// stream.
    pub async fn next(&mut self) -> Result<Option<DetailedTask>, Error> {
        let Some(params) = self.next_message(TASKS_NOTIFICATION).await? else {
            return Ok(None);
        };
        serde_json::from_value(params)
            .map(Some)
            .map_err(|e| Error::Transport(format!("malformed notifications/tasks: {e}")))
    }

    /// The params of the next notification `method` on the stream (others are skipped).
    async fn next_message(&mut self, method: &str) -> Result<Option<Value>, Error> {
        loop {
            while let Some(event) = self.parser.next_event() {
                match serde_json::from_str::<Message>(&event.data) {
                    Ok(Message::Notification(n)) if n.method == method => {
                        return Ok(Some(n.params.unwrap_or_default()));
                    }
                    Ok(Message::Response(r)) => {
                        // The server ended the subscription.
                        r.outcome
                            .map_err(|e| Error::Protocol(mcp_proto::Error::Rpc(e)))?;
                        return Ok(None);
                    }
                    _ => {}
                }
            }
            let Some(chunk) = self.body.next().await else {
                return Ok(None);
            };
            let chunk = chunk.map_err(|e| connect_error(&self.url, e))?;
            let limit = self.limit;
            self.parser
                .feed(&chunk)
                .map_err(|_| Error::MessageTooLarge { limit })?;
        }
    }
}
