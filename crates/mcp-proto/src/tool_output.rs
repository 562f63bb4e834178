//! What a tool handler's value becomes on its way into a `tools/call` result, serialized once.
//!
//! A typed handler's value is serialized to JSON text once, when the handler returns. The
//! text block of the result is that text (a string value's own text), `structuredContent`
//! is that text again (wrapped as `{"result": ...}` when the tool's output schema says so),
//! and a transport asking for bytes gets them written straight from it, with no
//! [`serde_json::Value`] built in between (see [`crate::McpService::handle_encoded`]).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::tool::ToolError;
use crate::types::{CallToolResult, ContentBlock};
use crate::version::ProtocolVersion;

/// A handler's value ready to become a `tools/call` result: a [`CallToolResult`] the handler
/// built, or a typed value already serialized to its compact JSON text.
///
/// [`crate::IntoToolOutput::into_output`] makes one; a [`CallToolResult`] converts with
/// `From`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput(Output);

#[derive(Debug, Clone, PartialEq)]
enum Output {
    /// A result the handler built itself.
    Built(CallToolResult),
    /// A typed value's compact JSON; `wrapped` when `structuredContent` is `{"result": it}`.
    Json { json: String, wrapped: bool },
}

impl From<CallToolResult> for ToolOutput {
    fn from(result: CallToolResult) -> Self {
        Self(Output::Built(result))
    }
}

impl ToolOutput {
    /// The compact JSON of `value`, the one serialization its result is made from.
    pub(crate) fn json(value: &impl Serialize) -> Result<Self, ToolError> {
        let json = serde_json::to_string(value)
            .map_err(|e| ToolError::new(format!("cannot serialize the tool's result: {e}")))?;
        Ok(Self(Output::Json {
            json,
            wrapped: false,
        }))
    }

    /// Marks a JSON value as wrapped in `{"result": ...}` (its tool's output schema is
    /// FastMCP's wrapper); a built result is left as it is.
    pub(crate) fn wrapped_if(mut self, wrap: bool) -> Self {
        if let Output::Json { wrapped, .. } = &mut self.0 {
            *wrapped = wrap;
        }
        self
    }

    /// The result as a [`CallToolResult`] (`structuredContent` is read back from the text).
    pub(crate) fn into_call_result(self) -> CallToolResult {
        match self.0 {
            Output::Built(result) => result,
            Output::Json { json, wrapped } => {
                let structured = structured_value(&json, wrapped);
                CallToolResult {
                    content: vec![ContentBlock::text(text_of(json))],
                    structured_content: Some(structured),
                    is_error: Some(false),
                    meta: None,
                }
            }
        }
    }

    /// The result's JSON value as `version` sees it: what serializing
    /// `into_call_result().into_version(version)` to a value gives.
    pub(crate) fn into_result_value(self, version: ProtocolVersion) -> Value {
        match self.0 {
            Output::Built(result) => {
                serde_json::to_value(result.into_version(version)).unwrap_or(Value::Null)
            }
            Output::Json { json, wrapped } => {
                let mut result = Map::new();
                if version.has_structured_output() {
                    let structured = structured_value(&json, wrapped);
                    result.insert("structuredContent".into(), structured);
                }
                let mut block = Map::new();
                block.insert("type".into(), Value::from("text"));
                block.insert("text".into(), Value::String(text_of(json)));
                result.insert("content".into(), Value::Array(vec![Value::Object(block)]));
                result.insert("isError".into(), Value::Bool(false));
                Value::Object(result)
            }
        }
    }

    /// The length of the serialized value (0 for a built result).
    pub(crate) fn json_len(&self) -> usize {
        match &self.0 {
            Output::Built(_) => 0,
            Output::Json { json, .. } => json.len(),
        }
    }

    /// Writes the result's JSON for `version` straight from the serialized value: the same
    /// members in the same order as [`Self::into_result_value`] serializes to (a value's own
    /// objects keep the order it serialized them in). `false`, writing nothing, for a built
    /// result.
    pub(crate) fn write_result(&self, version: ProtocolVersion, out: &mut Vec<u8>) -> bool {
        let Output::Json { json, wrapped } = &self.0 else {
            return false;
        };
        // Members in the order of a `serde_json::Map` (sorted), as the value path writes them.
        out.extend_from_slice(br#"{"content":[{"text":"#);
        if is_string(json) {
            // The JSON of a string is its text block's JSON already.
            out.extend_from_slice(json.as_bytes());
        } else {
            write_json_string(json, out);
        }
        out.extend_from_slice(br#","type":"text"}],"isError":false"#);
        if version.has_structured_output() {
            out.extend_from_slice(br#","structuredContent":"#);
            if *wrapped {
                out.extend_from_slice(br#"{"result":"#);
            }
            out.extend_from_slice(json.as_bytes());
            if *wrapped {
                out.push(b'}');
            }
        }
        out.push(b'}');
        true
    }
}

/// The text block's text: a string value's own text, any other value's JSON.
fn text_of(json: String) -> String {
    match string_text(&json) {
        Some(text) => text,
        None => json,
    }
}

/// The text of a JSON string; `None` when the JSON is another kind of value.
fn string_text(json: &str) -> Option<String> {
    if is_string(json) {
        serde_json::from_str(json).ok()
    } else {
        None
    }
}

/// Whether compact JSON text is a string's.
fn is_string(json: &str) -> bool {
    json.starts_with('"')
}

/// `structuredContent`: the value read back from its JSON, wrapped when asked.
fn structured_value(json: &str, wrapped: bool) -> Value {
    let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    if wrapped {
        let mut outer = Map::new();
        outer.insert("result".into(), value);
        Value::Object(outer)
    } else {
        value
    }
}

/// Writes `text` as a JSON string.
fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // Writing a `&str` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(output: &ToolOutput, version: ProtocolVersion) -> String {
        let mut out = Vec::new();
        assert!(output.write_result(version, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn written_bytes_are_the_value_path_bytes() {
        let outputs = [
            ToolOutput::json(&vec![1u8, 2, 3]).unwrap().wrapped_if(true),
            ToolOutput::json(&"a \"quoted\"\nline")
                .unwrap()
                .wrapped_if(true),
            ToolOutput::json(&json!({"a": 1, "b": [true, null], "c": "x"})).unwrap(),
            ToolOutput::json(&1.5f64).unwrap().wrapped_if(true),
        ];
        for output in outputs {
            for version in ProtocolVersion::ALL {
                let value = output.clone().into_result_value(version);
                assert_eq!(written(&output, version), value.to_string(), "{version}");
                let built =
                    serde_json::to_value(output.clone().into_call_result().into_version(version));
                assert_eq!(built.unwrap(), value, "{version}");
            }
        }
    }

    #[test]
    fn a_string_value_is_its_own_text() {
        let output = ToolOutput::json(&"hé \"x\"").unwrap().wrapped_if(true);
        let result = output.into_call_result();
        assert_eq!(result.content[0].as_text(), Some("hé \"x\""));
        assert_eq!(
            result.structured_content,
            Some(json!({"result": "hé \"x\""}))
        );
    }

    #[test]
    fn an_object_keeps_its_members_in_the_order_it_serialized_them() {
        #[derive(Serialize)]
        struct Point {
            y: i32,
            x: i32,
        }
        let output = ToolOutput::json(&Point { y: 2, x: 1 }).unwrap();
        assert_eq!(
            written(&output, ProtocolVersion::V2025_06_18),
            r#"{"content":[{"text":"{\"y\":2,\"x\":1}","type":"text"}],"isError":false,"structuredContent":{"y":2,"x":1}}"#
        );
        let result = output.into_call_result();
        assert_eq!(result.content[0].as_text(), Some(r#"{"y":2,"x":1}"#));
        assert_eq!(result.structured_content, Some(json!({"x": 1, "y": 2})));
    }

    #[test]
    fn a_built_result_is_not_written() {
        let output = ToolOutput::from(CallToolResult::error_text("no"));
        assert!(!output.write_result(ProtocolVersion::LATEST, &mut Vec::new()));
        assert_eq!(
            output.into_result_value(ProtocolVersion::V2024_11_05),
            json!({"content": [{"type": "text", "text": "no"}], "isError": true})
        );
    }
}
