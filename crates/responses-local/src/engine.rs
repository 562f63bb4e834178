//! Building one response: listing tools, asking the model, running calls, emitting events.
//!
//! [`prepare`] does everything that can still fail with an HTTP error (chain lookup, approval
//! answers, tool listing: a listing failure is the 424); [`run`] then produces the output items,
//! emitting the stream events as it goes when a sender is given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::connector::{
    ConnectorError, ListedTool, McpConnection, McpConnector, McpTarget, ToolCallOutcome,
};
use crate::error::{ApiError, Error};
use crate::history::{ChainState, PendingApproval};
use crate::model::{
    ActivityResult, ChatMessage, Model, ModelInput, ModelStep, ToolActivity, ToolOffer,
};
use crate::request::{CreateRequest, InputItem, McpToolSpec};
use crate::store::ResponseStore;

/// How long a stream event may wait for a slow reader before the stream is dropped.
const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by all requests.
pub(crate) struct Shared {
    pub connector: Arc<dyn McpConnector>,
    pub model: Arc<dyn Model>,
    pub store: ResponseStore,
    pub mcp_timeout: Duration,
    pub model_timeout: Duration,
    pub max_tool_calls: u32,
    /// The most `mcp` tools one request may carry.
    pub max_mcp_tools: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store.usage())
            .field("mcp_timeout", &self.mcp_timeout)
            .field("model_timeout", &self.model_timeout)
            .field("max_tool_calls", &self.max_tool_calls)
            .field("max_mcp_tools", &self.max_mcp_tools)
            .finish_non_exhaustive()
    }
}

struct Answer {
    approval_request_id: String,
    approve: bool,
    reason: Option<String>,
    pending: PendingApproval,
}

/// A request that passed every check that answers with an HTTP error.
pub(crate) struct Prepared {
    request: CreateRequest,
    state: ChainState,
    answers: Vec<Answer>,
    newly_listed: Vec<(String, Vec<ListedTool>)>,
    connections: HashMap<String, Box<dyn McpConnection>>,
}

pub(crate) fn new_id(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn target(spec: &McpToolSpec) -> McpTarget {
    McpTarget {
        server_label: spec.server_label.clone(),
        server_url: spec.server_url.clone(),
        headers: spec.headers.clone(),
    }
}

/// The 424 for a server whose tool list could not be fetched.
///
/// An HTTP failure reproduces OpenAI's body exactly (`code` `http_error`). A server that could not
/// be reached at all (refused, reset, DNS, TLS, no HTTP answer, no answer in time while
/// connecting) gets one text whatever the cause, the one OpenAI shows for such servers ("Http
/// status code: 424 (Failed Dependency)"), so the answer does not tell which local ports are
/// open; the cause goes to the log. Timeouts and protocol errors of a server that did answer
/// `initialize` keep their own codes (`timeout_error`, `mcp_protocol_error`).
pub(crate) fn list_tools_error(server_label: &str, error: &ConnectorError) -> ApiError {
    let prefix = format!("Error retrieving tool list from MCP server: '{server_label}'.");
    let (detail, code) = match error {
        ConnectorError::Http { status, reason } => (
            format!(
                "Http status code: {status} ({})",
                reason_phrase(*status, reason)
            ),
            "http_error",
        ),
        ConnectorError::Unreachable(_) => (
            format!(
                "Http status code: {} ({})",
                UNREACHABLE_STATUS.as_u16(),
                reason_phrase(UNREACHABLE_STATUS.as_u16(), "")
            ),
            "http_error",
        ),
        ConnectorError::Timeout => ("Request timed out.".to_owned(), "timeout_error"),
        ConnectorError::Protocol { code, message } => (
            format!("MCP protocol error {code}: {message}"),
            "mcp_protocol_error",
        ),
    };
    ApiError::new(
        StatusCode::FAILED_DEPENDENCY,
        "external_connector_error",
        format!("{prefix} {detail}"),
        Some("tools"),
        Some(code),
    )
}

/// The status reported for a server that could not be reached, whatever the cause.
const UNREACHABLE_STATUS: StatusCode = StatusCode::FAILED_DEPENDENCY;

/// Connects under the MCP timeout; any failure to reach the server, a timeout included, is
/// [`ConnectorError::Unreachable`] (with the cause, for the log only).
async fn connect(
    shared: &Shared,
    spec: &McpToolSpec,
) -> Result<Box<dyn McpConnection>, ConnectorError> {
    match with_timeout(shared.mcp_timeout, shared.connector.connect(target(spec))).await {
        Err(ConnectorError::Timeout) => Err(ConnectorError::Unreachable(format!(
            "no answer within {:?}",
            shared.mcp_timeout
        ))),
        other => other,
    }
}

fn reason_phrase(status: u16, reason: &str) -> String {
    if reason.is_empty() {
        StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown")
            .to_owned()
    } else {
        reason.to_owned()
    }
}

/// The `output` and `error` of an `mcp_call` item, and what the model is told, for the
/// outcome of a call.
fn call_result(
    server_label: &str,
    outcome: Result<ToolCallOutcome, ConnectorError>,
) -> (Value, Value, ActivityResult) {
    match outcome {
        Ok(ToolCallOutcome::Output(text)) => (
            Value::String(text.clone()),
            Value::Null,
            ActivityResult::Output(text),
        ),
        Ok(ToolCallOutcome::ToolExecutionError { content }) => {
            let text: Vec<&str> = content
                .iter()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect();
            (
                Value::Null,
                json!({"type": "mcp_tool_execution_error", "content": content}),
                ActivityResult::Failed(text.join(" ")),
            )
        }
        Ok(ToolCallOutcome::ProtocolError { code, message })
        | Err(ConnectorError::Protocol { code, message }) => (
            Value::Null,
            json!({"type": "mcp_protocol_error", "code": code, "message": message}),
            ActivityResult::Failed(message),
        ),
        Err(ConnectorError::Http { status, reason }) => http_failure(status, &reason),
        Err(ConnectorError::Unreachable(why)) => {
            tracing::info!(%server_label, %why, "calling an MCP tool: server unreachable");
            http_failure(UNREACHABLE_STATUS.as_u16(), "")
        }
        Err(ConnectorError::Timeout) => (
            Value::Null,
            json!({"type": "http_error", "code": 504, "message": "Request timed out"}),
            ActivityResult::Failed("the request timed out".to_owned()),
        ),
    }
}

/// A failed call's `http_error` for an HTTP status (424 stands for "could not reach").
fn http_failure(status: u16, reason: &str) -> (Value, Value, ActivityResult) {
    let message = reason_phrase(status, reason);
    (
        Value::Null,
        json!({"type": "http_error", "code": status, "message": message}),
        ActivityResult::Failed(format!("HTTP {status} ({message})")),
    )
}

async fn with_timeout<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or(Err(ConnectorError::Timeout))
}

async fn close_all(connections: HashMap<String, Box<dyn McpConnection>>, limit: Duration) {
    for (label, connection) in connections {
        if tokio::time::timeout(limit, connection.close())
            .await
            .is_err()
        {
            tracing::warn!(server_label = %label, "closing the MCP session timed out");
        }
    }
}

/// Checks the chain and approval answers and lists the tools of servers not listed earlier.
pub(crate) async fn prepare(shared: &Shared, request: CreateRequest) -> Result<Prepared, ApiError> {
    let mut state = chain_state(shared, request.previous_response_id.as_deref())?;
    record_input(&mut state, &request.input);
    let answers = take_answers(&mut state, &request)?;
    let unlisted: Vec<&McpToolSpec> = request
        .tools
        .iter()
        .filter(|spec| state.listed(&spec.server_label).is_none())
        .collect();
    let opened = list_servers(shared, &unlisted).await?;
    let mut connections = HashMap::new();
    let mut newly_listed = Vec::new();
    for (spec, connection, tools) in opened {
        let shown: Vec<ListedTool> = tools
            .iter()
            .filter(|t| spec.allowed.as_ref().is_none_or(|f| f.matches(t)))
            .cloned()
            .collect();
        newly_listed.push((spec.server_label.clone(), shown));
        state.list_if_absent(&spec.server_label, &tools);
        connections.insert(spec.server_label.clone(), connection);
    }
    Ok(Prepared {
        request,
        state,
        answers,
        newly_listed,
        connections,
    })
}

/// The state after the `previous_response_id` chain; 400 when the id is unknown or evicted.
fn chain_state(shared: &Shared, previous: Option<&str>) -> Result<ChainState, ApiError> {
    let Some(id) = previous else {
        return Ok(ChainState::continue_from(None));
    };
    let stored = shared.store.get(id).ok_or_else(|| {
        ApiError::invalid(
            format!("Previous response with id '{id}' not found."),
            Some("previous_response_id"),
            Some("previous_response_not_found"),
        )
    })?;
    Ok(ChainState::continue_from(Some(stored.history.clone())))
}

/// Records the input's messages, approval requests and tool lists.
fn record_input(state: &mut ChainState, input: &[InputItem]) {
    for item in input {
        match item {
            InputItem::Message { role, text } => state.push_message(ChatMessage {
                role: role.clone(),
                text: text.clone(),
            }),
            InputItem::ApprovalRequest {
                id,
                server_label,
                name,
                arguments,
            } => state.request_approval(
                id.clone(),
                PendingApproval {
                    server_label: server_label.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
            ),
            InputItem::ListTools {
                server_label,
                tools,
            } => {
                state.list_if_absent(server_label, tools);
            }
            InputItem::ApprovalResponse { .. } => {}
        }
    }
}

/// Matches the input's approval answers with pending requests of this request's servers.
fn take_answers(state: &mut ChainState, request: &CreateRequest) -> Result<Vec<Answer>, ApiError> {
    let mut answers = Vec::new();
    for item in &request.input {
        let InputItem::ApprovalResponse {
            index,
            approval_request_id,
            approve,
            reason,
        } = item
        else {
            continue;
        };
        let param = format!("input[{index}].approval_request_id");
        let pending = state.take_approval(approval_request_id).ok_or_else(|| {
            ApiError::invalid(
                format!("No pending approval request found with id '{approval_request_id}'."),
                Some(&param),
                Some("invalid_value"),
            )
        })?;
        if !request
            .tools
            .iter()
            .any(|t| t.server_label == pending.server_label)
        {
            return Err(ApiError::invalid(
                format!(
                    "Approval request '{approval_request_id}' is for MCP server '{}', which is not \
                     among this request's tools.",
                    pending.server_label
                ),
                Some(&param),
                Some("invalid_value"),
            ));
        }
        answers.push(Answer {
            approval_request_id: approval_request_id.clone(),
            approve: *approve,
            reason: reason.clone(),
            pending,
        });
    }
    Ok(answers)
}

/// A server connected and listed: its spec, the open session and its full tool list.
type Opened<'a> = (&'a McpToolSpec, Box<dyn McpConnection>, Vec<ListedTool>);

/// Connects to and lists every server at once, each under the MCP timeout. The result keeps the
/// order of `specs`; when any failed, all opened sessions are closed and the 424 names the first
/// failed server in that order.
async fn list_servers<'a>(
    shared: &Shared,
    specs: &[&'a McpToolSpec],
) -> Result<Vec<Opened<'a>>, ApiError> {
    let results =
        futures::future::join_all(specs.iter().map(|spec| connect_and_list(shared, spec))).await;
    let mut opened = Vec::new();
    let mut failure = None;
    for (spec, result) in specs.iter().zip(results) {
        match result {
            Ok((connection, tools)) => opened.push((*spec, connection, tools)),
            Err(error) => {
                tracing::info!(server_label = %spec.server_label, %error, "listing MCP tools failed");
                failure.get_or_insert_with(|| list_tools_error(&spec.server_label, &error));
            }
        }
    }
    let Some(failure) = failure else {
        return Ok(opened);
    };
    let connections = opened
        .into_iter()
        .map(|(spec, connection, _)| (spec.server_label.clone(), connection))
        .collect();
    close_all(connections, shared.mcp_timeout).await;
    Err(failure)
}

/// Opens a session with one server and lists its tools (closing the session on failure).
async fn connect_and_list(
    shared: &Shared,
    spec: &McpToolSpec,
) -> Result<(Box<dyn McpConnection>, Vec<ListedTool>), ConnectorError> {
    let mut connection = connect(shared, spec).await?;
    match with_timeout(shared.mcp_timeout, connection.list_tools()).await {
        Ok(tools) => Ok((connection, tools)),
        Err(e) => {
            close_all(
                HashMap::from([(spec.server_label.clone(), connection)]),
                shared.mcp_timeout,
            )
            .await;
            Err(e)
        }
    }
}

fn listed_tool_json(tool: &ListedTool) -> Value {
    json!({
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "annotations": tool.annotations,
    })
}

fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

struct Run<'a> {
    shared: &'a Shared,
    request: CreateRequest,
    state: ChainState,
    connections: HashMap<String, Box<dyn McpConnection>>,
    id: String,
    created_at: u64,
    output: Vec<Value>,
    output_chars: usize,
    tx: Option<mpsc::Sender<Value>>,
    sequence: u64,
}

impl Run<'_> {
    async fn emit(&mut self, kind: &str, fields: Value) {
        let Some(tx) = &self.tx else { return };
        let mut event = json!({"type": kind, "sequence_number": self.sequence});
        self.sequence += 1;
        if let (Value::Object(event), Value::Object(fields)) = (&mut event, fields) {
            event.extend(fields);
        }
        let sent = tokio::time::timeout(STREAM_SEND_TIMEOUT, tx.send(event)).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!(response_id = %self.id, "stream reader went away; finishing without it");
            self.tx = None;
        }
    }

    fn usage(&self) -> Value {
        let mut input_chars: usize = self.state.messages().iter().map(|m| m.text.len()).sum();
        input_chars += self.request.instructions.as_ref().map_or(0, String::len);
        input_chars += self
            .state
            .all_listed()
            .map(|t| listed_tool_json(t).to_string().len())
            .sum::<usize>();
        let input = tokens(input_chars).max(1);
        let output = tokens(self.output_chars);
        json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input + output,
        })
    }

    fn output_text(&self) -> String {
        self.output
            .iter()
            .filter(|item| item["type"] == "message")
            .flat_map(|item| item["content"].as_array().into_iter().flatten())
            .filter(|part| part["type"] == "output_text")
            .filter_map(|part| part["text"].as_str())
            .collect()
    }

    fn body(&self, status: &str) -> Value {
        let r = &self.request;
        let finished = status != "in_progress";
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": false,
            "completed_at": if status == "completed" { Some(now()) } else { None },
            "error": null,
            "incomplete_details": null,
            "instructions": r.instructions,
            "max_output_tokens": null,
            "max_tool_calls": r.max_tool_calls,
            "model": r.model,
            "output": if finished { self.output.clone() } else { Vec::new() },
            "parallel_tool_calls": r.parallel_tool_calls,
            "previous_response_id": r.previous_response_id,
            "reasoning": {"effort": null, "summary": null},
            "service_tier": "default",
            "store": r.store,
            "temperature": r.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": r.tool_choice,
            "tools": r.tools_echo,
            "top_logprobs": 0,
            "top_p": r.top_p,
            "truncation": "disabled",
            "usage": if finished { self.usage() } else { Value::Null },
            "user": null,
            "metadata": r.metadata,
            "output_text": self.output_text(),
        })
    }

    async fn list_tools_item(&mut self, server_label: String, tools: Vec<ListedTool>) {
        let item_id = new_id("mcpl");
        let output_index = self.output.len();
        let mut item = json!({
            "type": "mcp_list_tools",
            "id": item_id,
            "server_label": server_label,
            "tools": [],
            "error": null,
        });
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        let at = json!({"output_index": output_index, "item_id": item_id});
        self.emit("response.mcp_list_tools.in_progress", at.clone())
            .await;
        self.emit("response.mcp_list_tools.completed", at).await;
        item["tools"] = Value::Array(tools.iter().map(listed_tool_json).collect());
        self.emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        self.output.push(item);
    }

    fn spec(&self, server_label: &str) -> Option<&McpToolSpec> {
        self.request
            .tools
            .iter()
            .find(|t| t.server_label == server_label)
    }

    async fn call_on_server(
        &mut self,
        server_label: &str,
        name: &str,
        arguments: Value,
    ) -> Result<ToolCallOutcome, ConnectorError> {
        let limit = self.shared.mcp_timeout;
        if !self.connections.contains_key(server_label) {
            let spec = self.spec(server_label).ok_or_else(|| {
                ConnectorError::Unreachable(format!("no mcp tool labelled '{server_label}'"))
            })?;
            let connection = connect(self.shared, spec).await?;
            self.connections.insert(server_label.to_owned(), connection);
        }
        let Some(connection) = self.connections.get_mut(server_label) else {
            return Err(ConnectorError::Unreachable("connection lost".to_owned()));
        };
        let result = with_timeout(limit, connection.call_tool(name, arguments)).await;
        if result.is_err() {
            // The session may be broken; a later call reconnects.
            if let Some(connection) = self.connections.remove(server_label) {
                close_all(
                    HashMap::from([(server_label.to_owned(), connection)]),
                    limit,
                )
                .await;
            }
        }
        result
    }

    async fn call_tool(
        &mut self,
        server_label: String,
        name: String,
        arguments: Value,
        approval_request_id: Option<String>,
    ) {
        let item_id = new_id("mcp");
        let output_index = self.output.len();
        let arguments_text = arguments.to_string();
        self.output_chars += arguments_text.len();
        let mut item = json!({
            "type": "mcp_call",
            "id": item_id,
            "server_label": server_label,
            "name": name,
            "arguments": "",
            "output": null,
            "error": null,
            "status": "in_progress",
            "approval_request_id": approval_request_id,
        });
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        let at = json!({"output_index": output_index, "item_id": item_id});
        self.emit("response.mcp_call.in_progress", at.clone()).await;
        self.emit(
            "response.mcp_call_arguments.delta",
            json!({"output_index": output_index, "item_id": item_id, "delta": arguments_text}),
        )
        .await;
        self.emit(
            "response.mcp_call_arguments.done",
            json!({"output_index": output_index, "item_id": item_id, "arguments": arguments_text}),
        )
        .await;

        let outcome = self
            .call_on_server(&server_label, &name, arguments.clone())
            .await;
        let (output, error, result) = call_result(&server_label, outcome);
        let failed = !error.is_null();
        item["arguments"] = Value::String(arguments_text);
        item["output"] = output;
        item["error"] = error;
        item["status"] = Value::from(if failed { "failed" } else { "completed" });
        self.emit(
            if failed {
                "response.mcp_call.failed"
            } else {
                "response.mcp_call.completed"
            },
            at,
        )
        .await;
        self.emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        self.output.push(item);
        self.state.push_activity(ToolActivity {
            server_label,
            name,
            arguments,
            result,
        });
    }

    async fn approval_request(&mut self, server_label: String, name: String, arguments: Value) {
        let id = new_id("mcpr");
        let arguments = arguments.to_string();
        self.output_chars += arguments.len();
        let output_index = self.output.len();
        let item = json!({
            "type": "mcp_approval_request",
            "id": id,
            "server_label": server_label,
            "name": name,
            "arguments": arguments,
        });
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        self.emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        self.output.push(item);
        self.state.request_approval(
            id,
            PendingApproval {
                server_label,
                name,
                arguments,
            },
        );
    }

    async fn message(&mut self, text: String) {
        let item_id = new_id("msg");
        let output_index = self.output.len();
        self.output_chars += text.len();
        let at = |extra: Value| {
            let mut v =
                json!({"item_id": item_id, "output_index": output_index, "content_index": 0});
            if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
                v.extend(extra);
            }
            v
        };
        let empty_part =
            json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
        let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
        self.emit(
            "response.output_item.added",
            json!({"output_index": output_index, "item": {
                "type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []
            }}),
        )
        .await;
        self.emit(
            "response.content_part.added",
            at(json!({"part": empty_part})),
        )
        .await;
        for delta in text.split_inclusive(' ') {
            self.emit(
                "response.output_text.delta",
                at(json!({"delta": delta, "logprobs": []})),
            )
            .await;
        }
        self.emit(
            "response.output_text.done",
            at(json!({"text": text, "logprobs": []})),
        )
        .await;
        self.emit("response.content_part.done", at(json!({"part": part})))
            .await;
        let item = json!({
            "type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": [part]
        });
        self.emit(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        )
        .await;
        self.output.push(item);
        self.state.push_message(ChatMessage {
            role: "assistant".to_owned(),
            text,
        });
    }

    fn offers(&self) -> Vec<ToolOffer> {
        if self.request.tools_disabled {
            return Vec::new();
        }
        // `tool_choice: {"type":"mcp","server_label":…,"name":…}` narrows the offer.
        let choice = &self.request.tool_choice;
        let forced_label = choice.get("server_label").and_then(Value::as_str);
        let forced_name = choice.get("name").and_then(Value::as_str);
        self.request
            .tools
            .iter()
            .filter(|spec| forced_label.is_none_or(|l| l == spec.server_label))
            .flat_map(|spec| {
                self.state
                    .listed(&spec.server_label)
                    .into_iter()
                    .flatten()
                    .filter(|t| spec.allowed.as_ref().is_none_or(|f| f.matches(t)))
                    .filter(|t| forced_name.is_none_or(|n| n == t.name))
                    .map(|t| ToolOffer {
                        server_label: spec.server_label.clone(),
                        tool: t.clone(),
                    })
            })
            .collect()
    }

    async fn execute(
        &mut self,
        prepared_answers: Vec<Answer>,
        newly_listed: Vec<(String, Vec<ListedTool>)>,
    ) -> Result<(), Error> {
        let snapshot = self.body("in_progress");
        self.emit("response.created", json!({"response": snapshot.clone()}))
            .await;
        self.emit("response.in_progress", json!({"response": snapshot}))
            .await;
        for (server_label, tools) in newly_listed {
            self.list_tools_item(server_label, tools).await;
        }
        let mut calls: u32 = 0;
        for answer in prepared_answers {
            let PendingApproval {
                server_label,
                name,
                arguments,
            } = answer.pending;
            let arguments_value: Value =
                serde_json::from_str(&arguments).unwrap_or(Value::Object(Default::default()));
            if answer.approve {
                self.call_tool(
                    server_label,
                    name,
                    arguments_value,
                    Some(answer.approval_request_id),
                )
                .await;
                calls += 1;
            } else {
                self.state.push_activity(ToolActivity {
                    server_label,
                    name,
                    arguments: arguments_value,
                    result: ActivityResult::Denied {
                        reason: answer.reason,
                    },
                });
            }
        }

        let limit = self
            .request
            .max_tool_calls
            .unwrap_or(self.shared.max_tool_calls)
            .min(self.shared.max_tool_calls);
        loop {
            let tools = if calls >= limit {
                Vec::new()
            } else {
                self.offers()
            };
            let input = ModelInput {
                instructions: self.request.instructions.clone(),
                messages: self.state.messages().to_vec(),
                tools: tools.clone(),
                activity: self.state.activity().to_vec(),
            };
            let step = tokio::time::timeout(
                self.shared.model_timeout,
                self.shared.model.next_step(input),
            )
            .await
            .map_err(|_| Error::Model("the model did not answer in time".into()))??;
            match step {
                ModelStep::Answer(text) => {
                    self.message(text).await;
                    return Ok(());
                }
                ModelStep::CallTool {
                    server_label,
                    name,
                    arguments,
                } => {
                    let Some(offer) = tools
                        .iter()
                        .find(|o| o.server_label == server_label && o.tool.name == name)
                    else {
                        return Err(Error::UnknownToolChosen { server_label, name });
                    };
                    let needs_approval = self
                        .spec(&server_label)
                        .is_some_and(|spec| spec.approval.requires_approval(&offer.tool));
                    if needs_approval {
                        self.approval_request(server_label, name, arguments).await;
                        return Ok(());
                    }
                    self.call_tool(server_label, name, arguments, None).await;
                    calls += 1;
                }
            }
        }
    }
}

/// Runs a prepared request to its end; with `tx`, emits every stream event into it.
pub(crate) async fn run(
    shared: &Shared,
    prepared: Prepared,
    tx: Option<mpsc::Sender<Value>>,
) -> Result<Value, ApiError> {
    let Prepared {
        request,
        state,
        answers,
        newly_listed,
        connections,
    } = prepared;
    let mut run = Run {
        shared,
        request,
        state,
        connections,
        id: new_id("resp"),
        created_at: now(),
        output: Vec::new(),
        output_chars: 0,
        tx,
        sequence: 0,
    };
    let result = run.execute(answers, newly_listed).await;
    close_all(std::mem::take(&mut run.connections), shared.mcp_timeout).await;
    match result {
        Ok(()) => {
            let body = run.body("completed");
            if run.request.store {
                let (parent, items) = std::mem::take(&mut run.state).into_link_parts();
                shared
                    .store
                    .insert(run.id.clone(), body.to_string(), parent, items);
            }
            run.emit("response.completed", json!({"response": body.clone()}))
                .await;
            Ok(body)
        }
        Err(error) => {
            let message = mcp_proto::error_chain(&error);
            tracing::warn!(response_id = %run.id, error = %message, "response failed");
            let mut body = run.body("failed");
            body["error"] = json!({"code": "server_error", "message": message});
            run.emit("response.failed", json!({"response": body})).await;
            Err(ApiError::server(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_424_body_is_openais() {
        let e = list_tools_error(
            "dice_server",
            &ConnectorError::Http {
                status: 401,
                reason: "Unauthorized".to_owned(),
            },
        );
        assert_eq!(e.status, StatusCode::FAILED_DEPENDENCY);
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)","type":"external_connector_error","param":"tools","code":"http_error"}}"#
        );
    }

    #[test]
    fn an_empty_reason_uses_the_standard_phrase() {
        let e = list_tools_error(
            "s",
            &ConnectorError::Http {
                status: 403,
                reason: String::new(),
            },
        );
        assert_eq!(
            e.error.message,
            "Error retrieving tool list from MCP server: 's'. Http status code: 403 (Forbidden)"
        );
    }

    #[test]
    fn ids_have_prefixes() {
        let id = new_id("resp");
        assert!(id.starts_with("resp_"));
        assert_eq!(id.len(), 5 + 48);
    }
}
