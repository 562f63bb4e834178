//! A request's answer before it is serialized, and its two ways out: a [`Message`] for
//! [`crate::McpService::handle`], bytes for [`crate::McpService::handle_encoded`].

use serde_json::Value;

use crate::jsonrpc::{ErrorObject, Message, RequestId, Response};
use crate::service::{EncodedReply, ReplyOutcome};
use crate::tool::ToolOutput;
use crate::version::ProtocolVersion;

/// A request's result: a JSON value, or a tool's output not yet made one.
#[derive(Debug)]
pub(super) enum ResultBody {
    /// Any result as a value.
    Value(Value),
    /// A `tools/call` result, as `version` sees it.
    Tool {
        output: ToolOutput,
        version: ProtocolVersion,
    },
}

impl ResultBody {
    /// The result as a JSON value.
    pub(super) fn into_value(self) -> Value {
        match self {
            ResultBody::Value(value) => value,
            ResultBody::Tool { output, version } => output.into_result_value(version),
        }
    }
}

/// The answer to one request.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) id: RequestId,
    pub(super) outcome: Result<ResultBody, ErrorObject>,
}

/// What a response to a tool's output adds around the result.
const ENVELOPE_BYTES: usize = 128;

impl Answer {
    /// An error answer.
    pub(super) fn error(id: RequestId, error: ErrorObject) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }

    /// The response message.
    pub(super) fn into_message(self) -> Message {
        Message::Response(Response {
            id: Some(self.id),
            outcome: self.outcome.map(ResultBody::into_value),
        })
    }

    /// The response's bytes: a tool's serialized value is written into them as it is, any
    /// other answer goes through [`Answer::into_message`].
    pub(super) fn encode(self) -> EncodedReply {
        if let Ok(ResultBody::Tool { output, version }) = &self.outcome {
            let mut bytes = Vec::with_capacity(ENVELOPE_BYTES + 2 * output.json_len());
            // The value is in the bytes twice (text block and `structuredContent`); the
            // members are in the order `Message`'s serializer writes them.
            bytes.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
            if serde_json::to_writer(&mut bytes, &self.id).is_ok() {
                bytes.extend_from_slice(br#","result":"#);
                if output.write_result(*version, &mut bytes) {
                    bytes.push(b'}');
                    return EncodedReply {
                        bytes,
                        outcome: ReplyOutcome::Result,
                    };
                }
            }
        }
        EncodedReply::from_message(&self.into_message())
    }
}
