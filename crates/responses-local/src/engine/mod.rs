//! Building one response: listing tools, asking the model, running calls, emitting events.
//!
//! [`prepare`] does everything that can still fail with an HTTP error (chain lookup, approval
//! answers, tool listing: a listing failure is the 424); [`run`] then produces the output items
//! ([`steps`]) into a [`draft`] of the response, emitting the stream events as it goes when a
//! sender is given.

mod draft;
mod failure;
mod steps;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::connector::{ConnectorError, ListedTool, McpConnection, McpConnector, McpTarget};
use crate::error::ApiError;
use crate::history::{ChainState, PendingApproval};
use crate::model::{ChatMessage, Model};
use crate::request::{CreateRequest, InputItem, McpToolSpec};
use crate::response::{EncodedEvent, Payload, ResponseError, Status};
use crate::store::ResponseStore;
use draft::{Draft, Events};
use failure::list_tools_error;
use steps::Run;

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

fn new_id(prefix: &str) -> String {
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
        let shown: Vec<ListedTool> = tools.iter().filter(|t| spec.allows(t)).cloned().collect();
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
            InputItem::ApprovalResponse { .. } | InputItem::Earlier => {}
        }
    }
}

/// Matches the input's approval answers with pending requests of this request's servers.
fn take_answers(state: &mut ChainState, request: &CreateRequest) -> Result<Vec<Answer>, ApiError> {
    let mut answers = Vec::new();
    for (index, item) in request.input.iter().enumerate() {
        let InputItem::ApprovalResponse {
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

/// Runs a prepared request to its end; with `tx`, emits every stream event into it. The answer
/// is the response body as JSON text.
pub(crate) async fn run(
    shared: &Shared,
    prepared: Prepared,
    tx: Option<mpsc::Sender<EncodedEvent>>,
) -> Result<String, ApiError> {
    let Prepared {
        request,
        state,
        answers,
        newly_listed,
        connections,
    } = prepared;
    let draft = Draft::new(new_id("resp"), now(), request, state);
    let mut run = Run {
        shared,
        events: Events::new(tx, draft.id.clone()),
        draft,
        connections,
    };
    let result = run.execute(answers, newly_listed).await;
    close_all(std::mem::take(&mut run.connections), shared.mcp_timeout).await;
    match result {
        Ok(()) => Ok(finish(shared, run).await?),
        Err(error) => {
            let message = mcp_proto::error_chain(&error);
            tracing::warn!(response_id = %run.draft.id, error = %message, "response failed");
            let error = ResponseError {
                code: "server_error",
                message: message.clone(),
            };
            let response = run.draft.body(Status::Failed, Some(error));
            run.events
                .emit(
                    "response.failed",
                    Payload::Response {
                        response: Box::new(response),
                    },
                )
                .await;
            Err(ApiError::server(message))
        }
    }
}

/// Completes a run: stores the response (before telling the stream, so that a client may fetch
/// it as soon as it reads `response.completed`) and returns its body.
async fn finish(shared: &Shared, mut run: Run<'_>) -> Result<String, ApiError> {
    let response = run.draft.body(Status::Completed, None);
    let body = serde_json::to_string(&response).map_err(|e| ApiError::server(e.to_string()))?;
    let completed = run.events.encode(
        "response.completed",
        Payload::Response {
            response: Box::new(response),
        },
    );
    if run.draft.request.store {
        let (parent, items) = std::mem::take(&mut run.draft.state).into_link_parts();
        shared
            .store
            .insert(run.draft.id.clone(), body.clone(), parent, items);
    }
    run.events.send(completed).await;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefixes() {
        let id = new_id("resp");
        assert!(id.starts_with("resp_"));
        assert_eq!(id.len(), 5 + 48);
    }
}
