//! Tool calls as tasks from the client (2026-07-28 `io.modelcontextprotocol/tasks`): start a
//! call as a task, read its state, answer its questions, wait for its result, cancel it.
//! Each of these requests declares the extension in its own `clientCapabilities`, so a
//! client that never asks for a task never gets one: [`McpClient::call_tool`] stays a plain
//! call that blocks until the result.

use std::time::Duration;

use mcp_proto::stateless::META_CLIENT_CAPABILITIES;
use mcp_proto::task::{
    DetailedTask, EXTENSION, RESULT_TASK, TASKS_CANCEL, TASKS_GET, TASKS_UPDATE, TaskStatus,
};
use mcp_proto::types::{JsonObject, method};
use mcp_proto::{CallToolResult, parse_result};
use serde_json::{Value, json};

use super::McpClient;
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

    /// Polls a task at the interval it asks for until it ends, answering its questions
    /// through the input handler, and returns its result. A failed task is
    /// `Error::Protocol(mcp_proto::Error::Rpc(..))` with the task's error; a cancelled one
    /// [`Error::TaskCancelled`]; after `max_wait`, [`Error::Timeout`] (the task runs on).
    pub async fn wait_task(
        &self,
        task_id: &str,
        max_wait: Duration,
    ) -> Result<CallToolResult, Error> {
        let modern = self.tasks_era()?;
        let poll = async {
            loop {
                let task = self.get_task(task_id).await?;
                match task.status {
                    TaskStatus::Completed => {
                        return Ok(parse_result(Ok(task.result.unwrap_or_default()))?);
                    }
                    TaskStatus::Failed => {
                        let error = task.error.unwrap_or_else(|| {
                            mcp_proto::ErrorObject::internal("the task failed without an error")
                        });
                        return Err(Error::Protocol(mcp_proto::Error::Rpc(error)));
                    }
                    TaskStatus::Cancelled => return Err(Error::TaskCancelled(task_id.to_owned())),
                    TaskStatus::InputRequired => {
                        let questions = json!({ "inputRequests": task.input_requests });
                        let answers = modern.answer_inputs(&questions).await?;
                        self.update_task(task_id, answers).await?;
                        continue;
                    }
                    _ => {}
                }
                let interval = Duration::from_millis(task.poll_interval_ms.unwrap_or(500));
                tokio::time::sleep(interval.clamp(MIN_POLL, MAX_POLL)).await;
            }
        };
        tokio::time::timeout(max_wait, poll)
            .await
            .map_err(|_| Error::Timeout(max_wait, "the task to end"))?
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
