//! The steps of a run: tool lists, calls, approval requests, the answer, and the model loop that
//! chooses among them.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::draft::{Draft, Events};
use super::failure::call_result;
use super::{Answer, Shared, close_all, connect, new_id, with_timeout};
use crate::connector::{ConnectorError, ListedTool, McpConnection, ToolCallOutcome};
use crate::error::Error;
use crate::history::PendingApproval;
use crate::model::{ActivityResult, ChatMessage, ModelInput, ModelStep, ToolActivity};
use crate::response::{McpCall, Null, OutputItem, OutputText, Payload, Status};

/// One response in the making.
pub(super) struct Run<'a> {
    pub shared: &'a Shared,
    pub events: Events,
    pub draft: Draft,
    /// Open MCP sessions by server label.
    pub connections: HashMap<String, Box<dyn McpConnection>>,
}

impl Run<'_> {
    /// Announces the response, lists new servers' tools, answers approvals, then lets the model
    /// call tools until it answers or asks for an approval.
    pub async fn execute(
        &mut self,
        answers: Vec<Answer>,
        newly_listed: Vec<(String, Vec<ListedTool>)>,
    ) -> Result<(), Error> {
        for kind in ["response.created", "response.in_progress"] {
            let response = self.draft.body(Status::InProgress, None);
            self.events
                .emit(
                    kind,
                    Payload::Response {
                        response: Box::new(response),
                    },
                )
                .await;
        }
        for (server_label, tools) in newly_listed {
            self.list_tools_item(server_label, tools).await;
        }
        let calls = self.answer_approvals(answers).await;
        self.converse(calls).await
    }

    /// Runs the approved calls and records the denied ones; the number of calls made.
    async fn answer_approvals(&mut self, answers: Vec<Answer>) -> u32 {
        let mut calls = 0;
        for answer in answers {
            let PendingApproval {
                server_label,
                name,
                arguments,
            } = answer.pending;
            let arguments: Value =
                serde_json::from_str(&arguments).unwrap_or_else(|_| Value::Object(Map::new()));
            if answer.approve {
                let approval = Some(answer.approval_request_id);
                self.call_tool(server_label, name, arguments, approval)
                    .await;
                calls += 1;
            } else {
                self.draft.state.push_activity(ToolActivity {
                    server_label,
                    name,
                    arguments,
                    result: ActivityResult::Denied {
                        reason: answer.reason,
                    },
                });
            }
        }
        calls
    }

    /// Asks the model for steps until it answers or a call needs approval; after the most calls
    /// allowed, the model is offered no tools.
    async fn converse(&mut self, mut calls: u32) -> Result<(), Error> {
        let max = self.shared.max_tool_calls;
        let limit = self.draft.request.max_tool_calls.unwrap_or(max).min(max);
        loop {
            let offers = if calls >= limit {
                Vec::new()
            } else {
                self.draft.offers()
            };
            let input = ModelInput {
                instructions: self.draft.request.instructions.clone(),
                messages: self.draft.state.messages().to_vec(),
                tools: offers.clone(),
                activity: self.draft.state.activity().to_vec(),
            };
            let (server_label, name, arguments) = match ask_model(self.shared, input).await? {
                ModelStep::Answer(text) => {
                    self.message(text).await;
                    return Ok(());
                }
                ModelStep::CallTool {
                    server_label,
                    name,
                    arguments,
                } => (server_label, name, arguments),
            };
            let Some(offer) = offers
                .iter()
                .find(|o| o.server_label == server_label && o.tool.name == name)
            else {
                return Err(Error::UnknownToolChosen { server_label, name });
            };
            let needs_approval = self
                .draft
                .spec(&server_label)
                .is_some_and(|spec| spec.requires_approval(&offer.tool));
            if needs_approval {
                self.approval_request(server_label, name, arguments).await;
                return Ok(());
            }
            self.call_tool(server_label, name, arguments, None).await;
            calls += 1;
        }
    }

    /// An `mcp_list_tools` item (its tools arrive with `response.output_item.done`).
    async fn list_tools_item(&mut self, server_label: String, tools: Vec<ListedTool>) {
        let id = new_id("mcpl");
        let output_index = self.draft.output.len();
        let added = OutputItem::McpListTools {
            id: id.clone(),
            server_label: server_label.clone(),
            tools: Vec::new(),
            error: Null,
        };
        let events = &mut self.events;
        events
            .item("response.output_item.added", output_index, &added)
            .await;
        for kind in [
            "response.mcp_list_tools.in_progress",
            "response.mcp_list_tools.completed",
        ] {
            events.progress(kind, output_index, &id).await;
        }
        let item = OutputItem::McpListTools {
            id,
            server_label,
            tools,
            error: Null,
        };
        self.events
            .item("response.output_item.done", output_index, &item)
            .await;
        self.draft.output.push(item);
    }

    /// Calls a tool on its server, connecting first when no session is open. A failed call
    /// closes the session (it may be broken); a later call reconnects.
    async fn call_on_server(
        &mut self,
        server_label: &str,
        name: &str,
        arguments: Value,
    ) -> Result<ToolCallOutcome, ConnectorError> {
        let limit = self.shared.mcp_timeout;
        if !self.connections.contains_key(server_label) {
            let spec = self.draft.spec(server_label).ok_or_else(|| {
                ConnectorError::Unreachable(format!("no mcp tool labelled '{server_label}'"))
            })?;
            let connection = connect(self.shared, spec).await?;
            self.connections.insert(server_label.to_owned(), connection);
        }
        let Some(connection) = self.connections.get_mut(server_label) else {
            return Err(ConnectorError::Unreachable("connection lost".to_owned()));
        };
        let result = with_timeout(limit, connection.call_tool(name, arguments)).await;
        if result.is_err()
            && let Some(connection) = self.connections.remove(server_label)
        {
            close_all(
                HashMap::from([(server_label.to_owned(), connection)]),
                limit,
            )
            .await;
        }
        result
    }

    /// An `mcp_call` item: announced with its arguments, then completed or failed.
    async fn call_tool(
        &mut self,
        server_label: String,
        name: String,
        arguments: Value,
        approval_request_id: Option<String>,
    ) {
        let output_index = self.draft.output.len();
        let arguments_text = arguments.to_string();
        self.draft.output_chars += arguments_text.len();
        let mut call = McpCall {
            id: new_id("mcp"),
            server_label,
            name,
            arguments: String::new(),
            output: None,
            error: None,
            status: Status::InProgress,
            approval_request_id,
        };
        self.announce_call(output_index, &call, &arguments_text)
            .await;
        let outcome = self
            .call_on_server(&call.server_label, &call.name, arguments.clone())
            .await;
        let (result, told) = call_result(&call.server_label, outcome);
        let kind = if result.is_ok() {
            "response.mcp_call.completed"
        } else {
            "response.mcp_call.failed"
        };
        call.arguments = arguments_text;
        (call.output, call.error, call.status) = match result {
            Ok(output) => (Some(output), None, Status::Completed),
            Err(error) => (None, Some(error), Status::Failed),
        };
        let item_id = &call.id;
        self.events.progress(kind, output_index, item_id).await;
        let activity = ToolActivity {
            server_label: call.server_label.clone(),
            name: call.name.clone(),
            arguments,
            result: told,
        };
        let item = OutputItem::McpCall(call);
        self.events
            .item("response.output_item.done", output_index, &item)
            .await;
        self.draft.output.push(item);
        self.draft.state.push_activity(activity);
    }

    /// The events before a call runs: the item in progress and its arguments.
    async fn announce_call(&mut self, output_index: usize, call: &McpCall, arguments: &str) {
        let item = OutputItem::McpCall(call.clone());
        let item_id = &call.id;
        let events = &mut self.events;
        events
            .item("response.output_item.added", output_index, &item)
            .await;
        events
            .progress("response.mcp_call.in_progress", output_index, item_id)
            .await;
        let delta = arguments;
        let delta = Payload::ArgumentsDelta {
            output_index,
            item_id,
            delta,
        };
        events
            .emit("response.mcp_call_arguments.delta", delta)
            .await;
        let done = Payload::ArgumentsDone {
            output_index,
            item_id,
            arguments,
        };
        events.emit("response.mcp_call_arguments.done", done).await;
    }

    /// An `mcp_approval_request` item; the response ends with it.
    async fn approval_request(&mut self, server_label: String, name: String, arguments: Value) {
        let id = new_id("mcpr");
        let arguments = arguments.to_string();
        self.draft.output_chars += arguments.len();
        let output_index = self.draft.output.len();
        let pending = PendingApproval {
            server_label: server_label.clone(),
            name: name.clone(),
            arguments: arguments.clone(),
        };
        let item = OutputItem::McpApprovalRequest {
            id: id.clone(),
            server_label,
            name,
            arguments,
        };
        for kind in ["response.output_item.added", "response.output_item.done"] {
            self.events.item(kind, output_index, &item).await;
        }
        self.draft.output.push(item);
        self.draft.state.request_approval(id, pending);
    }

    /// The answer: a `message` item whose text streams in word by word.
    async fn message(&mut self, text: String) {
        let item_id = new_id("msg");
        let output_index = self.draft.output.len();
        self.draft.output_chars += text.len();
        let added = OutputItem::Message {
            id: item_id.clone(),
            status: Status::InProgress,
            role: "assistant",
            content: Vec::new(),
        };
        self.events
            .item("response.output_item.added", output_index, &added)
            .await;
        self.stream_text(&item_id, output_index, &text).await;
        let item = OutputItem::Message {
            id: item_id,
            status: Status::Completed,
            role: "assistant",
            content: vec![OutputText::new(text.clone())],
        };
        self.events
            .item("response.output_item.done", output_index, &item)
            .await;
        self.draft.output.push(item);
        self.draft.state.push_message(ChatMessage {
            role: "assistant".to_owned(),
            text,
        });
    }

    /// A message's content part: added empty, its text in deltas, then done.
    async fn stream_text(&mut self, item_id: &str, output_index: usize, text: &str) {
        let content_index = 0;
        let (empty, part) = (
            OutputText::new(String::new()),
            OutputText::new(text.to_owned()),
        );
        let added = Payload::Part {
            item_id,
            output_index,
            content_index,
            part: &empty,
        };
        self.events.emit("response.content_part.added", added).await;
        for delta in text.split_inclusive(' ') {
            let logprobs = [];
            let payload = Payload::TextDelta {
                item_id,
                output_index,
                content_index,
                delta,
                logprobs,
            };
            self.events
                .emit("response.output_text.delta", payload)
                .await;
        }
        let logprobs = [];
        let done = Payload::TextDone {
            item_id,
            output_index,
            content_index,
            text,
            logprobs,
        };
        self.events.emit("response.output_text.done", done).await;
        let done = Payload::Part {
            item_id,
            output_index,
            content_index,
            part: &part,
        };
        self.events.emit("response.content_part.done", done).await;
    }
}

/// The model's next step, under the model timeout.
async fn ask_model(shared: &Shared, input: ModelInput) -> Result<ModelStep, Error> {
    tokio::time::timeout(shared.model_timeout, shared.model.next_step(input))
        .await
        .map_err(|_| Error::Model("the model did not answer in time".into()))?
}
