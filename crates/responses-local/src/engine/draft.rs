//! The response being built, and the stream its events go to.

use std::time::Duration;

use tokio::sync::mpsc;

use super::now;
use crate::history::ChainState;
use crate::model::ToolOffer;
use crate::request::{CreateRequest, McpToolChoice, McpToolSpec, ToolChoice};
use crate::response::{
    EncodedEvent, InputTokensDetails, Null, OutputItem, OutputTokensDetails, Payload, Reasoning,
    ResponseBody, ResponseError, Status, StreamEvent, TextConfig, Usage,
};

/// How long a stream event may wait for a slow reader before the stream is dropped.
const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The response being built: the request, the chain's state and the output so far.
pub(super) struct Draft {
    pub id: String,
    created_at: u64,
    pub request: CreateRequest,
    pub state: ChainState,
    pub output: Vec<OutputItem>,
    /// Bytes of arguments and text the model wrote, for the usage estimate.
    pub output_chars: usize,
}

impl Draft {
    pub fn new(id: String, created_at: u64, request: CreateRequest, state: ChainState) -> Self {
        Self {
            id,
            created_at,
            request,
            state,
            output: Vec::new(),
            output_chars: 0,
        }
    }

    /// The request's `mcp` tool labelled `server_label`.
    pub fn spec(&self, server_label: &str) -> Option<&McpToolSpec> {
        self.request
            .tools
            .iter()
            .find(|t| t.server_label == server_label)
    }

    /// The tools the model may call: the listed ones `allowed_tools` lets through, narrowed by
    /// `tool_choice` (none for `"none"`, one server or tool for an `mcp` choice).
    pub fn offers(&self) -> Vec<ToolOffer> {
        let (forced_label, forced_name) = match &self.request.tool_choice {
            ToolChoice::None => return Vec::new(),
            ToolChoice::Auto | ToolChoice::Required => (None, None),
            ToolChoice::Mcp(McpToolChoice { server_label, name }) => {
                (Some(server_label.as_str()), name.as_deref())
            }
        };
        self.request
            .tools
            .iter()
            .filter(|spec| forced_label.is_none_or(|l| l == spec.server_label))
            .flat_map(|spec| {
                self.state
                    .listed(&spec.server_label)
                    .into_iter()
                    .flatten()
                    .filter(|t| spec.allows(t))
                    .filter(|t| forced_name.is_none_or(|n| n == t.name))
                    .map(|t| ToolOffer {
                        server_label: spec.server_label.clone(),
                        tool: t.clone(),
                    })
            })
            .collect()
    }

    /// Tokens estimated at one per 4 bytes: the conversation, instructions and tool lists in,
    /// the arguments and text written out.
    fn usage(&self) -> Usage {
        let mut input_chars: usize = self.state.messages().iter().map(|m| m.text.len()).sum();
        input_chars += self.request.instructions.as_ref().map_or(0, String::len);
        input_chars += self
            .state
            .all_listed()
            .map(|t| serde_json::to_string(t).map_or(0, |json| json.len()))
            .sum::<usize>();
        let input = tokens(input_chars).max(1);
        let output = tokens(self.output_chars);
        Usage {
            input_tokens: input,
            input_tokens_details: InputTokensDetails::default(),
            output_tokens: output,
            output_tokens_details: OutputTokensDetails::default(),
            total_tokens: input + output,
        }
    }

    fn output_text(&self) -> String {
        self.output
            .iter()
            .filter_map(|item| match item {
                OutputItem::Message { content, .. } => Some(content),
                _ => None,
            })
            .flatten()
            .map(|part| part.text.as_str())
            .collect()
    }

    /// The response object with this `status`; `output` and `usage` only once finished.
    pub fn body(&self, status: Status, error: Option<ResponseError>) -> ResponseBody<'_> {
        let r = &self.request;
        let finished = status != Status::InProgress;
        ResponseBody {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            background: false,
            completed_at: (status == Status::Completed).then(now),
            error,
            incomplete_details: Null,
            instructions: r.instructions.as_deref(),
            max_output_tokens: Null,
            max_tool_calls: r.max_tool_calls,
            model: &r.model,
            output: if finished { &self.output } else { &[] },
            parallel_tool_calls: r.parallel_tool_calls,
            previous_response_id: r.previous_response_id.as_deref(),
            reasoning: Reasoning::default(),
            service_tier: "default",
            store: r.store,
            temperature: r.temperature,
            text: TextConfig::default(),
            tool_choice: &r.tool_choice,
            tools: &r.tools,
            top_logprobs: 0,
            top_p: r.top_p,
            truncation: "disabled",
            usage: finished.then(|| self.usage()),
            user: Null,
            metadata: &r.metadata,
            output_text: self.output_text(),
        }
    }
}

fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The stream events of one response, numbered, when the client asked for a stream.
pub(super) struct Events {
    tx: Option<mpsc::Sender<EncodedEvent>>,
    sequence: u64,
    response_id: String,
}

impl Events {
    pub fn new(tx: Option<mpsc::Sender<EncodedEvent>>, response_id: String) -> Self {
        Self {
            tx,
            sequence: 0,
            response_id,
        }
    }

    /// Numbers and encodes an event (nothing without a stream).
    pub fn encode(&mut self, kind: &'static str, payload: Payload<'_>) -> Option<EncodedEvent> {
        self.tx.as_ref()?;
        let event = StreamEvent {
            kind,
            sequence_number: self.sequence,
            payload,
        };
        self.sequence += 1;
        match serde_json::to_string(&event) {
            Ok(data) => Some(EncodedEvent { kind, data }),
            Err(error) => {
                tracing::error!(response_id = %self.response_id, %error, kind, "a stream event could not be encoded");
                None
            }
        }
    }

    /// Sends an encoded event; a reader that went away or stays full too long ends the stream
    /// (the response is still finished and stored).
    pub async fn send(&mut self, event: Option<EncodedEvent>) {
        let (Some(tx), Some(event)) = (&self.tx, event) else {
            return;
        };
        let sent = tokio::time::timeout(STREAM_SEND_TIMEOUT, tx.send(event)).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!(response_id = %self.response_id, "stream reader went away; finishing without it");
            self.tx = None;
        }
    }

    /// `response.output_item.added` or `.done` with `item`.
    pub async fn item(&mut self, kind: &'static str, output_index: usize, item: &OutputItem) {
        self.emit(kind, Payload::Item { output_index, item }).await;
    }

    /// A progress event (`response.mcp_call.completed`...) of the item `item_id`.
    pub async fn progress(&mut self, kind: &'static str, output_index: usize, item_id: &str) {
        let payload = Payload::Progress {
            output_index,
            item_id,
        };
        self.emit(kind, payload).await;
    }

    /// Encodes and sends an event.
    pub async fn emit(&mut self, kind: &'static str, payload: Payload<'_>) {
        let event = self.encode(kind, payload);
        self.send(event).await;
    }
}
