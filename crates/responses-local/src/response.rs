//! The response object, its output items and the stream events, as the hosted API writes them.
//!
//! Fields are declared in the hosted API's order, and fields it sends as `null` are `null` here
//! too. async-openai's `Response` and output item types read these bodies (the tests check it)
//! but do not write them the same way: they skip `null` fields (`error`, `annotations`,
//! `incomplete_details`), hold `temperature` as `f32` and order fields alphabetically; and the
//! crate is an HTTP client this server has no use for. So the wire types are our own.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::connector::ListedTool;
use crate::request::{McpToolSpec, ToolChoice};

/// A field that always serializes as `null` (fields this endpoint does not fill, and secrets it
/// does not repeat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Null;

impl Serialize for Null {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

/// `status` of a response or an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    InProgress,
    Completed,
    Failed,
}

/// The response object.
#[derive(Debug, Serialize)]
pub(crate) struct ResponseBody<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created_at: u64,
    pub status: Status,
    pub background: bool,
    pub completed_at: Option<u64>,
    pub error: Option<ResponseError>,
    pub incomplete_details: Null,
    pub instructions: Option<&'a str>,
    pub max_output_tokens: Null,
    pub max_tool_calls: Option<u32>,
    pub model: &'a str,
    pub output: &'a [OutputItem],
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<&'a str>,
    pub reasoning: Reasoning,
    pub service_tier: &'static str,
    pub store: bool,
    pub temperature: f64,
    pub text: TextConfig,
    pub tool_choice: &'a ToolChoice,
    pub tools: &'a [McpToolSpec],
    pub top_logprobs: u32,
    pub top_p: f64,
    pub truncation: &'static str,
    pub usage: Option<Usage>,
    pub user: Null,
    pub metadata: &'a BTreeMap<String, String>,
    /// An SDK convenience the hosted API does not send; clients must not rely on it.
    pub output_text: String,
}

/// `error` of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ResponseError {
    pub code: &'static str,
    pub message: String,
}

/// `reasoning`: none here.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Reasoning {
    pub effort: Null,
    pub summary: Null,
}

/// `text`: plain text output.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct TextConfig {
    pub format: TextFormat,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(tag = "type", rename = "text")]
pub(crate) struct TextFormat {}

/// Token counts (estimated: a token per 4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

/// The openai SDK (3.57) requires both fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct InputTokensDetails {
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// One item of `output`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem {
    McpListTools {
        id: String,
        server_label: String,
        tools: Vec<ListedTool>,
        error: Null,
    },
    McpApprovalRequest {
        id: String,
        server_label: String,
        name: String,
        arguments: String,
    },
    McpCall(McpCall),
    Message {
        id: String,
        status: Status,
        role: &'static str,
        content: Vec<OutputText>,
    },
}

/// An `mcp_call` item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct McpCall {
    pub id: String,
    pub server_label: String,
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
    pub output: Option<String>,
    pub error: Option<McpCallError>,
    pub status: Status,
    pub approval_request_id: Option<String>,
}

/// Why an `mcp_call` failed: its `error`, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub(crate) enum McpCallError {
    /// The server answered with a JSON-RPC error.
    #[serde(rename = "mcp_protocol_error")]
    Protocol { code: i64, message: String },
    /// The tool ran and failed (`isError`), with its MCP content blocks.
    #[serde(rename = "mcp_tool_execution_error")]
    ToolExecution { content: Vec<Value> },
    /// The server could not be reached or answered with an HTTP error.
    #[serde(rename = "http_error")]
    Http { code: u16, message: String },
}

/// An `output_text` content part.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "output_text")]
pub(crate) struct OutputText {
    pub text: String,
    pub annotations: Vec<Value>,
    pub logprobs: Vec<Value>,
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self {
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

/// One stream event, ready to send: its `type` (the SSE event name) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedEvent {
    pub kind: &'static str,
    pub data: String,
}

/// A stream event: `type`, `sequence_number`, then the fields of its payload.
#[derive(Debug, Serialize)]
pub(crate) struct StreamEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    #[serde(flatten)]
    pub payload: Payload<'a>,
}

/// The fields of a stream event, by the event's kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Payload<'a> {
    /// `response.created`, `.in_progress`, `.completed`, `.failed`.
    Response { response: Box<ResponseBody<'a>> },
    /// `response.output_item.added` and `.done`.
    Item {
        output_index: usize,
        item: &'a OutputItem,
    },
    /// `response.mcp_list_tools.*` and `response.mcp_call.*` progress.
    Progress {
        output_index: usize,
        item_id: &'a str,
    },
    ArgumentsDelta {
        output_index: usize,
        item_id: &'a str,
        delta: &'a str,
    },
    ArgumentsDone {
        output_index: usize,
        item_id: &'a str,
        arguments: &'a str,
    },
    /// `response.content_part.added` and `.done`.
    Part {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        part: &'a OutputText,
    },
    TextDelta {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        delta: &'a str,
        logprobs: [Null; 0],
    },
    TextDone {
        item_id: &'a str,
        output_index: usize,
        content_index: u32,
        text: &'a str,
        logprobs: [Null; 0],
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_the_hosted_apis_field_order() {
        let call = OutputItem::McpCall(McpCall {
            id: "mcp_1".to_owned(),
            server_label: "dice_server".to_owned(),
            name: "roll_dice".to_owned(),
            arguments: r#"{"n_dice":3}"#.to_owned(),
            output: None,
            error: Some(McpCallError::Protocol {
                code: -32602,
                message: "Invalid params".to_owned(),
            }),
            status: Status::Failed,
            approval_request_id: None,
        });
        assert_eq!(
            serde_json::to_string(&call).unwrap(),
            r#"{"type":"mcp_call","id":"mcp_1","server_label":"dice_server","name":"roll_dice","arguments":"{\"n_dice\":3}","output":null,"error":{"type":"mcp_protocol_error","code":-32602,"message":"Invalid params"},"status":"failed","approval_request_id":null}"#
        );
        let message = OutputItem::Message {
            id: "msg_1".to_owned(),
            status: Status::Completed,
            role: "assistant",
            content: vec![OutputText::new("hi".to_owned())],
        };
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[],"logprobs":[]}]}"#
        );
    }

    #[test]
    fn stream_events_start_with_type_and_sequence_number() {
        let event = StreamEvent {
            kind: "response.output_text.delta",
            sequence_number: 7,
            payload: Payload::TextDelta {
                item_id: "msg_1",
                output_index: 2,
                content_index: 0,
                delta: "You ",
                logprobs: [],
            },
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_1","output_index":2,"content_index":0,"delta":"You ","logprobs":[]}"#
        );
    }
}
